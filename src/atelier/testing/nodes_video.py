"""Video and reference nodes of the fake: Wan first-last-frame and image-to-video, SVD,
Qwen image edit with references, Kontext's ReferenceLatent, ImageStitch and SaveWEBM.

Conditioning nodes attach their images to the conditioning (as ComfyUI puts them into
`concat_latent_image` / `reference_latents`); the sampler carries them into its latent
and VAEDecode renders frames that follow them (testing/motion.py says how).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av
from PIL import Image

from atelier.testing import motion
from atelier.testing.media import save_target
from atelier.testing.node_api import JsonDict, NodeContext, NodeOutput, node
from atelier.testing.nodes_image import scale
from atelier.testing.values import (
    Conditioning,
    ImageBatch,
    Latent,
    format_value,
    is_image_batch,
    stable_digest,
)


def _first(images: Any) -> Image.Image | None:
    return images[0] if is_image_batch(images) else None


def _last(images: Any) -> Image.Image | None:
    return images[-1] if is_image_batch(images) else None


def wan_frames(length: int) -> int:
    """Frames a Wan latent of `length` decodes to: 4 per latent step, plus the first."""
    return ((length - 1) // 4) * 4 + 1


def _video_latent(ctx: NodeContext, inputs: JsonDict, frames: int, batch: int) -> Latent:
    width, height = inputs["width"] // 8 * 8, inputs["height"] // 8 * 8
    content = stable_digest(ctx.class_type, width, height, frames, batch).hex()
    return Latent(width, height, batch, content, length=frames)


@node("WanFirstLastFrameToVideo")
async def wan_first_last_frame_to_video(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    # ComfyUI takes the first frames of start_image and the last of end_image.
    start, end = _first(inputs.get("start_image")), _last(inputs.get("end_image"))
    frames = wan_frames(inputs["length"])
    latent = _video_latent(ctx, inputs, frames, inputs["batch_size"])
    positive = motion.with_frames(inputs["positive"], start, end)
    negative = motion.with_frames(inputs["negative"], start, end)
    return NodeOutput((positive, negative, latent))


@node("WanImageToVideo")
async def wan_image_to_video(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    start = _first(inputs.get("start_image"))
    frames = wan_frames(inputs["length"])
    latent = _video_latent(ctx, inputs, frames, inputs["batch_size"])
    positive = motion.with_frames(inputs["positive"], start, None)
    negative = motion.with_frames(inputs["negative"], start, None)
    return NodeOutput((positive, negative, latent))


@node("SVD_img2vid_Conditioning")
async def svd_img2vid_conditioning(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    start = _first(inputs["init_image"])
    clip_vision = str(inputs["clip_vision"])
    summary = f"svd motion={inputs['motion_bucket_id']} fps={inputs['fps']}"
    positive = motion.with_frames(Conditioning(summary, clip_vision), start, None)
    negative = motion.with_frames(Conditioning("", clip_vision), start, None)
    # SVD's latent holds one entry per frame: the time axis is the batch.
    latent = _video_latent(ctx, inputs, 1, inputs["video_frames"])
    return NodeOutput((positive, negative, latent))


def _qwen_references(inputs: JsonDict, names: tuple[str, ...]) -> list[Image.Image]:
    return [image for name in names if (image := _first(inputs.get(name))) is not None]


@node("TextEncodeQwenImageEdit")
async def text_encode_qwen_image_edit(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    cond = Conditioning(inputs["prompt"], str(inputs["clip"]))
    return NodeOutput((motion.with_references(cond, _qwen_references(inputs, ("image",))),))


@node("TextEncodeQwenImageEditPlus")
async def text_encode_qwen_image_edit_plus(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    cond = Conditioning(inputs["prompt"], str(inputs["clip"]))
    images = _qwen_references(inputs, ("image1", "image2", "image3"))
    return NodeOutput((motion.with_references(cond, images),))


@node("ReferenceLatent")
async def reference_latent(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    latent = inputs.get("latent")
    pixels = list(latent.guide.pixels) if isinstance(latent, Latent) and latent.guide else []
    return NodeOutput((motion.with_references(inputs["conditioning"], pixels),))


@node("FluxGuidance", "ConditioningSetTimestepRange")
async def conditioning_pass_through(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((inputs["conditioning"],))


@node("ConditioningZeroOut")
async def conditioning_zero_out(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    cond = inputs["conditioning"]
    if isinstance(cond, Conditioning):
        # The tensors become zeros; the attached reference latents stay, as in ComfyUI.
        return NodeOutput((Conditioning("", cond.clip, cond.guide),))
    return NodeOutput((cond,))


_SPACING_COLORS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def _stitch(
    first: Image.Image, second: Image.Image, direction: str, match: bool, gap: int, color: str
) -> Image.Image:
    horizontal = direction in ("left", "right")
    if match:
        if horizontal and second.height != first.height:
            width = max(1, round(second.width * first.height / second.height))
            second = scale(second, "lanczos", width, first.height, "disabled")
        elif not horizontal and second.width != first.width:
            height = max(1, round(second.height * first.width / second.width))
            second = scale(second, "lanczos", first.width, height, "disabled")
    a, b = (second, first) if direction in ("left", "up") else (first, second)
    if horizontal:
        size = (a.width + gap + b.width, max(a.height, b.height))
        offset = (a.width + gap, 0)
    else:
        size = (max(a.width, b.width), a.height + gap + b.height)
        offset = (0, a.height + gap)
    canvas = Image.new("RGB", size, _SPACING_COLORS.get(color, (255, 255, 255)))
    canvas.paste(a, (0, 0))
    canvas.paste(b, offset)
    return canvas


@node("ImageStitch")
async def image_stitch(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    first: ImageBatch = inputs["image1"]
    if not is_image_batch(inputs.get("image2")):
        return NodeOutput((first,))
    second: ImageBatch = inputs["image2"]
    args = (
        inputs["direction"],
        inputs["match_image_size"],
        inputs["spacing_width"],
        inputs["spacing_color"],
    )

    def stitch_all() -> ImageBatch:
        return [_stitch(a, second[i % len(second)], *args) for i, a in enumerate(first)]

    return NodeOutput((await ctx.cpu(stitch_all),))


WEBM_CODECS = {"vp9": ("libvpx-vp9",), "av1": ("libsvtav1", "libaom-av1")}


def encode_webm(frames: ImageBatch, codec: str, fps: float, crf: float) -> bytes:
    """comfy_extras/nodes_video.py SaveWEBM: VP9 yuv420p or AV1 yuv420p10le, CRF only."""
    name = next((c for c in WEBM_CODECS[codec] if c in av.codecs_available), None)
    if name is None:
        raise RuntimeError(f"no {codec} encoder in this build of PyAV")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as container:
        stream = container.add_stream(name, rate=Fraction(round(fps * 1000), 1000))
        assert isinstance(stream, av.VideoStream)
        stream.width = frames[0].width // 2 * 2 or 2
        stream.height = frames[0].height // 2 * 2 or 2
        stream.pix_fmt = "yuv420p10le" if codec == "av1" else "yuv420p"
        stream.bit_rate = 0
        stream.options = {"crf": str(int(crf))}
        if codec == "av1" and name == "libsvtav1":
            stream.options["preset"] = "6"
        size = (stream.width, stream.height)
        for image in frames:
            frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                image.convert("RGB").crop((0, 0, *size))
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


@node("SaveWEBM")
async def save_webm(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images = inputs["images"]
    if not is_image_batch(images):
        raise TypeError(f"images is not an IMAGE batch: {format_value(images)}")
    target = save_target(inputs["filename_prefix"], ctx.dirs.output, *images[0].size)
    file = f"{target.filename}_{target.counter:05}_.webm"
    data = await ctx.cpu(encode_webm, images, inputs["codec"], inputs["fps"], inputs["crf"])
    ctx.write(target.folder / file, data)
    result = {"filename": file, "subfolder": target.subfolder, "type": "output"}
    return NodeOutput(ui={"images": [result], "animated": [True]})

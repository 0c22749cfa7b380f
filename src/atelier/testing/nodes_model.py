"""Simulated model nodes, audio/video nodes, small utility nodes and the generic fallback.

Nothing here runs a model: loaders hand out named references, samplers spend
`step_time` per step while reporting progress like ComfyUI's ProgressBar hook, and
VAEDecode paints a deterministic picture derived from the seed and the prompt text.
"""

from __future__ import annotations

import json
from typing import Any

from PIL import Image

from atelier.testing import motion
from atelier.testing.media import encode_flac, encode_mp4, save_target
from atelier.testing.node_api import JsonDict, NodeContext, NodeOutput, node, temp_prefix
from atelier.testing.values import (
    AudioClip,
    Conditioning,
    Guide,
    ImageBatch,
    Latent,
    ModelRef,
    Token,
    VideoClip,
    format_value,
    is_image_batch,
    pattern_image,
    stable_digest,
)


@node("CheckpointLoaderSimple")
async def checkpoint_loader(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    name: str = inputs["ckpt_name"]
    if ctx.models.loaded_checkpoint != name:
        await ctx.sleep(ctx.timing.model_load_time)
        ctx.models.loaded_checkpoint = name
        ctx.models.model_switches += 1
    return NodeOutput((ModelRef("MODEL", name), ModelRef("CLIP", name), ModelRef("VAE", name)))


@node("VAELoader")
async def vae_loader(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((ModelRef("VAE", inputs["vae_name"]),))


@node("UNETLoader")
async def unet_loader(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((ModelRef("MODEL", inputs["unet_name"]),))


@node("UpscaleModelLoader")
async def upscale_model_loader(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((ModelRef("UPSCALE_MODEL", inputs["model_name"]),))


def _patched(ref: Any, patch: str) -> ModelRef:
    if not isinstance(ref, ModelRef):
        raise TypeError(f"expected a model, got {format_value(ref)}")
    return ModelRef(ref.kind, ref.name, (*ref.patches, patch))


@node("LoraLoader")
async def lora_loader(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    lora = inputs["lora_name"]
    model = _patched(inputs["model"], f"{lora}:{inputs['strength_model']}")
    clip = _patched(inputs["clip"], f"{lora}:{inputs['strength_clip']}")
    return NodeOutput((model, clip))


@node("LoraLoaderModelOnly")
async def lora_loader_model_only(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    patch = f"{inputs['lora_name']}:{inputs['strength_model']}"
    return NodeOutput((_patched(inputs["model"], patch),))


@node("CLIPTextEncode")
async def clip_text_encode(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((Conditioning(inputs["text"], str(inputs["clip"])),))


@node("EmptyLatentImage")
async def empty_latent_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    width, height = inputs["width"] // 8 * 8, inputs["height"] // 8 * 8
    return NodeOutput((Latent(width, height, inputs["batch_size"]),))


async def _sample(
    ctx: NodeContext, inputs: JsonDict, seed: int, run_steps: int, denoise: float
) -> NodeOutput:
    latent = inputs["latent_image"]
    if not isinstance(latent, Latent):
        raise TypeError(f"latent_image is not a latent: {format_value(latent)}")
    for step in range(run_steps):
        await ctx.sleep(ctx.timing.step_time)
        await ctx.progress(step + 1, run_steps)
    positive, negative = inputs["positive"], inputs["negative"]
    content = stable_digest(
        str(inputs["model"]),
        seed,
        inputs["steps"],
        inputs["cfg"],
        inputs["sampler_name"],
        inputs["scheduler"],
        getattr(positive, "text", str(positive)),
        getattr(negative, "text", str(negative)),
        latent.content,
    ).hex()
    guide = motion.sampled_guide(latent, positive, denoise)
    sampled = Latent(latent.width, latent.height, latent.batch, content, latent.length, guide)
    return NodeOutput((sampled,))


@node("KSampler")
async def ksampler(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return await _sample(ctx, inputs, inputs["seed"], inputs["steps"], inputs["denoise"])


@node("KSamplerAdvanced")
async def ksampler_advanced(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    last = min(inputs.get("end_at_step", 10000), inputs["steps"])
    first = inputs.get("start_at_step", 0)
    run_steps = max(0, last - first)
    denoise = 1.0 - min(first, inputs["steps"]) / inputs["steps"]
    return await _sample(ctx, inputs, inputs["noise_seed"], run_steps, denoise)


@node("VAEDecode")
async def vae_decode(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    latent = inputs["samples"]
    if not isinstance(latent, Latent):
        raise TypeError(f"samples is not a latent: {format_value(latent)}")
    return NodeOutput((await ctx.cpu(motion.decode, latent, str(inputs["vae"])),))


@node("VAEEncode")
async def vae_encode(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["pixels"]
    thumb = await ctx.cpu(lambda: images[0].resize((8, 8)).tobytes())
    width, height = images[0].width // 8 * 8, images[0].height // 8 * 8
    # The latent holds its pixels: a sampler keeps some of them (img2img), a decode of
    # the latent itself gives them back.
    guide = Guide(pixels=tuple(images), pixel_strength=1.0)
    content = stable_digest(thumb).hex()
    return NodeOutput((Latent(width, height, len(images), content, guide=guide),))


@node("ImageUpscaleWithModel")
async def image_upscale_with_model(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]

    def upscale() -> ImageBatch:
        return [im.resize((im.width * 4, im.height * 4), Image.Resampling.LANCZOS) for im in images]

    return NodeOutput((await ctx.cpu(upscale),))


@node("EmptyAudio")
async def empty_audio(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    rate = inputs["sample_rate"]
    samples = round(inputs["duration"] * rate)
    return NodeOutput((AudioClip(rate, inputs["channels"], samples),))


def _media_metadata(ctx: NodeContext) -> dict[str, str]:
    metadata = {"prompt": json.dumps(ctx.prompt)}
    extra = ctx.extra_data.get("extra_pnginfo")
    if isinstance(extra, dict):
        metadata.update({str(k): json.dumps(v) for k, v in extra.items()})
    return metadata


async def _save_audio(ctx: NodeContext, audio: Any, prefix: str, kind: str) -> NodeOutput:
    if not isinstance(audio, AudioClip):
        raise TypeError(f"audio is not an AUDIO value: {format_value(audio)}")
    folder = ctx.dirs.output if kind == "output" else ctx.dirs.temp
    target = save_target(prefix, folder)
    file = f"{target.filename.replace('%batch_num%', '0')}_{target.counter:05}_.flac"
    data = await ctx.cpu(encode_flac, audio, _media_metadata(ctx))
    ctx.write(target.folder / file, data)
    saved = {"filename": file, "subfolder": target.subfolder, "type": kind}
    return NodeOutput(ui={"audio": [saved]})


@node("SaveAudio")
async def save_audio(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    prefix = inputs.get("filename_prefix", "ComfyUI")
    return await _save_audio(ctx, inputs["audio"], prefix, "output")


@node("PreviewAudio")
async def preview_audio(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return await _save_audio(ctx, inputs["audio"], f"ComfyUI_temp_{temp_prefix()}", "temp")


@node("CreateVideo")
async def create_video(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((VideoClip(list(inputs["images"]), inputs["fps"], inputs.get("audio")),))


@node("SaveVideo")
async def save_video(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    video = inputs["video"]
    if not isinstance(video, VideoClip) or not video.frames:
        raise TypeError(f"video is not a VIDEO value: {format_value(video)}")
    size = video.frames[0].size
    target = save_target(inputs.get("filename_prefix", "video/ComfyUI"), ctx.dirs.output, *size)
    file = f"{target.filename}_{target.counter:05}_.mp4"
    data = await ctx.cpu(encode_mp4, video, _media_metadata(ctx))
    ctx.write(target.folder / file, data)
    result = {"filename": file, "subfolder": target.subfolder, "type": "output"}
    return NodeOutput(ui={"images": [result], "animated": [True]})


@node("PreviewAny")
async def preview_any(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    source = inputs.get("source")
    if isinstance(source, str):
        value = source
    elif isinstance(source, int | float | bool):
        value = str(source)
    elif source is None:
        value = "None"
    else:
        try:
            value = json.dumps(source)
        except TypeError:
            value = str(source) if not is_image_batch(source) else str(format_value(source))
    return NodeOutput(ui={"text": [value]})


@node("PrimitiveString", "PrimitiveStringMultiline", "PrimitiveInt", "PrimitiveFloat")
async def primitive(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((inputs["value"],))


@node("PrimitiveBoolean")
async def primitive_boolean(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((inputs["value"],))


@node("StringConcatenate")
async def string_concatenate(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    joined = f"{inputs['string_a']}{inputs.get('delimiter', '')}{inputs['string_b']}"
    return NodeOutput((joined,))


@node("SaveImageWebsocket")
async def save_image_websocket(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["images"]
    for step, image in enumerate(images):
        await ctx.progress(step, len(images), preview=image)
    return NodeOutput()


_PRIMITIVE_DEFAULTS: dict[str, Any] = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


async def simulate(ctx: NodeContext, inputs: JsonDict, output_types: list[Any]) -> NodeOutput:
    """Any declared-but-unimplemented class: outputs of the declared types, no UI.

    IMAGE outputs pass the first IMAGE input through (or paint a picture of the requested
    width/height), primitives get their zero value, everything else an opaque token.
    """
    first_image = next((v for v in inputs.values() if is_image_batch(v)), None)
    width = inputs.get("width") if isinstance(inputs.get("width"), int) else None
    height = inputs.get("height") if isinstance(inputs.get("height"), int) else None
    batch = inputs.get("batch_size") if isinstance(inputs.get("batch_size"), int) else 1
    if first_image is not None:
        width = width or first_image[0].width
        height = height or first_image[0].height
    width, height = max(1, width or 512), max(1, height or 512)
    seed = sorted((k, str(format_value(v))) for k, v in inputs.items())
    results: list[Any] = []
    for index, out_type in enumerate(output_types):
        if out_type == "IMAGE":
            if first_image is not None:
                results.append(first_image)
            else:
                image = await ctx.cpu(pattern_image, width, height, ctx.class_type, seed, index)
                results.append([image] * max(1, batch or 1))
        elif out_type == "MASK":
            results.append([Image.new("L", (width, height), 0)])
        elif out_type == "LATENT":
            content = stable_digest(ctx.class_type, seed).hex()
            results.append(Latent(width // 8 * 8, height // 8 * 8, max(1, batch or 1), content))
        elif isinstance(out_type, str) and out_type in _PRIMITIVE_DEFAULTS:
            results.append(_PRIMITIVE_DEFAULTS[out_type])
        else:
            results.append(Token(str(out_type), f"{ctx.class_type} #{ctx.node_id}"))
    return NodeOutput(tuple(results))

"""Image and mask nodes, executed for real with Pillow, and the image output nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps, ImageSequence

from atelier.testing.media import (
    encode_animated_png,
    encode_animated_webp,
    encode_png,
    png_metadata,
    save_target,
)
from atelier.testing.node_api import JsonDict, NodeContext, NodeOutput, node, temp_prefix
from atelier.testing.values import ImageBatch, MaskBatch

RESAMPLING = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bislerp": Image.Resampling.BILINEAR,
}


def _rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def scale(image: Image.Image, method: str, width: int, height: int, crop: str) -> Image.Image:
    """`comfy.utils.common_upscale` on one image."""
    if crop == "center" and width > 0 and height > 0:
        old_w, old_h = image.size
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        image = image.crop((x, y, old_w - x, old_h - y))
    resample = RESAMPLING.get(method, Image.Resampling.BILINEAR)
    return image.resize((max(1, width), max(1, height)), resample)


def _map(images: ImageBatch, fn: Any, *args: Any) -> ImageBatch:
    return [fn(image, *args) for image in images]


@node("EmptyImage")
async def empty_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    size = (inputs["width"], inputs["height"])
    color = _rgb(inputs["color"])
    image = await ctx.cpu(Image.new, "RGB", size, color)
    # Every batch entry is the same pixels; images are never mutated in place.
    return NodeOutput(([image] * inputs["batch_size"],))


def _load_image(path: str) -> tuple[ImageBatch, MaskBatch]:
    images: ImageBatch = []
    masks: MaskBatch = []
    with Image.open(path) as img:
        for frame in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(frame)
            if frame.mode == "I":
                frame = frame.point(lambda v: v * (1 / 255))
            rgb = frame.convert("RGB")
            if images and rgb.size != images[0].size:
                continue
            if "A" in frame.getbands():
                mask = ImageOps.invert(frame.getchannel("A"))
            elif frame.mode == "P" and "transparency" in frame.info:
                mask = ImageOps.invert(frame.convert("RGBA").getchannel("A"))
            else:
                mask = Image.new("L", (64, 64), 0)
            images.append(rgb)
            masks.append(mask)
        if len(images) > 1 and img.format != "MPO":
            return images, masks
    return images[:1], masks[:1]


@node("LoadImage")
async def load_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images, masks = await ctx.cpu(_load_image, ctx.dirs.annotated_path(inputs["image"]))
    return NodeOutput((images, masks))


@node("LoadImageMask")
async def load_image_mask(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    def load(path: str, channel: str) -> MaskBatch:
        with Image.open(path) as opened:
            img = ImageOps.exif_transpose(opened)
            band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[channel]
            if band in img.getbands():
                mask = img.getchannel(band)
                return [ImageOps.invert(mask) if band == "A" else mask]
            return [Image.new("L", (64, 64), 0)]

    mask = await ctx.cpu(load, ctx.dirs.annotated_path(inputs["image"]), inputs["channel"])
    return NodeOutput((mask,))


@node("ImageScale")
async def image_scale(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]
    width, height = inputs["width"], inputs["height"]
    if width == 0 and height == 0:
        return NodeOutput((images,))
    w, h = images[0].size
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    method, crop = inputs["upscale_method"], inputs["crop"]
    return NodeOutput((await ctx.cpu(_map, images, scale, method, width, height, crop),))


@node("ImageScaleBy")
async def image_scale_by(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]
    factor = inputs["scale_by"]
    width, height = round(images[0].width * factor), round(images[0].height * factor)
    method = inputs["upscale_method"]
    return NodeOutput((await ctx.cpu(_map, images, scale, method, width, height, "disabled"),))


@node("ImageInvert")
async def image_invert(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((await ctx.cpu(_map, inputs["image"], ImageOps.invert),))


@node("ImageBlur")
async def image_blur(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]
    if inputs["blur_radius"] == 0:
        return NodeOutput((images,))
    blur = ImageFilter.GaussianBlur(inputs["sigma"])
    return NodeOutput((await ctx.cpu(_map, images, Image.Image.filter, blur),))


@node("ImageCrop")
async def image_crop(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]
    w, h = images[0].size
    x, y = min(inputs["x"], w - 1), min(inputs["y"], h - 1)
    box = (x, y, min(w, x + inputs["width"]), min(h, y + inputs["height"]))
    return NodeOutput((await ctx.cpu(_map, images, Image.Image.crop, box),))


@node("ImageFlip")
async def image_flip(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    vertical = inputs["flip_method"].startswith("x")
    op = Image.Transpose.FLIP_TOP_BOTTOM if vertical else Image.Transpose.FLIP_LEFT_RIGHT
    return NodeOutput((await ctx.cpu(_map, inputs["image"], Image.Image.transpose, op),))


@node("ImageRotate")
async def image_rotate(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    # ComfyUI rotates clockwise (torch.rot90 over dims [2, 1]); PIL's ROTATE_* are CCW.
    ops = {
        "90": Image.Transpose.ROTATE_270,
        "180": Image.Transpose.ROTATE_180,
        "270": Image.Transpose.ROTATE_90,
    }
    op = ops.get(inputs["rotation"].split(" ")[0])
    if op is None:
        return NodeOutput((inputs["image"],))
    return NodeOutput((await ctx.cpu(_map, inputs["image"], Image.Image.transpose, op),))


def _pad_for_outpaint(
    images: ImageBatch, left: int, top: int, right: int, bottom: int, feathering: int
) -> tuple[ImageBatch, MaskBatch]:
    w, h = images[0].size
    size = (w + left + right, h + top + bottom)
    padded: ImageBatch = []
    for image in images:
        # 0.5 grey, as uint8 after ComfyUI's 255*x truncation
        canvas = Image.new("RGB", size, (127, 127, 127))
        canvas.paste(image, (left, top))
        padded.append(canvas)
    inner = bytearray(w * h)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        # Deliberately the per-pixel Python loop of nodes.py: slow on big images, which is
        # what makes this node useful for landing an interrupt mid-graph.
        for i in range(h):
            for j in range(w):
                dt = i if top != 0 else h
                db = h - i if bottom != 0 else h
                dl = j if left != 0 else w
                dr = w - j if right != 0 else w
                d = min(dt, db, dl, dr)
                if d >= feathering:
                    continue
                v = (feathering - d) / feathering
                inner[i * w + j] = int(v * v * 255)
    mask = Image.new("L", size, 255)
    mask.paste(Image.frombytes("L", (w, h), bytes(inner)), (left, top))
    return padded, [mask]


@node("ImagePadForOutpaint")
async def image_pad_for_outpaint(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    args = (inputs[k] for k in ("left", "top", "right", "bottom", "feathering"))
    images, mask = await ctx.cpu(_pad_for_outpaint, inputs["image"], *args)
    return NodeOutput((images, mask))


@node("ImageBatch")
async def image_batch(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    first: ImageBatch = inputs["image1"]
    second: ImageBatch = inputs["image2"]
    size = first[0].size
    if second[0].size != size:
        second = await ctx.cpu(_map, second, scale, "bilinear", size[0], size[1], "center")
    return NodeOutput((first + second,))


@node("RepeatImageBatch")
async def repeat_image_batch(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((list(inputs["image"]) * inputs["amount"],))


@node("GetImageSize")
async def get_image_size(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["image"]
    width, height = images[0].size
    ctx.send_text(f"width: {width}, height: {height}\n batch size: {len(images)}")
    return NodeOutput((width, height, len(images)))


@node("SolidMask")
async def solid_mask(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    value = round(max(0.0, min(1.0, inputs["value"])) * 255)
    return NodeOutput(([Image.new("L", (inputs["width"], inputs["height"]), value)],))


@node("InvertMask")
async def invert_mask(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((await ctx.cpu(_map, inputs["mask"], ImageOps.invert),))


@node("MaskToImage")
async def mask_to_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    return NodeOutput((await ctx.cpu(_map, inputs["mask"], Image.Image.convert, "RGB"),))


@node("ImageToMask")
async def image_to_mask(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    band = {"red": 0, "green": 1, "blue": 2}.get(inputs["channel"])
    images: ImageBatch = inputs["image"]
    if band is None:  # alpha: IMAGE batches here are RGB, i.e. fully opaque
        return NodeOutput(([Image.new("L", im.size, 255) for im in images],))
    return NodeOutput((await ctx.cpu(_map, images, Image.Image.getchannel, band),))


async def save_images(
    ctx: NodeContext,
    images: ImageBatch,
    prefix: str,
    folder: Path,
    kind: str,
    compress_level: int,
) -> list[JsonDict]:
    target = save_target(prefix, folder, images[0].width, images[0].height)
    metadata = png_metadata(ctx.prompt, ctx.extra_data.get("extra_pnginfo"))
    results: list[JsonDict] = []
    counter = target.counter
    for batch_number, image in enumerate(images):
        name = target.filename.replace("%batch_num%", str(batch_number))
        file = f"{name}_{counter:05}_.png"
        data = await ctx.cpu(encode_png, image, metadata, compress_level)
        ctx.write(target.folder / file, data)
        results.append({"filename": file, "subfolder": target.subfolder, "type": kind})
        counter += 1
    return results


@node("SaveImage")
async def save_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    prefix = inputs.get("filename_prefix", "ComfyUI")
    results = await save_images(ctx, inputs["images"], prefix, ctx.dirs.output, "output", 4)
    return NodeOutput(ui={"images": results})


@node("PreviewImage")
async def preview_image(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    prefix = f"ComfyUI_temp_{temp_prefix()}"
    results = await save_images(ctx, inputs["images"], prefix, ctx.dirs.temp, "temp", 1)
    return NodeOutput(ui={"images": results})


@node("MaskPreview")
async def mask_preview(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images = await ctx.cpu(_map, inputs["mask"], Image.Image.convert, "RGB")
    prefix = f"ComfyUI_temp_{temp_prefix()}"
    results = await save_images(ctx, images, prefix, ctx.dirs.temp, "temp", 1)
    return NodeOutput(ui={"images": results})


@node("SaveAnimatedWEBP")
async def save_animated_webp(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["images"]
    method = {"default": 4, "fastest": 0, "slowest": 6}.get(inputs["method"], 4)
    target = save_target(inputs["filename_prefix"], ctx.dirs.output, *images[0].size)
    file = f"{target.filename}_{target.counter:05}_.webp"
    data = await ctx.cpu(
        encode_animated_webp,
        images,
        inputs["fps"],
        inputs["lossless"],
        inputs["quality"],
        method,
        ctx.prompt,
    )
    ctx.write(target.folder / file, data)
    result = {"filename": file, "subfolder": target.subfolder, "type": "output"}
    # ComfyUI flags the output as animated only when it holds more than one frame.
    return NodeOutput(ui={"images": [result], "animated": [len(images) != 1]})


@node("SaveAnimatedPNG")
async def save_animated_png(ctx: NodeContext, inputs: JsonDict) -> NodeOutput:
    images: ImageBatch = inputs["images"]
    prefix = inputs.get("filename_prefix", "ComfyUI")
    target = save_target(prefix, ctx.dirs.output, *images[0].size)
    file = f"{target.filename}_{target.counter:05}_.png"
    metadata = png_metadata(ctx.prompt, ctx.extra_data.get("extra_pnginfo"))
    data = await ctx.cpu(
        encode_animated_png, images, inputs["fps"], inputs["compress_level"], metadata
    )
    ctx.write(target.folder / file, data)
    result = {"filename": file, "subfolder": target.subfolder, "type": "output"}
    return NodeOutput(ui={"images": [result], "animated": [True]})

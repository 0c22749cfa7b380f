"""Graphs for tests, benchmarks and the demo: model-free image graphs that the fake
executes for real, and the classic txt2img graph whose models it simulates."""

from __future__ import annotations

from typing import Any

Graph = dict[str, Any]


def image_graph(*, color: int = 0x3366CC, size: int = 64, prefix: str = "test") -> Graph:
    """EmptyImage -> ImageInvert -> SaveImage: a real PNG of ``size`` x ``size``."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def sampler_graph(
    *,
    steps: int = 4,
    seed: int = 1,
    size: int = 64,
    checkpoint: str = "v1-5-pruned-emaonly.safetensors",
    text: str = "a lighthouse at dusk",
    prefix: str = "sampler",
) -> Graph:
    """txt2img; the fake simulates the models, one ``progress`` per step, and decodes a
    real image of ``size`` x ``size``."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def animated_graph(*, frames: int = 3, size: int = 32) -> Graph:
    """A batch of ``frames`` images of different colours saved as one animated WebP."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0xFF0000},
        },
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": frames}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["3", 0]}},
        "5": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["4", 0],
                "filename_prefix": "anim",
                "fps": 6.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }

"""Atelier: a production job API for ComfyUI."""

__version__ = "0.1.0"

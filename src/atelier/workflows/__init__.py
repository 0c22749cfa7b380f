"""Workflows: graph checks against ComfyUI's node schemas (templates come later)."""

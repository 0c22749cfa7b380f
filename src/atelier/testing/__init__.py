"""A protocol-faithful fake ComfyUI for tests (see docs/COMFYUI_PROTOCOL.md).

async with FakeComfyUI(step_time=0.01) as fake:
    ...  # talk to fake.url over HTTP and WebSocket

with ThreadedFakeComfyUI() as fake:  # its own loop thread, like a separate process
    ...
"""

from atelier.testing.fake_comfyui import FakeComfyUI
from atelier.testing.node_api import FakeNodeError
from atelier.testing.threaded import ThreadedFakeComfyUI, run_fake_comfyui

__all__ = ["FakeComfyUI", "FakeNodeError", "ThreadedFakeComfyUI", "run_fake_comfyui"]

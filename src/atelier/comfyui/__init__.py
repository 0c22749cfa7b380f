"""A typed client for ComfyUI's HTTP and WebSocket protocol. Knows nothing of jobs."""

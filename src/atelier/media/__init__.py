"""Media helpers: what kind of file an artifact is, and its size in pixels."""

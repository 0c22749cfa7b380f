"""Getting jobs onto ComfyUI backends: the pool, the scheduling policy, the runner."""

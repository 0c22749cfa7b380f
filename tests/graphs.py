"""The graphs tests submit (they live in atelier.testing, shared with the benchmarks)."""

from atelier.testing.graphs import animated_graph, image_graph, sampler_graph

__all__ = ["animated_graph", "image_graph", "sampler_graph"]

"""Benchmarks: ``python -m bench <scenario>``; each prints a table and how to reproduce it."""

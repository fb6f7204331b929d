"""Benchmarks: `python -m bench.load` (N concurrent jobs on one worker)."""

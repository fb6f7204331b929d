"""The `clipper` command line: `cli/main.py` (jobs and controls), `cli/batch.py`, `cli/render.py`."""

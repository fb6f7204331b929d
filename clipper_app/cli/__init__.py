"""The `clipper` command line: `clipper_app/cli/main.py` (jobs and controls), `clipper_app/cli/batch.py`, `clipper_app/cli/render.py`."""

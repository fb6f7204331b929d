"""Temporal activities: one module per stage, each a thin adapter around a plain function in `clipper/`."""

"""Developer scripts: the local Temporal dev server and the demo."""

"""What runs clipper around its domain (clipper/) and its workflows: the command line (`cli/`), the Python client
(`client/`), the pages and REST API (`web/`) and the worker pools (`workers/`). One distinctive top-level name, so
installing clipper adds no generic `cli` or `client` package to site-packages."""

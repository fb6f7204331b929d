"""Running clipper's workers: `pools.py` builds one SDK worker per pool, `main.py` runs them."""

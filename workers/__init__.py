"""Running clipper's workers: `pools.py` builds one SDK worker per pool, `main.py` runs them."""

from workers.pools import POOL_ACTIVITIES, build_worker, parse_pools  # noqa: F401

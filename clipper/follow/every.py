"""How often a follow checks its source: `--every 15m`, `90s`, `1h30m`, or plain seconds.

Ten seconds is the floor (tests use it; anything shorter only loads the source's server), fifteen minutes the
default, a week the ceiling (Temporal's schedules take any interval, but a longer one is a mistake more often).
"""

from __future__ import annotations

import hashlib
import re

from clipper.errors import InvalidRequest

EVERY_MIN_S = 10
EVERY_DEFAULT_S = 15 * 60
EVERY_MAX_S = 7 * 24 * 3600

_PART = re.compile(r"(\d+)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_every(text: str | float) -> int:
    """`15m` → 900; `1h30m` → 5400; `45` → 45 (seconds). Outside [10 s, 7 days] or unreadable: `InvalidRequest`."""
    raw = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        seconds = int(float(raw))
    elif raw and _PART.sub("", raw).strip() == "":
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(raw))
    else:
        raise InvalidRequest(f"--every {text!r}: give a duration such as 10s, 15m, 2h or 1h30m")
    if not EVERY_MIN_S <= seconds <= EVERY_MAX_S:
        raise InvalidRequest(f"--every {text!r}: a follow checks at most every {EVERY_MIN_S} s and at least once "
                             f"a week ({format_every(EVERY_MAX_S)})")
    return seconds


def format_every(seconds: int) -> str:
    """900 → `15m`; 5400 → `1h30m`; 10 → `10s`."""
    out, rest = "", int(seconds)
    for unit in "dhms":
        n, rest = divmod(rest, _UNITS[unit])
        if n:
            out += f"{n}{unit}"
    return out or "0s"


def phase_s(follow_id: str, every_s: int) -> int:
    """Where in its interval a follow checks: 0 … every_s - 1 seconds after each multiple of the interval since
    the epoch, from a hash of its id. Temporal aligns an interval schedule to the epoch, so without this every
    follow with the same `--every` checks at the same instant (200 at :00 and :30 for 30 s), and the scheduler,
    the workers and the sources get them all at once; spread, they come one after another, each on time."""
    return int.from_bytes(hashlib.sha256(follow_id.encode()).digest()[:8], "big") % every_s

"""Measured processing rates per stage (seconds of work per second of audio), for ETAs.

Workers record what each finished stage took; clients read the book when submitting, so a job's ETA
reflects the machines that actually run it. A moving average keeps one slow job from skewing it.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from clipper.job.stages import DEFAULT_RATES
from clipper.store.files import atomic_write_bytes

WEIGHT = 0.3  # of the newest measurement in the moving average


class RateBook:
    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "rates.json"

    def read(self) -> dict[str, float]:
        rates = dict(DEFAULT_RATES)
        try:
            stored = json.loads(self.path.read_text())
            rates.update({k: float(v) for k, v in stored.items() if isinstance(v, (int, float)) and v >= 0})
        except (OSError, ValueError):
            pass
        return rates

    def record(self, stage: str, elapsed_s: float, audio_s: float | None) -> None:
        if not audio_s or audio_s <= 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rates = self.read()
            measured = elapsed_s / audio_s
            rates[stage] = round((1 - WEIGHT) * rates.get(stage, measured) + WEIGHT * measured, 5)
            atomic_write_bytes(self.path, json.dumps(rates, indent=2).encode())

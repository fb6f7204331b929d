"""The test tiers' cost: how many tests `make check` and `make test` run and how long the fast tier takes.

    python -m bench.tiers              # runs the fast tier (as `make check` does) and prints a table
    python -m bench.tiers --runs 3

The fast tier must stay under a minute on 2 cores (no test asserts it: the number goes to docs/performance.md).
The full suite is only counted here (collected, not run): it takes about 40 minutes, measured by CI's own run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-m", "not slow and not crash and not long", "tests/unit", "tests/workflows", "tests/e2e/test_web_api.py"]


def pytest(*args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True)
    return time.monotonic() - started, done.stdout


def count(out: str, word: str) -> int:
    found = re.search(rf"(\d+) {word}", out)
    return int(found.group(1)) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    _, collected = pytest("--collect-only")
    total = count(collected, "tests collected")
    print("| tier | tests | wall s (run) |")
    print("|---|---|---|")
    print(f"| `make test` (all) | {total} | — (≈ 40 min, CI) |")
    for run in range(1, args.runs + 1):
        seconds, out = pytest(*FAST)
        ran = sum(count(out, word) for word in ("passed", "failed", "skipped", "error"))
        print(f"| `make check` run {run} | {ran} ({count(out, 'failed')} failed) | {seconds:.1f} |")


if __name__ == "__main__":
    main()

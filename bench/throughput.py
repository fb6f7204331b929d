"""Throughput and worker memory: bench/load.py's N jobs, with the worker's RSS sampled as jobs finish.

    python -m bench.throughput              # 200 jobs, 16 at a time
    python -m bench.throughput -n 1000      # "worker RSS over 1000 jobs stays flat"
    python -m bench.throughput --in-flight 0    # all N submitted at once, as bench.load does

The run is `bench.load.run_load` (a dev server, a tone server, ONE worker subprocess, N distinct 1 s jobs with
the noop ASR engine and the offline text engine, audited for lost/duplicated/stuck jobs). By default only
`--in-flight` jobs run at a time and the next is submitted as one finishes: the worker sees a steady state, so
memory that grows with the jobs done is memory kept per job, not 1000 workflows cached at once. On top of it, the
worker's resident set (psutil if installed, else VmRSS from /proc; the worker's own process, not its ffmpeg
children) is read once before the first submit and again each time a job's result arrives. Printed as a
markdown table: jobs/s, RSS at 0/25/50/75/100 % of the jobs done, the peak (VmHWM), and the slope of RSS
against jobs done fitted (least squares) over the 25-100 % part, after the warm-up (first imports, caches),
in MiB per 100 jobs: about 0 when memory stays flat.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/throughput.py` as well as `python -m bench.throughput`
    sys.path.insert(0, str(ROOT))

from bench.load import LoadResult, run_load  # noqa: E402
from bench.worker_process import rss_mb  # noqa: E402

MARKS = (0, 25, 50, 75, 100)  # % of the jobs done at which RSS is reported
FIT_FROM = 25  # % of the jobs done from which the slope is fitted (before it: warm-up)


@dataclass
class RssSample:
    jobs_done: int
    seconds: float  # since the worker started
    rss_mb: float


@dataclass
class RssSampler:
    """Reads the worker's RSS when it starts and after every job that finishes (plugged into run_load)."""

    pid: int | None = None
    started: float = 0.0
    jobs_done: int = 0
    samples: list[RssSample] = field(default_factory=list)

    def worker_started(self, pid: int) -> None:
        self.pid, self.started = pid, time.monotonic()
        self._sample()

    def job_done(self) -> None:
        self.jobs_done += 1
        self._sample()

    def _sample(self) -> None:
        rss = rss_mb(self.pid) if self.pid is not None else None
        if rss is not None:
            self.samples.append(RssSample(self.jobs_done, time.monotonic() - self.started, rss))

    def at_percent(self, percent: int, jobs: int) -> float | None:
        """RSS when `percent` % of the jobs were done (the first sample at or past that count)."""
        wanted = jobs * percent / 100
        return next((s.rss_mb for s in self.samples if s.jobs_done >= wanted), None)

    def slope_mb_per_100_jobs(self, jobs: int, from_percent: int = FIT_FROM) -> float | None:
        """Least-squares slope of RSS against jobs done, over the samples from `from_percent` % on."""
        points = [(s.jobs_done, s.rss_mb) for s in self.samples if s.jobs_done >= jobs * from_percent / 100]
        if len(points) < 2:
            return None
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        var = sum((x - mean_x) ** 2 for x, _ in points)
        if not var:
            return None
        return 100 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var


@dataclass
class ThroughputResult:
    load: LoadResult
    rss: RssSampler
    load_average: tuple[float, float]  # 1-minute load average before and after the run
    in_flight: int | None  # jobs at a time; None = all at once

    def rss_at(self) -> dict[int, float | None]:
        return {p: self.rss.at_percent(p, self.load.jobs) for p in MARKS}

    def table(self) -> list[str]:
        """A markdown table: one row for the run."""
        def mb(value: float | None) -> str:
            return f"{value:.0f}" if value is not None else "?"

        slope = self.rss.slope_mb_per_100_jobs(self.load.jobs)
        rss = self.rss_at()
        return [
            "| jobs | in flight | wall s | jobs/s | " + " | ".join(f"RSS @{p}% MiB" for p in MARKS)
            + " | peak RSS MiB | slope MiB/100 jobs (25-100 %) | load avg before/after | problems |",
            "|---:|---:|---:|---:|" + "---:|" * len(MARKS) + "---:|---:|---|---|",
            f"| {self.load.jobs} | {self.in_flight or 'all'} | {self.load.wall_s:.1f} | {self.load.jobs_per_s:.2f} | "
            + " | ".join(mb(rss[p]) for p in MARKS)
            + f" | {mb(self.load.worker_peak_rss_mb)} | {f'{slope:+.2f}' if slope is not None else '?'} | "
            f"{self.load_average[0]:.2f} / {self.load_average[1]:.2f} | {'; '.join(self.load.problems()) or 'none'} |",
        ]


def run_throughput(n: int = 200, workdir: Path | None = None, max_concurrent_activities: int = 8,
                   timeout_s: float | None = None, quiet: bool = False, in_flight: int | None = 16) -> ThroughputResult:
    sampler = RssSampler()
    before = os.getloadavg()[0]
    load = run_load(n, workdir, max_concurrent_activities, timeout_s, quiet=quiet, in_flight=in_flight or None,
                    on_worker_started=sampler.worker_started, on_job_done=sampler.job_done)
    return ThroughputResult(load, sampler, (before, os.getloadavg()[0]), in_flight or None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--jobs", type=int, default=200)
    p.add_argument("--max-concurrent-activities", type=int, default=8, help="the worker's CLIPPER_MAX_CONCURRENT_ACTIVITIES")
    p.add_argument("--in-flight", type=int, default=16, help="jobs at a time (0 = all at once)")
    p.add_argument("--timeout", type=float, help="seconds to wait for all results (default 120 + 3 per job)")
    p.add_argument("--keep", type=Path, help="keep the server DB, storage and worker log in this folder")
    p.add_argument("--samples", type=Path, help="also write every RSS sample here (CSV: jobs_done,seconds,rss_mb)")
    args = p.parse_args(argv)
    result = run_throughput(args.jobs, args.keep, args.max_concurrent_activities, args.timeout,
                            in_flight=args.in_flight)
    print(f"\n### Throughput and worker RSS ({args.jobs} jobs, noop ASR, {os.cpu_count()} cores, "
          f"max {args.max_concurrent_activities} concurrent activities)\n")
    print("\n".join(result.table()))
    if args.samples:
        args.samples.write_text("jobs_done,seconds,rss_mb\n" + "".join(
            f"{s.jobs_done},{s.seconds:.2f},{s.rss_mb:.1f}\n" for s in result.rss.samples))
    return 1 if result.load.problems() else 0


if __name__ == "__main__":
    sys.exit(main())

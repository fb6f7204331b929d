"""Load, small: the code of `bench/load.py` with N=20 concurrent jobs on one worker subprocess.

No timing assertions (shared CI machines vary); the numbers go to the terminal summary. What must hold:
all jobs complete, none lost, none duplicated, none stuck.
"""

from __future__ import annotations

from bench.load import run_load
from tests.helpers.reports import add_report


def test_twenty_concurrent_jobs_on_one_worker(tmp_path, request):
    result = run_load(20, workdir=tmp_path, quiet=True)
    add_report(request.config, "load: concurrent jobs on one worker (noop ASR)", result.table())
    assert result.problems() == []
    assert result.done == 20
    assert not (result.lost or result.duplicated or result.stuck or result.unexpected)
    assert result.worker_peak_rss_mb is not None and result.worker_peak_rss_mb > 0

"""The worker's Prometheus endpoint: the SDK's metrics and clipper's, with sensible values after a job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

from clipper.job.stages import BY_NAME, COMMON_ERRORS, STAGES
from clipper_app.client import ClipperClient, connect
from scripts.devserver import free_port
from tests.helpers import PIPELINE, SAMPLE, run
from tests.helpers import ROOT
from tests.helpers.processes import wait_for
from tests.helpers.prometheus import samples

from activities.metrics import prometheus_runtime
from clipper_app.workers.pools import build_worker


def test_metrics_after_a_job(settings, media_server):
    port = free_port()

    async def body() -> str:
        client = await connect(settings, prometheus_runtime(port, "127.0.0.1")[0])
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            job = await clipper.submit(media_server.url("/episode.mp3"))
            await clipper.result(job.job_id)
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

    text = run(body())
    counts = {labels["stage"]: value for labels, value in samples(text, "clipper_stage_duration_seconds_count")
              if labels.get("outcome") == "ok"}
    assert set(counts) == set(PIPELINE)
    sums = {labels["stage"]: value for labels, value in samples(text, "clipper_stage_duration_seconds_sum")}
    assert 1 < sums["transcribe"] < 120 and sums["transcribe"] > sums["report"]
    audio = sum(v for _, v in samples(text, "clipper_audio_seconds_total"))
    assert 53 <= audio <= 56  # the sample is 54.4 s
    downloaded = sum(v for _, v in samples(text, "clipper_download_bytes_total"))
    assert downloaded == SAMPLE.stat().st_size
    cpu = {labels["stage"]: value for labels, value in samples(text, "clipper_activity_cpu_seconds_sum")}
    assert cpu["transcribe"] > 0.5
    rss = [v for _, v in samples(text, "clipper_activity_peak_rss_bytes")]
    assert rss and 50e6 < max(rss) < 8e9
    # The SDK's own metrics are on the same endpoint.
    assert "temporal_activity_execution_latency" in text or "temporal_activity_schedule_to_start_latency" in text


# --- series at 0 from start-up; the port of a second worker on one host ---


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def test_failure_and_retry_series_exist_at_zero_from_start_up(settings):
    """A dashboard's failure, failure-rate and retry panels show 0, not "no data", before the first failure: the
    worker creates every stage's counters at 0 (per error type the stage table knows), labelled exactly as an
    activity will label them, so the first real failure increments the same series."""
    port = free_port()

    async def body() -> str:
        client = await connect(settings, prometheus_runtime(port, "127.0.0.1")[0])
        async with build_worker(client, settings):
            return scrape(port)

    text = run(body())
    failures = samples(text, "clipper_stage_failures_total")
    retries = samples(text, "clipper_stage_retries_total")
    assert failures and retries and all(value == 0 for _, value in failures + retries)
    for stage in STAGES:
        assert {labels["stage"] for labels, _ in retries} >= {stage}
        types = {labels["error_type"] for labels, _ in failures if labels["stage"] == stage}
        assert set(COMMON_ERRORS) <= types, stage
        assert set(BY_NAME[stage].errors) <= types, stage
    # The labels an activity's meter adds (namespace, task queue, activity type), per pool's queue.
    chunk = [labels for labels, _ in failures if labels["activity_type"] == "transcribe_chunk"
             and labels["error_type"] == "TranscriptionFailed"]
    assert {labels["task_queue"] for labels in chunk} == {settings.task_queue, f"{settings.task_queue}-cpu"}
    assert all(labels["namespace"] == settings.temporal_namespace and labels["stage"] == "transcribe"
               for labels in chunk)
    assert "download" not in {labels["activity_type"] for labels, _ in failures
                              if labels["task_queue"] == f"{settings.task_queue}-cpu"}  # only what the pool runs


def worker_process(settings, log_path, **env: str) -> subprocess.Popen:
    """`python worker.py` with its logs (stderr) in `log_path`; `.communicate()` returns nothing."""
    full = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
                CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_LOG_FORMAT="json", HF_HUB_OFFLINE="1", **env)
    if "CLIPPER_METRICS_HOST" not in env:
        full.pop("CLIPPER_METRICS_HOST", None)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=full, stdout=log,
                                stderr=subprocess.STDOUT)


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at `port` (from /proc/net/tcp: state 0A = LISTEN)."""
    addresses = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            addresses.add(".".join(str(b) for b in reversed(bytes.fromhex(host))))
    return addresses


def started_event(log_path) -> dict | None:
    for line in log_path.read_text().splitlines():
        if '"worker.started"' in line:
            return json.loads(line)
    return None


def test_a_second_worker_on_the_same_metrics_port_says_so_in_one_line(settings, tmp_path):
    """Two workers on one host with the same CLIPPER_METRICS_PORT: the second ends at once with one line naming
    a typed error and what to do (it died with a traceback); CLIPPER_METRICS_PORT=0 takes any free port, which
    the worker logs. Metrics listen on loopback unless CLIPPER_METRICS_HOST says otherwise."""
    port = free_port()
    first = worker_process(settings, tmp_path / "first.log", CLIPPER_METRICS_PORT=str(port))
    try:
        event = wait_for(lambda: started_event(tmp_path / "first.log"), 60, "the first worker to start")
        assert "clipper_stage_failures_total" in scrape(port)

        second = worker_process(settings, tmp_path / "second.log", CLIPPER_METRICS_PORT=str(port))
        second.wait(timeout=60)
        err = (tmp_path / "second.log").read_text()
        assert second.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"error MetricsPortInUse: cannot serve metrics on 127.0.0.1:{port}: the port is "
                                   "taken"), lines[0]
        assert "CLIPPER_METRICS_PORT" in lines[0]
        assert event["metrics"] == f"http://127.0.0.1:{port}/metrics"  # loopback by default
        assert listening_on(port) == {"127.0.0.1"}  # bound there, not on every interface

        third = worker_process(settings, tmp_path / "third.log", CLIPPER_METRICS_PORT="0")
        try:
            event = wait_for(lambda: started_event(tmp_path / "third.log"), 60, "the worker on any free port")
            chosen = event["metrics_port"]
            assert chosen not in (0, port) and event["metrics"] == f"http://127.0.0.1:{chosen}/metrics"
            assert "clipper_stage_retries_total" in scrape(chosen)
        finally:
            third.terminate()
            third.communicate(timeout=30)
    finally:
        first.terminate()
        first.communicate(timeout=30)

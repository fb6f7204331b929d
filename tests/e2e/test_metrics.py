"""The worker's Prometheus endpoint: the SDK's metrics and clipper's, with sensible values after a job."""

from __future__ import annotations

import re
import urllib.request

from client import ClipperClient, connect
from scripts.devserver import free_port
from tests.conftest import SAMPLE, run

from activities.metrics import prometheus_runtime
from workers import build_worker


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:{{(.*)}})? ([0-9.eE+-]+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            out.append((labels, float(m.group(2))))
    return out


def test_metrics_after_a_job(settings, media_server):
    port = free_port()

    async def body() -> str:
        client = await connect(settings, prometheus_runtime(port, "127.0.0.1"))
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            job = await clipper.submit(media_server.url("/episode.mp3"))
            await clipper.result(job.job_id)
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

    text = run(body())
    counts = {labels["stage"]: value for labels, value in samples(text, "clipper_stage_duration_seconds_count")
              if labels.get("outcome") == "ok"}
    assert set(counts) == {"download", "transcribe", "quotes", "summary", "clips", "report"}
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

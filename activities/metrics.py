"""The product's Prometheus metrics, recorded through the SDK's metric meter.

Going through the SDK (rather than a second Prometheus client) puts the SDK's own metrics and ours on one
`/metrics` endpoint, with the activity's namespace, task queue and type attached to every sample.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

STAGE_DURATION = "clipper_stage_duration_seconds"
ACTIVITY_CPU = "clipper_activity_cpu_seconds"
DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]


def prometheus_runtime(port: int, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime that serves the SDK's and clipper's metrics on http://host:port/metrics."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"{host}:{port}",
        durations_as_seconds=True,
        histogram_bucket_overrides={STAGE_DURATION: DURATION_BUCKETS, ACTIVITY_CPU: DURATION_BUCKETS},
    )))


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@dataclass
class StageMeasure:
    """What one stage attempt measured; recorded once, when the attempt ends."""

    stage: str
    attempt: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    outcome: str = "ok"  # ok | failed | cancelled
    error_type: str = ""
    audio_seconds: float = 0.0
    bytes_downloaded: int = 0

    def record(self) -> None:
        meter = activity.metric_meter().with_additional_attributes({"stage": self.stage})
        meter.create_histogram_float(STAGE_DURATION, "Stage attempt wall time", "s").record(
            self.seconds, {"outcome": self.outcome})
        meter.create_histogram_float(ACTIVITY_CPU, "CPU seconds used by a stage attempt", "s").record(self.cpu_seconds)
        meter.create_gauge("clipper_activity_peak_rss_bytes", "Worker peak RSS after a stage attempt", "By").set(
            peak_rss_bytes())
        if self.attempt > 1:
            meter.create_counter("clipper_stage_retries_total", "Stage attempts after the first").add(1)
        if self.outcome == "failed":
            meter.create_counter("clipper_stage_failures_total", "Failed stage attempts").add(
                1, {"error_type": self.error_type or "unknown"})
        if self.audio_seconds:
            meter.create_counter("clipper_audio_seconds_total", "Seconds of audio transcribed", "s").add(
                int(round(self.audio_seconds)))
        if self.bytes_downloaded:
            meter.create_counter("clipper_download_bytes_total", "Bytes of media downloaded", "By").add(
                self.bytes_downloaded)

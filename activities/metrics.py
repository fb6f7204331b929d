"""The product's Prometheus metrics, recorded through the SDK's metric meter.

Going through the SDK (rather than a second Prometheus client) puts the SDK's own metrics and ours on one
`/metrics` endpoint, with the activity's namespace, task queue and type attached to every sample.

Counters exist in Prometheus only once something was added to them, so a dashboard's failure and retry panels
would show "no data" until the first failure, and `rate()` would miss that first one. `create_zero_series` adds 0
to each at start-up, under exactly the labels an activity will later use.
"""

from __future__ import annotations

import errno
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio import activity
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from clipper.errors import MetricsPortInUse
from clipper.job.stages import ACTIVITY_STAGES, COMMON_ERRORS, PIPELINE

STAGE_DURATION = "clipper_stage_duration_seconds"
ACTIVITY_CPU = "clipper_activity_cpu_seconds"
STAGE_FAILURES = "clipper_stage_failures_total"
STAGE_RETRIES = "clipper_stage_retries_total"
DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]
FREE_PORT_TRIES = 5  # CLIPPER_METRICS_PORT=0: a port found free may be taken before the exporter binds it


def prometheus_runtime(port: int, host: str = "127.0.0.1") -> tuple[Runtime, int]:
    """A Temporal runtime that serves the SDK's and clipper's metrics on http://host:port/metrics, and the port.

    `port` 0 takes any free port (say, for a second worker on one host). A port already taken is the typed
    `MetricsPortInUse`, one line for the operator instead of the exporter's traceback.
    """
    tries = FREE_PORT_TRIES if port == 0 else 1
    for _ in range(tries):
        chosen = port or _free_port(host)
        try:
            return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
                bind_address=f"{host}:{chosen}",
                durations_as_seconds=True,
                histogram_bucket_overrides={STAGE_DURATION: DURATION_BUCKETS, ACTIVITY_CPU: DURATION_BUCKETS},
            ))), chosen
        except ValueError as err:  # the SDK's "Failed starting Prometheus exporter: Address already in use"
            if "in use" not in str(err).lower() and f"os error {errno.EADDRINUSE}" not in str(err):
                raise
    raise MetricsPortInUse(
        f"cannot serve metrics on {host}:{port}: the port is taken (another worker on this host?); set "
        "CLIPPER_METRICS_PORT to a free port, or to 0 for any free port (the worker logs which)"
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def create_zero_series(client: Client, task_queue: str, activity_types: Sequence[str]) -> None:
    """At a worker's start: every stage's failure counter (per error type the stage table knows) and retry counter
    at 0, for each activity type it runs on `task_queue`, labelled as `StageMeasure.record` will label them."""
    runtime = client.service_client.config.runtime or Runtime.default()
    errors = {s.name: (*s.errors, *COMMON_ERRORS) for s in PIPELINE}
    for activity_type in activity_types:
        stage = ACTIVITY_STAGES[activity_type].name if activity_type in ACTIVITY_STAGES else None
        if stage not in errors:  # helpers (cleanup, notify) and batch activities record no stage metrics
            continue
        meter = _stage_meter(runtime.metric_meter.with_additional_attributes(
            {"namespace": client.namespace, "task_queue": task_queue, "activity_type": activity_type}), stage)
        failures = meter.create_counter(STAGE_FAILURES, "Failed stage attempts")
        for error_type in errors[stage]:
            failures.add(0, {"error_type": error_type})
        meter.create_counter(STAGE_RETRIES, "Stage attempts after the first").add(0)


def _stage_meter(meter: MetricMeter, stage: str) -> MetricMeter:
    return meter.with_additional_attributes({"stage": stage})


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
        meter = _stage_meter(activity.metric_meter(), self.stage)
        meter.create_histogram_float(STAGE_DURATION, "Stage attempt wall time", "s").record(
            self.seconds, {"outcome": self.outcome})
        meter.create_histogram_float(ACTIVITY_CPU, "CPU seconds used by a stage attempt", "s").record(self.cpu_seconds)
        meter.create_gauge("clipper_activity_peak_rss_bytes", "Worker peak RSS after a stage attempt", "By").set(
            peak_rss_bytes())
        if self.attempt > 1:
            meter.create_counter(STAGE_RETRIES, "Stage attempts after the first").add(1)
        if self.outcome == "failed":
            meter.create_counter(STAGE_FAILURES, "Failed stage attempts").add(
                1, {"error_type": self.error_type or "unknown"})
        if self.audio_seconds:
            meter.create_counter("clipper_audio_seconds_total", "Seconds of audio transcribed", "s").add(
                int(round(self.audio_seconds)))
        if self.bytes_downloaded:
            meter.create_counter("clipper_download_bytes_total", "Bytes of media downloaded", "By").add(
                self.bytes_downloaded)

"""A do-nothing engine for load tests and throughput benchmarks. NOT FOR PRODUCTION.

It never listens to the audio: it yields a single placeholder segment, "(noop transcript)", covering the
audio's duration (from the WAV header), with no words. Use it to measure the pipeline around speech to text
(queues, downloads, storage, retries) without paying for a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from clipper.asr.base import check_stop, floor_ms, r3, wav_duration
from clipper.job.outputs import Segment

NOOP_TEXT = "(noop transcript)"


class NoopEngine:
    """Placeholder engine for load tests and benchmarks only; its transcript is not a transcript."""

    name = "noop"
    model: str | None = None

    def __init__(self, settings: object | None = None) -> None:
        self.detected_language: str | None = None

    def transcribe(
        self,
        audio: Path,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        language: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[Segment]:
        check_stop(should_stop)
        start_s = max(0.0, float(start_s))
        duration = wav_duration(Path(audio))
        if end_s is not None:
            duration = min(duration, float(end_s))
        self.detected_language = language
        if duration > start_s:
            yield Segment(id=0, start=r3(start_s), end=max(r3(start_s), floor_ms(duration)), text=NOOP_TEXT)

"""The `speakers` stage's work as one plain function: audio + transcript → labelled transcript + speakers.json.

Never fails a job for want of a speaker model: with diarization switched off (`CLIPPER_SPEAKERS_ENGINE=off`) or
its weights not installed, the transcript stays unlabelled and speakers.json says why (`note`); the rest of
the pipeline works as it did before speakers existed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from clipper.config import Settings
from clipper.models import SpeakerSet, Transcript
from clipper.speakers.assign import assign_speakers, relabel, speaker_set

log = structlog.get_logger()


def label_transcript(
    audio: Path,
    transcript: Transcript,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, float], None] | None = None,
) -> tuple[Transcript, SpeakerSet]:
    engine = settings.speakers_engine
    if engine == "off":
        return transcript, SpeakerSet(engine="off", note="speaker labelling is switched off (CLIPPER_SPEAKERS_ENGINE)")
    if not any(seg.text.strip() for seg in transcript.segments):
        return transcript, SpeakerSet(engine=engine, note="no speech")
    from clipper.errors import SpeakerModelMissing
    from clipper.speakers.diarize import diarize

    try:
        from faster_whisper.audio import decode_audio

        samples = decode_audio(str(audio), sampling_rate=16000)
        turns = relabel(diarize(samples, transcript, settings, should_stop=should_stop, on_progress=on_progress))
    except SpeakerModelMissing as err:
        log.warning("speakers.model_missing", error=str(err))
        return transcript, SpeakerSet(engine=engine, note=str(err))
    labelled = assign_speakers(transcript, turns)
    labelled.meta = {**labelled.meta, "speakers_engine": engine}
    return labelled, speaker_set(labelled, turns, engine)

"""The `speakers` stage's work as one plain function: audio + transcript → labelled transcript + speakers.json.

Never fails a job for want of a speaker model: with diarization switched off (`CLIPPER_SPEAKERS_ENGINE=off`) or
its weights not installed, the transcript stays unlabelled and speakers.json says why (`note`: what to run); the
rest of the pipeline works as it did before speakers existed. Words take the dominant speaker where two talk at
once; speakers.json keeps the overlapping turns and the overlap share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from clipper.config import Settings
from clipper.job.outputs import SpeakerSet, Transcript
from clipper.speakers.assign import assign_speakers, speaker_set
from clipper.speakers.voices import VoiceProfile

if TYPE_CHECKING:
    from clipper.speakers.neural import Diarization

log = structlog.get_logger()


def label_transcript(
    audio: Path,
    transcript: Transcript,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, float], None] | None = None,
) -> tuple[Transcript, SpeakerSet, VoiceProfile | None]:
    """(the labelled transcript, speakers.json, the voices heard: for the chapters) — None where no engine ran."""
    engine = settings.speakers_engine
    if engine == "off":
        off = SpeakerSet(engine="off", note="speaker labelling is switched off (CLIPPER_SPEAKERS_ENGINE)")
        return transcript, off, None
    if not any(seg.text.strip() for seg in transcript.segments):
        return transcript, SpeakerSet(engine=engine, note="no speech"), None
    from clipper.errors import SpeakerModelMissing

    try:
        found = speaker_turns(audio, settings, should_stop, on_progress)
    except SpeakerModelMissing as err:
        log.warning("speakers.model_missing", error=str(err))
        return transcript, SpeakerSet(engine=engine, note=str(err)), None
    labelled = assign_speakers(transcript, found.exclusive)
    labelled.meta = {**labelled.meta, "speakers_engine": engine}
    speakers = speaker_set(labelled, found.turns, engine, model=found.model)
    return labelled, speakers.model_copy(update={"overlap_share": found.overlap_share}), found.voices


def speaker_turns(audio: Path, settings: Settings, should_stop: Callable[[], bool] | None = None,
                  on_progress: Callable[[float, float], None] | None = None) -> Diarization:
    """Who speaks when in `audio` (clipper/speakers/neural.py), reading it a block at a time. The turns may
    overlap; the exclusive ones give each moment to one (the dominant) speaker, which is what words get. The
    segmentation model finds speech itself, so the transcript's words are only placed on the turns afterwards."""
    from clipper.speakers import neural
    from clipper.speakers.audio import AudioSource

    with AudioSource(path=audio) as source:
        return neural.diarize(source, settings, should_stop=should_stop, on_progress=on_progress)

"""Real transcripts of the real recordings (call, AMI excerpts, their concatenation, allison) by the real local
engine (Whisper tiny.en through faster-whisper), labelled with the reference speaker turns.

Transcribing is the slow part (a few seconds per 30 s), so transcripts are cached as JSON in a folder the
caller gives (a session tmp dir in tests, a work dir in the benchmark); the labelling is redone each time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clipper.job.outputs import SpeakerTurn, Transcript
from tests.helpers import conversations as conv
from tests.helpers.real import ALLISON

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONCAT = "concat"  # the call and every AMI excerpt, one after the other (2.5 min, 15 speakers)
ALLISON_NAME = "allison"  # 5 min of one professional voice, read prompts (punctuated by tiny.en)
NAMES = (*conv.ALL, CONCAT, ALLISON_NAME)


def _engine(resample: bool = True):
    from clipper.asr import get_engine
    from clipper.config import Settings

    settings = Settings(asr_engine="local", asr_model_path=None, asr_beam_size=5, asr_cpu_threads=0,
                        asr_compute_type="int8", asr_language="en", asr_resample=resample)
    engine = get_engine(settings, "local")
    engine.load()
    return engine


def _source(name: str, work: Path) -> tuple[Path, list[SpeakerTurn] | None]:
    if name == CONCAT:
        out = work / "concat.mp3"
        turns = conv.concatenate(list(conv.ALL), out)
        return out, turns
    if name == ALLISON_NAME:
        return ALLISON, None
    return conv.audio(name), conv.turns(name)


def transcribe(name: str, work: Path) -> Transcript:
    """The raw transcript of recording `name` (no speakers), cached as `<work>/<name>.transcript.json`."""
    from clipper.media.ffmpeg import to_wav16k_mono

    work.mkdir(parents=True, exist_ok=True)
    cached = work / f"{name}.transcript.json"
    if cached.exists():
        return Transcript.model_validate_json(cached.read_text(encoding="utf-8"))
    src, _ = _source(name, work)
    wav = work / f"{name}.wav"
    to_wav16k_mono(src, wav)
    t = transcribe_wav(wav, work, name)
    wav.unlink(missing_ok=True)
    return t


def transcribe_wav(wav: Path, work: Path, name: str, resample: bool = True) -> Transcript:
    """The raw transcript of a 16 kHz WAV, cached as `<work>/<name>.transcript.json`; `resample=False`: beam
    search only, the same words in every run (a test that reads a transcript closely is not at chance's mercy)."""
    from clipper.asr.base import wav_duration

    cached = work / f"{name}.transcript.json"
    if cached.exists():
        return Transcript.model_validate_json(cached.read_text(encoding="utf-8"))
    engine = _engine(resample)
    segments = [seg.model_copy(update={"id": i}) for i, seg in enumerate(engine.transcribe(wav, language="en"))]
    t = Transcript(engine=engine.name, model=engine.model, language="en", duration_s=wav_duration(wav),
                   segments=segments)
    cached.write_text(t.model_dump_json(), encoding="utf-8")
    return t


def labelled(name: str, work: Path) -> Transcript:
    """The transcript of `name` with speakers from the reference turns (S1, S2, ... in order of appearance);
    allison has one voice and no turns: speaker None (one unknown speaker)."""
    from clipper.speakers.assign import assign_speakers, relabel

    t = transcribe(name, work)
    _, turns = _source(name, work) if name == CONCAT else (None, None if name == ALLISON_NAME else conv.turns(name))
    return assign_speakers(t, relabel(turns)) if turns else t


def default_work() -> Path:
    return Path(tempfile.gettempdir()) / "clipper-real-transcripts"


if __name__ == "__main__":  # warm the cache: python -m tests.helpers.transcripts
    for n in NAMES:
        tr = transcribe(n, default_work())
        print(n, len(tr.segments), "segments", sum(len(s.words) for s in tr.segments), "words")


def shifted(parts: list[Transcript], gap_s: float = 1.0) -> tuple[Transcript, list[float]]:
    """Transcripts one after the other (times shifted, segment ids renumbered) and where each one starts."""
    segments, starts, offset = [], [], 0.0
    for t in parts:
        starts.append(offset)
        for seg in t.segments:
            words = [w.model_copy(update={"start": w.start + offset, "end": w.end + offset}) for w in seg.words]
            segments.append(seg.model_copy(update={"id": len(segments), "start": seg.start + offset,
                                                   "end": seg.end + offset, "words": words}))
        offset += (t.duration_s or 0.0) + gap_s
    return Transcript(engine="test", language="en", duration_s=offset - gap_s, segments=segments), starts


def unpunctuated(t: Transcript) -> Transcript:
    """What tiny.en gives on much conversational speech: lower case, no punctuation at all."""
    import re

    def bare(text: str) -> str:
        return re.sub(r"[^\w\s']", "", text).lower()

    segments = [s.model_copy(update={"text": bare(s.text), "words": [
        w.model_copy(update={"word": bare(w.word)}) for w in s.words if bare(w.word).strip()]}) for s in t.segments]
    return t.model_copy(update={"segments": segments})

"""The quality table: every committed real recording through the offline pipeline's plain functions,
per speech-to-text model — the numbers docs/quality.md records and the defaults it chooses from.

Per recording × model: WER and punctuation marks per 100 words (where reference text exists: the call,
allison), RTF of speech to text, DER (pyannote.metrics, collar 0.25 s) and speakers found vs the reference
(where reference turns exist), the speakers stage's time / audio, then the text side on the labelled transcript:
quotes per minute of speech, quote overlaps, quotes holding more than one speaker, the overview's and the whole
summary's share of the transcript's words, chapters, and the text stages' times.

    .venv/bin/python -m bench.quality [--models tiny.en,base] [--recordings call,ami-tst00,...]

Numbers are measured, never asserted: tests assert behaviour with generous floors (tests/unit/test_neural.py,
test_text.py, test_asr_models.py). The narrower benches behind each column: bench/asr_models.py,
bench/diarization.py, bench/text_quality.py.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import imageio_ffmpeg  # noqa: E402
import jiwer  # noqa: E402

from bench.diarization import der, load_samples  # noqa: E402
from bench.text_quality import measure as text_measure  # noqa: E402
from clipper.asr import get_engine  # noqa: E402
from clipper.config import Settings  # noqa: E402
from clipper.job.outputs import Transcript  # noqa: E402
from clipper.speakers.assign import assign_speakers  # noqa: E402
from clipper.speakers.label import speaker_turns  # noqa: E402
from tests.helpers import conversations, real  # noqa: E402

RECORDINGS = ("call", "ami-tst00", "ami-trn08", "ami-trn00", "ami-dev00", "voices", "allison", "meetings", "long20")
# Built at run time from the committed recordings: the call and the four meetings one after the other (2.6 min,
# 15 voices: more than CLIPPER_SPEAKERS_MAX, so the count is capped), and 21 min of real speech (allison's
# prompts shuffled, tests/helpers/real.py) for the rates on long media.
BUILT = ("meetings", "long20")
PUNCTUATION = re.compile(r"[.,!?;:]")


def build(name: str, tmp: Path) -> None:
    """Make a BUILT recording once per run: its audio, reference text and turns, in `_built`."""
    if name in _built:
        return
    if name == "meetings":
        path = tmp / "meetings.mp3"
        _built[name] = (path, None, conversations.concatenate(["call", *conversations.MEETINGS], path))
    else:
        path, text = real.long_real_speech(tmp / "long20.mp3", 20)
        _built[name] = (path, text, None)


_built: dict[str, tuple[Path, str | None, list | None]] = {}


def reference_text(name: str) -> str | None:
    if name in _built:
        return _built[name][1]
    if name == "call":
        return conversations.reference_text()
    if name == "allison":
        return " ".join(p.text for p in real.prompts())
    return None


def reference_turns(name: str):
    if name in _built:
        return _built[name][2]
    return None if name == "allison" else conversations.turns(name)


def audio_of(name: str) -> Path:
    if name in _built:
        return _built[name][0]
    return real.ALLISON if name == "allison" else conversations.audio(name)


def row(name: str, model: str, tmp: Path) -> dict:
    settings = Settings(asr_engine="local", asr_model=model, asr_compute_type="int8", text_engine="offline")
    if name in BUILT:
        build(name, tmp)
    wav = tmp / f"{name}.wav"
    if not wav.exists():
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(audio_of(name)), "-ac", "1",
                        "-ar", "16000", str(wav)], check=True)
    samples = load_samples(wav)
    duration = len(samples) / 16_000
    engine = get_engine(settings, "local")
    started = time.perf_counter()
    language = "en" if model == "tiny.en" else None
    segments = [s.model_copy(update={"id": i}) for i, s in enumerate(engine.transcribe(wav, language=language))]
    asr_s = time.perf_counter() - started
    transcript = Transcript(engine="local", model=model, duration_s=duration, segments=segments)
    text = transcript.text
    out = {"recording": name, "model": model, "minutes": round(duration / 60, 1), "rtf": round(asr_s / duration, 3)}
    ref = reference_text(name)
    out["wer"] = round(jiwer.wer(real.normalise(ref), real.normalise(text)), 3) if ref else None
    out["punct_per_100w"] = round(100 * len(PUNCTUATION.findall(text)) / max(1, len(text.split())), 1)
    started = time.perf_counter()
    found = speaker_turns(wav, settings)
    turns = found.turns
    out["speakers_x_audio"] = round((time.perf_counter() - started) / duration, 3)
    reference = reference_turns(name)
    out["der"] = round(der(reference, turns, duration)["der"], 3) if reference else None
    out["speakers"] = f"{len({t.speaker for t in turns})}/{len({t.speaker for t in reference}) if reference else '?'}"
    quality = text_measure(assign_speakers(transcript, found.exclusive), settings)
    out.update(quotes_per_min=round(quality.quotes_per_min, 2), overlaps=quality.overlaps,
               multi_speaker=quality.multi_speaker, overview_ratio=round(quality.overview_ratio, 3),
               summary_ratio=round(quality.summary_ratio, 3), chapters=quality.chapters,
               text_s=round(quality.quotes_s + quality.summary_s, 2))
    return out


COLUMNS = ("recording", "model", "minutes", "wer", "punct_per_100w", "rtf", "der", "speakers", "speakers_x_audio",
           "quotes_per_min", "overlaps", "multi_speaker", "overview_ratio", "summary_ratio", "chapters", "text_s")


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join("—" if r[c] is None else str(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--recordings", default=",".join(RECORDINGS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for name in args.recordings.split(","):
                rows.append(row(name, model, Path(tmp)))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()

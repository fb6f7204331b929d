"""Benchmark: offline speaker diarization (clipper/speakers) on real conversations with reference turns.

    python -m bench.diarization [--names call,ami-tst00,...] [--no-long] [--set step_s=0.4 --set threshold=0.75]

For each committed recording (the two-person call, the four AMI meeting excerpts; tests/helpers/conversations.py)
and a ~2.5 min concatenation of them (7 speakers; the call appears twice, so its voices must be found again),
transcribes with the real engine (local Whisper tiny.en), diarizes, and prints one markdown table row each:
DER (pyannote.metrics, collar 0.25 s, overlap scored, over the whole recording) with speech from the ASR
words (the default) split into missed speech / false alarm / confusion; to separate diarization error from
speech-detection error, DER with speech from the reference turns ("oracle speech"); DER with speech from Silero
VAD (`CLIPPER_SPEAKERS_SPEECH=vad`); the reference and found speaker counts; the stage's time (default speech,
one BLAS thread) and its ratio to the audio's duration.

Targets on 2 cores (issue 14): DER ≤ 25 % on the call, speaker count within ±1 on 3–4 person meetings, stage
time ≤ 0.05 × audio. `measure(name, transcript, ...)` is the per-recording entry point bench/quality.py calls.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from clipper.config import Settings
from clipper.models import SpeakerTurn, Transcript
from clipper.speakers.diarize import TUNING, Tuning, diarize
from tests.helpers import conversations

LONG = ("call", "ami-dev00", "ami-trn00", "call", "ami-dev00")  # 155 s, 7 speakers


def der(reference: list[SpeakerTurn], hypothesis: list[SpeakerTurn], duration_s: float,
        collar: float = 0.25) -> dict[str, float]:
    """Diarization error rate over the whole recording (missed + false alarm + confusion, over reference
    speech; overlapped speech scored) and its three parts, each as a share of the reference speech."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns: list[SpeakerTurn]) -> Annotation:
        out = Annotation()
        for i, t in enumerate(turns):
            if t.end > t.start:
                out[Segment(t.start, t.end), i] = t.speaker
        return out

    metric = DiarizationErrorRate(collar=collar)
    parts = metric(annotation(reference), annotation(hypothesis), uem=Timeline([Segment(0, duration_s)]),
                   detailed=True)
    total = max(parts["total"], 1e-9)
    return {"der": parts["diarization error rate"], "miss": parts["missed detection"] / total,
            "fa": parts["false alarm"] / total, "conf": parts["confusion"] / total}


def reference_regions(turns: list[SpeakerTurn]) -> list[tuple[float, float]]:
    """Where the reference says someone speaks (overlapping turns joined)."""
    out: list[list[float]] = []
    for t in sorted(turns, key=lambda t: t.start):
        if out and t.start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], t.end)
        else:
            out.append([t.start, t.end])
    return [(a, b) for a, b in out]


def load_samples(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16_000)


def transcribe(path: Path, settings: Settings) -> Transcript:
    """The real engine on `path` (decoded to a 16 kHz WAV first, as the pipeline does)."""
    import subprocess

    import imageio_ffmpeg

    from clipper.asr import get_engine

    engine = get_engine(settings, "local")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-ac", "1",
                        "-ar", "16000", str(wav)], check=True)
        segments = [s.model_copy(update={"id": i}) for i, s in enumerate(engine.transcribe(wav, language="en"))]
    return Transcript(engine="local", model=engine.model, segments=segments)


def measure(name: str, transcript: Transcript, *, audio: Path | None = None,
            reference: list[SpeakerTurn] | None = None, settings: Settings | None = None,
            tuning: Tuning = TUNING) -> dict:
    """One recording's row: DER from ASR speech and from oracle speech, speaker counts, stage time and ratio.
    `audio`/`reference` default to the committed recording `name`."""
    settings = settings or Settings()
    audio = audio or conversations.audio(name)
    reference = reference if reference is not None else conversations.turns(name)
    samples = load_samples(audio)
    duration = len(samples) / 16_000
    started = time.perf_counter()
    found = diarize(samples, transcript, settings, tuning=tuning)
    seconds = time.perf_counter() - started
    oracle = diarize(samples, transcript, settings, tuning=tuning, regions=reference_regions(reference))
    vad = diarize(samples, transcript, settings.model_copy(update={"speakers_speech": "vad"}), tuning=tuning)
    scored, scored_oracle = der(reference, found, duration), der(reference, oracle, duration)
    return {
        "name": name,
        "duration_s": round(duration, 1),
        "der": round(scored["der"], 4),
        "miss": round(scored["miss"], 4),
        "false_alarm": round(scored["fa"], 4),
        "confusion": round(scored["conf"], 4),
        "der_oracle_speech": round(scored_oracle["der"], 4),
        "confusion_oracle_speech": round(scored_oracle["conf"], 4),
        "der_vad_speech": round(der(reference, vad, duration)["der"], 4),
        "speakers_found_vad": len({t.speaker for t in vad}),
        "speakers_ref": len({t.speaker for t in reference}),
        "speakers_found": len({t.speaker for t in found}),
        "speakers_found_oracle": len({t.speaker for t in oracle}),
        "stage_s": round(seconds, 3),
        "ratio": round(seconds / duration, 4),
    }


def table(rows: list[dict]) -> str:
    head = ("| recording | audio s | DER (ASR speech) | miss / FA / confusion | DER (oracle speech) | confusion "
            "(oracle) | DER (VAD speech) | speakers ref | found | found (oracle) | found (VAD) | stage s | "
            "time/audio |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['name']} | {r['duration_s']} | {r['der']:.1%} | {r['miss']:.1%} / "
                     f"{r['false_alarm']:.1%} / {r['confusion']:.1%} | {r['der_oracle_speech']:.1%} | "
                     f"{r['confusion_oracle_speech']:.1%} | {r['der_vad_speech']:.1%} | "
                     f"{r['speakers_ref']} | {r['speakers_found']} | {r['speakers_found_oracle']} | "
                     f"{r['speakers_found_vad']} | "
                     f"{r['stage_s']:.2f} | {r['ratio']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", default=",".join(conversations.ALL))
    parser.add_argument("--no-long", action="store_true", help="skip the ~2.5 min concatenation")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override a Tuning field ({', '.join(f.name for f in fields(Tuning))})")
    parser.add_argument("--transcripts", type=Path, default=None,
                        help="folder of <name>.json transcripts to reuse (written there when missing)")
    args = parser.parse_args()
    tuning = TUNING
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(TUNING, key))
        tuning = replace(tuning, **{key: kind(value)})
    settings = Settings(asr_engine="local", asr_model_path=None, asr_language="en")

    def cached(name: str, path: Path) -> Transcript:
        file = args.transcripts / f"{name}.json" if args.transcripts else None
        if file is not None and file.is_file():
            return Transcript.model_validate_json(file.read_text())
        transcript = transcribe(path, settings)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(transcript.model_dump_json())
        return transcript

    rows = []
    for name in [n for n in args.names.split(",") if n]:
        rows.append(measure(name, cached(name, conversations.audio(name)), settings=settings, tuning=tuning))
    if not args.no_long:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "long.mp3"
            reference = conversations.concatenate(list(LONG), path)
            rows.append(measure("concat-2.5min", cached("concat-2.5min", path), audio=path, reference=reference,
                                settings=settings, tuning=tuning))
    print(f"tuning: {tuning}")
    print(table(rows))


if __name__ == "__main__":
    main()

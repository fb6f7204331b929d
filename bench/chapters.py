"""Chapters on joined real recordings: the joins are the truth.

Each input is several DIFFERENT real recordings laid end to end (1.5 s of silence between them) as one audio
track, transcribed once by the real local engine (Whisper tiny.en through faster-whisper, beam 5) and cached
as JSON under the work folder (not in git), so reruns only re-segment. Speakers come from the product's
`speakers` engine run on the joined audio (cached the same way), or with `--speakers reference` from the reference
turns (bench/corpus.py: RTTM for the call and the AMI excerpts, exact placements for the built recordings, one
voice for allison.mp3), each voice keeping its own label across the joins. The joined audio's sound profile
(clipper/speakers/changes.py) and the voices the speakers engine heard (its embeddings, clipper/speakers/voices.py,
cached too) are evidence as well, as in the summary stage; `--no-voices` leaves the voices out, `--words-only`
both. Pieces of 30 s meetings are glued into one "meetings" piece; the joins inside it
are topic changes too short for a chapter, so a boundary near them is neither required nor counted as extra.

Inputs follow bench/corpus.py's split (by voice and source package): thresholds are tuned on the `tune`
inputs only, and the `test` inputs are reported beside them, never used to choose anything.

    .venv/bin/python -m bench.chapters [--work DIR] [--split tune|test] [--speakers engine|reference]
                                       [--no-voices] [--words-only]
    # the table: per split, joins found within 20 s, extras per 10 min, and each input's chapters and titles
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import wave
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import corpus
from clipper.config import Settings
from clipper.job.outputs import SpeakerTurn, Transcript

GAP_S = 1.5  # silence laid between two recordings
FOUND_WITHIN_S = 20.0
# name -> pieces; a piece is an " & "-joined list of corpus recordings (or "allison": tests/data/real/allison.mp3).
JOINS = {
    "tune": {
        "tune-a": ["solo-carlo-2m", "ami-trn00 & ami-trn08", "solo-cs-m-5m", "solo-armelle-2m"],
        "tune-b": ["duo-cs-v+june-2m", "duo-carlo+armelle-3m", "duo-cs-m+cs-v-4m-noisy",
                   "solo-june-0.5m & solo-carlo-2m"],
        # added later, the mirror of test-c: conversations whose voices come back in the next piece
        "tune-c": ["trio-carlo+june+cs-v-3m", "duo-carlo+cs-m-5m-ov-noisy", "trio-armelle+cs-m+cs-v-4m-ov",
                   "quartet-cs-m+cs-v+june+carlo-4m"],
        # added later, the mirror of test-d (declared together, before either was run): a long wordless
        # stretch holding several recordings (the Czech voices: tiny.en writes next to nothing for them), one of
        # them 30 s long between two others
        "tune-d": ["duo-june+armelle-3m-ov", "solo-cs-m-5m", "solo-cs-v-0.5m", "duo-cs-m+cs-v-4m-noisy",
                   "quartet-armelle+june+carlo+cs-v-5m-ov-noisy"],
        # added later, the mirror of test-e (declared together, before either was run): three 30 s recordings
        # between longer ones, so a chapter can only find both of its joins by being 30 s long (one new voice;
        # a meeting; a voice of the conversation before)
        "tune-e": ["solo-carlo-2m", "solo-june-0.5m", "duo-carlo+armelle-3m", "ami-trn08", "trio-carlo+june+cs-v-3m",
                   "solo-cs-v-0.5m", "solo-armelle-2m"],
    },
    "test": {
        "test-a": ["allison", "call & ami-tst00 & ami-dev00", "solo-paola-2m", "solo-july-2m"],
        "test-b": ["duo-nl-m+nl-v-4m-noisy", "duo-ivrvoice+july-3m-ov", "duo-paola+allison-3m"],
        "test-c": ["trio-nl-m+ivrvoice+allison-3m", "duo-allison+nl-v-5m-ov-noisy", "trio-paola+july+nl-v-4m-ov",
                   "quartet-nl-m+nl-v+paola+ivrvoice-4m"],
        "test-d": ["duo-ivrvoice+july-3m-ov", "solo-allison-5m", "solo-nl-v-0.5m", "duo-nl-m+nl-v-4m-noisy",
                   "quartet-allison+july+nl-v+paola-5m-ov-noisy"],
        "test-e": ["solo-paola-2m", "solo-nl-v-0.5m", "duo-paola+allison-3m", "ami-dev00",
                   "trio-nl-m+ivrvoice+allison-3m", "solo-ivrvoice-0.5m", "solo-july-2m"],
    },
}


@dataclass
class Joined:
    name: str
    split: str
    pieces: list[str]
    transcript: Transcript  # speakers from the reference turns or from the speakers stage (`speakers`)
    joins: list[float]  # where each piece after the first starts: the truth
    inner: list[float]  # joins inside a glued piece: neither required nor extra
    samples: np.ndarray | None = None  # the joined audio, 16 kHz mono
    voices: object | None = None  # the speakers engine's VoiceProfile of the joined audio (clipper/speakers/voices.py)

    @cached_property
    def sound(self):
        from clipper.speakers.audio import AudioSource
        from clipper.speakers.changes import SoundProfile

        return None if self.samples is None else SoundProfile.of(AudioSource(samples=self.samples))


def _allison() -> corpus.Recording:
    data = json.loads((corpus.REAL / "allison.json").read_text(encoding="utf-8"))
    turns = [corpus.Turn(p["start"], p["end"], "allison") for p in data["prompts"]]
    return corpus.Recording("allison", "test", data["source"], corpus.decode(corpus.REAL / "allison.mp3"), turns)


def _recordings(split: str) -> dict[str, corpus.Recording]:
    out = {r.name: r for r in corpus.recordings(split)}
    if split == "test":
        out["allison"] = _allison()
    return out


def _wav(samples: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(corpus.SR)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def _transcribe(wav: Path) -> Transcript:
    from clipper.asr import get_engine
    from clipper.asr.base import wav_duration

    settings = Settings(asr_engine="local", asr_model_path=None, asr_beam_size=5, asr_cpu_threads=0,
                        asr_compute_type="int8", asr_language="en")
    engine = get_engine(settings, "local")
    engine.load()
    segments = [seg.model_copy(update={"id": i}) for i, seg in enumerate(engine.transcribe(wav, language="en"))]
    return Transcript(engine=engine.name, model=engine.model, language="en", duration_s=wav_duration(wav),
                      segments=segments)


def _engine(name: str, samples: np.ndarray, work: Path):
    """(who speaks when, the voices heard) by the product's `speakers` engine (segmentation + CAM++ +
    clustering; the voices are its embeddings, as the speakers stage keeps them): one diarization for both,
    each cached."""
    from clipper.speakers.voices import VoiceProfile

    turns_file, voices_file = work / f"{name}.speakers.json", work / f"{name}.voices.npz"
    if not (turns_file.exists() and voices_file.exists()):
        from clipper.speakers import neural
        from clipper.speakers.audio import AudioSource

        found = neural.diarize(AudioSource(samples=samples), Settings())
        if not turns_file.exists():
            turns_file.write_text(json.dumps([t.model_dump() for t in found.exclusive]), encoding="utf-8")
        if not voices_file.exists():
            voices_file.write_bytes(found.voices.to_bytes())
    turns = [SpeakerTurn.model_validate(t) for t in json.loads(turns_file.read_text(encoding="utf-8"))]
    return turns, VoiceProfile.from_bytes(voices_file.read_bytes())


def build(name: str, split: str, pieces: list[str], recs: dict[str, corpus.Recording], work: Path,
          speakers: str = "engine") -> Joined:
    """The joined input: audio laid end to end, transcribed once (cached), speakers from the `speakers` engine
    (cached) or from the reference turns."""
    from clipper.speakers.assign import assign_speakers

    gap = np.zeros(int(GAP_S * corpus.SR), np.float32)
    audio, turns, joins, inner, t = [], [], [], [], 0.0
    for k, piece in enumerate(pieces):
        for j, part in enumerate(piece.split(" & ")):
            rec = recs[part]
            if t:
                (inner if j else joins).append(round(t, 3))
            audio += [rec.samples, gap]
            turns += [SpeakerTurn(start=t + a, end=t + b, speaker=who) for a, b, who in rec.turns]
            t += rec.duration_s + GAP_S
    samples = np.concatenate(audio)
    cached = work / f"{name}.transcript.json"
    work.mkdir(parents=True, exist_ok=True)
    if cached.exists():
        raw = Transcript.model_validate_json(cached.read_text(encoding="utf-8"))
    else:
        wav = work / f"{name}.wav"
        _wav(samples, wav)
        raw = _transcribe(wav)
        cached.write_text(raw.model_dump_json(), encoding="utf-8")
        wav.unlink(missing_ok=True)
    engine_turns, voices = _engine(name, samples, work)
    if speakers == "engine":
        turns = engine_turns
    return Joined(name, split, pieces, assign_speakers(raw, turns), joins, inner, samples, voices)


def inputs(work: Path, split: str | None = None, speakers: str = "engine") -> list[Joined]:
    out = []
    for s, joins in JOINS.items():
        if split in (None, s):
            recs = _recordings(s)
            out += [build(n, s, pieces, recs, work, speakers) for n, pieces in joins.items()]
    return out


def default_work() -> Path:
    return Path(tempfile.gettempdir()) / "clipper-bench-chapters"


@dataclass
class Result:
    name: str
    split: str
    minutes: float
    joins: int
    found: int
    extra: int
    starts: list[float]
    titles: list[str]
    missed: list[float]
    pieces: list[str]


def matched(joins: list[float], starts: list[float]) -> list[tuple[float, float]]:
    """(join, start) pairs, each join found by a chapter start of its own within FOUND_WITHIN_S: the closest
    pairs first, so one start between two joins 30 s apart does not count for both."""
    close = sorted((abs(s - m), m, s) for m in joins for s in starts if abs(s - m) <= FOUND_WITHIN_S)
    out: list[tuple[float, float]] = []
    for _, m, s in close:
        if all(m != a and s != b for a, b in out):
            out.append((m, s))
    return out


def evaluate(j: Joined, settings: Settings | None = None, tuning=None, sound: bool = True,
             voices: bool = True) -> Result:
    """Chapter starts against the joins: a join is found when a chapter start of its own lies within
    FOUND_WITHIN_S of it (one start finds one join); any other start not near a join inside a glued piece is
    extra."""
    from clipper.text.chapters import make_chapters

    chapters, _ = make_chapters(j.transcript, settings or Settings(), j.sound if sound else None, tuning,
                                voices=j.voices if sound and voices else None)
    starts = [c.start for c in chapters[1:]]
    pairs = matched(j.joins, starts)
    found, taken = [m for m, _ in pairs], [s for _, s in pairs]
    extra = [s for s in starts if s not in taken and not any(abs(s - m) <= FOUND_WITHIN_S for m in j.inner)]
    return Result(j.name, j.split, (j.transcript.duration_s or 0.0) / 60, len(j.joins), len(found), len(extra),
                  [c.start for c in chapters], [c.title for c in chapters], [m for m in j.joins if m not in found],
                  j.pieces)


def table(results: list[Result]) -> str:
    """Per split: joins found within 20 s, extra boundaries per 10 minutes."""
    from clipper.clock import clock

    lines = ["| split | inputs | minutes | joins found (≤ 20 s) | extra boundaries | extra per 10 min |",
             "|---|---|---|---|---|---|"]
    for split in JOINS:
        rs = [r for r in results if r.split == split]
        if not rs:
            continue
        minutes = sum(r.minutes for r in rs)
        joins, found, extra = (sum(getattr(r, k) for r in rs) for k in ("joins", "found", "extra"))
        per10 = 10 * extra / minutes
        lines.append(f"| {split} | {len(rs)} | {minutes:.1f} | {found} / {joins} | {extra} | {per10:.2f} |")
    lines += ["", "| input | split | pieces | chapters (start: title) | missed joins |", "|---|---|---|---|---|"]
    for r in results:
        pieces = " · ".join(r.pieces)
        chapters = "<br>".join(f"{clock(s)} {t}" for s, t in zip(r.starts, r.titles))
        missed = ", ".join(clock(m) for m in r.missed) or "—"
        lines.append(f"| {r.name} | {r.split} | {pieces} | {chapters} | {missed} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=default_work(), help="transcript cache (not in git)")
    parser.add_argument("--split", choices=corpus.SPLITS, default=None)
    parser.add_argument("--speakers", choices=("engine", "reference"), default="engine",
                        help="labels from the product's speakers engine (default) or the reference turns")
    parser.add_argument("--words-only", action="store_true", help="without the audio (no sound or voice evidence)")
    parser.add_argument("--no-voices", action="store_true", help="without the speakers engine's voices")
    args = parser.parse_args()
    print(table([evaluate(j, sound=not args.words_only, voices=not args.no_voices)
                 for j in inputs(args.work, args.split, args.speakers)]))


if __name__ == "__main__":
    main()

"""The diarization evaluation corpus: real human speech with exact reference turns, split into a TUNING set and a
TEST set that share no voice and no source package.

    from bench.corpus import recordings
    for rec in recordings("tune"):  # or "test", or None for both
        rec.name, rec.split, rec.source, rec.samples, rec.turns   # 16 kHz float32 mono; (start, end, speaker)

    python -m bench.corpus                             # the table: name, split, minutes, speakers, sources

Two kinds of recording (tests/data/README.md has every file's provenance and licence):

* committed real conversations with their published reference turns (tests/data/real/*.rttm): the phone call and
  the four AMI meeting excerpts. AMI's speakers differ between meetings, so the meetings split cleanly.
* recordings built here, deterministically (fixed seeds), from single-voice material: tests/data/real/voices/
  <id>.mp3 + <id>.json (recorded utterances of one person, with their spans) and real/allison.*. Each utterance
  is cut at its span, trimmed to where its speech actually is (an energy threshold, 10 ms resolution), long ones
  split at their longest pauses, and loudness-normalised; then utterances are laid out as single-voice
  recordings, two-person dialogues (turns of 2-15 s, gaps of 0.2-1 s, some short overlaps mixed in) and 3- and
  4-person conversations. A turn of the reference is one utterance, exactly where it was placed.

The split is by voice and source package: the Czech Fish Fillets voices, Carlo (Italian), June (Canadian French)
and Armelle (French) and the AMI training meetings tune; the Dutch Fish Fillets voices, the Russian and Colombian
voices, Paola (Italian), Allison (US English), the call and the AMI test/dev meetings test. Spliced speech is
easier than real conversation (no cross-talk habits, one recording channel per voice, studio sound): report the
committed conversations apart from it.
"""

from __future__ import annotations

import json
import subprocess
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

SR = 16_000
ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "real"
VOICES = REAL / "voices"
SPLITS = ("tune", "test")

# The committed conversations: name -> split (AMI speakers: trn00/trn08 MEE067.. FEE087..; tst00/dev00 others).
COMMITTED = {"ami-trn00": "tune", "ami-trn08": "tune", "call": "test", "ami-tst00": "test", "ami-dev00": "test"}
COMMITTED_SOURCE = {"call": "pyannote.audio 4.0.7 sample (phone call)",
                    "ami-trn00": "AMI Meeting Corpus via pyannote.audio 4.0.7",
                    "ami-trn08": "AMI Meeting Corpus via pyannote.audio 4.0.7",
                    "ami-tst00": "AMI Meeting Corpus via pyannote.audio 4.0.7",
                    "ami-dev00": "AMI Meeting Corpus via pyannote.audio 4.0.7"}
# Single voices -> split. Both Fish Fillets languages are dubbed by their own actors, one package each.
VOICE_SPLIT = {"cs-m": "tune", "cs-v": "tune", "carlo": "tune", "june": "tune", "armelle": "tune",
               "nl-m": "test", "nl-v": "test", "ivrvoice": "test", "paola": "test", "july": "test",
               "allison": "test"}

MAX_UTTERANCE_S = 12.0  # longer utterances are split at their longest pauses
TARGET_RMS_DB = -22.0  # speech level every utterance is brought to (dBFS over its active frames)
PEAK = 0.95


class Turn(NamedTuple):
    """One reference turn: `(start, end, speaker)`, seconds; also readable as `.start`, `.end`, `.speaker`."""

    start: float
    end: float
    speaker: str


@dataclass
class Recording:
    name: str
    split: str  # "tune" | "test"
    source: str
    samples: np.ndarray  # 16 kHz float32 mono
    turns: list[Turn]  # the reference, sorted by start

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SR

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


@dataclass(frozen=True)
class Plan:
    """A recording to build: who speaks, how long, and how."""

    name: str
    voices: tuple[str, ...]
    minutes: float
    overlap: float = 0.0  # share of speaker changes that start before the previous speaker has finished
    snr_db: float | None = None  # background noise, if any
    seed: int = 0


def _solo(v: str, minutes: float, seed: int) -> Plan:
    return Plan(f"solo-{v}-{minutes:g}m", (v,), minutes, seed=seed)


def _talk(voices: tuple[str, ...], minutes: float, seed: int, overlap: float = 0.0,
          snr_db: float | None = None) -> Plan:
    kind = {2: "duo", 3: "trio", 4: "quartet"}[len(voices)]
    extra = ("-ov" if overlap else "") + ("-noisy" if snr_db is not None else "")
    return Plan(f"{kind}-{'+'.join(voices)}-{minutes:g}m{extra}", voices, minutes, overlap, snr_db, seed)


PLANS = {
    "tune": [
        _solo("cs-v", 0.5, 1), _solo("june", 0.5, 2), _solo("carlo", 2, 3), _solo("armelle", 2, 4),
        _solo("cs-m", 5, 5),
        _talk(("cs-v", "june"), 2, 11), _talk(("june", "armelle"), 3, 12, overlap=0.35),
        _talk(("cs-m", "cs-v"), 4, 13, snr_db=25), _talk(("carlo", "cs-m"), 5, 14, overlap=0.35, snr_db=20),
        _talk(("carlo", "armelle"), 3, 15),
        _talk(("carlo", "june", "cs-v"), 3, 21), _talk(("armelle", "cs-m", "cs-v"), 4, 22, overlap=0.35),
        _talk(("cs-m", "cs-v", "june", "carlo"), 4, 31),
        _talk(("armelle", "june", "carlo", "cs-v"), 5, 32, overlap=0.35, snr_db=20),
    ],
    "test": [
        _solo("nl-v", 0.5, 101), _solo("ivrvoice", 0.5, 102), _solo("paola", 2, 103), _solo("july", 2, 104),
        _solo("allison", 5, 105),
        _talk(("nl-v", "paola"), 2, 111), _talk(("ivrvoice", "july"), 3, 112, overlap=0.35),
        _talk(("nl-m", "nl-v"), 4, 113, snr_db=25), _talk(("allison", "nl-v"), 5, 114, overlap=0.35, snr_db=20),
        _talk(("paola", "allison"), 3, 115),
        _talk(("nl-m", "ivrvoice", "allison"), 3, 121), _talk(("paola", "july", "nl-v"), 4, 122, overlap=0.35),
        _talk(("nl-m", "nl-v", "paola", "ivrvoice"), 4, 131),
        _talk(("allison", "july", "nl-v", "paola"), 5, 132, overlap=0.35, snr_db=20),
    ],
}


# -- audio -------------------------------------------------------------------------------------------------------

def decode(path: Path) -> np.ndarray:
    """16 kHz mono float32 samples of a media file (the ffmpeg the product uses)."""
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar",
                          str(SR), "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).copy()


_FRAME, _HOP = 400, 160  # 25 ms frames every 10 ms


def _frame_db(x: np.ndarray) -> np.ndarray:
    if len(x) < _FRAME:
        return np.full(1, -120.0)
    frames = np.lib.stride_tricks.sliding_window_view(x, _FRAME)[::_HOP]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def _active(db: np.ndarray) -> np.ndarray:
    """Frames with speech energy: within 35 dB of the piece's loudest frame and above -55 dBFS."""
    return db > max(db.max() - 35.0, -55.0)


def trim(x: np.ndarray) -> np.ndarray | None:
    """`x` without its leading and trailing silence (None if there is no speech in it)."""
    idx = np.nonzero(_active(_frame_db(x)))[0]
    if not len(idx):
        return None
    return x[idx[0] * _HOP: min(len(x), idx[-1] * _HOP + _FRAME)]


def split_long(x: np.ndarray, limit_s: float = MAX_UTTERANCE_S) -> list[np.ndarray]:
    """A trimmed utterance longer than `limit_s`, cut in its longest pause (recursively), each part re-trimmed."""
    if len(x) <= limit_s * SR:
        return [x]
    active = _active(_frame_db(x))
    best, best_len, run = None, 0, 0
    margin = int(1.0 * SR / _HOP)  # keep at least 1 s either side
    for i in range(margin, len(active) - margin):
        run = run + 1 if not active[i] else 0
        if run > best_len:
            best, best_len = i - run // 2, run
    if best is None or best_len < 5:  # no pause of 50 ms: cut in the middle of the quietest stretch
        best = margin + int(np.argmin(_frame_db(x)[margin:-margin]))
    cut = best * _HOP + _FRAME // 2
    out = []
    for part in (x[:cut], x[cut:]):
        t = trim(part)
        if t is not None and len(t) >= 0.3 * SR:
            out += split_long(t, limit_s)
    return out


def normalise(x: np.ndarray) -> np.ndarray:
    """Bring the speech level (mean power of the active frames) to TARGET_RMS_DB, peaks kept under PEAK."""
    db = _frame_db(x)
    level = 10 * np.log10(np.mean(10 ** (db[_active(db)] / 10)))
    gain = 10 ** ((TARGET_RMS_DB - level) / 20)
    peak = float(np.max(np.abs(x))) * gain
    if peak > PEAK:
        gain *= PEAK / peak
    return (x * gain).astype(np.float32)


@dataclass(frozen=True)
class Voice:
    id: str
    split: str
    source: str  # the package the recordings come from
    licence: str
    utterances: tuple[np.ndarray, ...]  # trimmed and normalised, 16 kHz

    @property
    def speech_s(self) -> float:
        return sum(len(u) for u in self.utterances) / SR


def _index(vid: str) -> tuple[Path, list[tuple[float, float]], dict]:
    if vid == "allison":
        meta = json.loads((REAL / "allison.json").read_text(encoding="utf-8"))
        spans = [(p["start"], p["end"]) for p in meta["prompts"]]
        return REAL / "allison.mp3", spans, {"package": "asterisk-core-sounds-en-wav 1.6.1", "licence": meta["license"]}
    meta = json.loads((VOICES / f"{vid}.json").read_text(encoding="utf-8"))
    spans = [(u["start"], u["end"]) for u in meta["utterances"]]
    return VOICES / f"{vid}.mp3", spans, {"package": f"{meta['package']} {meta['version']}", "licence": meta["licence"]}


@lru_cache(maxsize=None)
def voice(vid: str) -> Voice:
    """One person's utterances: each span of the index cut out (20 ms of slack either side, for the codec),
    trimmed to its speech, split if over MAX_UTTERANCE_S, loudness-normalised."""
    path, spans, meta = _index(vid)
    audio = decode(path)
    out = []
    for start, end in spans:
        a, b = max(0, int((start - 0.02) * SR)), min(len(audio), int((end + 0.02) * SR))
        t = trim(audio[a:b])
        if t is not None and len(t) >= 0.3 * SR:
            out += [normalise(p) for p in split_long(t)]
    return Voice(vid, VOICE_SPLIT[vid], meta["package"], meta["licence"], tuple(out))


def voices(split: str | None = None) -> list[Voice]:
    return [voice(v) for v, s in VOICE_SPLIT.items() if split in (None, s)]


# -- building ----------------------------------------------------------------------------------------------------

class _Pool:
    """A voice's utterances in a fixed shuffled order, reshuffled each time they have all been used."""

    def __init__(self, v: Voice, rng: np.random.Generator) -> None:
        self.v, self.rng, self.order = v, rng, []

    def next(self) -> np.ndarray:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.v.utterances)))
        return self.v.utterances[self.order.pop()]


def build(plan: Plan, split: str) -> Recording:
    """Lay out `plan`'s voices turn by turn until `plan.minutes` are filled; the reference is every utterance's
    exact place. A turn is 2-15 s of one voice (several utterances 0.1-0.35 s apart); between turns a gap of
    0.2-1 s, or, for `plan.overlap` of the speaker changes, a start 0.3-1.2 s before the other has finished.
    A single voice pauses 0.5-1.5 s between its turns."""
    rng = np.random.default_rng([plan.seed, 2024])
    pools = {v: _Pool(voice(v), rng) for v in plan.voices}
    gains = {v: 10 ** (rng.uniform(-2.0, 2.0) / 20) for v in plan.voices}  # speakers are not equally loud
    total = plan.minutes * 60
    placed: list[tuple[float, np.ndarray, str]] = []
    t, prev, unseen = 0.3, None, list(plan.voices)
    while t < total - 1.0:
        if len(plan.voices) == 1:
            who = plan.voices[0]
        elif unseen and prev is not None:  # everyone speaks early on
            who = unseen[int(rng.integers(len(unseen)))]
        else:
            others = [v for v in plan.voices if v != prev]
            who = others[int(rng.integers(len(others)))]
        if who in unseen:
            unseen.remove(who)
        if prev is not None:
            if len(plan.voices) == 1:
                t = placed[-1][0] + len(placed[-1][1]) / SR + rng.uniform(0.5, 1.5)
            elif rng.random() < plan.overlap:
                last_start, last = placed[-1][0], placed[-1][1]
                end = last_start + len(last) / SR
                t = max(last_start + 0.5, end - rng.uniform(0.3, 1.2))
            else:
                t = placed[-1][0] + len(placed[-1][1]) / SR + rng.uniform(0.2, 1.0)
        want, spoken = rng.uniform(2.0, 15.0), 0.0
        while spoken < want and t < total - 1.0:
            u = pools[who].next()
            if spoken and spoken + len(u) / SR > 15.0:
                break
            placed.append((t, u * gains[who], who))
            spoken += len(u) / SR
            t += len(u) / SR + rng.uniform(0.1, 0.35)
        prev = who
    length = int((max(s + len(u) / SR for s, u, _ in placed) + 0.5) * SR)
    out = np.zeros(length, np.float32)
    turns = []
    for start, u, who in placed:
        i = int(round(start * SR))
        out[i:i + len(u)] += u
        turns.append(Turn(round(i / SR, 3), round((i + len(u)) / SR, 3), who))
    if plan.snr_db is not None:
        speech = float(np.mean(np.concatenate([u for _, u, _ in placed]) ** 2))
        noise = np.cumsum(rng.standard_normal(length)) * 0.02  # brown-ish hum plus white hiss
        noise = noise - np.convolve(noise, np.ones(801) / 801, mode="same") + rng.standard_normal(length)
        noise *= np.sqrt(speech / 10 ** (plan.snr_db / 10) / np.mean(noise ** 2))
        out += noise.astype(np.float32)
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out *= 0.99 / peak
    source = ", ".join(sorted({voice(v).source for v in plan.voices}))
    return Recording(plan.name, split, source, out, sorted(turns))


def committed(name: str) -> Recording:
    turns = []
    for line in (REAL / f"{name}.rttm").read_text(encoding="utf-8").splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            start, duration = float(p[3]), float(p[4])
            turns.append(Turn(start, round(start + duration, 3), p[7]))
    return Recording(name, COMMITTED[name], COMMITTED_SOURCE[name], decode(REAL / f"{name}.mp3"), sorted(turns))


def recordings(split: str | None = None) -> list[Recording]:
    """The corpus (both splits when `split` is None): committed conversations first, then built recordings.
    Same result on every call and machine (fixed seeds); the built ones take a few seconds."""
    if split not in (None, *SPLITS):
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    out = []
    for s in SPLITS:
        if split in (None, s):
            out += [committed(n) for n, where in COMMITTED.items() if where == s]
            out += [build(p, s) for p in PLANS[s]]
    return out


# -- output ------------------------------------------------------------------------------------------------------

def rttm(rec: Recording) -> str:
    return "".join(f"SPEAKER {rec.name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
                   for t in rec.turns)


def save(rec: Recording, folder: Path) -> Path:
    """`rec` as a 16-bit WAV (and its reference as RTTM beside it), for tools that want a file; returns the WAV."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rec.name}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(rec.samples, -1, 1) * 32767).astype("<i2").tobytes())
    (folder / f"{rec.name}.rttm").write_text(rttm(rec), encoding="utf-8")
    return path


def table(recs: list[Recording]) -> str:
    lines = ["| recording | split | minutes | speakers | overlap | source |", "|---|---|---|---|---|---|"]
    for r in recs:
        grid = np.zeros(int(r.duration_s * 100) + 2, np.int16)
        for t in r.turns:
            grid[int(t.start * 100):int(t.end * 100)] += 1
        ov = float((grid > 1).sum()) / max(1, int((grid > 0).sum()))
        lines.append(f"| {r.name} | {r.split} | {r.duration_s / 60:.2f} | {len(r.speakers)} | {ov:.1%} | "
                     f"{r.source} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(table(recordings(sys.argv[1] if len(sys.argv) > 1 else None)))

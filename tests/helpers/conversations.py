"""Real conversations with reference speaker turns (tests/data/real, see its README): the two-person phone call
(with its text) and the AMI meeting excerpts, and longer conversations built from them at test time."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from clipper.job.outputs import SpeakerTurn
from tests.helpers import DATA

REAL = DATA / "real"
CALL = "call"  # 30 s, two women on the phone; turns and text
MEETINGS = ("ami-tst00", "ami-trn08", "ami-trn00", "ami-dev00")  # 30 s each; 4, 4, 3, 2 speakers; turns only
ALL = (CALL, *MEETINGS)


@dataclass(frozen=True)
class Line:
    """One line of an STM file: a speaker's stretch of speech and what was said (with punctuation)."""

    speaker: str
    start: float
    end: float
    text: str


SYNTHETIC = ("voices",)  # tests/data/voices.*: two espeak-ng voices taking turns (scripts/make_voices.py)


def _folder(name: str) -> Path:
    return DATA if name in SYNTHETIC else REAL


def audio(name: str) -> Path:
    return _folder(name) / f"{name}.mp3"


def turns(name: str) -> list[SpeakerTurn]:
    """The reference turns (RTTM: `SPEAKER uri 1 start duration <NA> <NA> speaker <NA> <NA>`)."""
    out = []
    for line in (_folder(name) / f"{name}.rttm").read_text(encoding="utf-8").splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            start, duration = float(p[3]), float(p[4])
            out.append(SpeakerTurn(start=start, end=start + duration, speaker=p[7]))
    return sorted(out, key=lambda t: t.start)


def lines(name: str = CALL) -> list[Line]:
    """The reference text, turn by turn (STM: `uri channel speaker start end text`); only the call has it."""
    out = []
    for raw in (REAL / f"{name}.stm").read_text(encoding="utf-8").splitlines():
        p = raw.split(maxsplit=5)
        if len(p) == 6:
            out.append(Line(p[2], float(p[3]), float(p[4]), p[5].strip()))
    return out


def reference_text(name: str = CALL) -> str:
    return " ".join(line.text for line in lines(name))


def speaker_count(name: str) -> int:
    return len({t.speaker for t in turns(name)})


def concatenate(names: list[str], out: Path, gap_s: float = 1.0) -> list[SpeakerTurn]:
    """One recording made of `names` in order, `gap_s` of silence between them (16 kHz mono MP3), and its
    reference turns; each recording's speakers stay its own (`call:Diane`)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    inputs, filters, all_turns, offset = [], [], [], 0.0
    for i, name in enumerate(names):
        inputs += ["-i", str(audio(name))]
        filters.append(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono,atrim=0:30,apad=pad_dur={gap_s}[a{i}]")
        all_turns += [SpeakerTurn(start=t.start + offset, end=t.end + offset, speaker=f"{name}:{t.speaker}")
                      for t in turns(name)]
        offset += 30.0 + gap_s
    graph = ";".join(filters) + ";" + "".join(f"[a{i}]" for i in range(len(names))) + \
        f"concat=n={len(names)}:v=0:a=1[out]"
    subprocess.run([ffmpeg, "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-ac", "1", "-ar", "16000", "-b:a", "32k", str(out)], check=True)
    return all_turns

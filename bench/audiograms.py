"""Audiogram encode time per second of video on this machine, by aspect, and the stage's rate for the ETA.

    .venv/bin/python -m bench.audiograms [--minutes 10]

Renders quotes of 5, 10 and 20 s from the real phone call (its real tiny.en words), then the `audiograms`
stage's default work (top 3 quotes × both aspects) on a long input whose quotes sit near its end (the decode
up to each quote is the part that grows with the media), and prints tables.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from clipper.config import Settings
    from clipper.job.outputs import Quote
    from clipper.config import ASPECTS
    from clipper.media.audiogram import make_audiogram
    from clipper.media.ffmpeg import to_wav16k_mono
    from tests.helpers import conversations as conv
    from tests.helpers.real import long_real_speech
    from tests.helpers.transcripts import labelled

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-audiograms-"))
    settings = Settings()
    transcript = labelled(conv.CALL, work / "asr")
    words = [w for s in transcript.segments for w in s.words]
    wav = work / "call.wav"
    to_wav16k_mono(conv.audio(conv.CALL), wav)

    print("| aspect | quote s | video s | encode s | encode s per video s | kB per video s |")
    print("|---|---|---|---|---|---|")
    for aspect in ASPECTS:
        for span in (5.0, 10.0, 20.0):
            q = Quote(rank=1, text="x", start=7.0, end=7.0 + span)
            out = work / f"q-{span:.0f}-{aspect.replace(':', 'x')}.mp4"
            t = time.monotonic()
            make_audiogram(wav, q, words, out, title="A bench title", speaker="Diane", aspect=aspect,
                           settings=settings)
            took, video_s = time.monotonic() - t, span + 2 * settings.clip_padding_s
            print(f"| {aspect} | {span:.0f} | {video_s:.1f} | {took:.2f} | {took / video_s:.3f} | "
                  f"{out.stat().st_size / 1000 / video_s:.0f} |")

    long_mp3, _ = long_real_speech(work / "long.mp3", args.minutes)
    long_wav = work / "long.wav"
    to_wav16k_mono(long_mp3, long_wav)
    from clipper.media.probe import probe_media

    duration = probe_media(long_wav).duration_s or 0.0
    t = time.monotonic()
    for rank, end in enumerate((duration - 1, duration - 30, duration - 60), start=1):  # 3 quotes of ~12 s
        q = Quote(rank=rank, text="a quote near the end of the media", start=end - 12.0, end=end)
        for aspect in ASPECTS:
            make_audiogram(long_wav, q, [], work / f"long-{rank}-{aspect.replace(':', 'x')}.mp4", title="t",
                           speaker=None, aspect=aspect, settings=settings, media_duration_s=duration)
    took = time.monotonic() - t
    print()
    print("| media s | videos | stage work s | rate (s per media s) |")
    print("|---|---|---|---|")
    print(f"| {duration:.0f} | {3 * len(ASPECTS)} | {took:.1f} | {took / duration:.4f} |")


if __name__ == "__main__":
    main()

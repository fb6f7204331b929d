"""Quality of the text side on the real recordings: quotes, summary and chapters, offline engine.

Per recording (the call, each AMI excerpt, their concatenation, allison; each also with its punctuation
stripped, as tiny.en writes much conversational speech): quotes per minute of speech, quote overlaps, quotes
spanning more than one speaker, duplicate quotes, overview/transcript and summary/transcript word ratios,
the longest overview unit in words, chapter count, and stage times. Transcripts come from the real local
engine (cached, see tests/helpers/transcripts.py), speakers from the reference turns.

    .venv/bin/python -m bench.text_quality [--work DIR]

`measure(transcript)` is what bench/quality.py calls with any transcript.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipper.config import Settings
from clipper.job.outputs import Transcript
from clipper.text.grounding import same_words, tokens
from clipper.text.offline import OfflineEngine
from clipper.text.quotes import extract_quotes
from clipper.text.summary import summarize
from clipper.text.utterances import speech_seconds, utterances


class TextQuality(BaseModel):
    words: int
    speech_min: float
    quotes: int
    quotes_per_min: float
    overlaps: int  # pairs of quotes overlapping in time
    multi_speaker: int  # quotes whose span holds words of more than one speaker
    duplicates: int  # pairs of quotes saying the same words
    overview_ratio: float  # overview words / transcript words
    summary_ratio: float  # (overview + key points) words / transcript words
    longest_unit: int  # words of the longest overview sentence/utterance
    chapters: int
    quotes_s: float
    summary_s: float


def measure(transcript: Transcript, settings: Settings | None = None) -> TextQuality:
    settings = settings or Settings(text_engine="offline")
    engine = OfflineEngine(settings)
    toks = tokens(transcript)
    t0 = time.perf_counter()
    qs = extract_quotes(transcript, engine, settings)
    t1 = time.perf_counter()
    s = summarize(transcript, engine, settings)
    t2 = time.perf_counter()
    quotes = qs.quotes
    pairs = [(a, b) for i, a in enumerate(quotes) for b in quotes[i + 1 :]]
    speakers = [{t.speaker for t in toks if q.start <= t.start and t.end <= q.end} for q in quotes]
    speech = speech_seconds(utterances(transcript, settings.quote_max_chars)) / 60
    words = max(1, len(toks))
    units = [u for u in re.split(r"(?<=[.!?])\s+", s.overview) if u]
    summary_words = len(s.overview.split()) + sum(len(k.text.split()) for k in s.key_points)
    return TextQuality(
        words=len(toks), speech_min=round(speech, 2), quotes=len(quotes),
        quotes_per_min=round(len(quotes) / speech, 2) if speech else 0.0,
        overlaps=sum(min(a.end, b.end) > max(a.start, b.start) for a, b in pairs),
        multi_speaker=sum(len(sp) > 1 for sp in speakers),
        duplicates=sum(same_words(a.text, b.text) for a, b in pairs),
        overview_ratio=round(len(s.overview.split()) / words, 3), summary_ratio=round(summary_words / words, 3),
        longest_unit=max((len(u.split()) for u in units), default=0), chapters=len(s.chapters),
        quotes_s=round(t1 - t0, 3), summary_s=round(t2 - t1, 3),
    )


def main() -> None:
    from tests.helpers.transcripts import NAMES, default_work, labelled, unpunctuated

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=default_work(), help="where transcripts are cached")
    args = parser.parse_args()
    fields = list(TextQuality.model_fields)
    print("| recording | " + " | ".join(fields) + " |")
    print("|---|" + "---|" * len(fields))
    for name in NAMES:
        t = labelled(name, args.work)
        for label, variant in ((name, t), (f"{name} (no punct.)", unpunctuated(t))):
            row = measure(variant).model_dump()
            print(f"| {label} | " + " | ".join(str(row[f]) for f in fields) + " |")


if __name__ == "__main__":
    main()

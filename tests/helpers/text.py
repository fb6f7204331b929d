"""Transcripts and quotes made up for the text-engine tests, and the verbatim check on quotes."""

from __future__ import annotations

import re

from clipper.job.outputs import Quote, Segment, Transcript, Word
from clipper.text.grounding import tokens
from tests.helpers import REFERENCE

BORING = "durable systems are boring on purpose, and boring is exactly what our users pay for"


TEST_QUOTE = "A test that cannot fail is worse than no test at all, because it gives you false confidence"


SECONDS_PER_WORD = 0.35


def sample_transcript(repeat: int = 1, words: bool = True) -> Transcript:
    """The committed sample's reference text as a Transcript: one segment per line, synthetic word times
    (0.35 s a word), so no ASR runs. `repeat` appends the text again (for long transcripts)."""
    lines = [ln.strip() for ln in REFERENCE.read_text().splitlines() if ln.strip()] * repeat
    segments, t = [], 0.0
    for i, line in enumerate(lines):
        ws = []
        for w in line.split():
            ws.append(Word(start=round(t, 3), end=round(t + 0.3, 3), word=w))
            t += SECONDS_PER_WORD
        segments.append(Segment(id=i, start=ws[0].start, end=ws[-1].end, text=line, words=ws if words else []))
        t += 0.5
    return Transcript(engine="test", language="en", duration_s=round(t, 3), segments=segments)


def assert_verbatim(q: Quote, t: Transcript) -> None:
    """The quote is a run of consecutive transcript words, with those words' start and end times."""
    toks = tokens(t)
    n = len(q.text.split())
    spans = [
        (toks[i].start, toks[i + n - 1].end)
        for i in range(len(toks) - n + 1)
        if " ".join(tok.text for tok in toks[i : i + n]) == q.text
    ]
    assert spans, f"not a verbatim span of the transcript: {q.text!r}"
    assert (q.start, q.end) in spans, (q, spans)  # the times of (one occurrence of) those words


QUOTED = re.compile(r"“([^”]*)”")


def quoted_parts(text: str) -> tuple[list[str], str]:
    """The parts of `text` inside “…” and what is left outside them."""
    return QUOTED.findall(text), QUOTED.sub(" ", text)


def longest_shared_run(text: str, transcript: Transcript) -> int:
    """Words in the longest run of `text` (normalised) that the transcript says word for word."""
    from clipper.text.grounding import normalise_text

    said = f" {normalise_text(transcript.text)} "
    words = normalise_text(text).split()
    best = 0
    for i in range(len(words)):
        n = best + 1
        while i + n <= len(words) and f" {' '.join(words[i:i + n])} " in said:
            best, n = n, n + 1
    return best

"""Quotes: engine candidates per chunk, grounded in the transcript, deduplicated, ranked and capped.

A quote's text and times always come from the transcript (see `grounding`); the engine only points at
passages. Candidates that cannot be found are counted as ungrounded and dropped. After grounding, whoever
proposed them: a quote is one speaker's words (cut back to its main speaker, `Quote.speaker` set), and no
two quotes overlap in time or say the same words, across chunks too (`dedupe` keeps the best of each group).
"""

from __future__ import annotations

import math

from collections.abc import Callable

from clipper.config import Settings
from clipper.job.outputs import Quote, QuoteSet, Transcript
from clipper.llm import CandidateQuote, TextEngine
from clipper.text.chunking import Chunk, chunk_transcript
from clipper.text.fanout import map_chunks
from clipper.text.grounding import WordIndex, dedupe, ground_quote
from clipper.text.lexicon import TermStats
from clipper.text.offline import quotability
from clipper.text.utterances import utterances

MAX_EXAMPLES = 5


SECONDS_PER_QUOTE = 120.0  # the floor on conversations: one quote per 2 minutes of speech


def quote_cap(settings: Settings, transcript: Transcript) -> int:
    """How many quotes a transcript gets: `quotes_max`, or one per 2 minutes of its speech when that is more
    (and the job did not set its own number)."""
    if not settings.quotes_scale:
        return settings.quotes_max
    speech = sum(max(0.0, s.end - s.start) for s in transcript.segments)
    return max(settings.quotes_max, math.ceil(speech / SECONDS_PER_QUOTE))


def extract_quotes(
    transcript: Transcript,
    engine: TextEngine,
    settings: Settings,
    on_chunk_done: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> QuoteSet:
    result = QuoteSet(engine=engine.name, model=engine.model)
    chunks = chunk_transcript(transcript, settings.llm_context_chars)
    if not chunks:
        return result

    cap = quote_cap(settings, transcript)

    def propose(chunk: Chunk) -> list[CandidateQuote]:
        return engine.propose_quotes(chunk, quote_cap(settings, chunk.as_transcript(transcript)))

    proposals, failed = map_chunks(chunks, propose, settings.llm_concurrency, on_chunk_done, should_stop)
    result.failed_chunks = [chunks[i].index for i in failed]
    result.fallback = getattr(engine, "fallback_note", None)

    stats = TermStats([u.text for u in utterances(transcript, settings.quote_max_chars)])
    grounded: list[Quote] = []
    for i in sorted(proposals):
        # The engine saw only this chunk, so its quotes are searched for in this chunk's words.
        index = WordIndex(chunks[i].as_transcript(transcript))
        for cand in proposals[i]:
            result.candidates += 1
            quote = ground_quote(cand.text, index, settings.quotes_min_match, reason=cand.reason)
            if quote is None:
                result.ungrounded += 1
                if len(result.ungrounded_examples) < MAX_EXAMPLES:
                    result.ungrounded_examples.append(cand.text.strip()[:200])
                continue
            if cand.score is not None:
                quote.score = round(float(cand.score), 1)
            else:
                quote.score = round((quote.match + 100 * quotability(quote.text, settings, stats)) / 2, 1)
            grounded.append(quote)

    kept, result.duplicates = dedupe(grounded)
    kept.sort(key=lambda q: (-q.score, -q.match, q.start))
    result.quotes = [q.model_copy(update={"rank": r}) for r, q in enumerate(kept[:cap], 1)]
    return result

"""Prompts of the LLM engine. Transcript lines are `[#<segment id> mm:ss] text` (see `render_chunk`)."""

from __future__ import annotations

import json

from clipper.llm.schemas import PartialSummary

QUOTES_SYSTEM = """You pick the most quotable passages from a transcript excerpt.
Each line of the excerpt is "[#<segment id> mm:ss] text", or "[#<segment id> mm:ss] <speaker>: text" when \
speakers are known.
Rules:
- Copy every quote VERBATIM from the transcript: the exact words as spoken, in the same order. Do not \
paraphrase, correct, shorten with "...", or add words. Leave out the "[#id mm:ss]" prefixes and speaker labels.
- A quote may run across consecutive lines of the same speaker, never across two speakers.
- Each quote is {lo} to {hi} characters long and makes sense on its own: an insight, a strong opinion, a \
lesson, a memorable line. Skip greetings, small talk, filler and advertisements.
- At most {n} quotes, best first, none overlapping another.
Answer with JSON only, no prose:
{{"quotes": [{{"text": "<verbatim quote>", "reason": "<why it is worth quoting, at most 15 words>"}}]}}
If nothing is worth quoting, answer {{"quotes": []}}."""

SUMMARY_SYSTEM = """You summarise an excerpt of a transcript.
Each line of the excerpt is "[#<segment id> mm:ss] text", or "[#<segment id> mm:ss] <speaker>: text" when \
speakers are known. Lines "=== chapter N ===" mark where chapter N starts ("(continued)": the excerpt starts \
inside it).
Answer with JSON only, no prose:
{"overview": "<2 to 4 sentences, at most MAX_WORDS words>", "key_points": [{"text": "<one sentence>", \
"segments": [<first id>, <last id>]}], "chapters": [{"id": <N>, "title": "<at most 8 words>", \
"key_points": ["<one sentence>"]}]}
- 3 to 7 key points, in the order they occur in the transcript (fewer for a very short excerpt).
- "segments" holds the ids of the first and the last line the point is based on.
- "chapters": one entry per chapter marked in the excerpt, id = its number N; the title says what that \
chapter is about; 1 to 3 key points about that chapter. No chapter lines: "chapters": [].
- Only state what the transcript says. Write in the transcript's language."""

REDUCE_SYSTEM = """You merge the partial summaries of consecutive parts of ONE transcript into a single summary.
Answer with JSON only, no prose:
{"overview": "<2 to 4 sentences about the whole>", "key_points": [{"text": "<one sentence>", \
"segments": [<first id>, <last id>]}]}
- Keep the 3 to 7 most important key points overall, in time order.
- Every key point keeps the segment ids of the points it comes from: when you merge points, use the first id \
of the earliest and the last id of the latest. Never invent ids.
- Only state what the partial summaries say."""


def quotes_messages(excerpt: str, part: int, max_quotes: int, lo: int, hi: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": QUOTES_SYSTEM.format(lo=lo, hi=hi, n=max_quotes)},
        {"role": "user", "content": f"Transcript excerpt (part {part + 1}):\n{excerpt}"},
    ]


def overview_words(excerpt_words: int) -> int:
    """The overview's word limit for an excerpt: 15 % of it, between 20 and 120 words."""
    return max(20, min(120, int(0.15 * excerpt_words)))


def summary_messages(excerpt: str, part: int) -> list[dict[str, str]]:
    limit = overview_words(len(excerpt.split()))
    return [
        {"role": "system", "content": SUMMARY_SYSTEM.replace("MAX_WORDS", str(limit))},
        {"role": "user", "content": f"Transcript excerpt (part {part + 1}):\n{excerpt}"},
    ]


def render_parts(parts: list[PartialSummary]) -> str:
    return json.dumps(
        [{"part": i + 1, **p.for_prompt()} for i, p in enumerate(parts)], ensure_ascii=False, indent=1
    )


def reduce_messages(parts: list[PartialSummary]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": REDUCE_SYSTEM},
        {"role": "user", "content": f"Partial summaries, in time order:\n{render_parts(parts)}"},
    ]

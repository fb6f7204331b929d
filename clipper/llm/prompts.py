"""Prompts of the LLM engine. Transcript lines are `[#<segment id> mm:ss] text` (see `render_chunk`).

A chunk's two requests (its quotes and its summary) start with the same bytes: the shared system prompt, then
the excerpt; only the task after the excerpt differs. Servers that cache prompt prefixes (llama.cpp, vLLM,
DeepSeek, OpenAI) read a chunk's transcript once for both. Anything that varies by task — the quote lengths,
the overview's word limit, where the chapters start — therefore goes in the task, never before the excerpt.
"""

from __future__ import annotations

import json

from clipper.llm.schemas import PartialSummary

SYSTEM = """You read an excerpt of a transcript and do the task written after it.
Each line of the excerpt is "[#<segment id> mm:ss] text", or "[#<segment id> mm:ss] <speaker>: text" when \
speakers are known.
Answer with JSON only, no prose, no code fences. Only state what the transcript says, in its language."""

QUOTES_TASK = """Task: pick the most quotable passages of the excerpt above.
- Copy every quote VERBATIM from the transcript: the exact words as spoken, in the same order. Do not \
paraphrase, correct, shorten with "...", or add words. Leave out the "[#id mm:ss]" prefixes and speaker labels.
- A quote may run across consecutive lines of the same speaker, never across two speakers.
- Each quote is {lo} to {hi} characters long and makes sense on its own: an insight, a strong opinion, a \
lesson, a memorable line. Skip greetings, small talk, filler and advertisements.
- At most {n} quotes, best first, none overlapping another.
Answer:
{{"quotes": [{{"text": "<verbatim quote>", "reason": "<why it is worth quoting, at most 15 words>"}}]}}
If nothing is worth quoting, answer {{"quotes": []}}."""

SUMMARY_TASK = """Task: summarise the excerpt above.
Answer:
{"overview": "<2 to 4 sentences, at most MAX_WORDS words>", "key_points": [{"text": "<one sentence>", \
"segments": [<first id>, <last id>]}], "chapters": [{"id": <N>, "title": "<at most 8 words>", \
"key_points": ["<one sentence>"]}]}
- 3 to 7 key points, in the order they occur in the transcript (fewer for a very short excerpt).
- "segments" holds the ids of the first and the last line the point is based on.
- "chapters": one entry per chapter listed below, id = its number N; the title says what that chapter is \
about; 1 to 3 key points about that chapter. No chapters listed: "chapters": []."""

REDUCE_SYSTEM = """You merge the partial summaries of consecutive parts of ONE transcript into a single summary.
Answer with JSON only, no prose:
{"overview": "<2 to 4 sentences about the whole>", "key_points": [{"text": "<one sentence>", \
"segments": [<first id>, <last id>]}]}
- Keep the 3 to 7 most important key points overall, in time order.
- Every key point keeps the segment ids of the points it comes from: when you merge points, use the first id \
of the earliest and the last id of the latest. Never invent ids.
- Only state what the partial summaries say."""

# The longest task text we append after an excerpt (the summary's, with a dozen chapters listed): what a chunk
# budget keeps free besides the excerpt.
TASK_RESERVE_CHARS = len(SYSTEM) + len(SUMMARY_TASK) + 600


def excerpt_head(excerpt: str, part: int) -> str:
    """The shared start of a chunk's user message: everything a prefix cache can reuse across its tasks."""
    return f"Transcript excerpt (part {part + 1}):\n{excerpt}\n\n"


def chunk_messages(excerpt: str, part: int, task: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": excerpt_head(excerpt, part) + task},
    ]


def probe_messages(sample: str) -> list[dict[str, str]]:
    """The first bytes of chunk 1's requests (system prompt, the start of its excerpt): asked with a 1-token
    answer to learn the model's characters per token, and so warming a prefix cache for the chunk."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Transcript excerpt (part 1):\n{sample}"}]


def quotes_messages(excerpt: str, part: int, max_quotes: int, lo: int, hi: int) -> list[dict[str, str]]:
    return chunk_messages(excerpt, part, QUOTES_TASK.format(lo=lo, hi=hi, n=max_quotes))


def overview_words(excerpt_words: int) -> int:
    """The overview's word limit for an excerpt: 15 % of it, between 20 and 120 words."""
    return max(20, min(120, int(0.15 * excerpt_words)))


def chapter_lines(marks: dict[int, int], continues: int | None) -> str:
    """The chapters of an excerpt, told after it: a `=== chapter N ===` line, then the line it starts at."""
    lines = []
    if continues is not None:
        lines += [f"=== chapter {continues} (continued) ===", "(from the first line: it started before the excerpt)"]
    for sid, n in sorted(marks.items(), key=lambda kv: kv[1]):
        lines += [f"=== chapter {n} ===", f"(from line #{sid})"]
    return "\n".join(["Chapters:", *lines]) if lines else "Chapters: none."


def summary_messages(excerpt: str, part: int, marks: dict[int, int] | None = None,
                     continues: int | None = None) -> list[dict[str, str]]:
    limit = overview_words(len(excerpt.split()))
    task = SUMMARY_TASK.replace("MAX_WORDS", str(limit)) + "\n" + chapter_lines(marks or {}, continues)
    return chunk_messages(excerpt, part, task)


def render_parts(parts: list[PartialSummary]) -> str:
    return json.dumps(
        [{"part": i + 1, **p.for_prompt()} for i, p in enumerate(parts)], ensure_ascii=False, indent=1
    )


def reduce_messages(parts: list[PartialSummary]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": REDUCE_SYSTEM},
        {"role": "user", "content": f"Partial summaries, in time order:\n{render_parts(parts)}"},
    ]


def repair_messages(messages: list[dict[str, str]], answer: str, problem: str) -> list[dict[str, str]]:
    """The request again, with the unusable answer and what was wrong with it: one chance to fix it."""
    return [*messages, {"role": "assistant", "content": answer[:4000]},
            {"role": "user", "content": f"That answer could not be used: {problem[:600]}\n"
                                        "Answer again with the JSON object only, in the shape asked for."}]

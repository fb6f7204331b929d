"""The Python client example of docs/api.md, run for real: the code block marked `<!-- example: python-client -->`
is taken from the doc as written and run against a dev server, an in-process worker and a local media server.

The block is the body of an async function (top-level `await`, `URL` given): the test wraps it in
`async def example(URL)`, points the client it creates at the test's server through the environment (the same
variables a user sets), and checks what it prints.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from clipper.config import Settings, get_settings
from clipper_app.client import connect
from clipper_app.workers.pools import build_worker
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MARKER = "<!-- example: python-client -->"
MAX_LINES = 15
UNKNOWN_ID = "clip-0000000000000000"


def example_block() -> str:
    """The fenced python block right after the marker (nothing but the line break between them)."""
    text = API_DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"docs/api.md must hold {MARKER} exactly once"
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```\n", text, re.S)
    assert found, f"{MARKER} must be followed at once by a ```python block"
    return found.group(1)


def test_example_is_short_and_does_what_the_brief_says():
    code = example_block()
    lines = code.splitlines()
    assert len(lines) <= MAX_LINES, f"the example has {len(lines)} lines, at most {MAX_LINES}"
    for call in ("ClipperClient.connect()", "submit(URL", ".result(", ".quotes(", ".summary(", ".transcript(",
                 ".clip_bytes(", "except JobNotFound"):
        assert call in code, f"the example no longer shows {call}"
    assert not re.search(r"^URL\s*=", code, re.M), "URL is given to the example, not set by it"


async def run_example(settings: Settings, url: str) -> None:
    namespace: dict = {}
    exec(compile("async def example(URL):\n" + textwrap.indent(example_block(), "    "), str(API_DOC), "exec"),
         namespace)
    client = await connect(settings)
    async with build_worker(client, settings):
        await namespace["example"](url)


def test_api_example_runs(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    # What the example's `ClipperClient.connect()` reads: the environment, like any user's service.
    for name, value in {"TEMPORAL_ADDRESS": settings.temporal_address, "TEMPORAL_NAMESPACE": "default",
                        "CLIPPER_TASK_QUEUE": settings.task_queue, "CLIPPER_STORAGE_DIR": str(settings.storage_dir),
                        "CLIPPER_ALLOW_PRIVATE_ADDRESSES": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLIPPER_STORAGE_URL", raising=False)  # the worker's store is the local folder
    get_settings.cache_clear()
    try:
        with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as media:
            run(run_example(settings, media.url("/episode.mp3")))
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out

    counts = re.search(r"(\d+) quotes, clip 1: (\d+) bytes, (\d+) segments", out)
    assert counts, f"the example did not print its counts:\n{out}"
    quotes, clip_bytes, segments = map(int, counts.groups())
    assert quotes > 0 and clip_bytes > 0 and segments > 0, out
    # The clip it read is the one the job cut, byte for byte in size.
    clips = sorted((settings.storage_dir / "jobs").glob("clip-*/clips/*"))
    assert clip_bytes in {p.stat().st_size for p in clips}, (clip_bytes, clips)
    assert f"JobNotFound: no job '{UNKNOWN_ID}'" in out, out

"""Search end to end: the committed phone call (tests/data/real/call.mp3) through the real pipeline (a worker
process, real ffmpeg, Whisper tiny.en, the speaker models) to its `index` stage; then the CLI's search, the REST API
and the remote client, a speaker named and found by the name, the index rebuilt from the store with the same hits,
and in a real browser the search page's hit opening the job's page at that second with its line highlighted."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from clipper_app.client import ClipperClient, Searcher, connect
from tests.helpers import run
from tests.helpers.pagejob import PageJob, chromium, finished_job
from tests.helpers.processes import cli

pytestmark = pytest.mark.slow
WORD = "Chicago"  # "And I'm Sheila and Texas originally from Chicago." at 00:14 (README's transcript of the call)
PHRASE = "Sheila and Texas"  # said once (both say "originally from Chicago")


@pytest.fixture(scope="module")
def job(own_temporal_server, tmp_path_factory) -> PageJob:
    with finished_job(own_temporal_server.address, tmp_path_factory.mktemp("search")) as finished:
        yield finished


def said(job: PageJob):
    """The transcript line of the job that holds WORD, as the job wrote it."""
    async def read():
        return await ClipperClient(await connect(job.settings), job.settings).transcript(job.job)
    return next(s for s in run(read()).segments if PHRASE.lower() in s.text.lower())


def test_the_index_stage_finds_the_line_at_its_second_and_speaker(job):
    line = said(job)
    assert 10 <= line.start <= 18 and line.speaker
    assert [s.name for s in job.result.status.stages][-1] == "index"
    hits = run(Searcher(job.settings).search("SHEILA and tex"))  # the last word a prefix, in another case
    first = next(h for h in hits if h.kind == "transcript")
    assert (first.job_id, first.start, first.speaker) == (job.job, line.start, line.speaker)
    assert "**Sheila** **and** **Texas**" in first.text and first.url == f"/jobs/{job.job}?t={int(line.start)}"
    shown = run(cli(job.settings, "search", PHRASE, "--json"))
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)[0] == first.model_dump(mode="json")


def test_rest_and_the_remote_client_give_the_same_hits(job):
    local = [h.model_dump(mode="json") for h in run(Searcher(job.settings).search(WORD))]
    answer = httpx.get(f"{job.base}/api/search", params={"q": WORD}, timeout=30)
    assert answer.status_code == 200 and answer.json() == local

    async def remote():
        async with ClipperClient.over_http(job.base) as client:
            return await client.search(WORD)
    assert [h.model_dump(mode="json") for h in run(remote())] == local
    refused = httpx.get(f"{job.base}/api/search", params={"q": '"*-'}, timeout=30)
    assert refused.status_code == 422 and refused.json()["error"] == "SearchQueryInvalid"


def test_a_named_speaker_is_found_by_name_and_a_rebuilt_index_gives_the_same_hits(job):
    line = said(job)

    async def name():
        clipper = ClipperClient(await connect(job.settings), job.settings)
        return await clipper.name_speakers(job.job, {line.speaker: "Sheila"})
    assert run(name())[line.speaker] == "Sheila"
    searcher = Searcher(job.settings)
    hits = run(searcher.search(PHRASE, speaker="sheila"))
    assert hits and all(h.speaker == "Sheila" for h in hits) and hits[0].start == line.start
    before = [run(searcher.search(q)) for q in (WORD, "hello", "yankee", "sheila")]
    for name in ("search.sqlite3", "search.sqlite3-wal", "search.sqlite3-shm"):
        (job.settings.storage_dir / name).unlink(missing_ok=True)
    assert run(searcher.search(WORD)) == []
    rebuilt = run(cli(job.settings, "reindex"))
    assert rebuilt.code == 0 and "indexed 1 jobs" in rebuilt.out, rebuilt.out + rebuilt.err
    assert [run(searcher.search(q)) for q in (WORD, "hello", "yankee", "sheila")] == before


def test_a_hit_opens_the_job_page_at_its_second_with_the_line_highlighted(job):
    from playwright.sync_api import sync_playwright

    line = said(job)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(job.base + "/")
        page.fill("header .top-search input[name=q]", PHRASE.lower())
        page.press("header .top-search input[name=q]", "Enter")
        page.wait_for_url(re.compile(r"/search\?q="))
        hit = page.locator(".hit").first
        assert {"Sheila", "Texas"} <= set(hit.locator("mark").all_inner_texts())
        hit.locator("a").click()
        page.wait_for_url(re.compile(rf"/jobs/{job.job}\?t={int(line.start)}$"))
        current = page.locator("#transcript .line.current")
        assert WORD in current.inner_text()
        page.wait_for_function("t => Math.abs(document.getElementById('player').currentTime - t) < 1",
                               arg=int(line.start), timeout=30_000)
        browser.close()

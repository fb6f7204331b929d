"""The pages in a real browser: Debian's Chromium driven by Playwright (never `playwright install`).

One scenario on a real dev server and `clipper web`: submit a real recording (tests/data/real/call.mp3, a
two-person phone call, over local HTTP) from the form and watch its progress move in the jobs list; on its page
play a quote's clip, click a transcript line (the full audio seeks there), copy a quote, name a speaker and see
the name in the transcript; then pause and resume one job and cancel another, both held at `transcribe` by
stand-in activities so they stay running. Screenshots go to pytest's tmp dir (their paths are printed).
Without Chromium the test fails with how to install it: `make test` installs it (as root).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from clipper_app.client import connect
from clipper_app.workers.pools import build_worker
from tests.helpers import run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until
from tests.helpers.pagejob import chromium
from tests.helpers.real import REAL
from tests.helpers.standins import StandIns, harness, standin_settings
from tests.helpers.webserver import web_server

CALL = REAL / "call.mp3"
TIMEOUT_MS = 60_000


async def seen_state(page, state: str) -> None:
    await page.wait_for_function("s => document.getElementById('job').dataset.state === s", arg=state,
                                 timeout=20_000)


@pytest.mark.slow
def test_the_pages_in_a_real_browser(settings, tmp_path, monkeypatch):
    from playwright.async_api import async_playwright

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    executable = chromium()
    fakes = StandIns(held={"transcribe"})
    shots = tmp_path / "screenshots"
    shots.mkdir()

    async def body():
        temporal = await connect(settings)
        with serve({"/call.mp3": (CALL.read_bytes(), "audio/mpeg")}) as media:
            async with build_worker(temporal, settings), \
                    harness(standin_settings(settings.model_copy(update={"task_queue": settings.task_queue + "-s"})),
                            fakes) as (standin, held):
                other = (await standin.submit(f"https://example.com/{uuid.uuid4().hex}.mp3")).job_id
                with web_server(settings) as base:
                    async with async_playwright() as pw, httpx.AsyncClient(base_url=base, timeout=30) as http:
                        browser = await pw.chromium.launch(executable_path=executable, args=[
                            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
                        context = await browser.new_context(viewport={"width": 1280, "height": 900})
                        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
                        context.set_default_timeout(TIMEOUT_MS)
                        page = await context.new_page()
                        problems, dialogs = [], []
                        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                        page.on("pageerror", lambda e: problems.append(str(e)))

                        async def accept(dialog):
                            dialogs.append(dialog.message)
                            await dialog.accept()
                        page.on("dialog", accept)
                        try:
                            await scenario(page, http, base, media.url("/call.mp3"), held, other, shots, dialogs)
                        except BaseException:
                            await page.screenshot(path=shots / "failure.png", full_page=True)
                            raise
                        finally:
                            print(f"screenshots: {shots}")
                        await browser.close()
                        # No CSP violation, no script error (a CSP refusal is a console error in Chromium).
                        assert not [p for p in problems if "Failed to load resource" not in p], problems
            fakes.held.clear()

    run(body())


async def scenario(page, http, base, url, held, other, shots, dialogs):
    # --- the jobs page: submit from the form, see the job's progress move ---
    response = await page.goto(base + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    await page.fill("#submit-form input[name=url]", url)
    await page.select_option("#submit-form select[name=priority]", "2")
    await page.click("#submit-form button[type=submit]")
    result = page.locator("#submit-result")
    await result.locator("a").wait_for()
    job = await result.get_attribute("data-job")
    assert job and job in await result.inner_text()

    row = page.locator(f'#jobs tr[data-job="{job}"]')
    seen: list[int] = []

    async def progress_moved():
        if await row.count():
            value = int(await row.get_attribute("data-progress") or 0)
            if not seen or seen[-1] != value:
                seen.append(value)
            state = await row.get_attribute("data-state")
            if state == "done":
                return state
            assert state in ("queued", "running"), state
        await asyncio.sleep(0.2)
        return None
    await until(progress_moved, timeout=240, interval=0.2, what="the submitted job to finish in the list")
    # Moved, upward, to the end (a 30 s call takes a few seconds: the list may catch only a few steps of it).
    assert len(seen) >= 2 and seen[0] < 100 and seen[-1] == 100 and seen == sorted(seen), seen
    await page.screenshot(path=shots / "jobs.png", full_page=True)

    # --- the job's page ---
    await page.goto(f"{base}/jobs/{job}")
    await seen_state(page, "done")
    assert await page.locator("#title").inner_text() != job  # the media's title
    assert await page.locator("#stages tr[data-stage]").count() >= 6

    # A quote's clip plays: enough data to play, and time advances.
    clip = page.locator("#quotes audio.clip").first
    await clip.evaluate("a => a.play()")
    await page.wait_for_function("a => a.readyState >= 2 && a.currentTime > 0.3", arg=await clip.element_handle())

    # A transcript line seeks the full audio there.
    lines = page.locator("#transcript .line")
    assert await lines.count() >= 3
    line = lines.nth(await lines.count() // 2)
    start = float(await line.get_attribute("data-start"))
    assert start > 2
    await line.click()
    await page.wait_for_function(
        "s => { const p = document.getElementById('player'); return p.readyState >= 1 && Math.abs(p.currentTime - s) < 1.5 }",
        arg=start)

    # Copy a quote: the clipboard holds its text.
    copy = page.locator("#quotes button.copy").first
    text = await copy.get_attribute("data-text")
    await copy.click()
    await page.wait_for_function("b => b.textContent === 'Copied'", arg=await copy.element_handle())
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert text and text in copied, (text, copied)
    await page.screenshot(path=shots / "job-done.png", full_page=True)

    # Name a speaker from the page: the transcript shows the name.
    label = await page.locator("#speakers input").first.get_attribute("name")
    await page.fill(f'#speakers input[name="{label}"]', "Diane Example")
    await page.click("#speakers-form button[type=submit]")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#transcript .speaker')].some(s => s.textContent === 'Diane Example')",
        timeout=TIMEOUT_MS)
    await page.screenshot(path=shots / "job-named.png", full_page=False)
    zipped = await http.get(f"/api/jobs/{job}/clips.zip")
    assert zipped.status_code == 200 and zipped.content[:2] == b"PK"

    # --- pause and resume a running job (held at transcribe by a stand-in) ---
    await page.goto(f"{base}/jobs/{held}")
    await seen_state(page, "running")
    await page.click("button[data-control=pause]")
    await seen_state(page, "paused")
    assert (await http.get(f"/api/jobs/{held}")).json()["paused_since"]
    # Only the controls that apply: a paused job offers Resume, not Pause; a running one the reverse.
    assert await page.locator("button[data-control=resume]").is_visible()
    assert not await page.locator("button[data-control=pause]").is_visible()
    await page.click("button[data-control=resume]")
    await seen_state(page, "running")
    await page.locator("button[data-control=pause]").wait_for(state="visible")
    assert not await page.locator("button[data-control=resume]").is_visible()
    # Abandon and retry are for a job waiting after a failure: a running job does not offer them.
    assert not await page.locator("button[data-control=abandon]").is_visible()
    assert not await page.locator('#controls [data-controls="retry"]').is_visible()
    # Sent all the same (a page behind its job): the problem's error and detail, as the CLI says it.
    await page.evaluate("document.querySelector('button[data-control=abandon]').click()")
    await page.wait_for_function("() => document.getElementById('control-result').textContent.includes('not waiting')")
    assert "InvalidRequest" in await page.locator("#control-result").inner_text()
    await page.screenshot(path=shots / "job-running.png", full_page=True)

    # --- cancel another ---
    await page.goto(f"{base}/jobs/{other}")
    await seen_state(page, "running")
    await page.click("button[data-control=cancel]")
    await seen_state(page, "cancelled")
    assert any("Cancel" in d for d in dialogs)

    # Everything is escaped: an id with markup comes back as text, and no script of it runs.
    dialogs.clear()
    await page.goto(f"{base}/jobs/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert await page.locator("h1").inner_text() == "JobNotFound"
    assert await page.locator("img").count() == 0 and not dialogs


@pytest.mark.slow
def test_a_protected_server_asks_for_its_token_and_the_batch_form(settings):
    """With CLIPPER_WEB_TOKEN set, the page asks for the token at the first write, asks again once after a 401,
    keeps it for the session (no cookie is set), and both forms submit with it: a job and a batch of two."""
    from playwright.async_api import async_playwright
    from pydantic import SecretStr

    executable = chromium()
    fakes = StandIns(held={"transcribe"})
    token = "tok-" + uuid.uuid4().hex
    answers = ["wrong-" + uuid.uuid4().hex, token]
    asked: list[str] = []

    async def body():
        queue = settings.model_copy(update={"task_queue": settings.task_queue + "-t"})
        async with harness(standin_settings(queue), fakes):
            protected = standin_settings(queue, web_token=SecretStr(token))
            with web_server(protected) as base:
                async with async_playwright() as pw, httpx.AsyncClient(base_url=base, timeout=30) as http:
                    browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
                    page = await (await browser.new_context()).new_page()
                    page.set_default_timeout(TIMEOUT_MS)

                    async def answer(dialog):
                        asked.append(dialog.message)
                        await dialog.accept(answers[min(len(asked), len(answers)) - 1])
                    page.on("dialog", answer)
                    try:
                        await page.goto(base + "/")
                        await page.fill("#submit-form input[name=url]", f"https://example.com/{uuid.uuid4().hex}.mp3")
                        await page.click("#submit-form button[type=submit]")
                        await page.locator("#submit-result a").wait_for()
                        job = (await page.locator("#submit-result a").get_attribute("href")).rsplit("/", 1)[-1]
                        urls = "\n".join(f"https://example.com/{uuid.uuid4().hex}.mp3" for _ in range(2))
                        await page.fill("#batch-form textarea[name=urls]", urls)
                        await page.click("#batch-form button[type=submit]")
                        await page.wait_for_function(
                            "() => document.getElementById('batch-result').textContent.includes('batch ')")
                        said = await page.locator("#batch-result").text_content()
                        cookies = await page.context.cookies()
                    finally:
                        await browser.close()
                    refused = await http.post("/api/jobs", json={"url": "https://example.com/x.mp3"})
                    status = (await http.get(f"/api/jobs/{job}")).json()
                    return job, said, cookies, refused, status

    job, said, cookies, refused, status = run(body())
    assert len(asked) == 2 and "refused" in asked[1]  # asked once, then once more after the 401, then kept
    assert status["job_id"] == job and status["state"] in ("queued", "running")
    assert "Submitted: batch batch-" in said
    assert cookies == []
    assert refused.status_code == 401  # the API itself still refuses a write without the token


@pytest.mark.slow
def test_retry_with_changed_options_from_the_job_page(settings):
    """A job whose quotes stage gave up waits for a decision; the page's retry form sends the changed option and
    the job goes on with it."""
    from playwright.async_api import async_playwright

    from clipper.job.status import JobState
    from tests.helpers.standins import fail, outcome, status_when

    executable = chromium()
    fakes = StandIns(failures={"quotes": [fail("SomeError", "the LLM is down")]})

    async def body():
        queue = settings.model_copy(update={"task_queue": settings.task_queue + "-r"})
        async with harness(standin_settings(queue), fakes) as (clipper, job):
            await status_when(clipper, job, lambda s: s.waiting_since is not None, "the job to wait for a retry")
            with web_server(standin_settings(queue)) as base:
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
                    page = await (await browser.new_context()).new_page()
                    page.set_default_timeout(TIMEOUT_MS)
                    try:
                        await page.goto(f"{base}/jobs/{job}")
                        await page.click("#controls details summary")
                        await page.select_option("#retry-form select[name=text_engine]", "offline")
                        await page.click("#retry-form button[type=submit]")
                        await page.wait_for_function(
                            "() => document.getElementById('control-result').textContent.includes('retry sent')")
                    finally:
                        await browser.close()
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done
    quotes = fakes.of("quotes")
    assert len(quotes) == 2 and quotes[-1].arg.options.text_engine == "offline"

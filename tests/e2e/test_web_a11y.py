"""The pages as people read them, in a real browser (Debian's Chromium through Playwright): on a phone, with the
audiograms' posters, the transcript following the audio, find-in-transcript, keyboard shortcuts, the controls a
finished job offers (none), and an axe-core audit (axe-playwright-python bundles it; nothing is fetched).

One finished job for the whole module: the committed phone call (tests/data/real/call.mp3) through the real
pipeline once (worker process, ffmpeg, Whisper tiny.en), which leaves a transcript, quotes, chapters, clips and
audiograms (tests/helpers/pagejob.py); every test then opens its pages in a fresh browser context.
"""

from __future__ import annotations

import base64
import re
import time
import unicodedata

import httpx
import pytest

from tests.helpers.pagejob import PageJob, chromium, finished_job

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def job(own_temporal_server, tmp_path_factory) -> PageJob:
    with finished_job(own_temporal_server.address, tmp_path_factory.mktemp("pages")) as finished:
        yield finished


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    """`open_page(url, width=…, height=…, reduced_motion=…)`: a page in a new context; no script error allowed."""
    contexts, problems = [], []

    def opened(url: str, width: int = 1280, height: int = 900, **options):
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url)
        return page

    yield opened
    for context in contexts:
        context.close()
    assert not problems, problems  # no script error and no CSP refusal (Chromium logs one as a console error)


def transcript_texts(page) -> list[str]:
    return page.locator("#transcript .line .text").all_inner_texts()


def current_time(page) -> float:
    return page.evaluate("document.getElementById('player').currentTime")


def seek_and_wait(page, seconds: float) -> None:
    """Set the full audio's currentTime (once its metadata is in) and wait for the `timeupdate` that follows."""
    page.evaluate("""s => new Promise(done => {
        const p = document.getElementById('player');
        const go = () => { p.addEventListener('timeupdate', () => done(), { once: true }); p.currentTime = s; };
        if (p.readyState >= 1) go(); else { p.addEventListener('loadedmetadata', go, { once: true }); p.load(); }
    })""", seconds)


def current_lines(page) -> list[int]:
    """Indexes of the transcript lines marked as the one being spoken (class and aria-current)."""
    return page.evaluate("""() => [...document.querySelectorAll('#transcript .line')]
        .map((l, i) => l.classList.contains('current') && l.getAttribute('aria-current') === 'true' ? i : -1)
        .filter(i => i >= 0)""")


def in_its_box(page, index: int) -> bool:
    return page.evaluate("""i => {
        const box = document.querySelector('#transcript .lines').getBoundingClientRect();
        const r = document.querySelectorAll('#transcript .line')[i].getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1 }""", index)


@pytest.mark.slow
def test_the_pages_fit_a_phone(job, open_page):
    """At 360 and 414 px neither the jobs list nor the job page (transcript, quotes, chapters, audiograms) scrolls
    sideways."""
    for width in (360, 414):
        page = open_page(job.base + "/", width=width, height=780)
        page.locator(f'#jobs tr[data-job="{job.job}"] td.title a').wait_for()
        page.wait_for_function("() => document.getElementById('updated').textContent !== ''")  # jobs.js's rows
        assert page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]") == [width, width]

        page = open_page(job.page, width=width, height=780)
        for part in ("#transcript .line", "#quotes .quote", "#summary .chapters li", "#audiograms video"):
            assert page.locator(part).count() >= 1, f"the job has no {part} to lay out"
        scroll, inner = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        wide = page.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5).map(e => e.tagName + '.' + e.className)""")
        assert scroll <= inner == width, (width, scroll, wide)


PIXELS = """async ([url, rows]) => {
    const img = new Image(); img.src = url; await img.decode();
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, Math.max(1, Math.floor(c.height * rows))).data;
    let light = 0, dark = 0;
    for (let k = 0; k < d.length; k += 4) { const sum = d[k] + d[k + 1] + d[k + 2]; if (sum > 400) light++; if (sum < 40) dark++; }
    return { w: img.naturalWidth, h: img.naturalHeight, light: light / (d.length / 4), black: dark / (d.length / 4) };
}"""


@pytest.mark.slow
def test_audiogram_players_show_a_poster(job, open_page):
    """Each player's poster is a frame of its audiogram, drawn by the web app with ffmpeg: a JPEG the browser
    decodes, with the words on screen (light pixels on the navy background), painted in the player before
    anything of the video is loaded: not a black box."""
    with httpx.Client(base_url=job.base, timeout=30) as http:
        listed = [a["name"] for a in http.get(f"/api/jobs/{job.job}/artifacts").json()]
    page = open_page(job.page)
    videos = page.locator("#audiograms video")
    assert videos.count() == len([n for n in listed if n.startswith("audiograms/") and n.endswith(".mp4")]) >= 1
    for i in range(videos.count()):
        video = videos.nth(i)
        poster = video.get_attribute("poster")
        assert poster and poster.startswith(f"/jobs/{job.job}/posters/audiograms/"), poster
        drawn = page.evaluate(PIXELS, [poster, 1])
        assert drawn["w"] >= 200 and drawn["h"] >= 200 and drawn["light"] > 0.002, drawn
        # In the player: its upper part (above the controls) shows the poster, and no frame was loaded for it.
        video.scroll_into_view_if_needed()
        deadline = time.monotonic() + 10
        while True:  # the poster is fetched after the page has loaded
            shot = "data:image/png;base64," + base64.b64encode(video.screenshot()).decode()
            shown = page.evaluate(PIXELS, [shot, 0.6])
            if shown["black"] < 0.2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert shown["black"] < 0.2 and video.evaluate("v => v.readyState") == 0, shown

        with httpx.Client(base_url=job.base, timeout=30) as http:
            r = http.get(poster)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text[:200]
            assert r.content[:3] == b"\xff\xd8\xff" and r.headers["x-content-type-options"] == "nosniff"
            assert http.get(poster, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    with httpx.Client(base_url=job.base, timeout=30) as http:
        for name in ("report.md", "audiograms/99-1x1.mp4", "..%2f..%2fmanifest.json"):
            r = http.get(f"/jobs/{job.job}/posters/{name}")
            assert r.status_code == 404 and r.json()["error"] == "ArtifactNotFound", (name, r.text)


@pytest.mark.slow
def test_the_line_being_spoken_is_highlighted_and_kept_in_view(job, open_page):
    for motion in ("reduce", "no-preference"):
        # A short window: the transcript's box is smaller than the call's lines, so following has to scroll it.
        page = open_page(job.page, width=1000, height=420, reduced_motion=motion)
        lines = page.locator("#transcript .line")
        count = lines.count()
        assert count >= 8 and page.evaluate("() => { const b = document.querySelector('#transcript .lines'); "
                                            "return b.scrollHeight > b.clientHeight }")
        assert current_lines(page) == []
        last = count - 1
        assert not in_its_box(page, last)
        seek_and_wait(page, float(lines.nth(last).get_attribute("data-start")))
        assert current_lines(page) == [last]
        if motion == "reduce":
            assert in_its_box(page, last)  # at once: no smooth scrolling asked of a reader who wants none
        else:
            page.wait_for_function("""() => { const box = document.querySelector('#transcript .lines').getBoundingClientRect();
                const r = document.querySelector('#transcript .line.current').getBoundingClientRect();
                return r.top >= box.top - 1 && r.bottom <= box.bottom + 1 }""")
        # The page itself did not move: only the transcript's box scrolls.
        assert page.evaluate("scrollY") == 0

    # While it plays, the highlight moves on with the audio.
    third = float(lines.nth(2).get_attribute("data-start"))
    seek_and_wait(page, third)
    assert current_lines(page) == [2]
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("""() => [...document.querySelectorAll('#transcript .line')]
        .findIndex(l => l.classList.contains('current')) > 2""", timeout=20_000)
    assert len(current_lines(page)) == 1


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).lower()


@pytest.mark.slow
def test_find_in_the_transcript(job, open_page):
    page = open_page(job.page, width=414, height=780)
    texts = transcript_texts(page)
    def found(word: str) -> int:
        return sum(len(re.findall(re.escape(fold(word)), fold(t))) for t in texts)
    word = max(re.findall(r"[A-Za-z]{5,}", " ".join(texts)), key=found)  # the call's most frequent, e.g. Jersey
    expected = found(word)
    lines_with = sum(1 for t in texts if fold(word) in fold(t))
    assert expected >= 1

    # Upper case and an accent the transcript does not have: the same matches.
    query = word.upper()[:1] + "\u0301" + word.upper()[1:]  # e.g. J́ERSEY
    page.fill("#find", query)
    count = page.locator("#find-count")
    assert count.inner_text() == f"1 of {expected}"
    assert page.locator("#transcript mark").count() == expected
    assert page.locator("#transcript .line.match-line").count() == lines_with
    assert [fold(m) for m in page.locator("#transcript mark").all_inner_texts()] == [fold(word)] * expected
    page.press("#find", "Enter")
    assert count.inner_text() == f"{min(2, expected)} of {expected}"
    page.press("#find", "Shift+Enter")
    page.press("#find", "Shift+Enter")  # from the first back to the last
    assert count.inner_text() == f"{expected} of {expected}"
    assert page.locator("#transcript mark.match-current").count() == 1

    page.fill("#find", "zzqx nowhere")
    assert count.inner_text() == "no match" and page.locator("#transcript mark").count() == 0
    page.fill("#find", word.lower())
    assert page.locator("#transcript mark").count() == expected
    page.press("#find", "Escape")
    assert page.input_value("#find") == "" and count.inner_text() == ""
    assert page.locator("#transcript mark").count() == 0 and transcript_texts(page) == texts


@pytest.mark.slow
def test_keyboard_shortcuts(job, open_page):
    page = open_page(job.page)
    starts = [float(s) for s in page.locator("#transcript .line").evaluate_all("ls => ls.map(l => l.dataset.start)")]
    page.locator("h1").click()  # focus on the page, in no field

    # The list of shortcuts: a visible "?" and the key itself.
    help_button = page.locator("#keys summary")
    assert help_button.is_visible() and help_button.inner_text() == "?"
    page.keyboard.press("?")
    listed = page.locator("#keys dl")
    assert listed.is_visible() and all(k in listed.inner_text() for k in ("Space", "j", "k", "/", "←", "→"))
    page.keyboard.press("Escape")
    assert not listed.is_visible()

    page.keyboard.press("j")  # before the first line: to the first
    page.wait_for_function("s => Math.abs(document.getElementById('player').currentTime - s) < 0.01", arg=starts[0])
    page.keyboard.press("j")
    page.wait_for_function("s => Math.abs(document.getElementById('player').currentTime - s) < 0.01", arg=starts[1])
    page.wait_for_function("() => document.querySelectorAll('#transcript .line')[1].classList.contains('current')")
    page.keyboard.press("k")
    page.wait_for_function("s => Math.abs(document.getElementById('player').currentTime - s) < 0.01", arg=starts[0])

    before = current_time(page)
    page.keyboard.press("ArrowRight")
    page.wait_for_function("t => Math.abs(document.getElementById('player').currentTime - t) < 0.01", arg=before + 5)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("t => Math.abs(document.getElementById('player').currentTime - t) < 0.01", arg=before)

    page.keyboard.press(" ")
    page.wait_for_function("() => !document.getElementById('player').paused")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('player').paused")
    assert page.evaluate("scrollY") == 0  # Space did not scroll the page

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "find"
    at = current_time(page)
    page.keyboard.type("jk ")  # in a text field the keys are text, not shortcuts
    assert page.input_value("#find") == "jk " and current_time(page) == at
    assert page.evaluate("document.getElementById('player').paused")


@pytest.mark.slow
def test_a_finished_job_offers_no_controls(job, open_page):
    page = open_page(job.page)
    page.wait_for_function("() => document.getElementById('job').dataset.state === 'done'")
    page.wait_for_timeout(1500)  # a refresh or two of job.js: they keep the controls hidden
    for control in ("pause", "pause_now", "resume", "cancel", "abandon", "priority"):
        assert page.locator(f'#controls [data-control="{control}"]').count() == 1, control
        assert not page.locator(f'#controls [data-control="{control}"]').is_visible(), control
    assert not page.locator('#controls [data-controls="retry"]').is_visible()
    assert not page.locator("#priority-select").is_visible()


@pytest.mark.slow
def test_no_serious_accessibility_violation(job, open_page):
    """axe-core on the jobs list, a finished job's page and the follows, on a desktop and a phone: nothing serious or
    critical (colour contrast, names of controls, headings, …); the list has its h1."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    for width in (1280, 360):
        for url in (job.base + "/", job.page, job.base + "/follows"):
            page = open_page(url, width=width, height=900)
            if url.endswith("/"):
                page.locator(f'#jobs tr[data-job="{job.job}"]').wait_for()
                assert page.locator("h1").count() == 1 and page.locator("h1").is_visible()
            elif url.endswith("/follows"):
                page.locator("#follow-form").wait_for()
            else:
                page.locator("#transcript .line").first.wait_for()
            violations = axe.run(page).response["violations"]
            bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5]) for v in violations
                   if v["impact"] in ("serious", "critical")]
            assert not bad, (url, width, bad)

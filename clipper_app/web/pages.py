"""The pages for people: `/` (jobs), `/jobs/{id}` (one job; `?t=` plays from that second) and `/search?q=` (every
job's hits), server-rendered with Jinja2, live through JS.

The pages read through the same `ClipperClient` as the JSON API and show the same data; everything that changes
(progress, state, the jobs list) and every write (submit, controls, speaker names) is done by the committed
scripts in `clipper_app/web/static/` against the JSON API, so a page has no write path of its own and no cookie: with a
token configured the script asks for it once and sends `Authorization: Bearer` (no CSRF surface). With
CLIPPER_WEB_PROTECT_READS the pages are refused like any other read without the token: an `<audio>` element
cannot send a bearer token, so a page for people needs open reads.

Jinja2 autoescapes everything, and every page carries a Content-Security-Policy that allows only this origin
and no inline script or style: the scripts and the stylesheet are static files.

The pages hold no rule of their own: the state a person reads and the priority range come from
clipper/job/status.py (the templates get them as globals, the scripts as JSON in the page's `data-rules`), clock
text from clipper/clock.py, and every file from the client, which verifies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from clipper.clock import clock, duration
from clipper.errors import ClipperError
from clipper.follow.every import EVERY_DEFAULT_S, EVERY_MIN_S, format_every
from clipper.job.outputs import AudiogramIndex, ClipIndex, QuoteSet, SpeakerSet, Summary, Transcript
from clipper.job.status import (
    FINISHED, PRIORITIES, PRIORITY_DEFAULT, PRIORITY_HIGHEST, PRIORITY_LOWEST, SHOWN_STATES, WAITING, JobState,
    JobStatus, shown_state, state_rules,
)
from clipper.search import KINDS
from clipper.search.query import MAX_QUERY_CHARS
from clipper_app.client import ArtifactRef, ClipperClient, clip_names
from clipper_app.client.recent import Recent
from clipper_app.web import posters
from clipper_app.web.api import _job_manifest, client
from clipper_app.web.problems import status_of
from clipper_app.web.security import require_reader

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
# The full recording: a compressed copy is lighter to seek in than the WAV the stages work on, if a job has one.
FULL_AUDIO = ("audio.mp3", "audio.m4a", "audio.ogg", "audio.wav")
DOWNLOADS = (("transcript.srt", "Subtitles (SRT)"), ("transcript.vtt", "Subtitles (VTT)"),
             ("transcript.json", "Transcript (JSON)"), ("transcript.txt", "Transcript (text)"),
             ("report.md", "Report (Markdown)"), ("quotes.md", "Quotes (Markdown)"))
# A job page reloads when its job reaches one of these: it then has outputs (done) or an error (failed, waiting)
# to show that the live parts do not (cancelled adds nothing).
RELOAD_ON = (JobState.done.value, JobState.failed.value, WAITING)
# Job pages whose outputs are kept, read, per app: what a page shows of its files depends only on the files, so
# outputs read once are kept by the names and sha256s they were read from (a new version of a file is a new key).
OUTPUTS_KEPT = 32
SEARCH_LIMIT = 50  # hits on the search page
M = TypeVar("M", bound=BaseModel)

templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))
pages = APIRouter(include_in_schema=False, dependencies=[Depends(require_reader)])


class Line(BaseModel):
    """A transcript line as the page shows it: the speaker's name when people gave one, else the label."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    label: str | None = None


class QuoteView(BaseModel):
    rank: int
    text: str
    start: float
    end: float
    speaker: str | None = None
    clip: str | None = None


class Outputs(BaseModel):
    """What a job has produced so far, read from its store: each part is None until its stage has run."""

    names: list[str] = Field(default_factory=list)
    audio: str | None = None
    summary: Summary | None = None
    quotes: list[QuoteView] = Field(default_factory=list)
    speakers: SpeakerSet | None = None
    lines: list[Line] = Field(default_factory=list)
    audiograms: AudiogramIndex | None = None
    clips: list[str] = Field(default_factory=list)
    downloads: list[tuple[str, str]] = Field(default_factory=list)
    note: str | None = None


# Durations (an ETA, the media's length, talk time) are rounded; points in the media (chapters, quotes,
# transcript lines) are the report's clock text, truncated so a jump lands at or before the words.
templates.env.filters["duration"] = duration
templates.env.filters["clock"] = clock
templates.env.filters["every"] = format_every
templates.env.filters["host"] = lambda url: urlsplit(url or "").hostname or ""
templates.env.globals.update(
    priorities=PRIORITIES, priority_default=PRIORITY_DEFAULT, priority_highest=PRIORITY_HIGHEST,
    priority_lowest=PRIORITY_LOWEST, rules={**state_rules(), "reloadOn": list(RELOAD_ON)})


async def read_outputs(clipper: ClipperClient, job_id: str, refs: dict[str, ArtifactRef]) -> Outputs:
    """Everything the job page shows besides its status, each file verified by the client; a part is None when
    the job has no such artifact (yet)."""

    async def read(name: str, model: type[M]) -> M | None:
        return await clipper.read_artifact(job_id, refs.get(name), model)

    out = Outputs(names=sorted(refs))
    out.audio = next((n for n in FULL_AUDIO if n in refs), None)
    out.summary = await read("summary.json", Summary)
    out.speakers = await read("speakers.json", SpeakerSet)
    names = {s.label: s.name for s in out.speakers.speakers if s.name} if out.speakers else {}
    transcript = await read("transcript.json", Transcript)
    if transcript is not None:
        out.lines = [Line(start=s.start, end=s.end, text=s.text.strip(), label=s.speaker,
                          speaker=names.get(s.speaker or "", s.speaker)) for s in transcript.segments]
    quotes = await read("quotes.json", QuoteSet)
    index = await read("clips.json", ClipIndex)
    clips = {c.rank: c.name for c in index.clips} if index is not None else {}  # the clip of each quote, by rank
    if quotes is not None:
        out.quotes = [QuoteView(rank=q.rank, text=q.text, start=q.start, end=q.end, speaker=names.get(q.speaker or "",
                                q.speaker), clip=next((c for c in (clips.get(q.rank), q.clip) if c in refs), None))
                      for q in quotes.quotes]
    out.audiograms = await read("audiograms.json", AudiogramIndex)
    if out.audiograms is not None:
        out.audiograms.audiograms = [a for a in out.audiograms.audiograms if a.name in refs]
    out.clips = clip_names(refs)
    out.downloads = [(n, label) for n, label in DOWNLOADS if n in refs]
    return out


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    return templates.TemplateResponse(request, name, {"token_required": bool(settings.web_token), **context},
                                      status_code=status_code, headers=PAGE_HEADERS)


@pages.get("/", response_class=HTMLResponse)
async def jobs_page(request: Request, state: str | None = None,
                    clipper: ClipperClient = Depends(client)) -> HTMLResponse:
    """The first rows are rendered here; `jobs.js` then refreshes them every second from `GET /api/jobs`."""
    jobs = await clipper.list_jobs(limit=50)
    return _page(request, "jobs.html", jobs=jobs, states=SHOWN_STATES, state=state if state in SHOWN_STATES else "")


@pages.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str, clipper: ClipperClient = Depends(client)) -> HTMLResponse:
    try:
        view = await clipper.job_view(job_id)  # shared, only read: no copy
    except ClipperError as err:
        return _page(request, "error.html", status_code=status_of(err), error=err.type_name, detail=str(err))
    status: JobStatus = view.status
    try:
        refs = await _job_manifest(clipper, job_id)
        files = tuple(sorted((name, ref.sha256) for name, ref in refs.items()))
    except ClipperError as err:  # a failed or cancelled job has no outputs to show; a damaged artifact is named
        return _job_html(request, status, _unread(status, err))
    if not (view.closed and view.final):  # its status changes: rendered afresh each time
        return (await _job_page(request, clipper, status, refs, files))[0]
    # A closed job's page depends only on its end status and its files: rendered once per version of them.
    key = (job_id, view.execution, status.finished_at, files, str(request.base_url),
           bool(request.app.state.settings.web_token))
    kept = request.app.state.closed_pages
    page, whole = await kept.get(key, lambda: _job_page(request, clipper, status, refs, files))
    if not whole:
        kept.forget(key)  # a damaged file is looked at again next time
    return HTMLResponse(page.body, status_code=page.status_code, headers=PAGE_HEADERS)


async def _job_page(request: Request, clipper: ClipperClient, status: JobStatus, refs: dict[str, ArtifactRef],
                    files: tuple[tuple[str, str], ...]) -> tuple[HTMLResponse, bool]:
    """The job's page, and whether every output it shows was read whole."""
    try:
        outputs = await request.app.state.page_outputs.get(
            (status.job_id, files), lambda: read_outputs(clipper, status.job_id, refs))
    except ClipperError as err:  # a damaged artifact is named
        return _job_html(request, status, _unread(status, err)), False
    return _job_html(request, status, outputs), True


def _job_html(request: Request, status: JobStatus, out: Outputs) -> HTMLResponse:
    return _page(request, "job.html", job=status, state=shown_state(status), out=out)


def _unread(status: JobStatus, err: ClipperError) -> Outputs:
    """No outputs, and why: nothing to say for a failed or cancelled job (it has none), the error otherwise."""
    return Outputs(note=None if status.state in FINISHED - {JobState.done} else f"{err.type_name}: {err}")


EVERIES = [(s, format_every(s)) for s in (EVERY_MIN_S, 60, 300, EVERY_DEFAULT_S, 3600, 6 * 3600, 86400)]


@pages.get("/follows", response_class=HTMLResponse)
async def follows_page(request: Request, clipper: ClipperClient = Depends(client)) -> HTMLResponse:
    """Every follow with its last check; `follows.js` makes, pauses, resumes and removes them through the API."""
    return _page(request, "follows.html", follows=await clipper.follows(), everies=EVERIES,
                 every_default=EVERY_DEFAULT_S)


@pages.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, q: str = "", speaker: str | None = None, kind: str | None = None,
                      clipper: ClipperClient = Depends(client)) -> HTMLResponse:
    """Every job's hits for `q`, each a link to its job's page at the hit's second (`?t=`), the line highlighted."""
    hits, error, status = [], None, 200
    if q.strip():
        try:
            hits = await clipper.search(q, speaker=speaker or None, kind=kind or None, limit=SEARCH_LIMIT)
        except ClipperError as err:
            error, status = f"{err.type_name}: {err.message}", status_of(err)
    return _page(request, "search.html", status_code=status, q=q, speaker=speaker, kind=kind, kinds=KINDS,
                 hits=hits, error=error, limit=SEARCH_LIMIT, max_chars=MAX_QUERY_CHARS)


def mount(app: FastAPI) -> None:
    """The pages and their static files (CSS, JS), on the app the JSON API is on."""
    app.state.page_outputs = Recent(None, size=OUTPUTS_KEPT)  # many at once of one page: one read (job_page)
    app.state.closed_pages = Recent(None, size=OUTPUTS_KEPT)  # a closed job's page, rendered once (job_page)
    app.include_router(pages)
    app.include_router(posters.router)  # `/jobs/{id}/posters/…`: a frame of each audiogram for its player
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask here before they read the page's <link rel="icon">
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

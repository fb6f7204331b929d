"""What a follow is, what it remembers, and which items a check starts.

An item is known by its guid (RSS `<guid>`, Atom `<id>`, a yt-dlp entry's id), else by its URL; with the follow's
id that gives `item_id` and the item's job id `clip-<item_id>`. The same item always maps to the same job id, so a
check that is run again after a crash finds the job it had started (Temporal refuses a second start of that id)
instead of starting another. The record (`follow.json` in the follow's folder of the store) keeps the item ids
seen, the last check and its result, and the counts `clipper follows` shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from clipper.follow.every import EVERY_DEFAULT_S
from clipper.job.batch import JobTemplate
from clipper.job.stages import FOLLOW, StagePolicy

RECORD_FILE = "follow.json"
FOLLOW_STAGE = "follow"  # the `stage` recorded in the follow folder's manifest
SEEN_KEEP = 50_000  # item ids remembered per follow (oldest forgotten first): far more than any feed lists
RECENT_JOBS = 20  # jobs a record lists (the counts cover all)
MAX_FAILURES_DEFAULT = 5  # failed checks in a row before a follow pauses itself
MAX_STARTS_DEFAULT = 100  # jobs one check starts at most; the rest wait for the next check


def follow_id_for(source: str) -> str:
    """A stable follow id: the same source (canonical URL) is the same follow."""
    return "follow-" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def item_id(follow_id: str, identity: str) -> str:
    return hashlib.sha256(f"{follow_id}|{identity}".encode()).hexdigest()[:16]


def job_id_for_item(item: str) -> str:
    return f"clip-{item}"


class FeedItem(BaseModel):
    """One item a source lists: the media URL a job downloads, and what identifies it."""

    url: str
    guid: str | None = None
    title: str | None = None
    published: datetime | None = None

    @property
    def identity(self) -> str:
        return self.guid or self.url


class FollowRequest(BaseModel):
    """The follow itself: the input every check gets from its schedule (plain JSON, no secrets)."""

    follow_id: str
    source: str
    every_s: int = EVERY_DEFAULT_S
    job: JobTemplate = Field(default_factory=JobTemplate)
    since: datetime | None = None  # items published before it are not clipped
    new_only: bool = False  # the first check only records what is there
    max_failures: int = Field(MAX_FAILURES_DEFAULT, ge=1, le=1000)
    concurrency: int = Field(3, ge=1, le=100)  # job starts in flight at once
    max_starts: int = Field(MAX_STARTS_DEFAULT, ge=1, le=10_000)
    # The check's retry policy: the stage table's row `follow`, with the client's CLIPPER_POLICIES__FOLLOW__….
    policy: StagePolicy = Field(default_factory=lambda: FOLLOW.policy)


class FollowJob(BaseModel):
    job_id: str
    url: str
    title: str | None = None
    at: datetime


class FollowRecord(BaseModel):
    """What a follow has seen and done (`follow.json`), rewritten atomically after every check."""

    follow_id: str
    source: str
    title: str | None = None
    checks: int = 0
    first_done: bool = False
    last_check_at: datetime | None = None
    last_result: str | None = None  # "ok: 2 new" or "error <Type>: <message>"
    failures: int = 0  # failed checks in a row
    items_seen: int = 0
    jobs_started: int = 0
    paused_by_failures: bool = False
    recent_jobs: list[FollowJob] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)  # item ids, oldest first


class FollowCheckResult(BaseModel):
    """What one check did (the result of workflow `FollowCheck`)."""

    follow_id: str
    listed: int = 0
    new: int = 0
    started: int = 0
    skipped: int = 0  # older than --since, or the first check of a --new-only follow
    left: int = 0  # new items left for the next check (more than max_starts)
    error: str | None = None
    failures: int = 0
    paused: bool = False


class FollowFailure(BaseModel):
    """Input of activity `follow_failed`: a check that gave up."""

    request: FollowRequest
    error: str


class FollowInfo(BaseModel):
    """A follow as `clipper follows` lists it: its schedule's state and its record."""

    follow_id: str
    source: str
    title: str | None = None
    every_s: int
    paused: bool = False
    note: str | None = None
    next_check_at: datetime | None = None
    last_check_at: datetime | None = None
    last_result: str | None = None
    failures: int = 0
    items_seen: int = 0
    jobs_started: int = 0
    recent_jobs: list[FollowJob] = Field(default_factory=list)


class CheckPlan(BaseModel):
    """Which listed items a check starts (in listing order), and which it only marks seen."""

    listed: int = 0
    start: list[tuple[str, FeedItem]] = Field(default_factory=list)  # (item id, item)
    skip: list[str] = Field(default_factory=list)
    left: int = 0


def plan_check(request: FollowRequest, record: FollowRecord, items: Iterable[FeedItem]) -> CheckPlan:
    """Items not seen before, once each (a duplicate guid in one listing counts once), at most `max_starts`.
    Skipped, only marked seen: on a `--new-only` follow's first check everything; with `--since`, items published
    before it (and, on the first check, undated ones, which may be as old)."""
    seen, plan = set(record.seen), CheckPlan()
    for item in items:
        plan.listed += 1
        key = item_id(request.follow_id, item.identity)
        if key in seen:
            continue
        seen.add(key)
        if (request.new_only and not record.first_done) or _before_since(request, record, item):
            plan.skip.append(key)
        elif len(plan.start) < request.max_starts:
            plan.start.append((key, item))
        else:
            plan.left += 1
            seen.discard(key)  # not seen yet: the next check takes it
    return plan


def _before_since(request: FollowRequest, record: FollowRecord, item: FeedItem) -> bool:
    if request.since is None:
        return False
    if item.published is None:
        return not record.first_done
    since = request.since if request.since.tzinfo else request.since.replace(tzinfo=item.published.tzinfo)
    return item.published < since


def remember(record: FollowRecord, ids: Iterable[str]) -> None:
    """Add item ids to the record's seen list (oldest forgotten beyond SEEN_KEEP)."""
    known = set(record.seen)
    for i in ids:
        if i not in known:
            known.add(i)
            record.seen.append(i)
    if len(record.seen) > SEEN_KEEP:
        del record.seen[:len(record.seen) - SEEN_KEEP]
    record.items_seen = len(record.seen)


def started(record: FollowRecord, jobs: list[FollowJob]) -> None:
    record.jobs_started += len(jobs)
    record.recent_jobs = (record.recent_jobs + jobs)[-RECENT_JOBS:]

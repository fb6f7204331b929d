"""The REST API's follows: a feed, channel, playlist or account watched on a schedule, a job per new item.

    POST   /api/follows                    follow a source (the first check runs at once)
    GET    /api/follows                    every follow: its schedule's state and what its checks saw
    GET    /api/follows/{follow_id}        one of them
    POST   /api/follows/{follow_id}/pause  no checks until resumed (jobs started go on)
    POST   /api/follows/{follow_id}/resume
    DELETE /api/follows/{follow_id}        unfollow

Everything through `ClipperClient` (clipper_app/client/follows.py), as the CLI does.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, BeforeValidator, Field, StrictBool

from clipper.follow.every import EVERY_DEFAULT_S, EVERY_MAX_S, EVERY_MIN_S
from clipper.follow.model import FollowInfo
from clipper.job.status import PRIORITY_DEFAULT, PRIORITY_RANGE
from clipper_app.client import ClipperClient
from clipper_app.web.inputs import MediaUrl, Options, Priority, Strict, whole
from clipper_app.web.problems import Problem
from clipper_app.web.security import require_reader, require_writer

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for code, text in ((401, "missing or wrong bearer token"), (404, "unknown follow"), (413, "body too large"),
                       (422, "invalid input"))}
FOLLOW_ID = Path(description="the follow id, e.g. follow-3f2a…", max_length=200)

follows = APIRouter(prefix="/api/follows", tags=["follows"], responses=ERRORS)
reads, writes = [Depends(require_reader)], [Depends(require_writer)]


async def client(request: Request) -> ClipperClient:
    return request.app.state.clipper


RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _date_text(value: Any) -> Any:
    """A date as the document says it (an RFC 3339 string), never a number a lax datetime would take."""
    if value is not None and not isinstance(value, datetime) and not (isinstance(value, str)
                                                                       and RFC3339.fullmatch(value)):
        raise ValueError("a date-time string (RFC 3339), e.g. 2026-12-01T00:00:00Z")
    return value


DateText = Annotated[datetime, BeforeValidator(_date_text)]


class Follow(Strict):
    source: MediaUrl = Field(description="a podcast feed (RSS/Atom), a channel, playlist or account URL (http(s))")
    every_s: whole(EVERY_MIN_S, EVERY_MAX_S) = Field(EVERY_DEFAULT_S, description="seconds between checks")
    since: DateText | None = Field(None, description="clip only items published from then on")
    new_only: StrictBool = Field(False, description="skip what the source lists now: clip only what comes")
    priority: Priority = Field(PRIORITY_DEFAULT, description=PRIORITY_RANGE)
    options: Options = Field(default_factory=Options)
    concurrency: whole(1, 100) | None = Field(None, description="job starts at once; default: "
                                                                  "CLIPPER_BATCH_CONCURRENCY")


class FollowAccepted(BaseModel):
    follow_id: str
    existing: bool = Field(description="true when the source was already followed: that follow is returned")


@follows.post("", status_code=201, dependencies=writes, response_model=FollowAccepted)
async def follow(body: Follow, clipper: ClipperClient = Depends(client)) -> FollowAccepted:
    submitted = await clipper.follow(body.source, body.every_s, body.options.plain(), priority=body.priority,
                                     since=body.since, new_only=body.new_only, concurrency=body.concurrency)
    return FollowAccepted(follow_id=submitted.job_id, existing=submitted.existing)


@follows.get("", dependencies=reads, response_model=list[FollowInfo])
async def list_follows(clipper: ClipperClient = Depends(client)) -> list[FollowInfo]:
    return await clipper.follows()


@follows.get("/{follow_id}", dependencies=reads, response_model=FollowInfo)
async def follow_info(follow_id: str = FOLLOW_ID, clipper: ClipperClient = Depends(client)) -> FollowInfo:
    return await clipper.follow_info(follow_id)


@follows.post("/{follow_id}/pause", dependencies=writes, response_model=FollowInfo)
async def pause_follow(follow_id: str = FOLLOW_ID, clipper: ClipperClient = Depends(client)) -> FollowInfo:
    """No check runs until resumed; the jobs it started go on."""
    return await clipper.pause_follow(follow_id)


@follows.post("/{follow_id}/resume", dependencies=writes, response_model=FollowInfo)
async def resume_follow(follow_id: str = FOLLOW_ID, clipper: ClipperClient = Depends(client)) -> FollowInfo:
    return await clipper.resume_follow(follow_id)


@follows.delete("/{follow_id}", status_code=204, dependencies=writes, response_class=Response)
async def unfollow(follow_id: str = FOLLOW_ID, clipper: ClipperClient = Depends(client)) -> Response:
    """No more checks; the jobs it started go on, and what it saw stays (following the source again starts
    nothing it had seen)."""
    await clipper.unfollow(follow_id)
    return Response(status_code=204)

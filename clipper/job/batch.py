"""Pydantic models of batches (workflow `BatchJob`): one playlist or list of URLs, one child `MediaJob` per item.

Plain JSON like `clipper/job/request.py`, so `temporal workflow start --type BatchJob --input '{"source": "..."}'`
works without clipper code. The item list itself never travels through history: the worker stores it as an
artifact (`storage/jobs/<batch id>/items.json`, a `BatchItems`) and each run of the batch reads the next
window of it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clipper.job.request import JobRequest
from clipper.job.status import PRIORITY_DEFAULT, JobState
from clipper.store.refs import ArtifactRef

ITEMS_FILE = "items.json"
BATCH_STAGE = "batch"  # the `stage` recorded in the batch folder's manifest


class JobTemplate(JobRequest):
    """The `JobRequest` every item gets, its `url` replaced by the item's (leave `url` out)."""

    url: str = ""


class BatchRequest(BaseModel):
    """Input of `BatchJob`. Give `source` (a playlist / channel / podcast feed URL, expanded by the worker
    with yt-dlp's flat extraction) or `urls` (the items themselves, e.g. a file of URLs read by the client)."""

    source: str | None = None
    urls: list[str] = Field(default_factory=list)
    job: JobTemplate = Field(default_factory=JobTemplate)
    concurrency: int = Field(3, ge=1, le=100)  # child jobs running at once
    window: int = Field(100, ge=1, le=1000)  # items started per run; then the batch continues as new
    # Set by the workflow itself when it continues as new: where it is, compactly. Never set it yourself.
    carry: BatchCarry | None = None


class BatchEntry(BaseModel):
    """One item of the list: a media URL (canonical when it could be made so) and its title if the playlist
    gave one."""

    url: str
    title: str | None = None


class BatchItems(BaseModel):
    """The stored item list (`items.json` in the batch folder)."""

    source: str | None = None
    title: str | None = None
    items: list[BatchEntry] = Field(default_factory=list)


class ExpandInput(BaseModel):
    """Input of activity `expand_batch`."""

    batch_id: str
    source: str | None = None
    urls: list[str] = Field(default_factory=list)


class ExpandOutput(BaseModel):
    """Output of `expand_batch`: a reference to the stored list, never the list."""

    items: ArtifactRef
    count: int
    title: str | None = None


class ReadItemsInput(BaseModel):
    """Input of activity `read_batch_items`: items [offset, offset + limit) of the stored list."""

    batch_id: str
    items: ArtifactRef
    offset: int = 0
    limit: int = 100


class ForwardPriority(BaseModel):
    """Input of activity `forward_priority`: run the update `set_priority` on these jobs."""

    job_ids: list[str]
    priority: int


class BatchCounts(BaseModel):
    total: int = 0
    queued: int = 0  # not started yet
    running: int = 0  # started, not closed (a child may itself be paused or waiting for a retry)
    done: int = 0
    failed: int = 0
    cancelled: int = 0


class BatchItem(BaseModel):
    """One item as the batch sees it. Its stages and progress are the child's own: `clipper status <job_id>`."""

    index: int
    job_id: str
    url: str
    title: str | None = None
    state: JobState = JobState.running
    error: str | None = None  # "<type>: <message>" of a failed child
    existing: bool = False  # the job had already completed earlier (e.g. a batch re-run): not redone


class BatchStatus(BaseModel):
    """What the batch's `status` query returns. `items` holds the running items, the failed ones and the
    most recently finished ones; `counts` covers every item."""

    batch_id: str
    source: str | None = None
    title: str | None = None
    state: JobState = JobState.queued
    counts: BatchCounts = Field(default_factory=BatchCounts)
    items: list[BatchItem] = Field(default_factory=list)
    priority: int = PRIORITY_DEFAULT
    concurrency: int = 3
    paused_since: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run: int = 1  # runs of this batch so far (it continues as new every `window` items)
    error: str | None = None  # why the batch failed (its list could not be made)


class BatchCarry(BaseModel):
    """What one run of the batch hands the next (continue-as-new): a reference, a cursor, small state."""

    status: BatchStatus
    items: ArtifactRef
    cursor: int  # index of the next item to start
    pause_now: bool | None = None  # the batch is paused (pause --now if True)


class BatchResult(BaseModel):
    batch_id: str
    state: JobState
    counts: BatchCounts
    failed: list[BatchItem] = Field(default_factory=list)
    status: BatchStatus


BatchRequest.model_rebuild()

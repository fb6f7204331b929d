"""A job's state as everyone reads it: the `status` query's `JobStatus`, and the rules about it that the
workflow, the client, the CLI and the pages share (finished states, the state a person reads, the priority
range, progress and ETA). Each rule is written here once: the CLI's help, the REST API's bounds and the pages'
selects and scripts are built from these names, never from copies of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from clipper.errors import InvalidRequest
from clipper.job.stages import ACTIVITY_STAGES
from clipper.store.refs import ArtifactRef

PRIORITY_HIGHEST, PRIORITY_LOWEST, PRIORITY_DEFAULT = 1, 5, 3
PRIORITIES = range(PRIORITY_HIGHEST, PRIORITY_LOWEST + 1)  # every priority, highest first (the pages' selects)
PRIORITY_RANGE = f"{PRIORITY_HIGHEST} (highest) … {PRIORITY_LOWEST} (lowest)"  # help texts and API docs
STAGE_OVERHEAD_S = 1.0  # scheduling and start-up per stage, independent of the media's length
DEFAULT_RATE = 0.01  # s of work per audio s of a stage with no declared or measured rate


def check_priority(priority: Any) -> int:
    """Jobs and batches take an integer priority in `PRIORITY_RANGE` (1 is the highest): the client, the CLI and the
    workflows' `set_priority` validator all ask this."""
    whole = isinstance(priority, int) and not isinstance(priority, bool)
    if not whole or not PRIORITY_HIGHEST <= priority <= PRIORITY_LOWEST:
        raise InvalidRequest(f"priority must be {PRIORITY_HIGHEST} (highest) to {PRIORITY_LOWEST} (lowest), "
                             f"got {priority!r}")
    return priority


class StageState(str, Enum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    # How a job that ended otherwise than done leaves its stages: the one running when it was cancelled, and the
    # ones it never reached (after a cancel or a failure), so no stage reads "running" or "pending" forever.
    cancelled = "cancelled"
    skipped = "skipped"


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    paused = "paused"
    failed = "failed"
    done = "done"
    cancelled = "cancelled"


FINISHED = frozenset({JobState.done, JobState.failed, JobState.cancelled})  # a job (or batch) in one has ended

# The state a person reads. A job whose stage gave up is `failed` to the workflow, but it is still open and waits
# for a manual retry or abandon (`waiting_since`): people see `waiting`, statistics and notifications call the
# same moment `waiting_for_retry`. A job paused while it waits reads `waiting` (the decision it waits for matters
# more than the pause).
WAITING = "waiting"
WAITING_FOR_RETRY = "waiting_for_retry"
# The moments a job notifies people about (email, webhook), by name: CLIPPER_NOTIFY_ON picks among them.
NOTIFY_EVENTS = (JobState.failed.value, WAITING_FOR_RETRY, JobState.done.value)
SHOWN_STATES = (JobState.queued.value, JobState.running.value, JobState.paused.value, WAITING,
                JobState.failed.value, JobState.done.value, JobState.cancelled.value)
# The status fields that override `state`, in order: the first one set decides (`shown_state`).
SHOWN_BY = (("waiting_since", WAITING), ("paused_since", JobState.paused.value))
# The server-side state (the ClipperState search attribute) a shown state is listed under: a list of waiting jobs
# is asked for as `failed` and the finished ones are left out by their shown state.
LISTED_AS = {WAITING: JobState.failed.value}


# The controls a job takes, by the state people read: each only where it applies (a finished job takes only
# `delete`; retry and abandon only a job waiting after a failure). The pages show and hide their buttons by it
# (`state_rules`), the CLI's status prints its hints from it (`controls_for`).
_OPEN = (JobState.queued.value, JobState.running.value, JobState.paused.value, WAITING)
CONTROLS = {"pause": [JobState.queued.value, JobState.running.value], "pause_now": [JobState.running.value],
            "resume": [JobState.paused.value], "cancel": list(_OPEN), "priority": list(_OPEN), "retry": [WAITING],
            "abandon": [WAITING], "delete": sorted(s.value for s in FINISHED)}


def controls_for(shown: str) -> list[str]:
    """The controls (`CONTROLS`) a job in the shown state `shown` takes, in the table's order."""
    return [name for name, states in CONTROLS.items() if shown in states]


def shown_state(status: Any) -> str:
    """One word for a job's state as people read it (`SHOWN_STATES`), from anything with the `JobStatus` fields
    `state`, `waiting_since` and `paused_since` (a `JobStatus`, or its JSON read as a dict)."""
    get = status.get if isinstance(status, dict) else lambda name: getattr(status, name, None)
    for field, shown in SHOWN_BY:
        if get(field) is not None:
            return shown
    return JobState(get("state") or JobState.queued).value


def state_rules() -> dict[str, Any]:
    """The rules above as plain JSON for the pages' script (rendered into the page, read by
    clipper_app/web/static/common.js), so the browser decides states exactly as `shown_state` does."""
    return {"shown": list(SHOWN_STATES), "shownBy": [list(pair) for pair in SHOWN_BY], "listedAs": LISTED_AS,
            "initial": JobState.queued.value, "controls": CONTROLS}


class StageError(BaseModel):
    type: str
    message: str
    attempts: int = 1


class StageStatus(BaseModel):
    name: str
    state: StageState = StageState.pending
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: float = 0.0
    error: StageError | None = None
    rate: float | None = None  # measured processing seconds per audio second
    # A stage done in pieces side by side (chunked transcription): how many, and how many have finished. The
    # workflow's progress is parts_done / parts; a client adds the running pieces' heartbeats (fold_running).
    parts: int = 0
    parts_done: int = 0
    waiting: str | None = None  # from a running activity's heartbeat (fold_running): what it waits for


class JobStatus(BaseModel):
    """What the `status` query returns, and what `clipper status/watch` show."""

    job_id: str
    url: str
    title: str | None = None
    state: JobState = JobState.queued
    current_stage: str | None = None
    stages: list[StageStatus] = Field(default_factory=list)
    progress: float = 0.0
    duration_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)
    error: StageError | None = None
    priority: int = PRIORITY_DEFAULT
    paused_since: datetime | None = None
    waiting_since: datetime | None = None  # failed, waiting for a manual retry or abandon
    waiting: str | None = None  # a running stage waits, e.g. "waiting: provider … unavailable since 10:02 UTC"
    eta_s: float | None = None  # estimated seconds of work left, from media duration × stage rates
    rates: dict[str, float] = Field(default_factory=dict)  # s of work per audio s per stage: the ETA's inputs

    def stage(self, name: str) -> StageStatus:
        return next(s for s in self.stages if s.name == name)

    def refresh(self) -> None:
        """Progress and ETA from the stages' progress. The workflow calls it on every change, and a client
        calls it again after folding in the running stages' heartbeats: one formula, the same numbers."""
        self.progress = round(sum(s.progress for s in self.stages) / max(1, len(self.stages)), 4)
        if not self.duration_s or self.state in (JobState.done, JobState.cancelled):
            self.eta_s = None
            return
        self.eta_s = round(sum((STAGE_OVERHEAD_S + self.rates.get(s.name, DEFAULT_RATE) * self.duration_s)
                               * (1 - s.progress) for s in self.stages if s.state != StageState.done), 1)

    def fold_running(self, running: Iterable[RunningActivity]) -> None:
        """Fold the job's running activities (the server's pending activities, with their last heartbeat) into
        the running stages' attempt and progress, then `refresh()` progress and ETA.

        Each activity belongs to its stage by the stage table (`ACTIVITY_STAGES`): a chunk, the plan and the merge
        count for `transcribe`. A stage's attempt is the highest attempt among its activities (a chunk on its
        third try shows as attempt 3). Its progress is its activity's heartbeat; for a stage in parts, finished
        parts count whole and running ones by their heartbeat, (parts_done + Σ fraction) / parts, so the
        workflow's own figure (parts_done / parts) grows while the chunks run. The plan before the parts adds
        its attempt, the merge after them finds every part done. Never less than what the workflow reported.
        """
        by_stage: dict[str, list[RunningActivity]] = {}
        for act in running:
            stage = ACTIVITY_STAGES.get(act.activity_type)
            if stage is not None:
                by_stage.setdefault(stage.name, []).append(act)
        for entry in self.stages:
            acts = by_stage.get(entry.name)
            if not acts or entry.state != StageState.running:
                continue
            entry.attempt = max(a.attempt for a in acts)
            stage = ACTIVITY_STAGES[acts[0].activity_type]
            if entry.parts and stage.parts:
                running_parts = sum(a.progress.fraction for a in acts if a.activity_type == stage.parts and a.progress)
                live = (entry.parts_done + running_parts) / entry.parts
            else:
                live = max((a.progress.fraction for a in acts if a.progress), default=0.0)
            entry.progress = round(min(1.0, max(entry.progress, live)), 4)
            entry.waiting = next((a.progress.waiting for a in acts if a.progress and a.progress.waiting), None)
        self.waiting = next((s.waiting for s in self.stages if s.waiting), None)
        self.refresh()


class StageProgress(BaseModel):
    """Heartbeat details of a running stage: where it is, so a retry can resume and a client can show it."""

    done: float = 0.0
    total: float | None = None
    unit: str = "s"
    resume_from_s: float = 0.0
    note: str | None = None
    waiting: str | None = None  # what the stage waits for, e.g. a provider whose circuit breaker is open

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return max(0.0, min(1.0, self.done / self.total))


class RunningActivity(BaseModel):
    """An activity of a job that the server lists as pending (scheduled, running, or waiting to retry): its type,
    its attempt, and the progress in its last heartbeat (None: none yet)."""

    activity_type: str
    attempt: int = 1
    progress: StageProgress | None = None

"""ImportedJob: a finished job brought from another deployment by `clipper import` (clipper_app/client/transfer.py).

The job ran elsewhere; its files are in this deployment's store before this workflow starts, and its id is the
job's. It stands in for the job's MediaJob so that what reads jobs works on it unchanged: it answers the
`status` query with the JobStatus the job ended with (state done) and returns the JobResult it ended with, at
once, so `clipper status`, `result`, `show`, the web and the Python client read it like any finished job. Its
search attributes are set at start (`start_attributes`), so `clipper list` filters find it. `clipper history`
shows the original run's audit log, archived as `export/history.json` (its reference is in the input).

No activity, no timer, no I/O: nothing in it can fail or wait.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from clipper.job.request import JobResult
    from clipper.job.status import JobStatus
    from clipper.store.archive import ImportedJobInput
    from workflows import search_attributes as sa

IMPORTED_TYPE = "ImportedJob"


@workflow.defn(name=IMPORTED_TYPE)
class ImportedJob:
    @workflow.init
    def __init__(self, job: ImportedJobInput) -> None:
        self.job = job.result.status  # a query can come before run(), and after the end (replayed)

    @workflow.run
    async def run(self, job: ImportedJobInput) -> JobResult:
        source = job.source
        workflow.set_current_details(f"**done** · imported from namespace {source.namespace} at {source.address} "
                                     f"(exported {job.exported_at:%Y-%m-%d %H:%M} UTC)")
        return job.result

    @workflow.query
    def status(self) -> JobStatus:
        return self.job


def start_attributes(status: JobStatus) -> TypedSearchAttributes:
    """The search attributes a MediaJob ends with (the stage runner's `publish`), for a job that ended elsewhere."""
    return TypedSearchAttributes([
        SearchAttributePair(sa.CLIPPER_STATE, status.state.value),
        SearchAttributePair(sa.CLIPPER_STAGE, status.current_stage or ""),
        SearchAttributePair(sa.CLIPPER_PRIORITY, status.priority),
        SearchAttributePair(sa.CLIPPER_PROGRESS, int(status.progress * 100)),
        SearchAttributePair(sa.CLIPPER_SOURCE, sa.source_host(status.url)),
    ])

"""Stage `index`: the job's transcript lines, quotes and chapter titles into the search index (clipper/search/),
replacing what it had of the job in one transaction. The same function re-indexes a job whose outputs change
outside the pipeline (`render_names`, the client's import; its delete removes them)."""

from __future__ import annotations

from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.job.messages import IndexInput, IndexOutput
from clipper.search import index_job, open_index

STAGE = "index"


class IndexActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: IndexInput) -> IndexOutput:
        return await run_stage(self.deps, STAGE, request, IndexOutput, lambda run: self._index(request, run))

    def _index(self, request: IndexInput, run: StageRun) -> IndexOutput:
        with open_index(self.deps.settings) as index:
            entries = index_job(index, self.deps.store, request.job_id)
        run.log.info("index.done", entries=entries)
        return IndexOutput(entries=entries)

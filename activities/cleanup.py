"""Activity `discard_scratch`: after a job is cancelled, remove its work in progress (partial downloads,
partial transcripts, half-cut clips) and the temp files of writes a killed worker never finished
(`ArtifactStore.discard_temporary`). Finished artifacts stay, listed in the manifest."""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity

from activities.runtime import StageDeps


class CleanupActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="discard_scratch")
    async def run(self, job_id: str) -> int:
        removed = await asyncio.to_thread(self.deps.store.discard_temporary, job_id)
        structlog.get_logger().info("job.scratch_discarded", job_id=job_id, entries=removed)
        return removed

"""Activity `discard_scratch`: after a job is cancelled, remove its work in progress (partial downloads,
partial transcripts, half-cut clips). Finished artifacts stay, listed in the manifest."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.runtime import StageDeps


class CleanupActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="discard_scratch")
    async def run(self, job_id: str) -> int:
        scratch = self.deps.store.job_dir(job_id) / ".tmp"
        removed = sum(1 for _ in scratch.rglob("*")) if scratch.exists() else 0
        self.deps.store.discard_scratch(job_id)
        structlog.get_logger().info("job.scratch_discarded", job_id=job_id, entries=removed)
        return removed

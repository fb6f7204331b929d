"""NameSpeakers: name the speakers of a job that has finished (a closed workflow takes no more updates).

A running job is named through its own update `name_speakers`; a finished one through this short workflow,
which runs the same `render_names` activity against the job's folder. Started by `clipper speakers JOB S1=Name`
(or `temporal workflow start --type NameSpeakers --input '{"job_id": "...", "names": {"S1": "Diane"}}'`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from clipper.job.request import SpeakerNames
    from clipper.job.stages import BY_NAME, pool_queue
    from workflows.stage_runner import retry_policy


@workflow.defn(name="NameSpeakers")
class NameSpeakers:
    @workflow.run
    async def run(self, request: SpeakerNames) -> dict[str, str]:
        policy = BY_NAME["names"].policy
        queue = pool_queue(workflow.info().task_queue, "io") if request.worker_pools else None
        return await workflow.execute_activity(
            BY_NAME["names"].activity_types[0], request, result_type=dict[str, str], task_queue=queue,
            retry_policy=retry_policy(policy),
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_s(None)),
            summary=f"names: {request.job_id}")

"""Carries each stage activity's error budget from the workflow to the activity, in a header.

Temporal's retry policy has one `maximum_attempts`; clipper has two budgets (`StagePolicy.max_attempts` for
attempts that end in an error, `lost_worker_attempts` on top for attempts whose worker was lost). The workflow
schedules the sum and puts the error budget on the policy object (`StageRetryPolicy.error_attempts`,
workflows/stage_runner.py); this interceptor turns that into the `clipper-error-attempts` header of the scheduled
activity, and on the worker that runs it, into `activities.runtime.ERROR_BUDGET`, which the runtime reads when an
attempt fails. Headers are not part of what replay compares, so this changes no workflow command.

An activity without the header (scheduled before this existed, or by a worker without the interceptor) has the
retry policy's total as its error budget: the behaviour from before there were two budgets.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, StartActivityInput, WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput, WorkflowOutboundInterceptor,
)

from activities.runtime import ERROR_BUDGET

HEADER = "clipper-error-attempts"


class RetryBudgetInterceptor(Interceptor):
    """Register on every worker (clipper_app/workers/pools.py does): the workflow side writes the header, the activity side
    reads it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        return _ActivityInbound(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:  # noqa: A002
        return _WorkflowInbound


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:  # noqa: A002
        budget = getattr(input.retry_policy, "error_attempts", None)
        if budget is not None:
            input.headers = {**input.headers, HEADER: PayloadConverter.default.to_payload(int(budget))}
        return super().start_activity(input)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002
        payload = input.headers.get(HEADER)
        budget = None
        if payload is not None:
            try:
                budget = int(PayloadConverter.default.from_payload(payload, int))
            except Exception:  # noqa: BLE001 - a malformed header: fall back to the retry policy's total
                budget = None
        token = ERROR_BUDGET.set(budget)
        try:
            return await super().execute_activity(input)
        finally:
            ERROR_BUDGET.reset(token)

"""The providers' circuit breakers as a client sees them: read (query), take the probe and report (updates),
list them all (`clipper status` without a job). Used by the workers' gate (activities/breaker.py) and the CLI.

A breaker that cannot be asked (no workflow worker answering, server unreachable) counts as closed: the breaker
protects a provider from us, it must never be the reason jobs stop. The gauge `clipper_provider_breaker_state`
(0 closed, 1 half-open, 2 open) is set by every worker whenever it learns a provider's state.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio.client import Client, WorkflowQueryRejectedError
from temporalio.common import QueryRejectCondition, WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from clipper.ops.breaker import GAUGE, BreakerPolicy, BreakerReport, BreakerState, Permit
from workflows import search_attributes as sa
from workflows.provider_breaker import BreakerStart, ProviderBreaker, breaker_id

GAUGE_NAME = "clipper_provider_breaker_state"
RPC_TIMEOUT = timedelta(seconds=5)


class BreakerClient:
    def __init__(self, client: Client, task_queue: str, policy: BreakerPolicy | None = None) -> None:
        self.client, self.task_queue, self.policy = client, task_queue, policy or BreakerPolicy()
        runtime = client.service_client.config.runtime or Runtime.default()
        self._gauge = runtime.metric_meter.create_gauge(GAUGE_NAME, "Circuit breaker per provider: 0 closed, "
                                                        "1 half-open, 2 open")
        self._started: set[str] = set()

    def seen(self, state: BreakerState | None) -> BreakerState | None:
        if state is not None:
            self._gauge.set(GAUGE[state.phase], {"provider": state.provider, "task_queue": self.task_queue})
        return state

    def _handle(self, provider: str):
        return self.client.get_workflow_handle(breaker_id(self.task_queue, provider))

    async def state(self, provider: str) -> BreakerState | None:
        """The provider's breaker; None when it has none yet (never failed) or cannot be asked (taken as closed)."""
        try:
            return self.seen(await self._handle(provider).query(
                ProviderBreaker.state, rpc_timeout=RPC_TIMEOUT, reject_condition=QueryRejectCondition.NOT_OPEN))
        except WorkflowQueryRejectedError:  # ended (an operator terminated it to reset it): none
            return None
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                structlog.get_logger().warning("breaker.unreachable", provider=provider, error=str(err)[:200])
            return None

    async def permit(self, provider: str) -> Permit:
        answer = await self._handle(provider).execute_update(ProviderBreaker.permit, rpc_timeout=RPC_TIMEOUT)
        self.seen(answer.state)
        return answer

    async def report(self, provider: str, report: BreakerReport) -> BreakerState:
        """Tell the breaker a call's outcome, starting the provider's breaker workflow on its first failure."""
        for last in (False, True):
            if provider not in self._started:
                await self.client.start_workflow(
                    ProviderBreaker.run, BreakerStart(provider=provider, policy=self.policy),
                    id=breaker_id(self.task_queue, provider), task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    static_summary=f"helper: circuit breaker for {provider}",
                    search_attributes=sa.HELPER_ATTRIBUTES)
                self._started.add(provider)
            try:
                return self.seen(await self._handle(provider).execute_update(
                    ProviderBreaker.report, report, rpc_timeout=RPC_TIMEOUT))
            except RPCError:
                if last:
                    raise
                self._started.discard(provider)  # ended since we started it (terminated): start a new one
        raise AssertionError("unreachable")

    async def all(self) -> list[BreakerState]:
        """Every provider's breaker on this deployment's task queue, by provider."""
        found = []
        query = f'WorkflowType = "ProviderBreaker" AND TaskQueue = "{self.task_queue}" AND ExecutionStatus = "Running"'
        async for wf in self.client.list_workflows(query):
            try:
                found.append(await self.client.get_workflow_handle(wf.id).query(
                    ProviderBreaker.state, rpc_timeout=RPC_TIMEOUT))
            except RPCError:
                continue
        return sorted(found, key=lambda s: s.provider)

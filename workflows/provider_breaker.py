"""ProviderBreaker: the circuit breaker of one external provider, shared by every worker of a deployment.

One long-lived workflow per (task queue, provider), id `breaker_id(queue, provider)`. Callers read its state with
the `state` query (no history event: the healthy path costs nothing durable), take the probe with the `permit`
update (one winner among all workers, decided in workflow order), and report failures and the probe's outcome
with the `report` update. Its state is the event history, so it survives worker and server restarts; it
continues as new when its history grows, carrying the state. The rules are clipper/ops/breaker.py's, run on
`workflow.now()`.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from clipper.ops.breaker import BreakerPolicy, BreakerReport, BreakerState, Permit, permit, record

CONTINUE_AS_NEW_EVENTS = 2000


class BreakerStart(BaseModel):
    provider: str
    policy: BreakerPolicy = BreakerPolicy()
    state: BreakerState | None = None  # carried over by continue-as-new


def breaker_id(task_queue: str, provider: str) -> str:
    return f"clipper-breaker-{task_queue}-{provider}"


@workflow.defn(name="ProviderBreaker")
class ProviderBreaker:
    @workflow.init
    def __init__(self, start: BreakerStart) -> None:
        self.policy = start.policy
        self.breaker = start.state or BreakerState(provider=start.provider)

    @workflow.run
    async def run(self, start: BreakerStart) -> BreakerState:
        self.publish()
        await workflow.wait_condition(
            lambda: workflow.info().is_continue_as_new_suggested()
            or workflow.info().get_current_history_length() > CONTINUE_AS_NEW_EVENTS)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(BreakerStart(provider=start.provider, policy=self.policy, state=self.breaker))

    @workflow.query
    def state(self) -> BreakerState:
        return self.breaker

    @workflow.update
    def permit(self) -> Permit:
        self.breaker, answer = permit(self.breaker, self.policy, workflow.now())
        if answer.probe:
            self.publish()
        return answer

    @workflow.update
    def report(self, report: BreakerReport) -> BreakerState:
        before = self.breaker.phase
        self.breaker = record(self.breaker, self.policy, workflow.now(), report)
        if self.breaker.phase != before:
            workflow.logger.info("breaker %s: %s -> %s", self.breaker.provider, before.value, self.breaker.phase.value)
        self.publish()
        return self.breaker

    def publish(self) -> None:
        """The Web UI's details line: the breaker at a glance."""
        b = self.breaker
        workflow.set_current_details(f"**{b.phase.value}** · {b.describe()} · failures {b.failures} · opened "
                                     f"{b.opens}× · probes {b.probes}" + (f" · last error: {b.last_error}"
                                                                          if b.last_error else ""))

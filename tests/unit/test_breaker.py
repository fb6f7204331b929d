"""The circuit breaker's rules (clipper/ops/breaker.py), as pure functions of its state and a clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clipper.ops.breaker import (
    BreakerPhase, BreakerPolicy, BreakerReport, BreakerState, ProviderGate, guarded, permit, provider_key, record,
)

T0 = datetime(2026, 12, 1, 10, 2, tzinfo=timezone.utc)
POLICY = BreakerPolicy(failures=3, window_s=60, cooldown_s=30, probe_lease_s=120)
FAIL, OK = BreakerReport(ok=False, error="HTTP 500"), BreakerReport(ok=True)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def failed(times: list[float], state: BreakerState | None = None) -> BreakerState:
    state = state or BreakerState(provider="api.example.com")
    for t in times:
        state = record(state, POLICY, at(t), FAIL)
    return state


def test_opens_after_n_consecutive_failures_within_the_window():
    assert failed([0, 1]).phase == BreakerPhase.closed
    state = failed([0, 1, 2])
    assert state.phase == BreakerPhase.open and state.opened_at == at(2) and state.opens == 1
    assert state.retry_at == at(32)
    assert "unavailable since 10:02 UTC" in state.describe()


def test_a_success_resets_the_count_and_old_failures_leave_the_window():
    state = record(failed([0, 1]), POLICY, at(2), OK)
    assert failed([3], state).phase == BreakerPhase.closed  # 1 failure since the success
    assert failed([0, 1, 100]).phase == BreakerPhase.closed  # the third came after the 60 s window


def test_open_refuses_until_the_cooldown_then_one_probe_goes():
    state = failed([0, 1, 2])
    state, answer = permit(state, POLICY, at(10))
    assert not answer.allowed
    state, answer = permit(state, POLICY, at(33))
    assert answer.allowed and answer.probe and state.phase == BreakerPhase.half_open and state.probes == 1
    state, second = permit(state, POLICY, at(34))
    assert not second.allowed  # only one probe at a time


def test_the_probe_decides():
    half_open, _ = permit(failed([0, 1, 2]), POLICY, at(33))
    closed = record(half_open, POLICY, at(34), BreakerReport(ok=True, probe=True))
    assert closed.phase == BreakerPhase.closed and closed.failures == 0
    assert permit(closed, POLICY, at(35))[1].allowed
    reopened = record(half_open, POLICY, at(34), BreakerReport(ok=False, probe=True, error="HTTP 503"))
    assert reopened.phase == BreakerPhase.open and reopened.retry_at == at(64)
    assert reopened.opened_at == at(2) and reopened.opens == 1  # still unavailable since the first opening


def test_a_lost_probe_lapses_and_a_late_failure_changes_nothing():
    half_open, _ = permit(failed([0, 1, 2]), POLICY, at(33))
    assert not permit(half_open, POLICY, at(100))[1].allowed
    state, answer = permit(half_open, POLICY, at(33 + 121))  # the prober's worker died: its lease ran out
    assert answer.probe and state.probes == 2
    opened = failed([0, 1, 2])
    assert record(opened, POLICY, at(5), FAIL).retry_at == opened.retry_at


def test_provider_key_keeps_the_port():
    assert provider_key("https://api.deepseek.com/v1", "api.openai.com") == "api.deepseek.com"
    assert provider_key("http://127.0.0.1:8081/v1", "x") == "127.0.0.1:8081"
    assert provider_key(None, "api.openai.com") == "api.openai.com"


class ScriptedGate(ProviderGate):
    """A gate over the pure rules and a fake clock: what the workflow-backed gate does, minus Temporal."""

    def __init__(self) -> None:
        self.state, self.now, self.calls = BreakerState(provider="p"), 0.0, 0

    def before(self, provider: str) -> bool:
        while True:
            self.state, answer = permit(self.state, POLICY, at(self.now))
            if answer.allowed:
                return answer.probe
            self.now += 5  # waits out the cool-down

    def after(self, provider: str, probe: bool, error: str | None) -> BreakerState:
        self.state = record(self.state, POLICY, at(self.now), BreakerReport(ok=error is None, probe=probe, error=error))
        return self.state


def test_guarded_waits_for_the_probe_instead_of_failing_once_the_breaker_opened():
    gate, outcomes = ScriptedGate(), iter([False] * 5 + [True])

    def call() -> str:
        gate.calls += 1
        if not next(outcomes):
            raise ConnectionError("down")
        return "answer"

    for _ in range(2):  # two failures with the breaker closed fail the caller: the retry policy's business
        with pytest.raises(ConnectionError):
            guarded(gate, "p", call, lambda exc: str(exc))
    assert guarded(gate, "p", call, lambda exc: str(exc)) == "answer"
    # the third failure opened it; then one probe per cool-down (two failed, the third succeeded)
    assert gate.calls == 6 and gate.state.phase == BreakerPhase.closed and gate.state.probes == 3


def test_guarded_does_not_count_errors_that_are_not_outages():
    gate = ScriptedGate()
    for _ in range(5):
        with pytest.raises(ValueError):
            guarded(gate, "p", lambda: (_ for _ in ()).throw(ValueError("HTTP 400")), lambda exc: None)
    assert gate.state.phase == BreakerPhase.closed and gate.state.failures == 0

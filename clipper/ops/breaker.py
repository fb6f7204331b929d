"""A circuit breaker per external provider (an LLM or ASR API, a webhook target), as pure functions of its state.

Without one, every job retries a failing provider on its own schedule and keeps hammering it. The breaker counts
consecutive failures (HTTP 429 and 5xx, timeouts, refused connections) within a window; at `failures` it opens,
and while it is open nobody calls the provider. After `cooldown_s` one caller gets a probe (half-open); its
success closes the breaker, its failure opens it for another cool-down. A probe whose caller vanished (a worker
killed mid-call) lapses after `probe_lease_s`, and the next caller gets the probe.

The state lives in a long-lived Temporal workflow per provider (workflows/provider_breaker.py), so it is shared
by every worker and survives restarts of workers and of the server; that workflow calls `permit` and `record`
with its deterministic clock. Callers reach it through a `ProviderGate` (activities/breaker.py); this module is
free of Temporal, and `ProviderGate` itself lets every call through (tests, the CLI, a worker without a client).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel

T = TypeVar("T")


class BreakerPolicy(BaseModel):
    """When a provider's breaker opens and how it recovers (CLIPPER_BREAKER_*)."""

    failures: int = 5  # consecutive failures that open it…
    window_s: float = 60.0  # …counted within this window from the first of them
    cooldown_s: float = 30.0  # open this long before a probe is let through
    probe_lease_s: float = 180.0  # a probe not reported within this is taken for lost; another may go


class BreakerPhase(str, Enum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


# Prometheus gauge values (clipper_provider_breaker_state): one home for the mapping.
GAUGE = {BreakerPhase.closed: 0, BreakerPhase.half_open: 1, BreakerPhase.open: 2}


class BreakerState(BaseModel):
    provider: str
    phase: BreakerPhase = BreakerPhase.closed
    failures: int = 0  # consecutive, within the window
    first_failure_at: datetime | None = None
    opened_at: datetime | None = None  # when it last opened from closed: "unavailable since"
    retry_at: datetime | None = None  # open: when the next probe may go
    probe_until: datetime | None = None  # half-open: the probe's lease
    last_error: str | None = None
    opens: int = 0  # times it opened from closed
    probes: int = 0  # probe calls let through
    updated_at: datetime | None = None

    def describe(self) -> str:
        """One line for people: the status's "waiting" note, the CLI, the Web UI's details."""
        if self.phase == BreakerPhase.closed:
            return f"provider {self.provider} available"
        since = f" since {self.opened_at:%H:%M} UTC" if self.opened_at else ""
        probe = "probing" if self.phase == BreakerPhase.half_open else (
            f"next try {self.retry_at:%H:%M:%S} UTC" if self.retry_at else "")
        return f"provider {self.provider} unavailable{since} (circuit breaker {self.phase.value}; {probe})"


class Permit(BaseModel):
    allowed: bool
    probe: bool = False
    state: BreakerState


class BreakerReport(BaseModel):
    """What a caller tells the breaker after a call: `error` None = the provider answered."""

    ok: bool
    probe: bool = False
    error: str | None = None


def permit(state: BreakerState, policy: BreakerPolicy, now: datetime) -> tuple[BreakerState, Permit]:
    """May a call go now? Closed: yes. Open: no, until the cool-down ends; then the asker holds the probe."""
    state = state.model_copy()
    if state.phase == BreakerPhase.closed:
        return state, Permit(allowed=True, state=state)
    probe_due = (state.phase == BreakerPhase.open and state.retry_at is not None and now >= state.retry_at) or (
        state.phase == BreakerPhase.half_open and state.probe_until is not None and now >= state.probe_until)
    if not probe_due:
        return state, Permit(allowed=False, state=state)
    state.phase, state.probe_until = BreakerPhase.half_open, now + timedelta(seconds=policy.probe_lease_s)
    state.probes, state.updated_at = state.probes + 1, now
    return state, Permit(allowed=True, probe=True, state=state)


def record(state: BreakerState, policy: BreakerPolicy, now: datetime, report: BreakerReport) -> BreakerState:
    """The breaker after a call's outcome."""
    state = state.model_copy()
    state.updated_at = now
    if report.ok:
        # Any success proves the provider answers: also one from a call that left before the breaker opened.
        state.phase, state.failures, state.first_failure_at = BreakerPhase.closed, 0, None
        state.retry_at = state.probe_until = None
        return state
    state.last_error = (report.error or "failed")[:200]
    if state.phase != BreakerPhase.closed:
        if report.probe or state.phase == BreakerPhase.half_open:  # the probe failed: another cool-down
            state.phase, state.probe_until = BreakerPhase.open, None
            state.retry_at = now + timedelta(seconds=policy.cooldown_s)
        return state  # a late failure of a call made before it opened changes nothing
    window = timedelta(seconds=policy.window_s)
    if state.first_failure_at is None or now - state.first_failure_at > window:
        state.failures, state.first_failure_at = 0, now
    state.failures += 1
    if state.failures >= policy.failures:
        state.phase, state.opened_at, state.opens = BreakerPhase.open, now, state.opens + 1
        state.retry_at = now + timedelta(seconds=policy.cooldown_s)
    return state


def provider_key(url: str | None, default: str) -> str:
    """The provider behind a URL: its host, with the port when one is given (two local servers are two)."""
    if not url:
        return default
    parsed = urlparse(url)
    host = parsed.hostname or default
    return f"{host}:{parsed.port}" if parsed.port else host


class ProviderGate:
    """Asks before each call to a provider and reports after it. This base lets every call through and keeps no
    state; activities/breaker.py's gate asks the provider's breaker workflow."""

    waits = False  # whether `before` waits out an open breaker (else it raises ProviderUnavailable)

    def before(self, provider: str) -> bool:
        """Block until a call may go (or raise `ProviderUnavailable`); True when this call is the probe."""
        return False

    def after(self, provider: str, probe: bool, error: str | None) -> BreakerState | None:
        """Report the call's outcome (`error` None = the provider answered); the breaker's state when known."""
        return None


def guarded(gate: ProviderGate, provider: str, call: Callable[[], T],
            failure: Callable[[Exception], str | None]) -> T:
    """`call()` through the provider's breaker. `failure(exc)` says whether an exception means the provider is
    down (a reason) or not (None: it answered, e.g. a 400). A failure that leaves the breaker open does not fail
    the caller: it goes back to `before`, which waits for the probe (or raises for a fallback)."""
    while True:
        probe = gate.before(provider)
        try:
            result = call()
        except Exception as exc:
            reason = failure(exc)
            state = gate.after(provider, probe, reason)
            if reason is not None and state is not None and state.phase != BreakerPhase.closed:
                continue
            raise
        gate.after(provider, probe, None)
        return result

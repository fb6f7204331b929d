"""The gate a stage's engine calls a provider through: it asks the provider's breaker workflow before each call
and reports after it (clipper/ops/breaker.py has the rules, clipper_app/client/breakers.py the Temporal calls).

Engines run in the activity's worker thread; the Temporal client lives on the worker's event loop, so the gate
hands each call to that loop and waits for it. While a breaker is open the gate waits in place, checking the
stage's stop flag and showing "waiting: provider … unavailable since …" in the stage's heartbeat (so in
`clipper status`), until its cool-down ends and this caller (or another worker) takes the probe. It never waits
past the attempt's own deadline: then it raises `ProviderUnavailable` and the retry policy takes over.
With `waits=False` (CLIPPER_LLM_FALLBACK=offline) it raises at once, and the engine falls back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from temporalio import activity

from clipper.asr.base import StopRequested
from clipper.errors import ProviderUnavailable
from clipper.media.urls import redact_credentials
from clipper.ops.breaker import BreakerPhase, BreakerReport, BreakerState, ProviderGate

if TYPE_CHECKING:  # the client package imports the workflows, which import the activities: no cycle at run time
    from clipper_app.client.breakers import BreakerClient

T = TypeVar("T")
POLL_S = 1.0  # how often a waiting caller looks again (a query: no history event)
DEADLINE_MARGIN = timedelta(seconds=15)  # stop waiting this long before the attempt's start-to-close timeout
CALL_TIMEOUT_S = 15.0


class TemporalGate(ProviderGate):
    def __init__(self, breakers: BreakerClient, loop: asyncio.AbstractEventLoop, waits: bool,
                 should_stop: Callable[[], bool], on_wait: Callable[[str | None], None]) -> None:
        self.breakers, self.loop, self.waits = breakers, loop, waits
        self.should_stop, self.on_wait = should_stop, on_wait
        self.log = structlog.get_logger()
        self._seen: dict[str, BreakerState | None] = {}
        info = activity.info()
        timeout = info.start_to_close_timeout
        self.deadline = info.started_time + timeout - DEADLINE_MARGIN if timeout else None

    @classmethod
    def unattended(cls, breakers: BreakerClient | None, loop: asyncio.AbstractEventLoop) -> ProviderGate:
        """A gate that never waits (an activity with no stage progress, e.g. notify): open = ProviderUnavailable."""
        return ProviderGate() if breakers is None else cls(breakers, loop, False, _never, lambda note: None)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT_S)

    def before(self, provider: str) -> bool:
        while True:
            try:
                state = self._seen[provider] = self._run(self.breakers.state(provider))
            except Exception as exc:  # noqa: BLE001 - e.g. the worker's loop too busy to ask: never stop the call
                self.log.warning("breaker.unreachable", provider=provider, error=str(exc)[:200])
                state = None
            if state is None or state.phase == BreakerPhase.closed:
                self.on_wait(None)
                return False
            now = datetime.now(timezone.utc)
            due = state.retry_at if state.phase == BreakerPhase.open else state.probe_until
            if due is not None and now >= due:
                try:
                    answer = self._run(self.breakers.permit(provider))
                except Exception as exc:  # noqa: BLE001 - a breaker that can't be asked never stops the call
                    self.log.warning("breaker.unreachable", provider=provider, error=str(exc)[:200])
                    self.on_wait(None)
                    return False
                state = self._seen[provider] = answer.state
                if answer.allowed:
                    self.on_wait(None)
                    self.log.info("breaker.probe", provider=provider)
                    return answer.probe
            wait_s = max(0.0, ((due or now) - now).total_seconds())
            if not self.waits or (self.deadline is not None and now + timedelta(seconds=wait_s) > self.deadline):
                raise ProviderUnavailable(state.describe(), retry_after_s=max(1.0, wait_s))
            self.on_wait(f"waiting: {state.describe()}")
            self._sleep(min(POLL_S, max(0.2, wait_s)))

    def after(self, provider: str, probe: bool, error: str | None) -> BreakerState | None:
        known = self._seen.get(provider)
        if error is None and not probe and (known is None or (known.phase == BreakerPhase.closed and not known.failures)):
            return known  # the healthy path: nothing to tell, no history event
        try:
            state = self._seen[provider] = self._run(self.breakers.report(provider, BreakerReport(
                ok=error is None, probe=probe, error=redact_credentials(error) if error else None)))
        except Exception as exc:  # noqa: BLE001 - a breaker that can't be told must not fail the call's caller
            self.log.warning("breaker.report_lost", provider=provider, error=str(exc)[:200])
            return None
        if error is not None:
            self.log.info("breaker.failure", provider=provider, phase=state.phase.value, failures=state.failures)
        return state

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.should_stop():
                raise StopRequested("stopped while waiting for a provider")
            time.sleep(min(0.2, end - time.monotonic()))


def _never() -> bool:
    return False


def gate_for(breakers: BreakerClient | None, run: Any, waits: bool) -> ProviderGate:
    """The gate for one stage attempt (`run`: its StageRun): heartbeats carry its waiting note."""
    if breakers is None:
        return ProviderGate()

    def on_wait(note: str | None) -> None:
        if run.progress.waiting != note:
            run.progress.waiting = note
            if note:
                run.log.info("stage.waiting", note=note)

    return TemporalGate(breakers, run.loop, waits, run.stop.is_set, on_wait)

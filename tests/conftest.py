"""Test session: a real Temporal dev server on free ports, a unique task queue and storage per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipper.config import Settings  # noqa: E402
from clipper.stages import STAGES, StagePolicy  # noqa: E402
from client import ensure_search_attributes  # noqa: E402
from scripts.devserver import DevServer  # noqa: E402
from temporalio.client import Client  # noqa: E402

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "sample.mp3"
REFERENCE = DATA / "sample.txt"

# Fast retries so failure paths finish in seconds, for every stage of the table; the short transcribe heartbeat
# timeout makes a killed worker's attempt time out quickly.
FAST_POLICY = StagePolicy(initial_interval_s=0.2, max_interval_s=1, max_attempts=4, heartbeat_timeout_s=10,
                          timeout_base_s=60)
FAST_POLICIES = {
    **{stage: FAST_POLICY for stage in STAGES},
    "download": FAST_POLICY.model_copy(update={"max_attempts": 3, "timeout_base_s": 600}),
    "transcribe": FAST_POLICY.model_copy(update={"heartbeat_timeout_s": 4, "timeout_base_s": 120,
                                                 "timeout_per_audio_s": 2.0}),
}


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory):
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db").start()

    async def register() -> None:
        await ensure_search_attributes(await Client.connect(server.address), "default")

    run(register())
    yield server
    server.stop()


@pytest.fixture
def settings(temporal_server: DevServer, tmp_path: Path) -> Settings:
    return Settings(
        temporal_address=temporal_server.address,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        storage_dir=tmp_path / "storage",
        allow_private_addresses=True,  # the media server in tests is on loopback
        policies=FAST_POLICIES,
        graceful_shutdown_s=2,
    )


def run(coro):
    return asyncio.run(coro)


# --- tables that tests measure (crash matrix, load): printed after the run, also without `-s` ---

REPORTS = pytest.StashKey[list]()


def add_report(config: pytest.Config, title: str, lines: list[str]) -> None:
    """Queue a measured table for the terminal summary at the end of the session."""
    config.stash.setdefault(REPORTS, []).append((title, lines))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    for title, lines in config.stash.get(REPORTS, []):
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)

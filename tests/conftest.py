"""Test session: a real Temporal dev server on free ports, a unique task queue and storage per test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from temporalio.client import Client  # noqa: E402

from clipper.config import Settings  # noqa: E402
from clipper_app.client import ensure_search_attributes  # noqa: E402
from scripts.devserver import DevServer  # noqa: E402
from tests.helpers import FAST_POLICIES, REPEATS, SAMPLE, run  # noqa: E402
from tests.helpers.httpserver import serve  # noqa: E402
from tests.helpers.reports import REPORTS  # noqa: E402

@pytest.fixture
def media_server():
    """The bundled sample at /episode.mp3 on a real local HTTP server."""
    with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        yield server


@pytest.fixture(scope="session")
def long_sample(tmp_path_factory) -> Path:
    """The committed sample four times over (~3.6 min): long enough to kill a worker mid-transcription."""
    out = tmp_path_factory.mktemp("long") / "long.mp3"
    inputs = [arg for _ in range(REPEATS) for arg in ("-i", str(SAMPLE))]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *inputs,
                    "-filter_complex", f"concat=n={REPEATS}:v=0:a=1", "-c:a", "libmp3lame", "-b:a", "32k", str(out)],
                   check=True)
    return out


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto's server) for the tests of the S3 store: bucket per test."""
    from tests.helpers.s3 import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server (Debian's binaries) on a free port in a temp folder, for the search index's tests;
    skipped, saying how to install it, only when the binaries are absent."""
    from tests.helpers.postgres import MISSING, pg_binaries, postgres_server

    if pg_binaries() is None:
        pytest.skip(MISSING)
    with postgres_server() as url:
        yield url


@contextlib.contextmanager
def dev_server(folder: Path) -> Iterator[DevServer]:
    """A dev server on free ports with the search attributes registered (as a worker does at start), removing
    deleted runs within a second of their close (scripts/devserver.py's QUICK_DELETES)."""
    server = DevServer(folder / "temporal.db", quick_deletes=True).start()

    async def register() -> None:
        await ensure_search_attributes(await Client.connect(server.address), "default")

    try:
        run(register())
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory):
    with dev_server(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@pytest.fixture(scope="module")
def own_temporal_server(tmp_path_factory: pytest.TempPathFactory):
    """A dev server for one module alone: for the modules that load a server hard (Schemathesis' thousand
    requests) or time what a page shows, so neither their load nor what earlier tests left running on the
    session's server reaches the other."""
    with dev_server(tmp_path_factory.mktemp("temporal-own")) as server:
        yield server


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


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    """The tables tests measured (crash matrix, load; tests.helpers.reports), printed after the run, also without -s."""
    for title, lines in config.stash.get(REPORTS, []):
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)

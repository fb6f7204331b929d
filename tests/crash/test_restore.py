"""Restore drill: a job moved mid-transcription to a copy of its server's database and artifact store finishes
there, and nothing it had finished is done again.

What an operator does after losing a host, played on one machine (docs/backup.md, "Restoring"):

1. server A (its own SQLite file) and worker A (store A) run a job on the long sample (~3.6 min of speech),
   transcribed in 60 s chunks side by side; once at least one chunk is done and at least one is not, worker A
   is killed with SIGKILL, then server A (the drill reads A's view of the job in between: which activities
   had completed, which attempts were running);
2. the database file with its SQLite companions (`-wal`, `-shm`) and the whole store folder are copied to new
   paths, as a restore from backup would put them there;
3. server B starts on the copy (new ports) and worker B on store B: the job finishes.

"Nothing redone", checked three ways:
- the event history on B: every activity that had completed on A kept its attempt, and no activity of the same
  type with the same input was scheduled again;
- the workers' JSON logs: worker B logged `stage.started` exactly once per attempt the server started after
  the restore (the history's last attempt of each activity, minus those A had started), so no stage finished
  on A (download, the done chunks) started on B; a chunk that had saved segments on A resumed from them;
- store B: every artifact matches its manifest's sha256, no file in it names store A's path, and store A was
  not touched by worker B.

About 40 s on 2 cores: ~10 s on A, then the killed chunks are retried on B once their heartbeat timeout (4 s,
counted from server B's start) has passed; the restarted server has forgotten worker A's sticky queue, so no
other wait. The speaker and audiogram engines are turned off (their stages still run, quickly): the crash
matrix covers them, and here they would only add ~20 s.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
)

from bench.load import STAGE_OF, activity_runs, json_log_events
from clipper.config import Settings
from clipper.job.request import JobResult
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, connect, ensure_search_attributes
from scripts.devserver import DevServer
from tests.helpers import FAST_POLICIES, PIPELINE
from tests.helpers import run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches, decoded, until
from tests.helpers.processes import start_worker
from workflows.search_attributes import CLIPPER_STATE

pytestmark = pytest.mark.crash

CHUNK_S = 60.0  # the long sample (~216 s) in 4 chunks: some finish before the kill, some after
# Beside the db file: a hot journal after a crash (the dev server uses rollback-journal mode), or in WAL mode the
# write-ahead log (committed transactions) and its index. docs/backup.md, "The dev server (SQLite)".
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


def database_files(db: Path) -> list[Path]:
    """The SQLite database and the companions that exist beside it: what an operator copies (server stopped)."""
    return [p for p in (db, *(db.with_name(db.name + s) for s in SQLITE_COMPANIONS)) if p.exists()]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime: to see that nobody wrote there."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def activity_inputs(history: WorkflowHistory) -> dict[int, tuple[str, str, object]]:
    """Scheduled-event id → (activity id, type, decoded input) for every activity the job scheduled. A download's
    `rebuild` flag is dropped: a rebuild after a missing or corrupt audio is the same work done again."""

    def work(payload) -> object:
        value = json.loads(payload.data)
        return {k: v for k, v in value.items() if k != "rebuild"} if isinstance(value, dict) else value

    out = {}
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            out[e.event_id] = (a.activity_id, a.activity_type.name, [work(p) for p in a.input.payloads])
    return out


def stage_of(kind: str) -> str:
    return STAGE_OF.get(kind, kind)


async def view_of_a(client: Client, job_id: str) -> tuple[dict[int, int], Counter[str], set[int]]:
    """What server A knows once worker A is dead: the completed activities (scheduled id → attempt), per stage
    the attempts it had started (completed or not), and the transcription chunks not done yet."""
    handle = client.get_workflow_handle(job_id)
    history = await handle.fetch_history()
    desc = await handle.describe()
    runs = activity_runs(history)
    ids = {activity_id: sid for sid, (activity_id, _, _) in activity_inputs(history).items()}
    done = {r.scheduled_id: r.attempt for r in runs if r.completed}
    started: Counter[str] = Counter({s: 0 for s in PIPELINE})
    for r in runs:
        if r.completed:
            started[r.stage] += r.attempt
    for pending in desc.raw_description.pending_activities:
        running = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        started[stage_of(pending.activity_type.name)] += pending.attempt if running else pending.attempt - 1
        assert ids[pending.activity_id] not in done
    open_chunks = {r.scheduled_id for r in runs if r.type == "transcribe_chunk" and not r.completed}
    return done, started, open_chunks


async def ended(handle: WorkflowHandle) -> bool:
    """True once the workflow is closed; a job waiting for a manual retry fails the test at once (with its error)
    instead of after the timeout. From describe, not a query: queries wait on the dead worker's sticky queue."""
    desc = await handle.describe()
    if desc.status != WorkflowExecutionStatus.RUNNING:
        return True
    if desc.typed_search_attributes.get(CLIPPER_STATE) == JobState.failed.value:
        details = await handle.query("status")
        raise AssertionError(f"the job failed on B and waits for a retry: {details}")
    return False


def test_restore_copy_of_database_and_store_mid_job(long_sample, tmp_path, monkeypatch):
    # The workers inherit these: greedy decoding, no speaker labels or videos; the drill tests recovery.
    monkeypatch.setenv("CLIPPER_ASR_BEAM_SIZE", "1")
    monkeypatch.setenv("CLIPPER_SPEAKERS_ENGINE", "off")
    monkeypatch.setenv("CLIPPER_AUDIOGRAMS_ENABLED", "false")
    site_a, site_b = tmp_path / "site-a", tmp_path / "site-b"
    server_a = DevServer(site_a / "temporal" / "temporal.db")
    store_a, store_b = site_a / "storage", site_b / "storage"
    settings = Settings(temporal_address="127.0.0.1:0", task_queue=f"restore-{uuid.uuid4().hex[:8]}",
                        storage_dir=store_a, allow_private_addresses=True, policies=FAST_POLICIES,
                        graceful_shutdown_s=2, asr_chunk_s=CHUNK_S)
    processes: list[subprocess.Popen] = []
    server_b: DevServer | None = None
    try:
        with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as media:
            # --- site A: the job runs until some chunks are done and some are not ---
            server_a.start()
            settings_a = settings.model_copy(update={"temporal_address": server_a.address})

            async def on_a() -> tuple[str, dict[int, int], Counter[str], set[int]]:
                client = await connect(settings_a)
                await ensure_search_attributes(client, "default")
                job_id = (await ClipperClient(client, settings_a).submit(media.url("/long.mp3"))).job_id
                processes.append(start_worker(settings_a, site_a / "worker.log"))
                handle = client.get_workflow_handle(job_id)

                async def mid_transcription() -> bool:
                    chunks = [r for r in activity_runs(await handle.fetch_history()) if r.type == "transcribe_chunk"]
                    return any(r.completed for r in chunks) and not all(r.completed for r in chunks)

                await until(mid_transcription, 180, "a chunk done while another still runs", interval=0.1)
                processes[0].send_signal(signal.SIGKILL)  # kill -9 the worker: nothing more completes on A
                processes[0].wait()
                return job_id, *await view_of_a(client, job_id)

            job_id, done_on_a, started_on_a, open_chunks = run(on_a())
            server_a.kill()  # kill -9, mid-job
            assert open_chunks, "every chunk was done before the kill: the drill proved nothing"

            # --- the restore: database files and store copied to new paths ---
            (site_b / "temporal").mkdir(parents=True)
            for path in database_files(server_a.db_file):
                shutil.copy2(path, site_b / "temporal" / path.name)
            shutil.copytree(store_a, store_b)
            saved_segments = {int(m.group(1)) for p in store_b.rglob("*.partial.jsonl") if p.read_text().strip()
                              for m in [re.search(r"-chunk-(\d+)-", p.name)] if m}
            before_b = tree(store_a)

            # --- site B: a server on the copy, a worker on store B; the job finishes ---
            server_b = DevServer(site_b / "temporal" / server_a.db_file.name).start()
            assert server_b.port != server_a.port
            settings_b = settings.model_copy(update={"temporal_address": server_b.address, "storage_dir": store_b})
            processes.append(start_worker(settings_b, site_b / "worker.log"))

            async def on_b():
                client = await connect(settings_b)
                found = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace="default"))
                handle = client.get_workflow_handle(job_id, result_type=JobResult)
                await until(lambda: ended(handle), 150, f"{job_id} to end on B", interval=0.5)
                return await handle.result(), await handle.fetch_history(), set(found.custom_attributes)

            result, history, attributes = run(on_b())
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for server in (server_b, server_a):
            if server is not None:
                server.stop()

    assert result.state == JobState.done
    assert "ClipperState" in attributes, "the search attributes did not come with the database copy"

    # The history: what had completed on A kept its attempt and was never scheduled again with the same input.
    runs = activity_runs(history)
    inputs = activity_inputs(history)
    for sid, attempt in done_on_a.items():
        run_ = next(r for r in runs if r.scheduled_id == sid)
        assert run_.attempt == attempt, f"{run_.type} completed on A but ran again on B (attempt {run_.attempt})"
        _, kind, data = inputs[sid]
        again = [s for s, (_, k, d) in inputs.items() if s != sid and k == kind and d == data]
        assert not again, f"{kind} completed on A and was scheduled again on B"

    # The logs: worker B started exactly the attempts the server started after the restore, nothing A finished.
    total: Counter[str] = Counter()
    for r in runs:
        total[r.stage] += r.attempt
    events = list(json_log_events(site_b / "worker.log"))
    mine = [e for e in events if e.get("job_id") == job_id]
    starts_b = Counter(e["stage"] for e in mine if e["event"] == "stage.started")
    for stage in PIPELINE:
        assert starts_b[stage] == total[stage] - started_on_a[stage], (
            f"{stage}: worker B started it {starts_b[stage]} times, for "
            f"{total[stage] - started_on_a[stage]} attempts after the restore")
    assert starts_b["download"] == 0, "the download, finished on A, ran again on B"
    resumed = {e.get("chunk") for e in mine if e["event"] == "transcribe.resumed"}
    assert saved_segments <= resumed, f"chunks {saved_segments - resumed} had saved segments on A but started over"
    unfinished = [(r.type, r.attempt) for r in runs if not r.completed]
    assert not unfinished, f"activities that never completed: {unfinished}"

    # Store B: complete and self-consistent, with no trace of store A's path; store A was left alone.
    store = ArtifactStore(store_b)
    assert_manifest_matches(store, job_id)
    assert set(result.artifacts) <= set(store.read_manifest(job_id).artifacts)
    needles = {str(store_a).encode(), str(store_a.resolve()).encode(), str(site_a).encode()}
    pointing = [str(p.relative_to(store_b)) for p in store_b.rglob("*") if p.is_file()
                if any(n in p.read_bytes() for n in needles)]
    assert not pointing, f"files in the restored store name the old store's path: {pointing}"
    assert not any(n.decode() in json.dumps(decoded(history.to_json_dict())) for n in needles), \
        "the job's history names the old store's path"
    assert tree(store_a) == before_b, "worker B wrote to store A"

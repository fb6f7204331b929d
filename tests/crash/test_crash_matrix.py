"""Crash matrix: kill -9 the worker, the server or both while each stage runs; every job still finishes.

For each stage (download, transcribe, speakers, quotes, summary, clips) × each mode (worker, server, both) one job is
started; once that stage's activity is running, the worker process and/or the Temporal dev server are killed
with SIGKILL, the server is restarted on the same SQLite file and ports, a new worker is started (in mode
`server` the old one lives on and must reconnect by itself), and then:

- the job completes;
- nothing completed before the kill ran again: every stage is scheduled once, in order; the activities the
  server had recorded as completed carry attempt 1 in their `ActivityTaskStarted` (the history keeps only
  the last attempt's), and the JSON logs of all worker processes hold exactly as many `stage.started` per
  stage as the history has attempts — one for each stage completed before the kill, two for the killed
  stage (the attempt that was killed and its retry);
- every artifact in the manifest matches its sha256; a killed download resumed with a Range request; a
  killed transcription resumed from its saved segments and its transcript is intact;
- how long the job took to move again after the restart is measured and printed in a table at the end
  (`pytest -s` also prints each case as it ends).

The matrix has its OWN dev server (it kills it) and runs workers as subprocesses (`python worker.py`), like
production. The cases share the server, the worker that survived the previous case, the task queue and the
storage, and use small media, so the whole matrix takes about four minutes. What makes each stage slow enough
to be killed in:

- download: the 10 s clip is served throttled (12 KB/s, ~3.5 s); the kill waits until 16 KB are in yt-dlp's
  .part file;
- transcribe: the 54 s sample takes several seconds, in two windows; the kill waits until segments of the
  first are saved;
- speakers: the 54 s sample; labelling it takes a second or two (the encoder's weights load, then ~0.03 × the
  audio), so the kill is sent as soon as its activity runs; its retry labels again from the same transcript;
- audiograms: the 20 s clip's top 3 quotes in two shapes, a few seconds of encoding; killed as soon as it runs;
- quotes / summary: the LLM engine against tests/helpers/llmserver.py, which answers that stage after 2 s; the kill
  waits until the request is in flight;
- clips: cutting 5 clips takes about half a second, so the kill is sent as soon as its activity runs. If the
  stage finishes before the kill lands, the assertions still hold: the server then has its result (one
  attempt, one `stage.started`), or its completion died with the worker and the retry finds the stage's
  receipt, so the clips are not cut again (two attempts, two `stage.started`, one `stage.reused`).

Numbers to expect (2 cores): restart→moving ~3-4.5 s after a worker kill (the 3 s heartbeat timeout plus the
new worker's start), ~0.2-2 s after a server kill. After a worker kill the job then also stalls ~10 s at its
next stage boundary: the workflow task goes to the dead worker's sticky queue until the SDK's
`sticky_queue_schedule_to_start_timeout` (10 s) sends it to the normal queue.

Also here: kill -9 in the middle of manifest writes always leaves a manifest that parses.

Debugging: CRASH_MATRIX_DEBUG=1 prints each job's log timeline (with `-s`); CRASH_MATRIX_LOG_LEVEL=debug
makes the workers log at debug level. The workers' logs are in pytest's tmp folder (`crash-matrix*/`).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import imageio_ffmpeg
import jiwer
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.load import activity_runs, attempts_per_stage, json_log_events
from bench.worker_process import kill_worker, spawn_worker
from clipper.config import Settings
from clipper.job.outputs import Transcript
from clipper.job.request import JobResult
from clipper.job.stages import StagePolicy
from clipper.job.status import JobState
from clipper.store.files import JsonlLog
from clipper.store.local import ArtifactStore, Manifest
from clipper_app.client import ClipperClient, connect, ensure_search_attributes
from scripts.devserver import DevServer
from tests.helpers import PIPELINE, REFERENCE, SAMPLE, run, through
from tests.helpers import httpserver
from tests.helpers.jobs import assert_manifest_matches, normalise
from tests.helpers.llmserver import Reply, answer, excerpt_lines, serve_llm, task_prompt
from tests.helpers.reports import add_report

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parents[2]
STAGES = tuple(through("audiograms"))  # the report and index steps take milliseconds: too quick to be killed in
MODES = ("worker", "server", "both")
SEARCH_ATTRIBUTES = {"ClipperState", "ClipperStage", "ClipperPriority", "ClipperProgress", "ClipperSource"}
HEARTBEAT_S = 3  # how fast the server notices a dead worker's attempt
LLM_DELAY_S = 2.0
DOWNLOAD_RATE = 12_000  # bytes/s
KEY = "sk-crash-matrix-not-a-secret"
# Fast retries; a heartbeat timeout short enough that a killed attempt is retried within seconds.
POLICIES = {stage: StagePolicy(initial_interval_s=0.2, max_interval_s=1, max_attempts=5, heartbeat_timeout_s=HEARTBEAT_S,
                               timeout_base_s=120, timeout_per_audio_s=2.0) for stage in PIPELINE}


# --- a throttled media server: the stock test server, its bodies written at a fixed rate for chosen paths ---

class _SlowWriter:
    def __init__(self, raw, rate: float) -> None:  # noqa: ANN001
        self.raw, self.rate = raw, rate

    def write(self, data: bytes) -> int:
        if len(data) <= 1024:  # the status line and headers
            return self.raw.write(data)
        step = 4096
        for i in range(0, len(data), step):
            self.raw.write(data[i:i + step])
            self.raw.flush()
            time.sleep(step / self.rate)
        return len(data)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.raw, name)


class ThrottledHandler(httpserver._Handler):
    def do_GET(self) -> None:  # noqa: N802
        rate = getattr(self.server, "rates", {}).get(self.path.split("?", 1)[0])
        raw = self.wfile
        if rate:
            self.wfile = _SlowWriter(raw, rate)
        try:
            super().do_GET()
        finally:
            self.wfile = raw


# --- the LLM: quotes every transcript line verbatim, summarises citing real ids; one stage can be slow ---

class LLMScript:
    def __init__(self) -> None:
        self.slow: str | None = None  # "quotes" or "summary": that stage's answers take LLM_DELAY_S

    def __call__(self, request: dict) -> Reply:
        lines = excerpt_lines(request)
        if "quote" in task_prompt(request).lower():
            stage, reply = "quotes", answer({"quotes": [{"text": t, "reason": "memorable"} for _, t in lines[:10]]})
        else:
            points = [{"text": text, "segments": [sid, sid]} for sid, text in lines[:3]]
            stage, reply = "summary", answer({"overview": "A talk about durable software.", "key_points": points})
        if stage == self.slow:
            reply.delay_s = LLM_DELAY_S
        return reply


# --- the cluster: one dev server, worker subprocesses, their JSON logs ---

def log_time(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


class Cluster:
    def __init__(self, root: Path, llm_base_url: str) -> None:
        self.root = root
        self.server = DevServer(root / "temporal.db")
        self.storage = root / "storage"
        self.task_queue = "crash-matrix"
        self.workers: list[tuple[subprocess.Popen, Path]] = []
        self.settings = Settings(temporal_address="127.0.0.1:0", task_queue=self.task_queue, storage_dir=self.storage,
                                 allow_private_addresses=True, policies=POLICIES)
        self.llm_base_url = llm_base_url
        self.search_attributes_survived: list[bool] = []
        self.media: httpserver.MediaServer | None = None  # set by the fixture
        self.llm = None  # tests.helpers.llmserver.LLMServer
        self.script: LLMScript | None = None

    def start_server(self) -> None:
        self.server.start()
        self.settings = self.settings.model_copy(update={"temporal_address": self.server.address})
        self._register()

    def restart_server(self) -> None:
        """Start the killed server again on the same SQLite file and ports (called in a thread: no event loop)."""
        self.server.start()
        self.search_attributes_survived.append(SEARCH_ATTRIBUTES <= asyncio.run(self._search_attributes()))
        self._register()  # a no-op when they survived the restart (they do, on the same SQLite file)

    def _register(self) -> None:
        async def register() -> None:
            await ensure_search_attributes(await Client.connect(self.server.address), "default")
        asyncio.run(register())

    async def _search_attributes(self) -> set[str]:
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

        client = await Client.connect(self.server.address)
        found = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
        return set(found.custom_attributes)

    def kill_server(self) -> None:
        self.server.kill()

    def worker_env(self) -> dict[str, str]:
        return dict(
            os.environ, TEMPORAL_ADDRESS=self.server.address, CLIPPER_TASK_QUEUE=self.task_queue,
            CLIPPER_STORAGE_DIR=str(self.storage), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true", CLIPPER_LOG_FORMAT="json",
            CLIPPER_LLM_BASE_URL=self.llm_base_url, CLIPPER_LLM_API_KEY=KEY, CLIPPER_LLM_MODEL="test-model",
            CLIPPER_LLM_TIMEOUT_S="30", CLIPPER_GRACEFUL_SHUTDOWN_S="2", HF_HUB_OFFLINE="1",
            CLIPPER_LOG_LEVEL=os.environ.get("CRASH_MATRIX_LOG_LEVEL", "info"),
            CLIPPER_ASR_BEAM_SIZE="1",  # greedy: the matrix tests recovery, not accuracy
        )

    def start_worker(self) -> None:
        log = self.root / f"worker-{len(self.workers) + 1}.log"
        self.workers.append((spawn_worker(self.worker_env(), log), log))

    @property
    def worker(self) -> subprocess.Popen | None:
        proc = self.workers[-1][0] if self.workers else None
        return proc if proc is not None and proc.poll() is None else None

    def kill_worker(self) -> None:
        proc = self.worker
        assert proc is not None, "no live worker to kill"
        kill_worker(proc)

    def events(self, job_id: str) -> list[dict]:
        """This job's structured log events from every worker process that ever ran, in order."""
        found = []
        for index, (_, log) in enumerate(self.workers):
            found += [{**event, "worker": index + 1} for event in json_log_events(log) if event.get("job_id") == job_id]
        return found

    def stop(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.server.stop()


def cut(src: Path, dst: Path, seconds: float) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(src), "-t",
                    str(seconds), "-c:a", "libmp3lame", "-b:a", "32k", str(dst)], check=True)
    return dst


@dataclass
class Row:
    stage: str
    mode: str
    starts: int  # stage.started of the killed stage across all workers: 2 = the killed attempt and its retry
    restart_to_moving_s: float
    restart_to_next_start_s: float | None
    job_s: float


@pytest.fixture(scope="module")
def rows(request):
    collected: list[Row] = []
    yield collected
    if not collected:
        return
    lines = [f"{'stage':<11} {'mode':<7} {'starts':>6} {'restart→moving s':>17} {'restart→next stage.started s':>29} "
             f"{'job s':>6}"]
    for r in collected:
        nxt = f"{r.restart_to_next_start_s:.2f}" if r.restart_to_next_start_s is not None else "-"
        lines.append(f"{r.stage:<11} {r.mode:<7} {r.starts:>6} {r.restart_to_moving_s:>17.2f} {nxt:>29} "
                     f"{r.job_s:>6.1f}")
    moving = sorted(r.restart_to_moving_s for r in collected)
    lines.append(f"restart→moving: median {moving[len(moving) // 2]:.2f} s, max {moving[-1]:.2f} s over {len(moving)} kills")
    print("\n" + "\n".join(lines))
    add_report(request.config, "crash matrix: kill -9 mid-stage", lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash-matrix")
    media_dir = root / "media"
    media_dir.mkdir()
    short = cut(SAMPLE, media_dir / "short.mp3", 10).read_bytes()  # 2 transcript segments, ~40 KB
    medium = cut(SAMPLE, media_dir / "medium.mp3", 20).read_bytes()  # 5 segments: 5 quotes, 5 clips
    files = {"/sample.mp3": (SAMPLE.read_bytes(), "audio/mpeg"), "/short.mp3": (short, "audio/mpeg"),
             "/medium.mp3": (medium, "audio/mpeg"), "/slow.mp3": (short, "audio/mpeg")}
    script = LLMScript()
    with httpserver.serve(files) as media, serve_llm(handler=script) as llm:
        media.RequestHandlerClass = ThrottledHandler
        media.rates = {"/slow.mp3": DOWNLOAD_RATE}
        llm.handle_error = lambda *_: None  # a killed worker hangs up on a slow answer: expected
        cluster = Cluster(root, llm.base_url)
        cluster.media, cluster.llm, cluster.script = media, llm, script
        cluster.start_server()
        try:
            yield cluster
        finally:
            cluster.stop()


# --- waiting on the server ---

async def describe(handle):
    try:
        return await handle.describe(rpc_timeout=timedelta(seconds=2))
    except RPCError:
        return None  # the server is down or restarting


def running(desc, stage: str):
    """The pending activity doing `stage`'s work, if a worker has started it (chunked transcription: a chunk)."""
    types = {stage} | ({"transcribe_chunk"} if stage == "transcribe" else set())
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name in types and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
            return pending
    return None


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value is not None and value is not False:  # 0.0 s is an answer
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def completed_activities(handle) -> set[int]:
    """Scheduled-event ids of the activities the server has recorded as completed."""
    return {run.scheduled_id for run in activity_runs(await handle.fetch_history()) if run.completed}


def seconds(ts) -> float:  # noqa: ANN001 - protobuf Timestamp
    return ts.seconds + ts.nanos / 1e9


async def wait_moving(cluster: Cluster, handle, job_id: str, since: float) -> float:
    """Seconds from `since` until the job shows life: the server hears from a live attempt (a start or a
    heartbeat), or a worker logs a stage starting or completing, or the job ends."""

    async def moving() -> float | None:
        desc = await describe(handle)
        if desc is None:
            return None
        marks = []
        for pending in desc.raw_description.pending_activities:
            for field in ("last_started_time", "last_heartbeat_time"):
                if pending.HasField(field) and seconds(getattr(pending, field)) >= since:
                    marks.append(seconds(getattr(pending, field)))
        marks += [log_time(e) for e in cluster.events(job_id)
                  if e["event"] in ("stage.started", "stage.completed") and log_time(e) >= since]
        if desc.close_time is not None:  # ended; before the restart when its last steps beat the kill (clips: ~0.2 s)
            marks.append(max(desc.close_time.timestamp(), since))
        return min(marks) - since if marks else None

    return await wait_until(moving, 90, f"{job_id} to move again after the restart", interval=0.05)


# --- the matrix ---

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", STAGES)
def test_kill_mid_stage(cluster: Cluster, rows: list[Row], stage: str, mode: str):
    store = ArtifactStore(cluster.storage)
    media = {"download": "/slow.mp3", "transcribe": "/sample.mp3", "speakers": "/sample.mp3",
             "clips": "/medium.mp3", "audiograms": "/medium.mp3"}.get(stage, "/short.mp3")
    cluster.script.slow = stage if stage in ("quotes", "summary") else None
    if cluster.worker is None:
        cluster.start_worker()

    def ready() -> bool:
        """Deep enough into the stage that the kill interrupts real work."""
        scratch = cluster.storage / "jobs" / job_id / ".tmp"
        if stage == "transcribe":  # segments saved for the retry to resume from
            return any(len(JsonlLog(log).read()) >= 2 for log in scratch.rglob("*.partial.jsonl"))
        if stage in ("quotes", "summary"):
            return cluster.llm.in_flight > 0  # the slow answer is being awaited
        if stage == "download":  # a good part of the body is in yt-dlp's .part file, the rest is still coming
            return any(part.stat().st_size >= 16_384 for part in scratch.rglob("*.part"))
        return True  # speakers, clips, audiograms: as soon as it runs

    async def body() -> tuple[JobResult, set[int], float, float, float, float]:
        nonlocal job_id
        client = await connect(cluster.settings)
        clipper = ClipperClient(client, cluster.settings)
        submitted_at = time.monotonic()
        job_id = (await clipper.submit(cluster.media.url(f"{media}?case={stage}-{mode}"))).job_id
        handle = client.get_workflow_handle(job_id)

        async def stage_running() -> bool:
            desc = await describe(handle)
            return desc is not None and running(desc, stage) is not None and ready()

        await wait_until(stage_running, 120, f"{stage} of {job_id} to run")
        done_before = await completed_activities(handle)
        kill_at = time.time()
        if mode in ("worker", "both"):
            cluster.kill_worker()
        if mode in ("server", "both"):
            cluster.kill_server()
            await asyncio.to_thread(cluster.restart_server)
        if mode in ("worker", "both"):
            cluster.start_worker()
        up_at = time.time()
        moving_s = await wait_moving(cluster, handle, job_id, up_at)
        result = await wait_until(lambda: _result(clipper, job_id), 180, f"{job_id} to finish", interval=0.2)
        return result, done_before, kill_at, up_at, moving_s, time.monotonic() - submitted_at

    job_id = ""
    ranges_before = len(cluster.media.ranges(media))
    result, done_before, kill_at, up_at, moving_s, job_s = run(body())
    assert result.state == JobState.done

    # The history: every stage ran once, in order (no stage went back to work it had finished), and the
    # activities completed before the kill started exactly once.
    runs = run(_activity_runs(cluster.settings, job_id))
    order = [r.stage for r in runs]
    assert [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s] == PIPELINE, order
    assert all(r.completed for r in runs)
    before = {r.stage for r in runs if r.scheduled_id in done_before}
    # Only clips is quick enough to finish between "running" and the kill (see the module's docstring).
    assert stage not in before or stage == "clips", f"{stage} had finished before the kill: the case proved nothing"
    for r in runs:
        if r.scheduled_id in done_before:
            assert r.attempt == 1, f"{r.type} was completed before the kill but ran again (attempt {r.attempt})"

    # The workers' logs: every attempt the server started was executed exactly once, on some worker. So the
    # stages completed before the kill logged `stage.started` once per activity, so did the stages after it,
    # and the killed stage once more: for the attempt that was killed and for its retry.
    events = cluster.events(job_id)
    if os.environ.get("CRASH_MATRIX_DEBUG"):
        for e in events:
            print(f"  {log_time(e) - up_at:+7.2f} w{e['worker']} {e['event']} {e.get('stage')} attempt={e.get('attempt')}")
    starts = {s: [e for e in events if e["event"] == "stage.started" and e["stage"] == s] for s in PIPELINE}
    attempts = attempts_per_stage(runs)
    for s in PIPELINE:
        # The killed attempt may have reached its worker (the server marked it started) a moment before the kill
        # and died before it logged anything: one start fewer is allowed for the killed stage, never one more.
        lost = 1 if s == stage and mode in ("worker", "both") else 0
        assert attempts[s] - lost <= len(starts[s]) <= attempts[s], \
            f"{s}: {len(starts[s])} stage.started for {attempts[s]} attempts"
        if s in before:
            assert len(starts[s]) == sum(1 for r in runs if r.stage == s), f"{s} ran again after the kill"
    if mode in ("worker", "both") and len(starts[stage]) > 1:
        assert starts[stage][-1]["worker"] == len(cluster.workers)  # the retry ran on the new worker
    if mode in ("worker", "both") and stage != "clips":
        # The killed attempt really was cut short: its stage ran again. (Clips may finish before the kill
        # lands; then the server has its result, or the retry finds the receipt: either way nothing is redone.)
        assert attempts[stage] > sum(1 for r in runs if r.stage == stage), attempts
    # In mode `server` the worker lives on and the attempt usually just finishes. If its completion was lost
    # with the server, the retry reuses its receipt; if no heartbeat got through during the outage, the server
    # times the attempt out when it is back and retries it while the first attempt still runs on the same
    # worker (which learns at its next heartbeat that it was cancelled): two attempts overlap for a while, and
    # the outputs must still be right.
    if stage == "transcribe":
        transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
        if mode != "server" and "resumed_from_s" in transcript.meta:  # resumed from the saved segments
            assert transcript.meta["resumed_from_s"] > 0, "the retry started transcribing from zero"
        # No segment lost, doubled or out of order, even when two attempts overlapped.
        assert all(a.end <= b.start + 1e-6 for a, b in zip(transcript.segments, transcript.segments[1:]))
        assert jiwer.wer(normalise(REFERENCE.read_text()), normalise(transcript.text)) <= 0.15
    if stage == "download" and mode in ("worker", "both"):
        # The retry resumed the killed attempt's partial file with a Range request instead of starting over.
        assert len(cluster.media.ranges(media)) > ranges_before

    assert_manifest_matches(store, job_id)
    assert set(result.artifacts) <= set(store.read_manifest(job_id).artifacts)
    if mode in ("server", "both"):
        assert cluster.search_attributes_survived[-1], "search attributes were lost with the server restart"

    next_start = [log_time(e) - up_at for e in events if e["event"] == "stage.started" and log_time(e) >= up_at]
    row = Row(stage, mode, len(starts[stage]), moving_s, min(next_start) if next_start else None, job_s)
    rows.append(row)
    print(f"\n{stage}/{mode}: killed {time.time() - kill_at:.1f}s ago; restart→moving {moving_s:.2f}s; "
          f"restart→next stage.started {row.restart_to_next_start_s}; job {job_s:.1f}s")


async def _result(clipper: ClipperClient, job_id: str) -> JobResult | None:
    handle = clipper.client.get_workflow_handle(job_id, result_type=JobResult)
    desc = await describe(handle)
    if desc is None or desc.status == WorkflowExecutionStatus.RUNNING:
        return None
    return await handle.result()


async def _activity_runs(settings: Settings, job_id: str):
    client = await connect(settings)
    return activity_runs(await client.get_workflow_handle(job_id).fetch_history())


# --- kill -9 during manifest writes ---

# Imports the store once, then per line `<seconds>` on stdin forks a writer that loops put_bytes on one job,
# SIGKILLs it after that many seconds, and answers "killed <writes seen>" (forking saves 20 interpreter starts).
KILLER = textwrap.dedent("""
    import os, signal, sys, time
    import structlog
    from clipper.store.local import ArtifactStore
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the protocol
    store, job = ArtifactStore(sys.argv[1]), "job-manifest"
    fixed = b"the same bytes every time" * 100
    print("ready", flush=True)
    for n, line in enumerate(sys.stdin):
        pid = os.fork()
        if pid == 0:
            i = 0
            while True:
                i += 1
                store.put_bytes(job, f"new/{n}-{i}.bin", os.urandom(512 + i % 4096), "test")
                store.put_bytes(job, "fixed.bin", fixed, "test")
        time.sleep(float(line))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print("killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else f"exit {status}",
              flush=True)
""")


def test_kill_during_manifest_writes_leaves_a_readable_manifest(tmp_path):
    """SIGKILL a process that writes artifacts in a loop, 20 times at random moments: after every kill
    the manifest parses (strictly, not through read_manifest's fallback) and every listed artifact verifies.

    Each writer adds new artifacts and rewrites one with the same bytes (what a stage's retry does with a
    deterministic output; for different bytes see tests/unit/test_store.py).
    """
    store = ArtifactStore(tmp_path)
    rng = random.Random(6)
    killer = subprocess.Popen([sys.executable, "-c", KILLER, str(tmp_path)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    listed = 0
    try:
        assert killer.stdout.readline().strip() == "ready", killer.stderr.read()
        for _ in range(20):
            killer.stdin.write(f"{rng.uniform(0.02, 0.25):.3f}\n")
            killer.stdin.flush()
            assert killer.stdout.readline().strip() == "killed"
            path = store.job_dir("job-manifest") / "manifest.json"
            if not path.exists():
                continue  # killed before its first write finished
            manifest = Manifest.model_validate_json(path.read_bytes())
            assert manifest.artifacts
            for ref in manifest.artifacts.values():
                store.verify("job-manifest", ref)  # present, same size, same sha256
            assert len(manifest.artifacts) >= listed, "an artifact vanished from the manifest"
            listed = len(manifest.artifacts)
    finally:
        os.killpg(killer.pid, signal.SIGKILL)  # with a writer it forked, if a failed assertion left one running
        killer.wait()
    assert listed > 20, f"only {listed} artifacts were listed: the kills came too early to test anything"
    # Reading through the store settles the artifact the last kill left renamed but not yet listed, if any.
    settled = store.read_manifest("job-manifest").artifacts.keys()
    assert settled >= manifest.artifacts.keys() and len(settled - manifest.artifacts.keys()) <= 1
    # A killed write leaves its temp file behind: hidden (dot) files, never listed as artifacts. Those of the
    # manifest show that kills did land in the middle of manifest writes (about a third of them do).
    leftovers = list(store.job_dir("job-manifest").rglob("*.tmp"))
    assert all(p.name.startswith(".") for p in leftovers)
    assert any(p.name.startswith(".manifest.json.") for p in leftovers), "no kill landed in a manifest write"

"""Resume cost: kill -9 the worker in the middle of a real transcription; what does the crash cost?

    python -m bench.resume_cost                     # kill at 30, 60, 90 % of the transcription
    python -m bench.resume_cost --at 50 --modes single --repeats 3

Media: the committed sample concatenated `--repeats` times (4 ≈ 3.6 min) with ffmpeg, as a local file
(CLIPPER_ALLOW_LOCAL_FILES on the worker); a distinct hard link per job, so each job has its own id. Speech to
text by the local faster-whisper engine with its defaults (tiny.en, int8, beam 5); quotes and summary by the
offline engine. One dev server; every job starts on a fresh worker subprocess (`python worker.py`).

Modes: `single` = one `transcribe` activity over the whole file (request and worker with asr_chunk_s = 0);
`chunked` = plan → `transcribe_chunk` × N side by side → merge (`--chunk-s`, default 60 s: 4 chunks), run only
if worker.py registers the `transcribe_chunk` activity. Per mode, one job runs without a kill (the
reference), then one job per `--at` percentage: once the transcription's progress as the server knows it (the
running attempts' heartbeat details, plus the chunks already finished) passes that share of the audio, the
worker is killed with SIGKILL and a new one is started at once (as tests/crash/test_crash_matrix.py does). The
transcribe stage uses a 3 s heartbeat timeout and 0.2 s first retry, so the server notices the dead attempt
fast (production default: 30 s and 2 s; add the difference to the lost time).

Reported per job (seconds): audio transcribed at the kill (heartbeat; saved segments and finished chunks in
the store), the final transcript's `resumed_from_s` (for chunks: summed over the chunks that resumed), audio
transcribed twice (progress at kill − chunks already finished − resumed_from_s, ≥ 0), wall time the killed
attempts had spent decoding audio not saved yet (lost work), kill → first retry started (history), the
transcribe stage's wall time (first activity scheduled → last completed) and the job's (start → close), and
how much longer each was than the reference job of the same mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/resume_cost.py` as well as `python -m bench.resume_cost`
    sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import PendingActivityState  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.chunked_vs_single import build_long_wav  # noqa: E402
from bench.load import activity_runs, event_time  # noqa: E402
from bench.worker_process import (  # noqa: E402
    bench_worker_env, kill_worker, spawn_worker, start_dev_server, start_worker, stop_worker,
)
from clipper.config import Settings  # noqa: E402
from clipper.job.outputs import Transcript  # noqa: E402
from clipper.job.request import JobOptions, JobResult  # noqa: E402
from clipper.job.stages import StagePolicy  # noqa: E402
from clipper.job.status import JobState, StageProgress  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402

TRANSCRIBING = ("transcribe", "transcribe_chunk")  # activity types that decode audio
TRANSCRIBE_STAGE = ("plan_transcription", "transcribe", "transcribe_chunk", "merge_transcript")
HEARTBEAT_TIMEOUT_S = 3.0
CHUNK_PARTIAL = re.compile(r"-chunk-(\d+)-(\d+)-(\d+)\.partial\.jsonl$")


def chunked_transcription_registered() -> bool:
    """Whether the worker runs the `transcribe_chunk` activity (chunked transcription is wired in)."""
    from activities.transcribe_chunks import TranscribeChunkActivity
    from clipper_app.workers import pools as worker

    return TranscribeChunkActivity in getattr(worker, "STAGE_ACTIVITIES", ())


# --- how far the transcription is: the server's heartbeat details and the store ---

@dataclass
class Progress:
    heartbeat_s: float  # finished chunks + what the running attempts' last heartbeats say
    saved_s: float  # finished chunks + segments saved in the partial logs
    finished_chunks_s: float  # audio in chunks whose transcript is written: never transcribed again
    unsaved_decode_s: float  # the longest any running attempt had gone since its last saved segment (or its start)
    transcript_done: bool  # transcript.json exists: nothing left to kill


def _last_end(partial: Path) -> float:
    lines = [line for line in partial.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return float(json.loads(line)["end"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line
    return 0.0


async def read_progress(client: Client, job_id: str, job_dir: Path) -> Progress:
    desc = await client.get_workflow_handle(job_id).describe()
    now = time.time()
    finished: dict[int, float] = {}
    for path in (job_dir / "chunks").glob("transcript-*.json"):
        try:
            finished[int(path.stem.split("-")[1])] = float(json.loads(path.read_bytes())["duration_s"])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue  # being written
    partials: dict[int | None, tuple[float, float]] = {}  # chunk index (None: single pass) → (saved s, mtime)
    for path in (job_dir / ".tmp").glob("transcript-*.partial.jsonl"):
        match = CHUNK_PARTIAL.search(path.name)
        index, start = (int(match[1]), int(match[2]) / 1000) if match else (None, 0.0)
        try:
            partials[index] = (max(0.0, _last_end(path) - start), path.stat().st_mtime)
        except OSError:
            continue  # removed as its chunk finished
    heartbeat = unsaved = 0.0
    for pending in desc.raw_description.pending_activities:
        if (pending.activity_type.name not in TRANSCRIBING
                or pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED):
            continue
        details = StageProgress()
        if pending.heartbeat_details.payloads:
            details = (await client.data_converter.decode(pending.heartbeat_details.payloads, [StageProgress]))[0]
        index = int(details.note.split()[-1]) if details.note and details.note.startswith("chunk ") else None
        if index in finished:
            continue  # its transcript is written, its completion not reported yet: counted as finished
        heartbeat += details.done
        since = event_seconds(pending.last_started_time)
        if index in partials:
            since = max(since, partials[index][1])
        unsaved = max(unsaved, now - since)  # chunks decode side by side: their unsaved work is lost in parallel
    done = sum(finished.values())
    saved = done + sum(s for i, (s, _) in partials.items() if i not in finished)
    return Progress(done + heartbeat, saved, done, unsaved, (job_dir / "transcript.json").exists())


def event_seconds(ts) -> float:  # noqa: ANN001 - protobuf Timestamp
    return ts.seconds + ts.nanos / 1e9


# --- one job ---

@dataclass
class Case:
    mode: str
    kill_at: float | None  # fraction of the audio; None = the reference job, no kill
    progress: Progress | None = None  # at the kill
    resumed_from_s: float = 0.0
    kill_to_retry_s: float | None = None
    transcribe_s: float = 0.0
    job_s: float = 0.0
    words: int = 0
    retries: int = 0  # attempts beyond the first, over the transcribe stage's activities
    load: float = 0.0
    timeline: list[str] = field(default_factory=list)  # the job's activities, times from its start (--timeline)

    @property
    def killed(self) -> bool:
        return self.progress is not None

    @property
    def transcribed_twice_s(self) -> float | None:
        if self.progress is None:
            return None
        at_kill = max(self.progress.heartbeat_s, self.progress.saved_s) - self.progress.finished_chunks_s
        return max(0.0, at_kill - self.resumed_from_s)


@dataclass
class Bench:
    client: Client
    settings: Settings
    env: dict[str, str]
    audio: Path
    duration_s: float
    folder: Path

    def fresh_audio(self, label: str) -> Path:
        """A hard link of the audio under a new name: a new URL, so a new job id."""
        path = self.folder / f"{label}-{uuid.uuid4().hex[:6]}.wav"
        os.link(self.audio, path)
        return path

    async def start_job(self, path: Path, chunk_s: float) -> str:
        """Submit the file as a client would, with CLIPPER_ASR_CHUNK_S = `chunk_s` (carried in the job's input)."""
        clipper = ClipperClient(self.client, self.settings.model_copy(update={"asr_chunk_s": chunk_s}))
        return (await clipper.submit(str(path), JobOptions(asr_engine="local", text_engine="offline"))).job_id

    async def run_case(self, mode: str, chunk_s: float, kill_at: float | None) -> Case:
        case = Case(mode, kill_at)
        label = f"{mode}-{'ref' if kill_at is None else int(kill_at * 100)}"
        env = {**self.env, "CLIPPER_ASR_CHUNK_S": str(chunk_s)}
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        worker = await asyncio.to_thread(start_worker, env, logs / f"{label}-1.log")
        job_id = await self.start_job(self.fresh_audio(label), chunk_s)
        job_dir = self.settings.storage_dir / "jobs" / job_id
        try:
            kill_time = None
            if kill_at is not None:
                while True:
                    progress = await read_progress(self.client, job_id, job_dir)
                    if progress.transcript_done:
                        break  # finished before the progress passed the mark: nothing killed
                    if progress.heartbeat_s >= kill_at * self.duration_s:
                        kill_time = time.time()
                        kill_worker(worker)
                        case.progress = progress
                        worker = spawn_worker(env, logs / f"{label}-2.log")  # at once, like a supervisor would
                        break
                    await asyncio.sleep(0.1)
            handle = self.client.get_workflow_handle(job_id, result_type=JobResult)
            result = await handle.result()
            if result.state != JobState.done:
                raise RuntimeError(f"{job_id} ended {result.state}")
            history = await handle.fetch_history()
        finally:
            await asyncio.to_thread(stop_worker, worker)
        measure_finished_job(case, history, kill_time, job_dir)
        case.load = os.getloadavg()[0]
        return case


def measure_finished_job(case: Case, history, kill_time: float | None, job_dir: Path) -> None:  # noqa: ANN001
    """Fill in `case` from the job's event history and its final transcript."""
    everything = activity_runs(history)
    runs = [r for r in everything if r.type in TRANSCRIBE_STAGE]
    events = list(history.events)
    t0 = event_time(events[0])
    case.transcribe_s = max(r.completed_at for r in runs) - min(r.scheduled_at for r in runs)
    case.job_s = event_time(events[-1]) - t0
    case.retries = sum(max(0, r.attempt - 1) for r in runs)
    retried = [r.started_at for r in runs if r.attempt > 1 and r.started_at is not None]
    if kill_time is not None and retried:
        case.kill_to_retry_s = min(retried) - kill_time
    case.timeline = [f"{r.type} attempt {r.attempt}: scheduled {r.scheduled_at - t0:.1f}, started "
                     f"{(r.started_at or t0) - t0:.1f}, completed {(r.completed_at or t0) - t0:.1f}"
                     for r in everything]
    if kill_time is not None:
        case.timeline.append(f"killed at {kill_time - t0:.1f}")
    transcript = Transcript.model_validate_json((job_dir / "transcript.json").read_bytes())
    case.resumed_from_s = float(transcript.meta.get("resumed_from_s", 0.0))
    case.words = len(transcript.text.split())


# --- the table ---

def _s(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "–"


def table(cases: list[Case]) -> list[str]:
    lines = ["| mode | kill at | at kill: heartbeat s | at kill: saved s | of which finished chunks s | resumed_from_s "
             "| transcribed twice s | unsaved decoding lost s | kill→retry started s | transcribe wall s | lost s "
             "| job wall s | job lost s | words | retries | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    reference = {c.mode: c for c in cases if c.kill_at is None}
    for c in cases:
        ref = reference.get(c.mode)
        p = c.progress
        if c.kill_at is None:
            kill = "no kill (reference)"
        else:
            kill = f"{c.kill_at:.0%}" + ("" if c.killed else " (finished first)")
        lost = c.transcribe_s - ref.transcribe_s if ref and c.kill_at is not None else None
        job_lost = c.job_s - ref.job_s if ref and c.kill_at is not None else None
        lines.append(
            f"| {c.mode} | {kill} | {_s(p and p.heartbeat_s)} | {_s(p and p.saved_s)} | {_s(p and p.finished_chunks_s)} | "
            f"{c.resumed_from_s:.1f} | {_s(c.transcribed_twice_s)} | {_s(p and p.unsaved_decode_s)} | "
            f"{_s(c.kill_to_retry_s)} | {c.transcribe_s:.1f} | {_s(lost)} | {c.job_s:.1f} | {_s(job_lost)} | "
            f"{c.words} | {c.retries} | {c.load:.2f} |")
    return lines


def run_resume_cost(at: list[float], modes: list[str], repeats: int = 4, chunk_s: float = 60.0,
                    workdir: Path | None = None, quiet: bool = False,
                    timeline: bool = False) -> tuple[list[Case], float]:
    """Build the audio, start a dev server; per mode a reference job, then one killed job per mark."""
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory(prefix="clipper-resume-") as tmp:
        folder = Path(workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        audio = build_long_wav(folder, repeats)
        from clipper.asr.base import wav_duration

        duration = wav_duration(audio)
        server = start_dev_server(folder / "temporal.db")
        try:
            task_queue, storage = f"resume-{uuid.uuid4().hex[:8]}", folder / "storage"
            policy = StagePolicy(initial_interval_s=0.2, max_interval_s=1, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
            settings = Settings(temporal_address=server.address, task_queue=task_queue, storage_dir=storage,
                                policies={"transcribe": policy})
            env = bench_worker_env(server.address, task_queue, storage, 4, {
                "CLIPPER_ASR_ENGINE": "local", "CLIPPER_ALLOW_LOCAL_FILES": "true", "CLIPPER_GRACEFUL_SHUTDOWN_S": "2"})

            async def body() -> list[Case]:
                bench = Bench(await connect(settings), settings, env, audio, duration, folder)
                cases = []
                for mode in modes:
                    for kill_at in (None, *at):
                        case = await bench.run_case(mode, chunk_s if mode == "chunked" else 0.0, kill_at)
                        say(f"  {mode} {'reference' if kill_at is None else f'kill at {kill_at:.0%}'}: "
                            f"transcribe {case.transcribe_s:.1f} s, resumed from {case.resumed_from_s:.1f} s, "
                            f"load {case.load:.2f}")
                        if timeline:
                            say("\n".join(f"    {line}" for line in case.timeline))
                        cases.append(case)
                return cases

            return asyncio.run(body()), duration
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--at", default="30,60,90", help="kill when this %% of the audio is transcribed (comma list)")
    p.add_argument("--modes", default="single,chunked", help="single and/or chunked (chunked only if registered)")
    p.add_argument("--repeats", type=int, default=4, help="copies of the 54 s sample (4 ≈ 3.6 min)")
    p.add_argument("--chunk-s", type=float, default=60.0, help="chunk target of the chunked mode")
    p.add_argument("--keep", type=Path, help="keep the audio, server DB, storage and worker logs in this folder")
    p.add_argument("--timeline", action="store_true", help="print each job's activities (times from its start)")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "chunked" in modes and not chunked_transcription_registered():
        print("chunked: skipped, worker.py does not register the transcribe_chunk activity", file=sys.stderr)
        modes.remove("chunked")
    before = os.getloadavg()[0]
    cases, duration = run_resume_cost([float(a) / 100 for a in args.at.split(",")], modes, args.repeats,
                                      args.chunk_s, args.keep, timeline=args.timeline)
    print(f"\n### Resume cost after kill -9 mid-transcription ({duration:.0f} s of speech, Whisper tiny.en int8 "
          f"beam 5, {os.cpu_count()} cores, transcribe heartbeat timeout {HEARTBEAT_TIMEOUT_S:g} s, "
          f"load average {before:.2f} before)\n")
    print("\n".join(table(cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

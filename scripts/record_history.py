"""Record the event history of a finished job into tests/histories/, for the replay test.

    python -m scripts.record_history NAME [--url URL] [--steer] [--chunk-s S] [--batch N]

Runs the bundled sample (or a URL that fails) through a throw-away dev server and an in-process worker.
The 1.0 baseline (docs/versions.md) was recorded with:

    python -m scripts.record_history 1.0-media-chunked-done --chunk-s 20
    python -m scripts.record_history 1.0-media-steered-done --steer
    python -m scripts.record_history 1.0-media-failed --url https://10.0.0.1/episode.mp3
    python -m scripts.record_history 1.0-batch-done --batch 3

Since then (each with its patch, docs/versions.md):

    python -m scripts.record_history 1.1-speakers-chunked-done --chunk-s 20   # patch speakers-stage
    python -m scripts.record_history 1.1-speakers-steered-done --steer        # ... and name_speakers
    python -m scripts.record_history 1.2-audiograms-chunked-done --chunk-s 20  # patch audiograms-stage
    python -m scripts.record_history 1.3-breaker-opened-probed-closed --breaker  # new: ProviderBreaker
    python -m scripts.record_history 1.3-imported-done --imported               # new: ImportedJob
    python -m scripts.record_history 1.4-media-failed-cleaned --url https://10.0.0.1/episode.mp3  # failed-cleanup
    python -m scripts.record_history 1.5-media-titled                           # title-attribute
    python -m scripts.record_history 1.6-follow-checked --follow                # new: FollowCheck
    python -m scripts.record_history 1.6-follow-paused --follow-404             # ... a failing source pauses it
    python -m scripts.record_history 1.6-index-done                             # index-stage

Keep every recorded history when changing a workflow: replaying them is how CI notices a change that would
break jobs in flight. Each change records one more (see docs/versions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from temporalio.client import WorkflowHistory  # noqa: E402

from clipper.config import Settings  # noqa: E402
from clipper.job.request import JobOptions  # noqa: E402
from clipper_app.client import ClipperClient, JobFailed, connect, ensure_search_attributes  # noqa: E402
from clipper_app.workers.pools import build_worker  # noqa: E402
from scripts.devserver import DevServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "sample.mp3"


async def record(name: str, url: str | None, tmp: Path, steer: bool = False, chunk_s: float = 180.0,
                 batch: int = 0) -> Path:
    server = DevServer(tmp / "temporal.db").start()
    try:
        settings = Settings(temporal_address=server.address, task_queue=f"record-{uuid.uuid4().hex[:6]}",
                            storage_dir=tmp / "storage", allow_local_files=True, asr_chunk_s=chunk_s)
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            if batch:  # a BatchJob of `batch` copies of the sample, two at a time
                copies = []
                for i in range(batch):
                    copies.append(tmp / f"sample-{i}.mp3")
                    shutil.copy(SAMPLE, copies[-1])
                job = await clipper.submit_batch(urls=[str(p) for p in copies], concurrency=2)
                await clipper.batch_result(job.job_id)
                # Its children's ids derive from the batch id: the replay needs it (test_replay reads it from the name).
                return save(f"{name}@{job.job_id}", await client.get_workflow_handle(job.job_id).fetch_history(), tmp)
            options = JobOptions(text_engine="llm") if steer else None  # no LLM configured: quotes fails
            job = await clipper.submit(url or str(SAMPLE), options)
            if steer:  # exercise every control so its history is replayed too
                await clipper.pause(job.job_id)
                await clipper.set_priority(job.job_id, 1)
                await clipper.resume(job.job_id)
                while (await clipper.status(job.job_id)).waiting_since is None:
                    await asyncio.sleep(0.2)
                if "speakers" in {s.name for s in (await clipper.status(job.job_id)).stages}:
                    await clipper.name_speakers(job.job_id, {"S1": "Host"})  # the update since 1.1
                await clipper.retry(job.job_id, {"text_engine": "offline"})
            try:
                await clipper.result(job.job_id)
            except JobFailed:
                pass
            history = await client.get_workflow_handle(job.job_id).fetch_history()
        return save(name, history, tmp)
    finally:
        server.stop()


async def record_breaker(name: str, tmp: Path) -> Path:
    """A ProviderBreaker's history: two failures open it, the probe is taken after the cool-down and succeeds."""
    from clipper.ops.breaker import BreakerPolicy, BreakerReport
    from clipper_app.client.breakers import BreakerClient
    from workflows.provider_breaker import breaker_id

    server = DevServer(tmp / "temporal.db").start()
    try:
        settings = Settings(temporal_address=server.address, task_queue=f"record-{uuid.uuid4().hex[:6]}",
                            storage_dir=tmp / "storage")
        client = await connect(settings)
        breakers = BreakerClient(client, settings.task_queue, BreakerPolicy(failures=2, cooldown_s=1))
        async with build_worker(client, settings):
            for _ in range(2):
                await breakers.report("api.example.com", BreakerReport(ok=False, error="HTTP 503"))
            await asyncio.sleep(1.1)
            permit = await breakers.permit("api.example.com")
            await breakers.report("api.example.com", BreakerReport(ok=True, probe=permit.probe))
            history = await client.get_workflow_handle(
                breaker_id(settings.task_queue, "api.example.com")).fetch_history()
        return save(name, history, tmp)
    finally:
        server.stop()


async def record_imported(name: str, tmp: Path) -> Path:
    """An ImportedJob's history: the sample run on one server, exported, and imported into a second one."""
    archive = tmp / "job.tar"
    for side in ("a", "b"):
        server = DevServer(tmp / side / "temporal.db").start()
        try:
            settings = Settings(temporal_address=server.address, task_queue=f"record-{uuid.uuid4().hex[:6]}",
                                storage_dir=tmp / side / "storage", allow_local_files=True)
            client = await connect(settings)
            await ensure_search_attributes(client, settings.temporal_namespace)
            clipper = ClipperClient(client, settings)
            async with build_worker(client, settings):
                if side == "a":
                    job = await clipper.submit(str(SAMPLE))
                    await clipper.result(job.job_id)
                    await clipper.export_job(job.job_id, archive)
                    continue
                summary = await clipper.import_job(archive)
                await client.get_workflow_handle(summary.job_id).result()
                history = await client.get_workflow_handle(summary.job_id).fetch_history()
        finally:
            server.stop()
    return save(name, history, tmp)


FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>A show</title>'
        b'<item><guid>ep2</guid><title>Two</title><enclosure url="https://example.com/2.mp3"/></item>'
        b'<item><guid>ep1</guid><title>One</title><enclosure url="https://example.com/1.mp3"/></item></channel></rss>')


async def record_follow(name: str, tmp: Path, missing: bool = False) -> Path:
    """A FollowCheck's history: the first check of a follow of a two-item feed (two jobs started); or, with
    `missing`, of a feed that answers 404: the check gives up, the follow pauses itself (limit 1) and notifies."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from clipper.job.stages import StagePolicy

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if missing else 200)
            self.send_header("Content-Length", "0" if missing else str(len(FEED)))
            self.end_headers()
            if not missing:
                self.wfile.write(FEED)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = DevServer(tmp / "temporal.db").start()
    try:
        quick = StagePolicy(initial_interval_s=0.2, max_interval_s=0.5, max_attempts=2, lost_worker_attempts=0)
        settings = Settings(temporal_address=server.address, task_queue=f"record-{uuid.uuid4().hex[:6]}",
                            storage_dir=tmp / "storage", allow_private_addresses=True, follow_max_failures=1,
                            policies={"follow": quick})
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings, pools=["workflow", "io"]):
            follow_id = (await clipper.follow(f"http://127.0.0.1:{http.server_address[1]}/feed.xml",
                                              every_s=3600)).job_id
            for _ in range(600):
                runs = [w async for w in client.list_workflows('WorkflowType="FollowCheck" AND '
                                                               'ExecutionStatus="Completed"')]
                if runs:
                    break
                await asyncio.sleep(0.1)
            history = await client.get_workflow_handle(runs[0].id, run_id=runs[0].run_id).fetch_history()
            await clipper.unfollow(follow_id)
            async for w in client.list_workflows('WorkflowType="MediaJob"'):
                await client.get_workflow_handle(w.id).terminate("recorded")
        return save(name, history, tmp)
    finally:
        server.stop()
        http.shutdown()


def save(name: str, history: WorkflowHistory, tmp: Path | None = None) -> Path:
    out = ROOT / "tests" / "histories" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(without_machine_paths(history.to_json(), tmp))
    return out


def without_machine_paths(text: str, tmp: Path | None = None) -> str:
    """No machine paths in committed files, also inside the base64 payloads: replay only needs the commands,
    not where they ran."""
    swaps = [(str(ROOT), "/repo")] + ([(str(tmp), "/data")] if tmp else [])

    def clean(s: str) -> str:
        for old, new in swaps:
            s = s.replace(old, new)
        return s

    def payload(match: re.Match) -> str:
        data = base64.b64decode(match.group(2))
        try:
            data = clean(data.decode("utf-8")).encode("utf-8")
        except UnicodeDecodeError:
            return match.group(0)
        return match.group(1) + base64.b64encode(data).decode("ascii") + '"'

    return clean(re.sub(r'("data":\s*")([A-Za-z0-9+/=]+)"', payload, text))


def clean_histories() -> None:
    for path in sorted((ROOT / "tests" / "histories").glob("*.json")):
        path.write_text(without_machine_paths(path.read_text(), Path(tempfile.gettempdir())))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--url", help="submit this instead of the bundled sample (e.g. a failing URL)")
    parser.add_argument("--steer", action="store_true", help="pause, re-prioritise, resume, fail and retry the job")
    parser.add_argument("--chunk-s", type=float, default=180.0,
                        help="chunk target for chunked transcription (e.g. 20: the 54 s sample in 3 chunks)")
    parser.add_argument("--batch", type=int, default=0, metavar="N", help="a BatchJob of N copies of the sample")
    parser.add_argument("--breaker", action="store_true", help="a provider's circuit breaker opening and closing")
    parser.add_argument("--imported", action="store_true", help="a finished job exported and imported elsewhere")
    parser.add_argument("--follow", action="store_true", help="a follow's first check of a two-item feed")
    parser.add_argument("--follow-404", action="store_true", help="a follow's check of a feed that 404s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.follow or args.follow_404:
            print(asyncio.run(record_follow(args.name, Path(tmp), missing=args.follow_404)))
            os._exit(0)
        if args.breaker or args.imported:
            print(asyncio.run((record_breaker if args.breaker else record_imported)(args.name, Path(tmp))))
            os._exit(0)
        print(asyncio.run(record(args.name, args.url, Path(tmp), args.steer, args.chunk_s, args.batch)))
    os._exit(0)


if __name__ == "__main__":
    main()

"""A finished job moved between deployments with the CLI: `clipper export` on the one it ran on, `clipper import`
on another — a second real Temporal dev server with its own store and task queue — where `list`, `status`,
`show`, `history` and the Python client then read it as they read the original. Damaged archives and a job that
is already there are refused with typed errors and leave nothing behind; so does an import whose registration
fails after its files were written. Last, the same archive layer against a real S3 API (moto's server).

One real job (the bundled sample, real ffmpeg and speech model, an in-process worker) serves every test here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from temporalio.client import Client

from clipper.config import Settings
from clipper.job.request import JobResult
from clipper.job.status import JobState
from clipper.store.archive import ARTIFACTS, HISTORY, exportable, read_archive, write_archive
from clipper.store.configured import open_store
from clipper.store.files import sha256_file
from clipper.store.import_claim import ImportClaim, staging_dir
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, JobNotFound, connect, ensure_search_attributes
from clipper_app.workers.pools import build_worker
from scripts.devserver import DevServer, temporal_bin
from tests.helpers import FAST_POLICIES, SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import run_job, until
from tests.helpers.processes import cli
from tests.helpers.s3 import isolated_aws_env
from tests.helpers.webserver import web_server


def deployment(address: str, storage: Path) -> Settings:
    return Settings(temporal_address=address, task_queue=f"test-{uuid.uuid4().hex[:8]}", storage_dir=storage,
                    allow_private_addresses=True, policies=FAST_POLICIES, graceful_shutdown_s=2)


@dataclass
class Source:
    settings: Settings
    job_id: str
    result: JobResult
    archive: Path
    audit: list  # the job's audit log on its own deployment


@pytest.fixture(scope="module")
def source(temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """A real job run to done on the session's server, exported with the CLI as a user would."""
    root = tmp_path_factory.mktemp("source")
    settings = deployment(temporal_server.address, root / "storage")
    archive = root / "out" / "job.tar"
    archive.parent.mkdir()
    with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as media:
        _, job_id, result = run(run_job(settings, media.url("/episode.mp3")))
    assert isinstance(result, JobResult) and result.state == JobState.done, result
    exported = run(cli(settings, "export", job_id, "-o", str(archive), timeout=120))
    assert exported.code == 0 and f"exported {job_id} to {archive}" in exported.out, exported

    async def audit() -> list:
        return await ClipperClient(await connect(settings), settings).history(job_id)

    return Source(settings, job_id, result, archive, run(audit()))


@pytest.fixture
def target(tmp_path: Path):
    """Another deployment: its own dev server (so the job id is free there), store and task queue."""
    server = DevServer(tmp_path / "target" / "temporal.db").start()

    async def register() -> None:
        await ensure_search_attributes(await Client.connect(server.address), "default")

    run(register())
    yield deployment(server.address, tmp_path / "target" / "storage")
    server.stop()


async def listed(settings: Settings, job_id: str) -> list[dict]:
    """`clipper list --state done --json` once visibility shows the job (it is eventually consistent)."""
    async def attempt() -> list[dict] | None:
        result = await cli(settings, "list", "--state", "done", "--json")
        assert result.code == 0, result
        jobs = json.loads(result.out)
        return jobs if any(j["job_id"] == job_id for j in jobs) else None

    return await until(attempt, timeout=20, what=f"{job_id} in clipper list", interval=0.5)


def manifest_of(settings: Settings, job_id: str) -> dict:
    return {name: ref.model_dump(mode="json") for name, ref in open_store(settings).read_manifest(job_id).artifacts.items()}


def left_behind(settings: Settings, job_id: str) -> list[str]:
    """The job's folder in the deployment's store, and any extraction folder an import did not remove."""
    storage = Path(settings.storage_dir)
    return sorted(str(p) for p in [storage / "jobs" / job_id, *(storage / ".imports").glob("*")] if p.exists())


async def absent(settings: Settings, job_id: str) -> bool:
    try:
        await ClipperClient(await connect(settings), settings).describe(job_id)
    except JobNotFound:
        return True
    return False


def test_export_then_import_on_another_deployment(source: Source, target: Settings, tmp_path: Path):
    job = source.job_id
    original = manifest_of(source.settings, job)
    with tarfile.open(source.archive) as tar:
        history_json = tar.extractfile(HISTORY).read()
    assert len(json.loads(history_json)["events"]) > 20  # the real run's history, not a stand-in

    async def body() -> None:
        client = await connect(target)
        clipper = ClipperClient(client, target)
        async with build_worker(client, target):
            imported = await cli(target, "import", str(source.archive), timeout=120)
            assert imported.code == 0, imported
            assert f"imported {job}: {len(original)} artifacts" in imported.out and f"{job}: done" in imported.out
            assert f"from namespace default at {source.settings.temporal_address}" in imported.out

            jobs = {j["job_id"]: j for j in await listed(target, job)}
            assert jobs[job]["state"] == "done" and jobs[job]["progress"] == 100
            assert jobs[job]["source"] == "127.0.0.1" and jobs[job]["status"] == "completed"

            status, show, history, again = await asyncio.gather(
                cli(target, "status", job, "--json"), cli(target, "show", job, columns=200),
                cli(target, "history", job, "--json"), cli(target, "import", str(source.archive)))
            assert status.code == 0, status
            assert json.loads(status.out)["state"] == "done"
            assert json.loads(status.out) == json.loads(source.result.status.model_dump_json())
            report = (source.settings.storage_dir / "jobs" / job / "report.md").read_text().splitlines()[0]
            assert show.code == 0 and report.lstrip("# ").strip() in show.out, show

            # The audit log is the original run's — its stages, attempts, workers — then the import.
            assert history.code == 0, history
            entries = json.loads(history.out)
            assert entries[:-1] == [e.model_dump(mode="json") for e in source.audit]
            assert entries[-1]["event"] == "job imported"
            assert source.settings.temporal_address in entries[-1]["detail"]
            assert {e["stage"] for e in entries if e["event"] == "stage completed"} >= {"download", "report"}

            # Importing it again changes nothing.
            assert again.code == 2 and again.one_line_error().startswith("error JobExists: "), again
            run_id = (await clipper.describe(job)).run_id

            # The same files, each with the same sha256; the result the job ended with.
            stored = manifest_of(target, job)
            assert {n: (r["sha256"], r["size"]) for n, r in stored.items() if not n.startswith("export/")} == \
                {n: (r["sha256"], r["size"]) for n, r in original.items()}
            store = open_store(target)
            for ref in store.read_manifest(job).artifacts.values():
                assert sha256_file(store.verify(job, ref)) == ref.sha256
            assert await clipper.result(job) == source.result
            transcript = await clipper.transcript(job)
            assert transcript.segments, "the client reads the imported outputs"
            # Indexed for search as it was imported: its first line is found at its second.
            first = transcript.segments[0]
            hits = await clipper.search(first.text, job_id=job)
            assert (job, first.start) in {(h.job_id, h.start) for h in hits if h.kind == "transcript"}, hits

            # The web reads it as it reads any finished job: status, artifacts from the store, its page.
            with web_server(target) as base:
                async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                    api, files, page = await asyncio.gather(
                        http.get(f"/api/jobs/{job}"), http.get(f"/api/jobs/{job}/artifacts/report.md"),
                        http.get(f"/jobs/{job}"))
            assert api.status_code == 200 and api.json()["state"] == "done", api.text
            assert files.status_code == 200 and files.content == (source.settings.storage_dir / "jobs" / job /
                                                                  "report.md").read_bytes()
            assert page.status_code == 200 and job in page.text

            # Exported again from here, it carries the original run's history and origin, not the import's.
            re_exported = await cli(target, "export", job, "-o", str(tmp_path / "again.tar"))
            assert re_exported.code == 0, re_exported
            assert (await clipper.describe(job)).run_id == run_id and manifest_of(target, job) == stored

            # A finished job here like any other: its speakers can be named (a NameSpeakers workflow).
            named = await cli(target, "speakers", job, "S1=Diane", timeout=60)
            assert named.code == 0 and "S1=Diane" in named.out, named
            assert "Diane" in (store.job_dir(job) / "transcript.txt").read_text()

    run(body())
    again = read_archive(tmp_path / "again.tar", tmp_path / "staging")
    assert again.history == history_json
    assert again.info.source.address == source.settings.temporal_address
    assert {n: r.sha256 for n, r in again.manifest.artifacts.items()} == {n: r["sha256"] for n, r in original.items()}


def test_export_refuses_a_job_that_is_not_done(source: Source, tmp_path: Path):
    settings = source.settings.model_copy(update={"task_queue": f"idle-{uuid.uuid4().hex[:6]}"})  # no worker there

    async def body():
        clipper = ClipperClient(await connect(settings), settings)
        with serve({"/later.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as media:
            queued = (await clipper.submit(media.url("/later.mp3"))).job_id
        out = tmp_path / "queued.tar"
        refused, unknown = await asyncio.gather(cli(settings, "export", queued, "-o", str(out)),
                                                cli(settings, "export", "clip-nope", "-o", str(out)))
        await clipper.client.get_workflow_handle(queued).terminate("test over")
        return refused, unknown, out

    refused, unknown, out = run(body())
    line = refused.one_line_error()
    assert refused.code == 2 and line.startswith("error JobNotFinished: ") and "docs/backup.md" in line, line
    assert unknown.code == 2 and "JobNotFound" in unknown.one_line_error()
    assert not out.exists()


def test_damaged_archives_and_a_failed_registration_leave_nothing(source: Source, target: Settings,
                                                                  tmp_path: Path):
    job = source.job_id
    data = source.archive.read_bytes()
    with tarfile.open(source.archive) as tar:
        audio = tar.getmember(ARTIFACTS + "audio.wav")
    tampered = bytearray(data)
    tampered[audio.offset_data + audio.size // 2] ^= 0x01
    (tmp_path / "tampered.tar").write_bytes(bytes(tampered))
    (tmp_path / "truncated.tar").write_bytes(data[: int(len(data) * 0.6)])

    async def body():
        return await asyncio.gather(*(cli(target, "import", str(tmp_path / name)) for name in
                                      ("tampered.tar", "truncated.tar")))

    results = run(body())
    for result in results:
        line = result.one_line_error()
        assert result.code == 2 and line.startswith("error ArchiveInvalid: "), line
    assert "audio.wav does not match its sha256 in SHA256SUMS" in results[0].err
    assert left_behind(target, job) == [] and run(absent(target, job))

    # A deployment whose ClipperPriority was registered with the wrong type refuses the start, after every file
    # was written: they are all removed again.
    broken = DevServer(tmp_path / "broken" / "temporal.db").start()
    try:
        subprocess.run([temporal_bin(), "operator", "search-attribute", "create", "--name", "ClipperPriority",
                        "--type", "Keyword", "--address", broken.address], check=True, capture_output=True)
        settings = deployment(broken.address, tmp_path / "broken" / "storage")
        failed = run(cli(settings, "import", str(source.archive), timeout=120))
        line = failed.one_line_error()
        assert failed.code == 2 and line.startswith("error ImportNotRegistered:") and "ClipperPriority" in line, failed
        assert left_behind(settings, job) == [] and run(absent(settings, job))
    finally:
        broken.stop()


# --- the S3-compatible store: export fetches from the bucket, an import uploads, a failed one deletes ---


@pytest.fixture
def aws_env(monkeypatch):
    isolated_aws_env(monkeypatch, "AKIACLIPPERTEST0002", "export-import-test-secret")


def test_s3_store_exports_from_the_bucket_and_imports_all_or_nothing(source: Source, s3_endpoint: str, aws_env,
                                                                    tmp_path: Path):
    job, bucket = source.job_id, f"clipper-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)

    def host(cache: str) -> ArtifactStore:
        return open_store(Settings(storage_dir=tmp_path / cache, storage_url=f"s3://{bucket}/prod",
                                   s3_endpoint_url=s3_endpoint))

    def objects() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"prod/jobs/{job}/").get("Contents", [])]

    archive = read_archive(source.archive, staging_dir(host("importer"), "x"))
    claim = ImportClaim(host("importer"), job)
    claim.store_archive(archive)
    claim.done()
    assert f"prod/jobs/{job}/audio.wav" in objects()

    # Another host with an empty cache exports it: every artifact comes from the bucket, checked.
    exporter = host("exporter")
    out = tmp_path / "from-s3.tar"
    write_archive(out, archive.info, archive.history, exporter, exportable(exporter.read_manifest(job)))
    again = read_archive(out, tmp_path / "staging")
    assert {n: r.sha256 for n, r in again.manifest.artifacts.items()} == \
        {n: r.sha256 for n, r in archive.manifest.artifacts.items()}

    # An import into another prefix that fails after its uploads deletes every object it wrote.
    other = open_store(Settings(storage_dir=tmp_path / "other", storage_url=f"s3://{bucket}/other",
                                s3_endpoint_url=s3_endpoint))
    claim = ImportClaim(other, job)
    claim.store_archive(read_archive(source.archive, staging_dir(other, "y")))
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"other/jobs/{job}/")["KeyCount"] > len(archive.files)
    claim.discard()
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"other/jobs/{job}/")["KeyCount"] == 0
    assert not (tmp_path / "other" / "jobs" / job).exists()
    assert f"prod/jobs/{job}/audio.wav" in objects()  # the other prefix's job is untouched

"""The S3-compatible artifact store against a real S3 API: moto's server on a free port, real boto3 over HTTP.

Each "host" is a store with its own empty local cache folder, so everything one reads that another wrote has
travelled through the bucket. Ends with the whole pipeline on two workers with separate caches, after which
the workers' folders are deleted and every artifact of the manifest is fetched back from the bucket.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import traceback
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi import FastAPI, Request
from pydantic import BaseModel

from activities.runtime import StageDeps
from clipper.config import Settings
from clipper.errors import CorruptArtifact, StorageMisconfigured, StorageUnavailable
from clipper.job.request import JobResult
from clipper.job.stages import STAGES
from clipper.job.status import JobState
from clipper.store.configured import open_store
from clipper.store.files import sha256_file
from clipper.store.local import ArtifactStore
from clipper.store.s3 import S3ArtifactStore
from clipper_app.client import ClipperClient, connect
from tests.helpers import run
from tests.helpers.s3 import isolated_aws_env

from clipper_app.web.artifacts import lookup, serve
from clipper_app.workers.pools import build_worker

ACCESS_KEY = "AKIACLIPPERTEST0001"
SECRET_KEY = "s3-planted-secret-7f3a91c2d4e84b5fa0c6"
JOB = "clip-s3test0000000001"


class Note(BaseModel):
    text: str


@pytest.fixture
def aws_env(monkeypatch):
    """Planted credentials through the standard variables, and nothing else of the credential chain."""
    isolated_aws_env(monkeypatch, ACCESS_KEY, SECRET_KEY)


@pytest.fixture
def bucket(s3_endpoint, aws_env) -> str:
    name = f"clipper-{uuid.uuid4().hex[:10]}"
    s3(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def s3_settings(endpoint: str, bucket: str, cache: Path, **extra) -> Settings:
    return Settings(storage_dir=cache, storage_url=f"s3://{bucket}/prod", s3_endpoint_url=endpoint, **extra)


def host(endpoint: str, bucket: str, cache: Path) -> S3ArtifactStore:
    store = open_store(s3_settings(endpoint, bucket, cache))
    assert isinstance(store, S3ArtifactStore)
    return store


def write_some(store: ArtifactStore, tmp_path: Path) -> dict[str, bytes]:
    """One artifact through every put_*; returns name → content."""
    clip = tmp_path / "clip.part"
    clip.write_bytes(b"\xff\xfb" + bytes(range(256)) * 300)  # ~77 kB, nested name like the clips stage's
    expected = {"clips/clip-01.mp3": clip.read_bytes(), "audio.raw": b"\x00\x01" * 5000, "notes.txt": b"hello\n"}
    store.put_file(JOB, "clips/clip-01.mp3", clip, "clips", "audio/mpeg")
    store.put_bytes(JOB, "audio.raw", expected["audio.raw"], "download")
    store.put_text(JOB, "notes.txt", "hello\n", "quotes")
    ref = store.put_model(JOB, "note.json", Note(text="verbatim"), "summary")
    expected["note.json"] = store.path(JOB, ref.name).read_bytes()
    return expected


def test_put_then_verify_and_objects_carry_their_sha256(s3_endpoint, bucket, tmp_path):
    store = host(s3_endpoint, bucket, tmp_path / "a")
    expected = write_some(store, tmp_path)
    manifest = store.read_manifest(JOB)
    assert set(manifest.artifacts) == set(expected)
    for name, ref in manifest.artifacts.items():
        assert store.verify(JOB, ref) == store.path(JOB, name)  # the local copy: nothing downloaded
        head = s3(s3_endpoint).head_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/{name}")
        assert head["Metadata"]["sha256"] == ref.sha256 and head["ContentLength"] == ref.size
    assert manifest.artifacts["clips/clip-01.mp3"].content_type == "audio/mpeg"
    # The bucket's manifest.json is the view of the references; the cache holds the same view.
    view = json.loads(s3(s3_endpoint).get_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/manifest.json")["Body"].read())
    assert set(view["artifacts"]) == set(expected)
    assert json.loads((store.job_dir(JOB) / "manifest.json").read_text()) == view
    assert store.uri(JOB, "notes.txt") == f"s3://{bucket}/prod/jobs/{JOB}/notes.txt"


def test_another_host_with_an_empty_cache_reads_every_artifact(s3_endpoint, bucket, tmp_path):
    expected = write_some(host(s3_endpoint, bucket, tmp_path / "a"), tmp_path)
    other = host(s3_endpoint, bucket, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    manifest = other.read_manifest(JOB)
    assert set(manifest.artifacts) == set(expected)
    for name, ref in manifest.artifacts.items():
        path = other.verify(JOB, ref)
        assert path == tmp_path / "b" / "jobs" / JOB / name and path.read_bytes() == expected[name]
        assert other.valid_ref(JOB, name) == ref
    assert other.read_model(JOB, manifest.artifacts["note.json"], Note).text == "verbatim"
    assert other.valid_ref(JOB, "nothing.json") is None
    assert other.local_copy(JOB, "notes.txt").read_bytes() == b"hello\n"
    assert not list((tmp_path / "b").rglob("*.tmp")), "a download left its temp file behind"


def test_a_corrupt_or_missing_remote_object_is_a_corrupt_artifact(s3_endpoint, bucket, tmp_path):
    writer = host(s3_endpoint, bucket, tmp_path / "a")
    write_some(writer, tmp_path)
    refs = writer.read_manifest(JOB).artifacts
    client = s3(s3_endpoint)
    client.put_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/audio.raw", Body=b"\x00\x02" * 5000)  # same size
    client.put_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/notes.txt", Body=b"goodbye\n")  # another size
    client.delete_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/note.json")

    reader = host(s3_endpoint, bucket, tmp_path / "b")
    for name, wording in (("audio.raw", "does not match its sha256"), ("notes.txt", "does not match its sha256"),
                          ("note.json", "missing")):
        with pytest.raises(CorruptArtifact, match=wording) as raised:
            reader.verify(JOB, refs[name])
        assert raised.value.artifact == name and raised.value.stage == refs[name].stage
        assert reader.valid_ref(JOB, name) is None
        assert not reader.path(JOB, name).exists(), "a bad download must not land in the cache"
    # The writer's own copies still match: its cache answers without the bucket.
    assert writer.verify(JOB, refs["audio.raw"]).read_bytes() == b"\x00\x01" * 5000
    # A damaged cached copy is replaced by the bucket's good one.
    clip = reader.verify(JOB, refs["clips/clip-01.mp3"])
    clip.write_bytes(b"damaged")
    assert sha256_file(reader.verify(JOB, refs["clips/clip-01.mp3"])) == refs["clips/clip-01.mp3"].sha256


def test_two_hosts_recording_at_once_lose_no_manifest_entry(s3_endpoint, bucket, tmp_path):
    hosts = [host(s3_endpoint, bucket, tmp_path / name) for name in ("a", "b")]
    start = threading.Barrier(len(hosts))
    errors: list[BaseException] = []

    def record(store: S3ArtifactStore, label: str) -> None:
        try:
            start.wait()
            for i in range(10):
                store.put_bytes(JOB, f"{label}-{i}.bin", f"{label} {i}".encode(), "clips")
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=record, args=(store, label)) for store, label in zip(hosts, "ab")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    names = {f"{label}-{i}.bin" for label in "ab" for i in range(10)}
    assert set(host(s3_endpoint, bucket, tmp_path / "c").read_manifest(JOB).artifacts) == names
    # The last writer's view holds everything too: it re-lists until nothing changed under it.
    view = json.loads(s3(s3_endpoint).get_object(Bucket=bucket, Key=f"prod/jobs/{JOB}/manifest.json")["Body"].read())
    assert set(view["artifacts"]) == names


def test_receipts_are_shared_and_keep_the_local_layout(s3_endpoint, bucket, tmp_path):
    a, b = host(s3_endpoint, bucket, tmp_path / "a"), host(s3_endpoint, bucket, tmp_path / "b")
    receipt = json.dumps({"input": "k", "output": {}}).encode()
    a.put_receipt(JOB, "transcribe-3", receipt)
    assert (tmp_path / "a" / "jobs" / JOB / ".receipts" / "transcribe-3.json").read_bytes() == receipt
    assert b.read_receipt(JOB, "transcribe-3") == receipt
    assert b.read_receipt(JOB, "summary") is None
    local = ArtifactStore(tmp_path / "local")  # the local store: same names, same files
    local.put_receipt(JOB, "summary", receipt)
    assert local.read_receipt(JOB, "summary") == (tmp_path / "local/jobs" / JOB / ".receipts/summary.json").read_bytes()
    assert local.read_receipt(JOB, "quotes") is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_readable_without_secret(error: BaseException, *words: str) -> None:
    text = "".join(traceback.format_exception(error))
    assert SECRET_KEY not in text and SECRET_KEY not in str(error)
    for word in words:
        assert word in str(error), (word, str(error))


def test_unusable_stores_raise_typed_readable_errors_without_the_secret(s3_endpoint, bucket, tmp_path,
                                                                         monkeypatch):
    nowhere = f"http://127.0.0.1:{free_port()}"
    store = host(nowhere, bucket, tmp_path / "a")
    with pytest.raises(StorageUnavailable) as raised:
        store.check()
    assert_readable_without_secret(raised.value, nowhere, "CLIPPER_S3_ENDPOINT_URL")
    assert not raised.value.non_retryable  # an outage passes

    with pytest.raises(StorageMisconfigured) as raised:  # the worker refuses to start
        StageDeps.from_settings(s3_settings(s3_endpoint, "no-such-bucket", tmp_path / "b"))
    assert_readable_without_secret(raised.value, "'no-such-bucket' does not exist", "CLIPPER_STORAGE_URL")
    missing = host(s3_endpoint, "no-such-bucket", tmp_path / "b")
    with pytest.raises(StorageMisconfigured) as raised:  # through boto3's upload, which wraps the error
        missing.put_text(JOB, "notes.txt", "hello", "quotes")
    assert_readable_without_secret(raised.value, "uploading notes.txt", "does not exist")
    with pytest.raises(StorageMisconfigured):
        missing.read_manifest(JOB)

    refused = ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": f"bad signature {SECRET_KEY}"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    translated = store._translate(refused, "uploading x")
    assert isinstance(translated, StorageMisconfigured)
    assert_readable_without_secret(translated, "SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY")

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageMisconfigured, match="no usable credentials"):
        host(s3_endpoint, bucket, tmp_path / "c").check()


def test_settings_choose_the_store():
    assert type(open_store(Settings(storage_dir=Path("x")))) is ArtifactStore
    with pytest.raises(ValueError, match="s3://bucket"):
        Settings(storage_url="minio://clipper")
    settings = Settings(storage_url="s3://clipper", s3_endpoint_url="http://127.0.0.1:1")
    assert SECRET_KEY not in settings.secrets()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        assert SECRET_KEY in settings.secrets()  # so the log redactor hides it


def test_pipeline_on_two_hosts_leaves_every_artifact_in_the_bucket(settings, media_server, s3_endpoint, bucket,
                                                                    tmp_path):
    # Two workers on the job's task queue, each with its own cache: stages land on either, and whatever one
    # reads that the other wrote comes through the bucket.
    shared = {"storage_url": f"s3://{bucket}/prod", "s3_endpoint_url": s3_endpoint}
    hosts = [settings.model_copy(update={**shared, "storage_dir": tmp_path / name}) for name in ("host-a", "host-b")]

    async def job() -> tuple[str, JobResult]:
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        other = await connect(settings)  # one client per worker, as on two hosts (the SDK wants that too)
        async with build_worker(client, hosts[0]), build_worker(other, hosts[1]):
            job_id = (await clipper.submit(media_server.url("/episode.mp3"))).job_id
            return job_id, await clipper.result(job_id)

    job_id, result = run(job())
    assert result.state == JobState.done, result
    for folder in ("host-a", "host-b"):
        shutil.rmtree(tmp_path / folder, ignore_errors=True)

    fresh = host(s3_endpoint, bucket, tmp_path / "reader")
    manifest = fresh.read_manifest(job_id)
    assert set(result.artifacts) <= set(manifest.artifacts)
    assert {"audio.wav", "transcript.json", "quotes.json", "summary.json", "clips.json", "report.md"} <= set(
        manifest.artifacts)
    for name, ref in manifest.artifacts.items():
        assert sha256_file(fresh.verify(job_id, ref)) == ref.sha256, name
        obj = s3(s3_endpoint).head_object(Bucket=bucket, Key=f"prod/jobs/{job_id}/{name}")
        assert obj["Metadata"]["sha256"] == ref.sha256, name
    for name, ref in result.artifacts.items():
        assert manifest.artifacts[name] == ref, name
    assert all(fresh.read_receipt(job_id, stage) is not None for stage in STAGES)
    assert fresh.local_copy(job_id, "report.md").read_text().startswith("#")


def test_the_web_serves_artifacts_from_s3_with_ranges(s3_endpoint, bucket, tmp_path):
    """`clipper web` on a host whose cache is empty: the artifact comes from the bucket through the web app's
    client, checked against its sha256, and a Range request gets exactly its bytes (players seek in clips and
    audio this way)."""
    expected = write_some(host(s3_endpoint, bucket, tmp_path / "a"), tmp_path)
    # No Temporal server: the test reads only the client's store.
    web = ClipperClient(None, s3_settings(s3_endpoint, bucket, tmp_path / "web"))  # type: ignore[arg-type]
    app = FastAPI()

    @app.get("/a/{name:path}")
    async def artifact(request: Request, name: str):
        return await serve(request, web, JOB, lookup(JOB, web.files.manifest(JOB), name))

    async def body():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as http:
            whole = await http.get("/a/clips/clip-01.mp3")
            part = await http.get("/a/clips/clip-01.mp3", headers={"Range": "bytes=100-1099"})
            return whole, part

    whole, part = run(body())
    clip = expected["clips/clip-01.mp3"]
    assert whole.status_code == 200 and whole.content == clip and whole.headers["content-type"] == "audio/mpeg"
    assert part.status_code == 206 and part.content == clip[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(clip)}"

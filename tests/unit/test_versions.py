"""Artifact versions (clipper/job/versions.py) on both stores: the local folder, and the S3 store against moto's
server on a free port with real boto3 (each S3 test reads back through a second "host" with an empty cache, so
what it sees has travelled through the bucket)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from clipper.config import Settings
from clipper.errors import VersionNotFound
from clipper.job.versions import (
    ArtifactVersion, archive, archive_rerun, list_versions, prune, read_version, version_file, versioned_name,
)
from clipper.store.configured import open_store
from clipper.store.files import sha256_file
from clipper.store.local import ArtifactStore
from clipper.store.s3 import S3ArtifactStore
from tests.helpers.s3 import isolated_aws_env

JOB = "clip-versions000000001"


class Stores:
    """Opens "hosts" on one store: each with its own cache folder, all on the same bucket (S3) or folder (local)."""

    def __init__(self, kind: str, tmp_path: Path, endpoint: str | None = None) -> None:
        self.kind, self.tmp_path, self.endpoint, self.hosts = kind, tmp_path, endpoint, 0
        self.bucket = f"versions-{uuid.uuid4().hex[:10]}"
        if kind == "s3":
            self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            self.s3.create_bucket(Bucket=self.bucket)

    def host(self) -> ArtifactStore:
        if self.kind == "local":
            return ArtifactStore(self.tmp_path / "storage")
        self.hosts += 1
        store = open_store(Settings(storage_dir=self.tmp_path / f"host{self.hosts}",
                                    storage_url=f"s3://{self.bucket}/p", s3_endpoint_url=self.endpoint))
        assert isinstance(store, S3ArtifactStore)
        return store

    def keys(self, under: str) -> list[str]:
        """Every object of the job under `under` in the bucket (S3), or file in the job's folder (local)."""
        if self.kind == "local":
            root = self.tmp_path / "storage" / "jobs" / JOB
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                          and str(p.relative_to(root)).startswith(under))
        prefix = f"p/jobs/{JOB}/"
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"].removeprefix(prefix) for o in listed if o["Key"].removeprefix(prefix).startswith(under))

    def corrupt(self, store: ArtifactStore, name: str) -> None:
        """Different bytes where `name` is (a new file, so a version linked to the old one keeps its bytes)."""
        path = store.path(JOB, name)
        path.unlink()
        path.write_bytes(b"rotten")
        if self.kind == "s3":
            self.s3.put_object(Bucket=self.bucket, Key=f"p/jobs/{JOB}/{name}", Body=b"rotten")


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path, monkeypatch) -> Stores:
    if request.param == "local":
        return Stores("local", tmp_path)
    isolated_aws_env(monkeypatch, "AKIAVERSIONSTEST0001", "versions-test-secret")
    return Stores("s3", tmp_path, request.getfixturevalue("s3_endpoint"))


def quotes_run(store: ArtifactStore, text: str) -> None:
    """What a run of the quotes stage leaves: two artifacts of stage `quotes`."""
    store.put_text(JOB, "quotes.json", json.dumps({"quotes": [text]}), "quotes", "application/json")
    store.put_text(JOB, "quotes.md", f"# Quotes\n\n> {text}\n", "quotes", "text/markdown")


def assert_all_match(store: ArtifactStore) -> None:
    manifest = store.read_manifest(JOB).artifacts
    assert manifest
    for name, ref in manifest.items():
        assert sha256_file(store.verify(JOB, ref)) == ref.sha256, name


@pytest.mark.slow
def test_a_version_keeps_the_earlier_bytes_with_their_sha256(stores):
    store = stores.host()
    quotes_run(store, "first words")
    before = {n: r for n, r in store.read_manifest(JOB).artifacts.items()}
    version = archive(store, JOB, "quotes", ["quotes.json", "quotes.md", "nonexistent.txt"], "rerun",
                      {"max_quotes": 3}, keep=5)
    assert version is not None and version.number == 1 and version.stage == "quotes" and version.reason == "rerun"
    assert version.options == {"max_quotes": 3}
    assert version.produced_at == max(r.created_at for r in before.values()) <= version.created_at
    assert {version.original(r): r.sha256 for r in version.artifacts} == {n: r.sha256 for n, r in before.items()}
    assert [r.name for r in version.artifacts] == ["versions/1/quotes.json", "versions/1/quotes.md"]

    quotes_run(store, "second words")  # the stage's new run replaces the current files, not the version's
    other = stores.host()  # S3: a second host, whose cache is empty
    manifest = other.read_manifest(JOB).artifacts
    assert {"versions/1/quotes.json", "versions/1/quotes.md", "versions/1/version.json"} <= set(manifest)
    assert manifest["versions/1/quotes.md"].stage == "quotes"
    assert other.verify(JOB, manifest["versions/1/quotes.md"]).read_text() == "# Quotes\n\n> first words\n"
    assert "second words" in other.verify(JOB, manifest["quotes.md"]).read_text()
    assert list_versions(other, JOB) == [version]
    assert read_version(other, JOB, 1) == version
    assert_all_match(other)


@pytest.mark.slow
def test_the_same_bytes_again_make_no_version_and_new_bytes_do(stores):
    store = stores.host()
    quotes_run(store, "one")
    assert archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5).number == 1
    assert archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5) is None
    assert archive(store, JOB, "quotes", ["quotes.md"], "rerun", {}, keep=5) is None  # already kept too
    # Another stage's version in between does not hide the quotes' latest one.
    store.put_text(JOB, "summary.md", "sum", "summary")
    assert archive(store, JOB, "summary", ["summary.md"], "rerun", {}, keep=5).number == 2
    assert archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5) is None
    quotes_run(store, "two")
    assert archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5).number == 3
    assert [v.stage for v in list_versions(stores.host(), JOB)] == ["quotes", "summary", "quotes"]


def test_a_corrupt_file_is_not_kept(stores):
    store = stores.host()
    quotes_run(store, "words")
    stores.corrupt(store, "quotes.md")
    version = archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5)
    assert [version.original(r) for r in version.artifacts] == ["quotes.json"]
    stores.corrupt(store, "quotes.json")
    assert archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=5) is None
    assert [v.number for v in list_versions(stores.host(), JOB)] == [1]
    assert stores.keys("versions/") == ["versions/1/quotes.json", "versions/1/version.json"]


@pytest.mark.slow
def test_retention_drops_the_oldest_versions_from_manifest_and_storage(stores):
    store = stores.host()
    for n in range(1, 5):
        quotes_run(store, f"run {n}")
        archive(store, JOB, "quotes", ["quotes.json", "quotes.md"], "rerun", {}, keep=2)
    other = stores.host()
    assert [v.number for v in list_versions(other, JOB)] == [3, 4]
    assert not [n for n in other.read_manifest(JOB).artifacts if n.startswith(("versions/1/", "versions/2/"))]
    assert stores.keys("versions/1") == stores.keys("versions/2") == []
    if stores.kind == "s3":  # their references went too, and this host's cached copies
        assert stores.keys(".refs/versions/1") == []
        assert not (store.job_dir(JOB) / "versions" / "1").exists()
    assert "run 3" in other.verify(JOB, version_file(other, JOB, 3, "quotes.md")).read_text()
    assert_all_match(other)

    assert prune(store, JOB, 5) == []
    assert archive(store, JOB, "quotes", ["quotes.json"], "rerun", {}, keep=0) is None  # 0: keep none
    assert list_versions(stores.host(), JOB) == [] and stores.keys("versions/") == []
    assert set(stores.host().read_manifest(JOB).artifacts) == {"quotes.json", "quotes.md"}


@pytest.mark.slow
def test_an_archive_killed_before_its_index_is_cleaned_up_after_the_next(stores):
    store = stores.host()
    quotes_run(store, "a")
    store.put_text(JOB, versioned_name(1, "quotes.json"), "half an archive", "quotes")  # no version.json
    assert list_versions(store, JOB) == []
    version = archive(store, JOB, "quotes", ["quotes.json"], "rerun", {}, keep=5)
    assert version.number == 2  # never the leftover's number
    assert stores.keys("versions/1") == []
    assert [v.number for v in list_versions(stores.host(), JOB)] == [2]


@pytest.mark.slow
def test_a_rerun_keeps_the_last_finished_run_with_its_recorded_options(stores):
    store = stores.host()
    quotes_run(store, "attempt without a receipt")
    assert archive_rerun(store, JOB, "quotes", keep=5) is None  # not a finished run: nothing to keep
    manifest = store.read_manifest(JOB).artifacts
    output = {"quotes": manifest["quotes.json"].model_dump(mode="json"),
              "markdown": manifest["quotes.md"].model_dump(mode="json")}
    store.put_receipt(JOB, "quotes", json.dumps({"input": "k", "output": output,
                                                  "options": {"max_quotes": 3, "llm_model": None}}).encode())
    store.put_text(JOB, "summary.md", "not a quote", "summary")
    # An unfinished attempt of this run already replaced quotes.json: not the earlier run's, left out.
    store.put_text(JOB, "quotes.json", "{}", "quotes")
    version = archive_rerun(store, JOB, "quotes", keep=5)
    assert version.options == {"max_quotes": 3, "llm_model": None} and version.reason == "rerun"
    assert [version.original(r) for r in version.artifacts] == ["quotes.md"]
    # The report takes no options: its version says the job's, as the latest stage with options recorded them.
    store.put_text(JOB, "report.md", "# Report", "report")
    store.put_receipt(JOB, "report", json.dumps({"input": "k", "output": {}, "options": None}).encode())
    assert archive_rerun(store, JOB, "report", keep=5).options == {"max_quotes": 3, "llm_model": None}
    assert archive_rerun(store, JOB, "report", keep=5) is None  # versions are not versioned again


def test_missing_versions_and_files_are_typed_errors_naming_what_exists(stores):
    store = stores.host()
    with pytest.raises(VersionNotFound, match=f"job {JOB} has no version 1; it has none"):
        read_version(store, JOB, 1)
    store.put_text(JOB, "report.md", "# Report v1", "report")
    archive(store, JOB, "names", ["report.md"], "speaker names", {}, keep=5)
    quotes_run(store, "q")
    archive(store, JOB, "quotes", ["quotes.json"], "rerun", {}, keep=5)
    with pytest.raises(VersionNotFound, match=r"has no version 7; its versions: 1, 2 \(clipper versions JOB"):
        version_file(store, JOB, 7, "report.md")
    with pytest.raises(VersionNotFound, match=r"version 2 of .* \(stage quotes\) has no report.md; versions with "
                                              r"one: 1"):
        version_file(store, JOB, 2, "report.md")
    ref = version_file(stores.host(), JOB, 1, "report.md")
    assert ref.name == "versions/1/report.md"


def test_the_index_is_plain_json_any_tool_can_read(stores):
    store = stores.host()
    quotes_run(store, "x")
    archive(store, JOB, "quotes", ["quotes.md"], "rerun", {"text_engine": "offline"}, keep=5)
    index = json.loads(store.path(JOB, "versions/1/version.json").read_text())
    assert set(index) == set(ArtifactVersion.model_fields)
    assert index["artifacts"][0]["name"] == "versions/1/quotes.md" and len(index["artifacts"][0]["sha256"]) == 64

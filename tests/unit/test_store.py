"""Artifact store: atomic writes, manifest checksums, corruption detection, resumable JSON-lines logs."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clipper.errors import CorruptArtifact, InvalidRequest
from clipper.job.outputs import Segment
from clipper.store.files import JsonlLog, sha256_file
from clipper.store.local import PENDING, ArtifactStore, Manifest

ROOT = Path(__file__).resolve().parents[2]


def test_put_records_sha256_and_size(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes("job-1", "a/b.bin", b"hello", "download")
    assert ref.sha256 == hashlib.sha256(b"hello").hexdigest() and ref.size == 5
    manifest = json.loads((tmp_path / "jobs/job-1/manifest.json").read_text())
    assert manifest["artifacts"]["a/b.bin"]["sha256"] == ref.sha256
    assert store.verify("job-1", ref).read_bytes() == b"hello"


def test_put_file_moves_and_leaves_no_temp_files(tmp_path):
    store = ArtifactStore(tmp_path)
    src = store.scratch_dir("job") / "big.wav"
    src.write_bytes(b"x" * 10_000)
    ref = store.put_file("job", "audio.wav", src, "download")
    assert not src.exists()
    assert sha256_file(store.path("job", "audio.wav")) == ref.sha256
    leftovers = [p.name for p in store.job_dir("job").iterdir() if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_flipped_byte_is_detected(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes("job", "audio.wav", b"\x00" * 100, "download")
    path = store.path("job", "audio.wav")
    path.write_bytes(b"\x00" * 50 + b"\x01" + b"\x00" * 49)
    with pytest.raises(CorruptArtifact, match="audio.wav") as err:
        store.verify("job", ref)
    assert err.value.stage == "download"
    assert store.valid_ref("job", "audio.wav") is None


def test_missing_artifact_is_corrupt(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes("job", "x.txt", b"1", "s")
    store.path("job", "x.txt").unlink()
    with pytest.raises(CorruptArtifact, match="missing"):
        store.verify("job", ref)


def test_names_cannot_escape_the_job_folder(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(InvalidRequest):
        store.path("job", "../other/x")
    with pytest.raises(InvalidRequest):
        store.job_dir("../x")


def test_concurrent_writers_all_land_in_the_manifest(tmp_path):
    store = ArtifactStore(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put_bytes("job", f"chunk-{i}.json", str(i).encode(), "t"), range(40)))
    assert len(store.read_manifest("job").artifacts) == 40


def test_unreadable_manifest_without_receipts_reads_as_empty_not_crash(tmp_path):
    store = ArtifactStore(tmp_path)
    store.put_bytes("job", "x", b"1", "s")
    (store.job_dir("job") / "manifest.json").write_text("{not json")
    assert store.read_manifest("job").artifacts == {}


@pytest.mark.parametrize("damage", ["{not json", '{"job_id": 5, "artifacts": "nope"}'])
def test_corrupt_manifest_is_rebuilt_from_receipts_and_checksums(tmp_path, damage):
    store = ArtifactStore(tmp_path)
    good = store.put_bytes("job", "audio.wav", b"a" * 100, "download")
    changed = store.put_bytes("job", "transcript.json", b"{}", "transcribe")
    receipts = store.job_dir("job") / ".receipts"
    receipts.mkdir()
    (receipts / "download.json").write_text(json.dumps({"input": "k", "output": {"audio": good.model_dump(mode="json")}}))
    (receipts / "transcribe.json").write_text(
        json.dumps({"input": "k", "output": {"transcript": changed.model_dump(mode="json")}}))
    store.path("job", "transcript.json").write_bytes(b"{tampered}")  # no longer matches its receipt
    (store.job_dir("job") / "manifest.json").write_text(damage)
    rebuilt = store.read_manifest("job")
    assert rebuilt.artifacts == {"audio.wav": good}  # the tampered file is left out: its stage re-runs
    assert json.loads((store.job_dir("job") / "manifest.json").read_text())["artifacts"]["audio.wav"]["sha256"]
    assert store.read_manifest("job") == rebuilt  # written back, readable again


def test_jsonl_log_ignores_a_torn_last_line(tmp_path):
    log = JsonlLog(tmp_path / "p.jsonl")
    for i in range(3):
        log.append(Segment(id=i, start=i, end=i + 1, text=f"s{i}").model_dump())
    with open(log.path, "a") as f:
        f.write('{"id": 3, "start": 3, "en')  # kill -9 mid-write
    assert [r["id"] for r in log.read()] == [0, 1, 2]


def test_kill_between_file_and_manifest_update_keeps_them_consistent(tmp_path):
    """An artifact rewritten with different bytes (a retried stage's new output), killed after the file's rename
    and before the manifest's: the next read of the manifest lists the new bytes, and says so on disk too."""
    script = textwrap.dedent("""
        import os, signal, sys
        from clipper.store.local import ArtifactStore
        store = ArtifactStore(sys.argv[1])
        store.put_bytes("job", "quotes.json", b'{"v": 1}', "quotes")
        store._list = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies right after the rename
        store.put_bytes("job", "quotes.json", b'{"v": 2}', "quotes")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL
    store = ArtifactStore(tmp_path)
    assert store.path("job", "quotes.json").read_bytes() == b'{"v": 2}'
    stale = Manifest.model_validate_json((store.job_dir("job") / "manifest.json").read_bytes())
    assert stale.artifacts["quotes.json"].sha256 != sha256_file(store.path("job", "quotes.json"))  # the crash
    manifest = store.read_manifest("job")
    for ref in manifest.artifacts.values():
        store.verify("job", ref)
    on_disk = Manifest.model_validate_json((store.job_dir("job") / "manifest.json").read_bytes())
    assert on_disk.artifacts == manifest.artifacts
    assert not any((store.job_dir("job") / PENDING).iterdir())


def test_a_replacement_that_never_happened_leaves_the_manifest_as_it_was(tmp_path):
    """Killed after the pending note and before the rename: the old file is still there and still listed."""
    store = ArtifactStore(tmp_path)
    old = store.put_bytes("job", "chunks/transcript-0.json", b'{"v": 1}', "transcribe")
    new = old.model_copy(update={"sha256": hashlib.sha256(b'{"v": 2}').hexdigest()})
    note = store.job_dir("job") / PENDING / "chunks%2Ftranscript-0.json.json"
    note.write_text(new.model_dump_json())  # what the killed writer left
    assert store.read_manifest("job").artifacts == {old.name: old}
    store.verify("job", old)
    assert not note.exists()


def test_reading_a_job_that_is_not_there_leaves_no_folder(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.read_manifest("clip-nope").artifacts == {}
    assert store.valid_ref("clip-nope", "report.md") is None
    assert not store.path("clip-nope", "speakers.json").exists()
    assert not (tmp_path / "jobs" / "clip-nope").exists()


def test_showing_a_job_the_store_does_not_have_is_job_not_found(tmp_path):
    from clipper.config import Settings
    from clipper_app.client import JobNotFound
    from clipper_app.client.files import JobFiles

    files = JobFiles(Settings(storage_dir=tmp_path))
    with pytest.raises(JobNotFound, match="clip-nope"):
        files.report_markdown("clip-nope")
    assert not (tmp_path / "jobs" / "clip-nope").exists()

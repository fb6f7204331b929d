"""Deleting a job from the local store: everything of it goes (artifacts, kept versions, receipts, scratch), nothing
else does, and an id that would lead out of `jobs/` is refused before anything is touched."""

from __future__ import annotations

import pytest

from clipper.errors import InvalidRequest
from clipper.job.versions import archive, list_versions
from clipper.store.local import DELETING, ArtifactStore


def filled(store: ArtifactStore, job_id: str) -> None:
    store.put_text(job_id, "report.md", "# report", "report")
    store.put_bytes(job_id, "clips/01.mp3", b"\x00" * 64, "clips")
    store.put_receipt(job_id, "report", b"{}")
    (store.scratch_dir(job_id) / "part.bin").write_bytes(b"x")
    assert archive(store, job_id, "report", ["report.md"], "test", None, keep=3) is not None


def test_delete_removes_everything_of_the_job_and_nothing_else(tmp_path):
    store = ArtifactStore(tmp_path)
    filled(store, "job-a")
    filled(store, "job-ab")  # the first id is a prefix of this one
    assert list_versions(store, "job-a")
    files = sum(1 for p in (tmp_path / "jobs" / "job-a").rglob("*") if p.is_file())

    assert store.delete_job("job-a") == files
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["job-ab"]
    assert store.read_manifest("job-a").artifacts == {} and list_versions(store, "job-a") == []
    assert not (tmp_path / "jobs" / "job-a").exists()  # reading it back created nothing
    assert store.read_manifest("job-ab").artifacts and list_versions(store, "job-ab")
    assert store.delete_job("job-a") == 0  # nothing left: nothing removed, no error


@pytest.mark.parametrize("job_id", ["", "..", ".", "../outside", "a/b", ".hidden", "/etc"])
def test_an_id_leading_out_of_the_jobs_folder_is_refused(tmp_path, job_id):
    store = ArtifactStore(tmp_path / "store")
    filled(store, "job-a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("keep")
    with pytest.raises(InvalidRequest):
        store.delete_job(job_id)
    assert (tmp_path / "outside" / "keep.txt").is_file() and (tmp_path / "store" / "jobs" / "job-a").is_dir()


def test_a_linked_job_folder_loses_the_link_not_its_target(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    (tmp_path / "store" / "jobs").mkdir(parents=True)
    (tmp_path / "store" / "jobs" / "job-l").symlink_to(target)
    store.delete_job("job-l")
    assert not (tmp_path / "store" / "jobs" / "job-l").exists() and (target / "keep.txt").is_file()


def test_what_an_interrupted_delete_left_goes_with_the_next(tmp_path):
    store = ArtifactStore(tmp_path)
    filled(store, "job-a")
    filled(store, "job-b")
    left = tmp_path / "jobs" / f"{DELETING}job-a.1234abcd"
    (tmp_path / "jobs" / "job-a").rename(left)  # as a delete killed between its rename and its removal leaves it
    store.delete_job("job-a")
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["job-b"]

"""Putting a checked archive (clipper/store/archive.py) into a deployment's store as a job, all or nothing.

`ImportClaim` holds the job's folder while an import writes it: a marker file `.importing` in the folder,
locked (flock) for as long as the import runs. It decides three things:

- a folder that holds files without a marker is another job's: `JobExists`, and nothing in it is touched;
- a marker whose lock another process holds is an import running now: `JobExists`;
- a marker nobody holds is what an import killed mid-way left: its files are discarded and this import
  starts over, so an interrupted import never blocks the next one.

`discard` removes everything of the job (the folder; in an S3 store also every object under the job's prefix,
those first, so that a failure there leaves the marker for the next import to find). Only ever called on a job
this import claimed. The lock is this host's: two hosts importing the same job into one S3 bucket at the same
moment are not told apart (the Temporal start still lets only one register it).
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path
from typing import IO

import structlog

from clipper.errors import ArchiveInvalid, JobExists
from clipper.store.archive import IMPORTED_HISTORY, IMPORTED_INFO, Archive
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef

MARKER = ".importing"
IMPORT_STAGE = "import"  # the stage recorded for the files an import writes for itself
STAGING = ".imports"  # <store root>/.imports/<id>/: an archive's artifacts extracted, on the store's filesystem


def staging_dir(store: ArtifactStore, name: str) -> Path:
    """Where an archive is extracted before its files are moved into the job's folder: beside `jobs/`, on the same
    filesystem, so that moving them is a rename."""
    return store.root / STAGING / name


class ImportClaim:
    def __init__(self, store: ArtifactStore, job_id: str) -> None:
        self.store, self.job_id = store, job_id
        self.folder = store.job_dir(job_id)  # created if new; the job id is checked there
        marker = self.folder / MARKER
        stale = marker.exists()
        self._lock: IO[str] | None = open(marker, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._close()
            raise JobExists(f"{job_id} is being imported by another process right now") from None
        if stale:
            structlog.get_logger().warning("import.leftover_discarded", job_id=job_id)
            self._discard_files()
            return
        others = [p.name for p in self.folder.iterdir() if p.name != MARKER]
        if others or store.read_manifest(job_id).artifacts:
            self._close(remove_marker=True)
            raise JobExists(f"{job_id} has files in this deployment's store ({store.uri(job_id)}) but no workflow: "
                            "remove them if they are left over, then import again")

    def store_archive(self, archive: Archive) -> ArtifactRef:
        """Move the archive's artifacts into the job's folder through the store (an S3 store uploads them), then
        the archived history and export info as `export/…`. Returns the history's reference."""
        for name in sorted(archive.manifest.artifacts):
            ref = archive.manifest.artifacts[name]
            stored = self.store.put_file(self.job_id, name, archive.files[name], ref.stage, ref.content_type)
            if (stored.sha256, stored.size) != (ref.sha256, ref.size):
                raise ArchiveInvalid(f"{name} changed after the archive was checked; import again")
        self.store.put_bytes(self.job_id, IMPORTED_INFO, archive.info_json, IMPORT_STAGE, "application/json")
        return self.store.put_bytes(self.job_id, IMPORTED_HISTORY, archive.history, IMPORT_STAGE, "application/json")

    def done(self) -> None:
        """The job is registered: it is an ordinary job from now on."""
        self._close(remove_marker=True)

    def discard(self) -> None:
        """Remove everything this import wrote (the import failed), then let go of the claim."""
        try:
            self._discard_files(everything=True)
        except Exception as err:  # noqa: BLE001 - the import's own error is the one to report
            # The marker stays with what is left: the next import of the job discards it.
            structlog.get_logger().warning("import.discard_failed", job_id=self.job_id, error=str(err))
        finally:
            self._close()

    def _discard_files(self, everything: bool = False) -> None:
        self.store.drop_shared(self.job_id)
        for entry in self.folder.iterdir():
            if entry.name == MARKER:
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink(missing_ok=True)
        if everything:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _close(self, remove_marker: bool = False) -> None:
        if remove_marker:
            (self.folder / MARKER).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        if remove_marker:
            try:
                self.folder.rmdir()  # only if empty: a refused claim leaves no folder it created
            except OSError:
                pass


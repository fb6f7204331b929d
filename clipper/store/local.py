"""Artifact store: one folder per job plus `manifest.json` listing every artifact with its sha256.

Writes are atomic (clipper/store/files.py: temp file beside it, fsync, rename, fsync the folder), so a crash at any moment
leaves either the old file or the new one, never half of one. The manifest is updated under a file lock,
because several activities of one job may finish at once. Replacing an artifact is two renames (the file,
then the manifest): a note in `.pending/` written before the first and removed after the second lets the next
reader of the manifest settle a crash in between, so the manifest never vouches for bytes that are gone.

This is the store of one host (or of hosts sharing a POSIX filesystem). `open_store` returns the S3-compatible
store of clipper/store/s3.py instead when `CLIPPER_STORAGE_URL` is set; it keeps this folder as its cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from typing import TypeVar

import structlog
from pydantic import BaseModel, Field, ValidationError

from clipper.errors import CorruptArtifact, InvalidRequest
from clipper.store.files import (
    atomic_write_bytes, fsync_dir, is_temp_file, sha256_file, temp_path, write_synced, writing,
)
from clipper.store.refs import ArtifactRef

M = TypeVar("M", bound=BaseModel)
MANIFEST = "manifest.json"
TMP_DIR = ".tmp"
PENDING = ".pending"  # <job>/.pending/<quoted name>.json: the ref of an artifact being put in place
RECEIPTS = ".receipts"  # <job>/.receipts/<name>.json: what a finished stage attempt returned (activities/runtime.py)
DELETING = ".deleting-"  # jobs/.deleting-<job>.<random>/: a job's folder being deleted (`delete_job`), no job's id


class Manifest(BaseModel):
    job_id: str
    updated_at: datetime | None = None
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- paths ---

    def job_dir(self, job_id: str) -> Path:
        path = self._job_path(job_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _job_path(self, job_id: str) -> Path:
        """The job's folder, not created: readers of a job that may not exist leave no empty folder behind."""
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise InvalidRequest(f"invalid job id {job_id!r}")
        return self.root / "jobs" / job_id

    def uri(self, job_id: str, name: str = "") -> str:
        """Where people find the job's files (or one artifact): a path here, an s3:// URI in the S3 store."""
        path = self._job_path(job_id) / name if name else self._job_path(job_id)
        return str(path.resolve())

    def job_ids(self) -> list[str]:
        """Every job (and batch) folder the store has, by id (`clipper reindex` walks them)."""
        jobs = self.root / "jobs"
        return sorted(p.name for p in jobs.iterdir() if p.is_dir() and not p.name.startswith(".")) if jobs.is_dir() else []

    def check(self) -> None:
        """Raise a typed error if the store cannot be used. A local folder is checked by its first write."""

    def path(self, job_id: str, name: str) -> Path:
        """Where an artifact is (or goes). Not created: a read leaves no folder behind; writes make their parents."""
        job_dir = self._job_path(job_id)
        path = (job_dir / name).resolve()
        if job_dir.resolve() not in path.parents:
            raise InvalidRequest(f"artifact name {name!r} escapes the job folder")
        return path

    def scratch_dir(self, job_id: str) -> Path:
        """A folder for work in progress; files there are not artifacts until `put_file` moves them."""
        path = self.job_dir(job_id) / TMP_DIR
        path.mkdir(exist_ok=True)
        return path

    def discard_scratch(self, job_id: str, prefix: str = "") -> None:
        scratch = self.job_dir(job_id) / TMP_DIR
        if not scratch.exists():
            return
        for entry in scratch.iterdir():
            if entry.name.startswith(prefix):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)

    def discard_temporary(self, job_id: str) -> int:
        """Remove everything temporary from the job's folder: the scratch folder (`.tmp/`: partial downloads
        and transcripts, half-cut clips) and every temp file (`is_temp_file`) that a writer killed between its
        write and its rename left beside an artifact. Returns how many files went.

        Only for a job none of whose stages runs any more (the end of its last stage, the clean-up after a
        cancel): a temp file is then a dead writer's. Mid-job, a live writer's temp file looks the same, and a
        retry's resume points live in `.tmp/`.
        """
        job_dir = self._job_path(job_id)
        if not job_dir.exists():
            return 0
        scratch, removed = job_dir / TMP_DIR, 0
        if scratch.exists():
            removed = sum(1 for p in scratch.rglob("*") if not p.is_dir())
            shutil.rmtree(scratch)
        for path in job_dir.rglob("*"):
            if is_temp_file(path) and not path.is_dir():
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # --- writes ---

    def put_bytes(
        self, job_id: str, name: str, data: bytes, stage: str, content_type: str | None = None
    ) -> ArtifactRef:
        path = self.path(job_id, name)
        tmp = temp_path(path)
        try:
            write_synced(tmp, data, name)
            ref = ArtifactRef(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), stage=stage,
                              created_at=now_utc(), content_type=content_type)
            self._install(job_id, tmp, ref)
        finally:
            tmp.unlink(missing_ok=True)
        return ref

    def put_text(self, job_id: str, name: str, text: str, stage: str, content_type: str = "text/plain") -> ArtifactRef:
        return self.put_bytes(job_id, name, text.encode("utf-8"), stage, content_type)

    def put_model(self, job_id: str, name: str, model: BaseModel, stage: str) -> ArtifactRef:
        return self.put_bytes(job_id, name, model.model_dump_json(indent=2).encode(), stage, "application/json")

    def put_file(
        self, job_id: str, name: str, src: Path, stage: str, content_type: str | None = None
    ) -> ArtifactRef:
        """Move a finished file (written anywhere on the same filesystem) into place as an artifact."""
        path = self.path(job_id, name)
        with writing(name):  # fsync is where some filesystems (NFS) first report a full disk
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as f:
                os.fsync(f.fileno())
            digest, size = sha256_file(src), src.stat().st_size
        ref = ArtifactRef(
            name=name, sha256=digest, size=size, stage=stage, created_at=now_utc(), content_type=content_type
        )
        self._install(job_id, src, ref)
        return ref

    def _install(self, job_id: str, src: Path, ref: ArtifactRef) -> None:
        """Rename `src` (fsynced) into place as artifact `ref` and list it in the manifest, under the job's
        lock so that no reader settles the pending note of a replacement still in progress."""
        path, note = self.path(job_id, ref.name), self._pending_path(job_id, ref.name)
        with self._locked(job_id):
            if self._has_notes(job_id):  # left by writers killed in the middle of a replacement
                self._settle(job_id)
            atomic_write_bytes(note, ref.model_dump_json().encode())
            with writing(ref.name):
                os.replace(src, path)
                fsync_dir(path.parent)
            self._list(job_id, ref)
            note.unlink(missing_ok=True)
        self._published(job_id, ref)

    # --- reads ---

    def verify(self, job_id: str, ref: ArtifactRef) -> Path:
        """Return the artifact's path after checking its sha256; raise `CorruptArtifact` if it changed."""
        path = self.path(job_id, ref.name)
        if not path.exists():
            raise CorruptArtifact(f"artifact {ref.name} is missing", artifact=ref.name, stage=ref.stage)
        if path.stat().st_size != ref.size or sha256_file(path) != ref.sha256:
            raise CorruptArtifact(
                f"artifact {ref.name} does not match its sha256 in the manifest", artifact=ref.name, stage=ref.stage
            )
        return path

    def local_copy(self, job_id: str, name: str) -> Path | None:
        """A readable file of artifact `name` on this host (e.g. for `clipper show`), or None if there is none."""
        path = self._job_path(job_id) / name
        return path if path.is_file() else None

    def read_model(self, job_id: str, ref: ArtifactRef, model: type[M]) -> M:
        """Verify an input artifact's checksum, then parse it: a stage never works from a corrupt input."""
        return model.model_validate_json(self.verify(job_id, ref).read_bytes())

    def valid_ref(self, job_id: str, name: str) -> ArtifactRef | None:
        """The manifest's entry for `name` if the file is there and still matches it, else None."""
        ref = self.read_manifest(job_id).artifacts.get(name)
        if ref is None:
            return None
        try:
            self.verify(job_id, ref)
        except CorruptArtifact:
            return None
        return ref

    def read_manifest(self, job_id: str) -> Manifest:
        if self._has_notes(job_id):
            with self._locked(job_id):
                return self._settle(job_id)
        return self._load_manifest(job_id)

    def _load_manifest(self, job_id: str) -> Manifest:
        path = self._job_path(job_id) / MANIFEST
        if not path.exists():
            return Manifest(job_id=job_id)
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError):
            # Atomic writes make this unlikely (disk error, hand edit): rebuild it from what we can vouch for.
            return self.rebuild_manifest(job_id)

    def rebuild_manifest(self, job_id: str) -> Manifest:
        """Rebuild a corrupt or schema-invalid manifest from the stages' receipts and the files themselves.

        Every receipt lists the artifacts its stage produced with their sha256; an artifact is put back only
        if its file is there and still matches. Whatever can't be vouched for is left out, so the stage that
        produced it runs again.
        """
        manifest = Manifest(job_id=job_id)
        for receipt in sorted((self._job_path(job_id) / RECEIPTS).glob("*.json")):
            try:
                output = json.loads(receipt.read_bytes()).get("output", {})
            except (OSError, ValueError, AttributeError):
                continue
            for ref in _artifact_refs(output):
                current = manifest.artifacts.get(ref.name)
                if (current is None or ref.created_at > current.created_at) and self._matches(job_id, ref):
                    manifest.artifacts[ref.name] = ref
        # No lock here: read_manifest may run inside the job's lock. The rename is atomic either way.
        self._write_manifest(job_id, manifest)
        structlog.get_logger().warning("manifest.rebuilt", job_id=job_id, artifacts=len(manifest.artifacts))
        return manifest

    def _matches(self, job_id: str, ref: ArtifactRef) -> bool:
        try:
            self.verify(job_id, ref)
        except (CorruptArtifact, InvalidRequest):
            return False
        return True

    # --- removal: for retention (clipper/job/versions.py) and deleting a job; stages never remove, they replace ---

    def remove(self, job_id: str, names: list[str]) -> None:
        """Drop artifacts: out of the manifest first, then the files, so the manifest never vouches for bytes
        that are gone (a crash in between leaves unlisted files, which nothing reads)."""
        with self._locked(job_id):
            manifest = self._settle(job_id) if self._has_notes(job_id) else self._load_manifest(job_id)
            dropped = [name for name in names if manifest.artifacts.pop(name, None) is not None]
            if dropped:
                self._write_manifest(job_id, manifest)
        self._discard_files(job_id, names)

    def drop_shared(self, job_id: str) -> int:
        """Remove the job from the store other hosts share (how many objects went); nothing here, where the job's
        folder is the store."""
        return 0

    def delete_job(self, job_id: str) -> int:
        """Remove everything the job left: in a shared store its objects first (`drop_shared`), then its folder here,
        versions, receipts and scratch included. Returns how many files went (0: the store has nothing of it).

        The folder is first renamed out of the way (atomic), so a delete cut short never leaves a half-emptied folder
        that still reads as the job; the next delete of the job clears what an interrupted one left."""
        removed = self.drop_shared(job_id)
        folder = self._job_path(job_id)  # InvalidRequest for an id that would lead out of `jobs/`
        for left in folder.parent.glob(f"{DELETING}{glob.escape(job_id)}.*"):
            shutil.rmtree(left, ignore_errors=True)
        if folder.is_symlink():  # the link goes, never what it points at
            folder.unlink()
            return removed
        if not folder.is_dir():
            return removed
        trash = folder.with_name(f"{DELETING}{job_id}.{uuid.uuid4().hex[:8]}")
        os.replace(folder, trash)
        fsync_dir(folder.parent)
        removed += sum(1 for p in trash.rglob("*") if not p.is_dir())
        shutil.rmtree(trash)
        return removed

    def _discard_files(self, job_id: str, names: list[str]) -> None:
        """Delete this host's copies of `names`, and the folders that leaves empty (e.g. `versions/3/`)."""
        job_dir = self.job_dir(job_id).resolve()
        for name in names:
            path = self.path(job_id, name)
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != job_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    # --- receipts: small records of finished work, next to the artifacts and shared like them ---

    def put_receipt(self, job_id: str, name: str, data: bytes) -> None:
        atomic_write_bytes(self._receipt_path(job_id, name), data)

    def read_receipt(self, job_id: str, name: str) -> bytes | None:
        try:
            return self._receipt_path(job_id, name).read_bytes()
        except FileNotFoundError:
            return None

    def _receipt_path(self, job_id: str, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise InvalidRequest(f"invalid receipt name {name!r}")
        return self._job_path(job_id) / RECEIPTS / f"{name}.json"

    # --- manifest ---

    @contextlib.contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        lock_path = self.job_dir(job_id) / ".manifest.lock"
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _list(self, job_id: str, ref: ArtifactRef) -> None:
        """Put `ref` in the manifest (the job's lock held)."""
        manifest = self._load_manifest(job_id)
        manifest.artifacts[ref.name] = ref
        self._write_manifest(job_id, manifest)

    def _write_manifest(self, job_id: str, manifest: Manifest) -> None:
        manifest.updated_at = now_utc()
        atomic_write_bytes(self.job_dir(job_id) / MANIFEST, manifest.model_dump_json(indent=2).encode())

    def _published(self, job_id: str, ref: ArtifactRef) -> None:
        """After an artifact is in place and listed: nothing more for a local store (S3: the upload)."""

    def _pending_path(self, job_id: str, name: str) -> Path:
        return self._job_path(job_id) / PENDING / f"{urllib.parse.quote(name, safe='')}.json"

    def _has_notes(self, job_id: str) -> bool:
        return any((self._job_path(job_id) / PENDING).glob("*.json"))

    def _settle(self, job_id: str) -> Manifest:
        """After a crash between an artifact's rename and its manifest update (the job's lock held): list the
        file if it is the pending new version; if the rename never happened, the manifest is right as it is."""
        notes = sorted((self.job_dir(job_id) / PENDING).glob("*.json"))
        manifest = self._load_manifest(job_id)
        changed = False
        for note in notes:
            try:
                ref: ArtifactRef | None = ArtifactRef.model_validate_json(note.read_bytes())
            except (OSError, ValidationError, ValueError):
                ref = None
            if ref is not None and manifest.artifacts.get(ref.name) != ref and self._matches(job_id, ref):
                manifest.artifacts[ref.name] = ref
                changed = True
                structlog.get_logger().warning("manifest.settled", job_id=job_id, artifact=ref.name)
            note.unlink(missing_ok=True)
        if changed:
            self._write_manifest(job_id, manifest)
        return manifest


def _artifact_refs(value: object) -> Iterator[ArtifactRef]:
    """Every ArtifactRef-shaped dict inside a stage output (a receipt's `output`)."""
    if isinstance(value, dict):
        if {"name", "sha256", "size", "stage", "created_at"} <= set(value):
            try:
                yield ArtifactRef.model_validate(value)
            except ValidationError:
                pass
            return
        for item in value.values():
            yield from _artifact_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _artifact_refs(item)

"""Artifact versions: what a stage produced before it ran again, kept under a number instead of overwritten.

A stage runs again after a manual retry with changed options, a rebuild after a corrupt input, or speakers
being named (their outputs are rendered again). Each of those replaces files; just before it does, the current
files are copied to `versions/<N>/<their name>` (N = 1, 2, … per job) with an index, `versions/<N>/version.json`
(an `ArtifactVersion`: the stage, why, the options that produced the files, when). They are ordinary artifacts:
in the manifest with their sha256, checked on every read, stored by the local and the S3 store alike, exported
with the job. The index is written last, so a version without one is the leftover of an archive killed midway:
nobody lists it, and `prune` removes it once a newer version is complete.

What is kept: only files that still match their sha256 (a corrupt file is what is being rebuilt, not a
result), and nothing when the latest version of the same stage already holds the same bytes. On a local store
a copy is a hard link when the filesystem allows: every writer replaces a file (rename), never rewrites it,
so the version keeps the old bytes at no cost in space. `CLIPPER_KEEP_VERSIONS` bounds how many are kept.

Numbers are handed out under a lock file in the job's folder, so archives of one job on one host (stages side
by side, a naming during a stage) never take the same number. Workers on several hosts sharing an S3 store do
not share that lock; two stages of one job re-run at the same moment on two hosts could collide (rare: the
stages of one job run in sequence).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, Field

from clipper.errors import CorruptArtifact, VersionNotFound
from clipper.job.stages import STAGES
from clipper.store.files import temp_path
from clipper.store.local import ArtifactStore, _artifact_refs, now_utc
from clipper.store.refs import ArtifactRef

VERSIONS = "versions/"
INDEX = "version.json"
_VERSIONED = re.compile(r"^versions/(\d+)/(.+)$")
LOCK = ".versions.lock"


class ArtifactVersion(BaseModel):
    """One kept set of a stage's earlier outputs (`versions/<number>/version.json`)."""

    number: int
    stage: str  # the stage that ran again ("names": the outputs rendered again with speakers' names)
    reason: str  # "rerun", "speaker names"
    options: dict[str, Any] = Field(default_factory=dict)  # the JobOptions that produced the files, as recorded
    created_at: datetime  # when the version was cut
    produced_at: datetime | None = None  # when the kept outputs were written (the newest of them)
    artifacts: list[ArtifactRef] = Field(default_factory=list)  # under their versioned names, with sha256

    def original(self, ref: ArtifactRef) -> str:
        """The name the file had when it was current (`versions/3/report.md` → `report.md`)."""
        return ref.name.removeprefix(versioned_name(self.number, ""))

    def file(self, name: str) -> ArtifactRef | None:
        return next((ref for ref in self.artifacts if self.original(ref) == name), None)

    @property
    def size(self) -> int:
        return sum(ref.size for ref in self.artifacts)


def versioned_name(number: int, name: str) -> str:
    return f"{VERSIONS}{number}/{name}"


def version_number(name: str) -> int | None:
    """N for an artifact under `versions/N/`, else None (a current output)."""
    match = _VERSIONED.match(name)
    return int(match.group(1)) if match else None


# --- cutting a version ---


def archive(store: ArtifactStore, job_id: str, stage: str, names: list[str], reason: str,
            options: dict[str, Any] | None, keep: int) -> ArtifactVersion | None:
    """Copy the current artifacts `names` (those still valid) into the job's next version, then apply the
    retention `keep`. None: nothing to keep (no valid file, the same bytes as the stage's latest version, or
    `keep` is 0)."""
    log = structlog.get_logger().bind(job_id=job_id, stage=stage)
    if keep <= 0:
        prune(store, job_id, 0)
        return None
    with _numbering(store, job_id):
        manifest = store.read_manifest(job_id).artifacts
        refs = [ref for name in names if (ref := manifest.get(name)) is not None and _intact(store, job_id, ref)]
        if not refs:
            return None
        latest = next((v for v in reversed(_indexed(store, job_id, manifest)) if v.stage == stage), None)
        kept = {(latest.original(r), r.sha256) for r in latest.artifacts} if latest else set()
        if {(r.name, r.sha256) for r in refs} <= kept:
            log.info("version.unchanged", version=latest.number if latest else None)
            return None
        number = 1 + max((n for name in manifest if (n := version_number(name)) is not None), default=0)
        version = ArtifactVersion(
            number=number, stage=stage, reason=reason, options=options or {}, created_at=now_utc(),
            produced_at=max(ref.created_at for ref in refs),
            artifacts=[_copy(store, job_id, ref, versioned_name(number, ref.name)) for ref in refs])
        store.put_model(job_id, versioned_name(number, INDEX), version, stage)  # last: the version is complete
        log.info("version.kept", version=number, reason=reason, files=len(refs), bytes=version.size)
        prune(store, job_id, keep)
    return version


def archive_rerun(store: ArtifactStore, job_id: str, stage: str, keep: int) -> ArtifactVersion | None:
    """Before a stage runs again (activities/runtime.py `run_stage`): keep what its last finished run produced.

    The stage's receipt says whether it finished before (no receipt: a first run, or only unfinished attempts
    whose partial files are not a result) and which options it ran with. Its outputs are the manifest's entries
    of that stage; one that the receipt lists with other bytes was rewritten since by an unfinished attempt of
    this run, and is left out."""
    raw = store.read_receipt(job_id, stage)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = {}
    record = record if isinstance(record, dict) else {}
    recorded = {ref.name: ref.sha256 for ref in _artifact_refs(record.get("output"))}
    names = [name for name, ref in store.read_manifest(job_id).artifacts.items()
             if ref.stage == stage and version_number(name) is None and recorded.get(name, ref.sha256) == ref.sha256]
    options = record.get("options") if isinstance(record.get("options"), dict) else job_options(store, job_id)
    return archive(store, job_id, stage, names, "rerun", options, keep)


def job_options(store: ArtifactStore, job_id: str) -> dict[str, Any]:
    """The job options recorded by its latest stage that takes options (report and names take none)."""
    for stage in reversed(STAGES):
        raw = store.read_receipt(job_id, stage)
        try:
            options = json.loads(raw).get("options") if raw else None
        except (ValueError, AttributeError):
            options = None
        if isinstance(options, dict):
            return options
    return {}


def _intact(store: ArtifactStore, job_id: str, ref: ArtifactRef) -> bool:
    try:
        store.verify(job_id, ref)
    except CorruptArtifact as err:
        structlog.get_logger().warning("version.skipped_corrupt", job_id=job_id, artifact=ref.name, error=err.message)
        return False
    return True


def _copy(store: ArtifactStore, job_id: str, ref: ArtifactRef, name: str) -> ArtifactRef:
    source = store.verify(job_id, ref)  # checked again: the bytes kept are the bytes the manifest vouched for
    tmp = temp_path(store.path(job_id, name))
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (another filesystem, FAT, some network mounts): a real copy
            shutil.copyfile(source, tmp)
        return store.put_file(job_id, name, tmp, ref.stage, ref.content_type)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _numbering(store: ArtifactStore, job_id: str) -> Iterator[None]:
    with open(store.job_dir(job_id) / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- reading ---


def _indexed(store: ArtifactStore, job_id: str, manifest: dict[str, ArtifactRef]) -> list[ArtifactVersion]:
    versions = []
    for name, ref in manifest.items():
        number = version_number(name)
        if number is None or name != versioned_name(number, INDEX):
            continue
        try:
            versions.append(store.read_model(job_id, ref, ArtifactVersion))
        except CorruptArtifact as err:  # listed without it; its files stay until retention drops them
            structlog.get_logger().warning("version.unreadable", job_id=job_id, version=number, error=err.message)
    return sorted(versions, key=lambda v: v.number)


def list_versions(store: ArtifactStore, job_id: str) -> list[ArtifactVersion]:
    """The job's complete versions, oldest first."""
    return _indexed(store, job_id, store.read_manifest(job_id).artifacts)


def read_version(store: ArtifactStore, job_id: str, number: int) -> ArtifactVersion:
    versions = list_versions(store, job_id)
    found = next((v for v in versions if v.number == number), None)
    if found is None:
        raise VersionNotFound(f"job {job_id} has no version {number}; {_which(versions)}")
    return found


def version_file(store: ArtifactStore, job_id: str, number: int, name: str) -> ArtifactRef:
    """The ref of `name` as version `number` kept it (e.g. report.md), checked against its sha256 (the file is
    then at `store.path(job_id, ref.name)`)."""
    versions = list_versions(store, job_id)
    version = next((v for v in versions if v.number == number), None)
    if version is None:
        raise VersionNotFound(f"job {job_id} has no version {number}; {_which(versions)}")
    ref = version.file(name)
    if ref is None:
        having = [str(v.number) for v in versions if v.file(name)]
        raise VersionNotFound(
            f"version {number} of {job_id} (stage {version.stage}) has no {name}; "
            + (f"versions with one: {', '.join(having)}" if having else "no version of this job has one")
            + " (clipper versions JOB lists them)")
    store.verify(job_id, ref)
    return ref


def _which(versions: list[ArtifactVersion]) -> str:
    if not versions:
        return "it has none (a version is kept when a stage runs again: a retry, a rebuild, speakers named)"
    return f"its versions: {', '.join(str(v.number) for v in versions)} (clipper versions JOB lists them)"


# --- retention ---


def prune(store: ArtifactStore, job_id: str, keep: int) -> list[int]:
    """Drop the oldest versions beyond the newest `keep` (0: all), and the leftovers of archives killed before
    their index was written that are older than the newest complete version. Returns the numbers dropped."""
    manifest = store.read_manifest(job_id).artifacts
    numbered = {name: n for name in manifest if (n := version_number(name)) is not None}
    complete = sorted({n for name, n in numbered.items() if name == versioned_name(n, INDEX)})
    kept = set(complete[-keep:]) if keep > 0 else set()
    newest = complete[-1] if complete else 0
    dropped = sorted({n for n in numbered.values() if n not in kept and (n in complete or n < newest)})
    if dropped:
        # The indexes first: a crash in between leaves files that the next prune recognises as leftovers.
        for names in ([versioned_name(n, INDEX) for n in dropped if n in complete],
                      [name for name, n in numbered.items() if n in dropped and name != versioned_name(n, INDEX)]):
            if names:
                store.remove(job_id, names)
        structlog.get_logger().info("version.pruned", job_id=job_id, versions=dropped, keep=keep)
    return dropped

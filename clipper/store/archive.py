"""A finished job as one self-contained tar (`clipper export`), and the checks that decide whether a tar may be
imported (`clipper import`). Temporal-free: clipper_app/client/transfer.py fetches the history and result, and registers
the imported job; clipper/store/import_claim.py puts a checked archive into a store.

Layout, format 1, members in this order:

    clipper-export.json   `ExportInfo`: format, job id, when, the JobRequest, the final JobStatus and JobResult,
                          and where the job ran (namespace, Temporal address, task queue, store; no credentials)
    history.json          the job's event history (`WorkflowHistory.to_json()`): its audit log, wherever it goes
    manifest.json         the job's manifest: every artifact with its sha256, size, stage and time
    artifacts/<name>      every artifact the manifest lists (older versions are ordinary names, `versions/<N>/…`)
    SHA256SUMS            `<sha256>  <member>` for every other member, written last: `sha256sum -c SHA256SUMS`
                          checks an extracted copy with no clipper at hand

Why the import is this strict: an archive crosses machines and people, and what it holds becomes a job that
everything trusts (its files are served, rendered and exported again). So every member must be listed in
SHA256SUMS and match it, every artifact must also match the manifest's sha256 and size, nothing else may be in
the tar, and no name may leave the extraction folder (absolute, `..`) or be a link or device. A tar truncated at a
member boundary reads as a shorter valid tar: SHA256SUMS, the last member, is then missing or names members that
are. The checksums catch damage and edits, not a forger who rewrites SHA256SUMS too: sign the tar, or move it
over a channel you trust, when that matters (docs/backup.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pydantic import BaseModel, ValidationError

from clipper.errors import ArchiveInvalid, CorruptArtifact, InvalidRequest
from clipper.job.request import JobRequest, JobResult
from clipper.job.status import JobState, JobStatus
from clipper.store.files import fsync_dir, temp_path, writing
from clipper.store.local import ArtifactStore, Manifest
from clipper.store.refs import ArtifactRef

FORMAT = 1
EXPORT_INFO, HISTORY, MANIFEST, SUMS = "clipper-export.json", "history.json", "manifest.json", "SHA256SUMS"
ARTIFACTS = "artifacts/"
METADATA = (EXPORT_INFO, HISTORY, MANIFEST, SUMS)
METADATA_MAX = 256 * 1024**2  # bytes of one metadata member read into memory: a bomb is refused, not swallowed
# Artifact names an import writes for itself in the job's folder (the archived history, where it came from):
# never exported as artifacts, so an imported job exported again carries its original run, not two copies.
RESERVED = "export/"
IMPORTED_HISTORY, IMPORTED_INFO = RESERVED + "history.json", RESERVED + EXPORT_INFO
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


class ExportSource(BaseModel):
    """Where an exported job ran. Addresses only: no credentials (API keys, S3 keys) ever enter an archive."""

    namespace: str
    address: str
    task_queue: str
    store: str  # the job's folder or s3:// prefix there


class ExportInfo(BaseModel):
    """clipper-export.json."""

    format: int = FORMAT
    job_id: str
    exported_at: datetime
    request: JobRequest
    status: JobStatus
    result: JobResult
    source: ExportSource


class ImportedJobInput(BaseModel):
    """Input of the `ImportedJob` workflow (workflows/imported_job.py): the job as it ended elsewhere, and the
    reference of its archived history in this deployment's store (`export/history.json`)."""

    job_id: str
    request: JobRequest
    result: JobResult
    history: ArtifactRef
    source: ExportSource
    exported_at: datetime


class ArchiveSummary(BaseModel):
    """What `export_job` wrote or `import_job` stored: the CLI prints it."""

    job_id: str
    path: str
    artifacts: int
    size: int  # bytes of the artifacts
    source: ExportSource
    exported_at: datetime


def exportable(manifest: Manifest) -> Manifest:
    """The manifest an archive carries: every artifact but an earlier import's own files (`export/…`)."""
    kept = {name: ref for name, ref in manifest.artifacts.items() if not name.startswith(RESERVED)}
    return Manifest(job_id=manifest.job_id, updated_at=manifest.updated_at, artifacts=kept)


# --- writing ---


class _Hashing:
    """A file read through by tarfile while its sha256 is taken: the bytes archived are the bytes checked."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.digest = f, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.digest.update(data)
        return data


def write_archive(out: Path, info: ExportInfo, history: bytes, store: ArtifactStore, manifest: Manifest) -> int:
    """Write the archive to `out` atomically (temp file beside it, fsync, rename): a crash or a failure leaves the
    old file or none, never half a tar. Every artifact is checked against the manifest as it is archived (an S3
    store fetches it first). Returns the bytes of artifacts archived."""
    out = Path(out)
    if out.is_dir():
        raise InvalidRequest(f"{out} is a folder: give the archive's file name, e.g. -o {out / (info.job_id + '.tar')}")
    sums: list[tuple[str, str]] = []
    mtime = int(info.exported_at.timestamp())
    tmp, size = temp_path(out.absolute()), 0
    try:
        with writing(out.name):
            with open(tmp, "wb") as f:
                with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for name, data in ((EXPORT_INFO, info.model_dump_json(indent=2).encode()), (HISTORY, history),
                                       (MANIFEST, manifest.model_dump_json(indent=2).encode())):
                        sums.append((_add(tar, name, io.BytesIO(data), len(data), mtime), name))
                    for name in sorted(manifest.artifacts):
                        ref = manifest.artifacts[name]
                        with open(store.verify(info.job_id, ref), "rb") as src:
                            digest = _add(tar, ARTIFACTS + name, src, ref.size, mtime)
                        if digest != ref.sha256:
                            raise CorruptArtifact(f"artifact {name} of {info.job_id} changed while it was exported; "
                                                  "export again", artifact=name, stage=ref.stage)
                        sums.append((digest, ARTIFACTS + name))
                        size += ref.size
                    listing = "".join(f"{digest}  {name}\n" for digest, name in sums).encode()
                    _add(tar, SUMS, io.BytesIO(listing), len(listing), mtime)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
            fsync_dir(out.absolute().parent)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def _add(tar: tarfile.TarFile, name: str, src: IO[bytes], size: int, mtime: int) -> str:
    member = tarfile.TarInfo(name)
    member.size, member.mtime, member.mode = size, mtime, 0o644
    reader = _Hashing(src)
    try:
        tar.addfile(member, reader)
    except OSError as err:
        if str(err) != "unexpected end of data":
            raise
        raise CorruptArtifact(f"{name} became shorter while it was exported; export again") from None
    return reader.digest.hexdigest()


# --- reading and checking ---


@dataclass
class Archive:
    """A checked archive: its metadata in memory, its artifacts extracted (under flat names) into a folder."""

    info: ExportInfo
    info_json: bytes
    history: bytes
    manifest: Manifest
    files: dict[str, Path] = field(default_factory=dict)  # artifact name → extracted file

    @property
    def job_id(self) -> str:
        return self.info.job_id

    @property
    def size(self) -> int:
        return sum(ref.size for ref in self.manifest.artifacts.values())


def read_archive(path: Path, into: Path) -> Archive:
    """Check the archive at `path` and extract its artifacts into the folder `into` (one file per artifact, named
    by a counter: no member's name is ever a path here). `ArchiveInvalid` says what is wrong; `into` may then
    hold some extracted files, which the caller removes."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"no archive at {path}: give the file `clipper export` wrote")
    into.mkdir(parents=True, exist_ok=True)
    digests: dict[str, tuple[str, int]] = {}  # member → (sha256, size)
    metadata: dict[str, bytes] = {}
    files: dict[str, Path] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                name = _member_name(path, member)
                if name is None:
                    continue  # a folder entry (a re-packed copy): nothing to check
                if name in digests:
                    raise ArchiveInvalid(f"{path.name}: member {name} appears twice")
                src = tar.extractfile(member)
                assert src is not None  # a regular file, by _member_name
                if name.startswith(ARTIFACTS):
                    files[name.removeprefix(ARTIFACTS)] = dest = into / f"{len(files):06d}"
                    digest = _extract(src, dest)
                elif name in METADATA:
                    if member.size > METADATA_MAX:
                        raise ArchiveInvalid(f"{path.name}: {name} is {member.size} bytes, too large to be clipper's")
                    metadata[name] = data = src.read()
                    digest = hashlib.sha256(data).hexdigest()
                else:
                    raise ArchiveInvalid(f"{path.name}: unexpected member {name} (a clipper export holds "
                                         f"{', '.join(METADATA[:3])}, {ARTIFACTS}… and {SUMS} only)")
                digests[name] = (digest, member.size)
    except tarfile.TarError as err:  # not a tar, or cut in the middle of a member
        raise ArchiveInvalid(f"{path.name} is not a complete tar archive ({err}): truncated or damaged") from None
    _check_sums(path, digests, metadata)
    info = _parse(path, EXPORT_INFO, metadata[EXPORT_INFO], ExportInfo)
    manifest = _parse(path, MANIFEST, metadata[MANIFEST], Manifest)
    _check_job(path, info, manifest, metadata[HISTORY])
    for name, ref in sorted(manifest.artifacts.items()):
        if name not in files:
            raise ArchiveInvalid(f"{path.name} lacks {ARTIFACTS}{name}, which its manifest lists")
        digest, size = digests[ARTIFACTS + name]
        if (digest, size) != (ref.sha256, ref.size):
            raise ArchiveInvalid(f"{path.name}: {ARTIFACTS}{name} does not match the manifest's sha256 and size")
    extra = sorted(set(files) - set(manifest.artifacts))
    if extra:
        raise ArchiveInvalid(f"{path.name}: {ARTIFACTS}{extra[0]} is not in the manifest")
    return Archive(info=info, info_json=metadata[EXPORT_INFO], history=metadata[HISTORY], manifest=manifest,
                   files=files)


def _member_name(path: Path, member: tarfile.TarInfo) -> str | None:
    """The member's name if it is a safe regular file; None for a safe folder entry; else `ArchiveInvalid`."""
    pure = PurePosixPath(member.name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in member.name or not pure.parts:
        raise ArchiveInvalid(f"{path.name}: member {member.name!r} points outside the archive")
    if member.isdir():
        return None
    if not member.isfile():
        raise ArchiveInvalid(f"{path.name}: member {member.name!r} is a link or special file; an export has none")
    return "/".join(part for part in pure.parts if part != ".")


def _extract(src: IO[bytes], dest: Path) -> str:
    digest = hashlib.sha256()
    with writing(dest.name), open(dest, "wb") as out:
        while block := src.read(1 << 20):
            digest.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _check_sums(path: Path, digests: dict[str, tuple[str, int]], metadata: dict[str, bytes]) -> None:
    if SUMS not in metadata:
        raise ArchiveInvalid(f"{path.name} has no {SUMS}: it is truncated, or not a clipper export")
    listed: dict[str, str] = {}
    for line in metadata[SUMS].decode("utf-8", errors="replace").splitlines():
        match = _SUM_LINE.match(line)
        if match is None or match[2] in listed:
            raise ArchiveInvalid(f"{path.name}: {SUMS} has a malformed or repeated line {line[:120]!r}")
        listed[match[2]] = match[1]
    for name, (digest, _) in digests.items():
        if name == SUMS:
            continue
        if name not in listed:
            raise ArchiveInvalid(f"{path.name}: member {name} is not listed in {SUMS} (added after the export?)")
        if listed[name] != digest:
            raise ArchiveInvalid(f"{path.name}: {name} does not match its sha256 in {SUMS}: damaged or edited")
    missing = sorted(set(listed) - set(digests))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ArchiveInvalid(f"{path.name} lacks {missing[0]}{more}, listed in {SUMS}: truncated or incomplete")
    for name in METADATA:
        if name not in metadata:
            raise ArchiveInvalid(f"{path.name} has no {name}: not a clipper export")


def _parse(path: Path, name: str, data: bytes, model: type[BaseModel]) -> Any:
    try:
        raw = json.loads(data)
    except ValueError:
        raise ArchiveInvalid(f"{path.name}: {name} is not JSON") from None
    if name == EXPORT_INFO and isinstance(raw, dict) and raw.get("format") != FORMAT:
        raise ArchiveInvalid(f"{path.name} is export format {raw.get('format')!r}; this clipper reads format "
                             f"{FORMAT}: import it with the clipper version that exported it")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise ArchiveInvalid(f"{path.name}: {name} is not valid at {'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from None


def _check_job(path: Path, info: ExportInfo, manifest: Manifest, history: bytes) -> None:
    job = info.job_id
    if not job or "/" in job or job.startswith(".") or job != job.strip():
        raise ArchiveInvalid(f"{path.name}: {job!r} is not a job id")
    if {manifest.job_id, info.result.job_id, info.status.job_id} != {job}:
        raise ArchiveInvalid(f"{path.name}: the manifest, result and status are not all of job {job}")
    if info.result.state != JobState.done:
        raise ArchiveInvalid(f"{path.name}: {job} is {info.result.state.value}; only done jobs are exported")
    for name in manifest.artifacts:
        if name != manifest.artifacts[name].name or name.startswith(RESERVED) or name.endswith("/"):
            raise ArchiveInvalid(f"{path.name}: the manifest's artifact name {name!r} is not one clipper writes")
    try:
        events = json.loads(history).get("events")
    except (ValueError, AttributeError):
        events = None
    if not isinstance(events, list) or not events:
        raise ArchiveInvalid(f"{path.name}: {HISTORY} is not a workflow history (no events)")

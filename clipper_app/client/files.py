"""A deployment's artifact store, read by job id: the one place above `clipper/` that opens it for reading.

`ClipperClient` reads every output through a `JobFiles` (its `files`), and the CLI's `show` and `versions` use
one on its own: they read the store only, so they work without a Temporal server. The CLI and the web app never
open the store themselves; they ask here (or the client) and get text, models, manifests and verified local
files back.

Files are served only by the sha256 a manifest vouches for. `verified` resolves a listed name inside the job's
folder (a name that leads out of it, a symlink, is an `ArtifactNotFound`, never served) and checks the bytes
(`CorruptArtifact` when they changed). Checking reads the whole file, and a browser seeking in audio asks for the
same file many times: a file verified once is trusted while its size, mtime and inode stay the same.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from clipper.config import Settings, get_settings
from clipper.errors import ClipperError, InvalidRequest
from clipper.job.versions import ArtifactVersion, list_versions, version_file
from clipper.store.configured import open_store
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef
from clipper_app.client.common import ArtifactNotFound, JobNotFound

M = TypeVar("M", bound=BaseModel)
VERIFIED_MAX = 1024  # files whose verification is remembered (a few jobs' clips, audio and outputs)
REPORT = "report.md"
CLIPS = "clips/"


class ReportNotFound(ClipperError):
    """No report for the job in this host's store: not finished, or written to another host's folder."""


def clip_names(names: Iterable[str]) -> list[str]:
    """The job's audio clips among its artifact names, sorted (their index, clips.json, is not one)."""
    return sorted(n for n in names if n.startswith(CLIPS) and n != "clips.json")


class JobFiles:
    """The configured store (local folder or S3 with this host's cache), read-only, by job id."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._verified: OrderedDict[tuple[str, str, str], tuple[int, int, int]] = OrderedDict()

    @functools.cached_property
    def store(self) -> ArtifactStore:
        return open_store(self.settings)

    def folder(self, job_id: str) -> str:
        """Where people find the job's files: a path on this host, or an s3:// URI."""
        return self.store.uri(job_id)

    def manifest(self, job_id: str) -> dict[str, ArtifactRef]:
        """Every artifact the job's (or batch's) folder vouches for, by name."""
        return self.store.read_manifest(job_id).artifacts

    def verified(self, job_id: str, ref: ArtifactRef) -> Path:
        """A local file of the listed artifact, checked against its sha256 (downloaded into the cache from S3)."""
        try:
            return self._verified_path(job_id, ref)
        except InvalidRequest:  # a listed name whose file leaves the job's folder (a symlink): never served
            raise ArtifactNotFound(f"{job_id} has no artifact {ref.name!r} inside its folder") from None

    def _verified_path(self, job_id: str, ref: ArtifactRef) -> Path:
        key = (job_id, ref.name, ref.sha256)
        path = self.store.path(job_id, ref.name)  # InvalidRequest when it resolves outside the job's folder
        try:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None
        if stamp is not None and self._verified.get(key) == stamp:
            self._verified.move_to_end(key)
            return path
        path = self.store.verify(job_id, ref)
        st = path.stat()
        self._verified[key] = (st.st_size, st.st_mtime_ns, st.st_ino)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return path

    def verified_all(self, job_id: str, refs: list[ArtifactRef]) -> list[tuple[str, Path]]:
        """(manifest name, verified local file) for each ref, all checked before the first is used."""
        return [(ref.name, self.verified(job_id, ref)) for ref in refs]

    def read_model(self, job_id: str, ref: ArtifactRef | None, model: type[M]) -> M | None:
        """The verified artifact parsed as `model`; None when there is no ref (the job has none, or not yet)."""
        if ref is None:
            return None
        return model.model_validate_json(self.verified(job_id, ref).read_bytes())

    def report_markdown(self, job_id: str) -> str:
        """report.md as this host has it (fetched from a shared S3 store when it is not here)."""
        if not self.manifest(job_id):  # the store holds nothing of it: not a job (or one that wrote nothing yet)
            raise JobNotFound(f"no job {job_id} in the store at {self.folder(job_id)}: check the id (`clipper list`), "
                              "or the store (CLIPPER_STORAGE_DIR / CLIPPER_STORAGE_URL) the workers write to")
        report = self.store.local_copy(job_id, REPORT)
        if report is None:
            raise ReportNotFound(f"no report for {job_id} in {self.folder(job_id)} (not finished, or another "
                                 "host's folder)")
        return report.read_text(encoding="utf-8")

    def versions(self, job_id: str) -> list[ArtifactVersion]:
        """The job's kept versions, oldest first (clipper/job/versions.py); none for an unknown id."""
        return list_versions(self.store, job_id)

    def version_text(self, job_id: str, number: int, name: str = REPORT) -> str:
        """A text file as version `number` kept it (`VersionNotFound` names the versions that have one)."""
        ref = version_file(self.store, job_id, number, name)  # checked against its sha256
        return self.store.path(job_id, ref.name).read_text(encoding="utf-8")

"""A job's outputs as models and files, read through the configured store (local folder or S3-compatible).

A part of `ClipperClient`: a service gets the transcript, quotes, summary, report and clips of a job by its id,
without importing `clipper.store.local` or knowing where the workers keep files. Every file is checked against the
sha256 the job recorded for it (`CorruptArtifact` if it changed); the references come from the job's result in
Temporal, so no worker needs to be running.

The CLI and the web app read here too, never from the store: verified files of listed artifacts (served with
HTTP ranges, zipped), models of a running job's outputs so far, kept versions, a batch folder's manifest. The
store itself is `JobFiles`'s (clipper_app/client/files.py), which also serves the CLI's reads without a server.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from clipper.job.request import JobResult
from clipper.job.versions import ArtifactVersion
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef
from clipper_app.client.batches import BATCH_TYPE
from clipper_app.client.common import ArtifactNotFound, JobNotFinished
from clipper_app.client.files import JobFiles, clip_names
from clipper_app.client.reads import StatusMethods
from clipper_app.client.typed import M, TypedOutputs


class OutputMethods(StatusMethods, TypedOutputs):
    @functools.cached_property
    def files(self) -> JobFiles:
        """The configured store, read by job id (its verified files are remembered across calls)."""
        return JobFiles(self.settings)

    @property
    def store(self) -> ArtifactStore:
        """The store itself, for the client's own parts that write (import) or pack (export) whole jobs."""
        return self.files.store

    def folder(self, job_id: str) -> str:
        """Where people find the job's files: a path on this host, or an s3:// URI."""
        return self.files.folder(job_id)

    async def artifacts(self, job_id: str) -> JobResult:
        """The finished job's result: its media info and every artifact's reference (name, sha256, size). Read
        from the history once, then kept (a finished job's result never changes). A view kept from while the job
        ran (`read_max_age_s`) is read again: the job may have closed since, as the caller may have just seen."""
        view = await self.job_view(job_id)
        if view.result is None and not view.closed:
            self.reads.views.forget(job_id)
            view = await self.job_view(job_id)
        if view.result is None:
            raise JobNotFinished(f"{job_id} is {view.execution}: its outputs are read once it has finished")
        return view.result

    async def artifact_path(self, job_id: str, name: str) -> Path:
        """A local, checksum-verified file of the artifact (downloaded into the cache from an S3 store)."""
        result = await self.artifacts(job_id)
        ref = result.artifacts.get(name)
        if ref is None:
            raise ArtifactNotFound(f"{job_id} has no artifact {name!r}; it has {', '.join(sorted(result.artifacts))}")
        ref = (await self.current(job_id, {name: ref}))[name]
        return await asyncio.to_thread(self.store.verify, job_id, ref)

    async def current(self, job_id: str, listed: dict[str, ArtifactRef]) -> dict[str, ArtifactRef]:
        """Each listed artifact as the store's manifest has it now: naming speakers renders the transcript, quotes
        and report again after the job's result recorded them, and the manifest vouches for the new files."""
        manifest = await self.reads.manifests.get(job_id, lambda: asyncio.to_thread(self.files.manifest, job_id))
        return {name: manifest.get(name, ref) for name, ref in listed.items()}

    # --- files of listed artifacts: what a caller that lists them (the web app) reads and serves ---

    async def artifact_file(self, job_id: str, ref: ArtifactRef) -> Path:
        """A local, checksum-verified file of an artifact the caller listed (from `current`, a job's status or a
        batch's manifest): `ArtifactNotFound` when its file leaves the job's folder, `CorruptArtifact` when its
        bytes changed. Verified once, trusted while the file stays the same (a player's many range requests)."""
        return await asyncio.to_thread(self.files.verified, job_id, ref)

    async def clip_files(self, job_id: str, refs: dict[str, ArtifactRef]) -> list[tuple[str, Path]]:
        """(name, verified local file) of every audio clip among `refs`, all checked before any is used (a zip
        of them never stops half way); `ArtifactNotFound` when there is none."""
        clips = [refs[name] for name in clip_names(refs)]
        if not clips:
            raise ArtifactNotFound(f"{job_id} has no clips")
        return await asyncio.to_thread(self.files.verified_all, job_id, clips)

    async def read_artifact(self, job_id: str, ref: ArtifactRef | None, model: type[M]) -> M | None:
        """A listed artifact as a model, verified; None without a ref (a running job's outputs so far)."""
        return await asyncio.to_thread(self.files.read_model, job_id, ref, model)

    async def versions(self, job_id: str) -> list[ArtifactVersion]:
        """The job's kept versions, oldest first (clipper/job/versions.py); `JobNotFound` for an unknown job."""
        await self.describe(job_id)
        return await asyncio.to_thread(self.files.versions, job_id)

    async def batch_artifacts(self, batch_id: str) -> dict[str, ArtifactRef]:
        """The batch folder's manifest (items.json); each item's outputs are its job's. `JobNotFound` for an id
        that is no batch's."""
        if (await self.describe(batch_id, "batch")).workflow_type != BATCH_TYPE:
            raise self.not_found(batch_id, "batch")
        return await asyncio.to_thread(self.files.manifest, batch_id)

    async def artifact_bytes(self, job_id: str, name: str) -> bytes:
        return await asyncio.to_thread((await self.artifact_path(job_id, name)).read_bytes)

    async def clip_path(self, job_id: str, rank: int) -> Path:
        """The audio clip of the quote ranked `rank` (1 = the best)."""
        return await self.artifact_path(job_id, await self.clip_name(job_id, rank))

"""A finished job's outputs as models, read through the configured store (local folder or S3-compatible).

A part of `ClipperClient`: a service gets the transcript, quotes, summary, report and clips of a job by its id,
without importing `clipper.store.local` or knowing where the workers keep files. Every file is checked against the
sha256 the job recorded for it (`CorruptArtifact` if it changed); the references come from the job's result in
Temporal, so no worker needs to be running.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus

from clipper.job.outputs import ClipIndex, QuoteSet, SpeakerSet, Summary, Transcript
from clipper.job.request import JobResult
from clipper.store.configured import open_store
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef
from clipper.text.report import Report
from clipper_app.client.common import ArtifactNotFound, ClientBase, JobNotFinished

M = TypeVar("M", bound=BaseModel)


class OutputMethods(ClientBase):
    @functools.cached_property
    def store(self) -> ArtifactStore:
        return open_store(self.settings)

    async def artifacts(self, job_id: str) -> JobResult:
        """The finished job's result: its media info and every artifact's reference (name, sha256, size)."""
        desc = await self.describe(job_id)
        if desc.status != WorkflowExecutionStatus.COMPLETED:
            state = desc.status.name.lower() if desc.status else "unknown"
            raise JobNotFinished(f"{job_id} is {state}: its outputs are read once it has finished")
        with self.translating(job_id):
            return await self.handle(job_id, result_type=JobResult).result()

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
        manifest = (await asyncio.to_thread(self.store.read_manifest, job_id)).artifacts
        return {name: manifest.get(name, ref) for name, ref in listed.items()}

    async def _model(self, job_id: str, name: str, model: type[M]) -> M:
        path = await self.artifact_path(job_id, name)
        return model.model_validate_json(path.read_bytes())

    async def transcript(self, job_id: str) -> Transcript:
        return await self._model(job_id, "transcript.json", Transcript)

    async def speakers(self, job_id: str) -> SpeakerSet:
        """speakers.json: who speaks when, talk time, and the names people gave."""
        return await self._model(job_id, "speakers.json", SpeakerSet)

    async def quotes(self, job_id: str) -> QuoteSet:
        return await self._model(job_id, "quotes.json", QuoteSet)

    async def summary(self, job_id: str) -> Summary:
        return await self._model(job_id, "summary.json", Summary)

    async def report(self, job_id: str) -> Report:
        return await self._model(job_id, "report.json", Report)

    async def report_markdown(self, job_id: str) -> str:
        return (await self.artifact_path(job_id, "report.md")).read_text(encoding="utf-8")

    async def clips(self, job_id: str) -> ClipIndex:
        return await self._model(job_id, "clips.json", ClipIndex)

    async def clip_path(self, job_id: str, rank: int) -> Path:
        """The audio clip of the quote ranked `rank` (1 = the best)."""
        index = await self.clips(job_id)
        clip = next((c for c in index.clips if c.rank == rank), None)
        if clip is None:
            raise ArtifactNotFound(f"{job_id} has no clip ranked {rank}; ranks: {[c.rank for c in index.clips]}")
        return await self.artifact_path(job_id, clip.name)

    async def clip_bytes(self, job_id: str, rank: int) -> bytes:
        return (await self.clip_path(job_id, rank)).read_bytes()

"""A job's outputs as their models, by artifact name: one list for the client that reads the store
(clipper_app/client/outputs.py) and the one that reads over REST (clipper_app/client/remote.py). A class using it
supplies `artifact_bytes(job_id, name)`: the artifact's bytes, checked against the sha256 the job recorded."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from clipper.job.outputs import ClipIndex, QuoteSet, SpeakerSet, Summary, Transcript
from clipper.text.report import Report
from clipper_app.client.common import ArtifactNotFound

M = TypeVar("M", bound=BaseModel)


class TypedOutputs:
    async def artifact_bytes(self, job_id: str, name: str) -> bytes:
        raise NotImplementedError

    async def _model(self, job_id: str, name: str, model: type[M]) -> M:
        return model.model_validate_json(await self.artifact_bytes(job_id, name))

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
        return (await self.artifact_bytes(job_id, "report.md")).decode("utf-8")

    async def clips(self, job_id: str) -> ClipIndex:
        return await self._model(job_id, "clips.json", ClipIndex)

    async def clip_name(self, job_id: str, rank: int) -> str:
        """The artifact name of the audio clip of the quote ranked `rank` (1 = the best)."""
        index = await self.clips(job_id)
        clip = next((c for c in index.clips if c.rank == rank), None)
        if clip is None:
            raise ArtifactNotFound(f"{job_id} has no clip ranked {rank}; ranks: {[c.rank for c in index.clips]}")
        return clip.name

    async def clip_bytes(self, job_id: str, rank: int) -> bytes:
        """The audio clip of the quote ranked `rank` (1 = the best)."""
        return await self.artifact_bytes(job_id, await self.clip_name(job_id, rank))

"""Stage `report`: subtitles (SRT, VTT) and the report (Markdown, JSON) that ties every output together."""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.models import ClipIndex, MediaInfo, QuoteSet, ReportInput, ReportOutput, Summary, Transcript

STAGE = "report"


class ReportActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: ReportInput) -> ReportOutput:
        output = await run_stage(self.deps, STAGE, request, ReportOutput, lambda run: self._report(request, run))
        # The last stage: no other stage of the job runs now, so what is temporary in its folder (scratch, the
        # temp file of a write killed before its rename) is a dead writer's and goes. Done here, in the stage,
        # rather than by an activity of its own, so a finished job's folder is clean without a workflow change.
        removed = await asyncio.to_thread(self.deps.store.discard_temporary, request.job_id)
        if removed:
            structlog.get_logger().info("job.scratch_discarded", job_id=request.job_id, stage=STAGE, entries=removed)
        return output

    def _report(self, request: ReportInput, run: StageRun) -> ReportOutput:
        from clipper.text.formats import report_json, report_markdown, transcript_srt, transcript_vtt

        store, job = self.deps.store, request.job_id
        info = store.read_model(job, request.media, MediaInfo)
        transcript = store.read_model(job, request.transcript, Transcript)
        quotes = store.read_model(job, request.quotes, QuoteSet)
        summary = store.read_model(job, request.summary, Summary)
        clips = {c.rank: c.name for c in store.read_model(job, request.clips, ClipIndex).clips}
        for quote in quotes.quotes:
            quote.clip = clips.get(quote.rank)
        srt = store.put_text(job, "transcript.srt", transcript_srt(transcript), STAGE, "application/x-subrip")
        vtt = store.put_text(job, "transcript.vtt", transcript_vtt(transcript), STAGE, "text/vtt")
        artifacts = {name: ref.sha256 for name, ref in sorted(store.read_manifest(job).artifacts.items())
                     if not name.startswith("report.")}
        report = report_json(info, transcript, quotes, summary, artifacts)
        markdown = report_markdown(info, transcript, quotes, summary, artifacts)
        run.log.info("report.done", quotes=len(quotes.quotes), key_points=len(summary.key_points))
        return ReportOutput(
            report=store.put_text(job, "report.md", markdown, STAGE, "text/markdown"),
            report_json=store.put_model(job, "report.json", report, STAGE),
            srt=srt,
            vtt=vtt,
        )

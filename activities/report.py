"""Stage `report`: subtitles (SRT, VTT) and the report (Markdown, JSON) that ties every output together."""

from __future__ import annotations

from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.models import ClipIndex, MediaInfo, QuoteSet, ReportInput, ReportOutput, Summary, Transcript

STAGE = "report"


class ReportActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: ReportInput) -> ReportOutput:
        return await run_stage(self.deps, STAGE, request, ReportOutput, lambda run: self._report(request, run))

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

"""Stage `report`: subtitles (SRT, VTT) and the report (Markdown, JSON) that ties every output together.

`render_outputs` is also what `render_names` (activities/names.py) calls after people named speakers: one
place decides which files show names. The speakers' names live in
`speakers.json`, read and written through the manifest (the current version), never through a reference in
the workflow's history, so re-rendering it never makes an earlier reference look corrupt.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.job.messages import ReportInput, ReportOutput
from clipper.job.outputs import AudiogramIndex, ClipIndex, QuoteSet, SpeakerSet, Summary, Transcript
from clipper.job.request import MediaInfo
from clipper.job.versions import VERSIONS
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef

STAGE = "report"
SPEAKERS = "speakers.json"
# What `render_outputs` writes again when speakers are named: kept as a version first (clipper/job/versions.py).
RENDERED = (SPEAKERS, "transcript.txt", "quotes.md", "transcript.srt", "transcript.vtt", "report.md", "report.json")


def named_speakers(store: ArtifactStore, job: str, changes: dict[str, str] | None) -> SpeakerSet | None:
    """speakers.json with `changes` applied to its names (checked against its labels); None: the job has no
    speakers.json (it ran before speaker labelling)."""
    from clipper.speakers.names import check_names, merged

    ref = store.valid_ref(job, SPEAKERS)
    if ref is None:
        return None
    speakers = store.read_model(job, ref, SpeakerSet)
    if changes:
        names = merged(speakers.names(), check_names(changes, [s.label for s in speakers.speakers]))
        for s in speakers.speakers:
            s.name = names.get(s.label)
    return speakers


def render_outputs(store: ArtifactStore, job: str, refs: dict[str, ArtifactRef], stage: str,
                   names: dict[str, str] | None = None) -> ReportOutput:
    """Write everything that shows speakers and ties the job together, from the artifacts in `refs` (by name:
    media.json, transcript.json, quotes.json, summary.json, clips.json) and `names` given since."""
    from clipper.asr.render import transcript_to_text
    from clipper.text.formats import quotes_markdown, transcript_srt, transcript_vtt
    from clipper.text.report import report_json, report_markdown

    info = store.read_model(job, refs["media.json"], MediaInfo)
    transcript = store.read_model(job, refs["transcript.json"], Transcript)
    quotes = store.read_model(job, refs["quotes.json"], QuoteSet)
    summary = store.read_model(job, refs["summary.json"], Summary)
    clips = {c.rank: c.name for c in store.read_model(job, refs["clips.json"], ClipIndex).clips}
    for quote in quotes.quotes:
        quote.clip = clips.get(quote.rank)
    speakers = named_speakers(store, job, names)
    shown = speakers.names() if speakers else {}
    videos = store.valid_ref(job, "audiograms.json")  # jobs since the audiograms stage, when it made some
    audiograms = store.read_model(job, videos, AudiogramIndex) if videos else None
    extra = {}
    if speakers is not None:
        extra["speakers"] = store.put_model(job, SPEAKERS, speakers, stage)
        extra["text"] = store.put_text(job, "transcript.txt", transcript_to_text(transcript, shown), stage)
        extra["quotes_markdown"] = store.put_text(job, "quotes.md", quotes_markdown(quotes, names=shown), stage,
                                                  "text/markdown")
    srt = store.put_text(job, "transcript.srt", transcript_srt(transcript, shown), stage, "application/x-subrip")
    vtt = store.put_text(job, "transcript.vtt", transcript_vtt(transcript, shown), stage, "text/vtt")
    artifacts = {name: ref.sha256 for name, ref in sorted(store.read_manifest(job).artifacts.items())
                 if not name.startswith(("report.", VERSIONS))}  # the current outputs, not the kept versions
    report = report_json(info, transcript, quotes, summary, artifacts, speakers)
    markdown = report_markdown(info, transcript, quotes, summary, artifacts, speakers, audiograms)
    return ReportOutput(
        report=store.put_text(job, "report.md", markdown, stage, "text/markdown"),
        report_json=store.put_model(job, "report.json", report, stage),
        srt=srt, vtt=vtt, **extra,
    )


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
        refs = {"media.json": request.media, "transcript.json": request.transcript, "quotes.json": request.quotes,
                "summary.json": request.summary, "clips.json": request.clips}
        output = render_outputs(self.deps.store, request.job_id, refs, STAGE, request.names)
        run.log.info("report.done", speakers=output.speakers is not None)
        return output

"""`render_names`: the names people gave speakers (update `name_speakers`, workflow `NameSpeakers`) rendered
into every output that shows speakers — the transcript, subtitles, quotes, report, and the audiograms whose
speaker line changes (drawn again; the others are kept as they are). What is replaced is kept as a version first;
then the job is indexed again for search, so its lines are found by the new names.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audiograms import INDEX, AudiogramPlan, AudiogramSources, draw_audiograms, plan_audiograms
from activities.download import AUDIO
from activities.report import RENDERED, SPEAKERS, named_speakers, render_outputs
from activities.runtime import StageDeps
from clipper.errors import InvalidRequest
from clipper.job.outputs import SpeakerSet
from clipper.job.request import SpeakerNames
from clipper.job.versions import archive, job_options
from clipper.search import index_job, open_index

STAGE = "names"
SOURCES = ("media.json", "transcript.json", "quotes.json", "summary.json", "clips.json")


class RenderNamesActivity:
    """A bad label or name is refused (non-retryable) and changes nothing."""

    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="render_names")
    async def run(self, request: SpeakerNames) -> dict[str, str]:
        return await asyncio.to_thread(self._render, request)

    def _render(self, request: SpeakerNames) -> dict[str, str]:
        store, settings, job = self.deps.store, self.deps.settings, request.job_id or ""
        log = structlog.get_logger().bind(job_id=job, stage=STAGE)
        try:
            manifest = store.read_manifest(job).artifacts
            if SPEAKERS not in manifest:
                raise InvalidRequest(f"job {job} has no speakers to name (it ran before speaker labelling, or "
                                     "has not reached that stage)")
            refs = {n: store.valid_ref(job, n) for n in SOURCES}
            rendering = "report.json" in manifest and all(refs.values())
            speakers = named_speakers(store, job, request.names)  # a refused name changes nothing, cuts no version
            # The report (and the audiograms) still to come render the names themselves: only speakers.json now.
            videos = self._videos(job, refs, speakers) if rendering and INDEX in manifest else None
            redraw = videos.changing() if videos is not None else []
            kept = (list(RENDERED) + ([INDEX, *redraw] if redraw else [])) if rendering else [SPEAKERS]
            archive(store, job, STAGE, kept, "speaker names", job_options(store, job), settings.keep_versions)
            if not rendering:
                store.put_model(job, SPEAKERS, speakers, STAGE)
            else:
                if redraw:  # the plan carries the new speaker lines; render_outputs then writes speakers.json
                    draw_audiograms(store, settings, job, videos, STAGE, lambda: False, lambda: None)
                    log.info("audiograms.redrawn", count=len(redraw))
                output = render_outputs(store, job, refs, STAGE, request.names)
                speakers = store.read_model(job, output.speakers, SpeakerSet)
                with open_index(settings) as index:  # found by the new names (a job still running: its stage)
                    index_job(index, store, job)
        except InvalidRequest as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from None
        log.info("speakers.named", names=len(speakers.names()))
        return speakers.names()

    def _videos(self, job: str, refs: dict, speakers: SpeakerSet) -> AudiogramPlan | None:
        """The audiograms as they would be drawn with the new names (None when the audio is gone)."""
        store = self.deps.store
        audio = store.valid_ref(job, AUDIO)
        if audio is None:
            return None
        return plan_audiograms(store, self.deps.settings, job, AudiogramSources(
            audio=audio, media=refs["media.json"], transcript=refs["transcript.json"], quotes=refs["quotes.json"]),
            speakers=speakers)

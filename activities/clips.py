"""Stage `clips`: one audio clip per quote, cut accurately (re-encoded) with padding and fades."""

from __future__ import annotations

from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.errors import JobCancelled
from clipper.job.messages import ClipsInput, ClipsOutput
from clipper.job.outputs import ClipIndex, ClipInfo, QuoteSet
from clipper.job.status import StageProgress

STAGE = "clips"
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "m4a": "audio/mp4"}


class ClipsActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: ClipsInput) -> ClipsOutput:
        return await run_stage(self.deps, STAGE, request, ClipsOutput, lambda run: self._cut(request, run))

    def _cut(self, request: ClipsInput, run: StageRun) -> ClipsOutput:
        from clipper.media.clips import clip_name, cut_clip

        store, settings, job = self.deps.store, self.deps.settings, request.job_id
        audio = store.verify(job, request.audio)
        quotes = store.read_model(job, request.quotes, QuoteSet)
        fmt = settings.clip_format
        run.progress = StageProgress(total=len(quotes.quotes), unit="clips")
        index, refs = ClipIndex(format=fmt, padding_s=settings.clip_padding_s), []
        for done, quote in enumerate(quotes.quotes):
            name = clip_name(quote.rank, quote.text, fmt)
            ref = store.valid_ref(job, name)  # cut by an earlier attempt: keep it
            if ref is None:
                tmp = store.scratch_dir(job) / name.replace("/", "_")
                cut_clip(audio, tmp, quote.start, quote.end, padding_s=settings.clip_padding_s,
                         fade_s=settings.clip_fade_s, fmt=fmt, media_duration_s=request.duration_s)
                ref = store.put_file(job, name, tmp, STAGE, CONTENT_TYPES.get(fmt))
            start = max(0.0, quote.start - settings.clip_padding_s)
            end = quote.end + settings.clip_padding_s
            if request.duration_s:
                end = min(end, request.duration_s)
            index.clips.append(ClipInfo(rank=quote.rank, name=name, start=start, end=end, duration_s=end - start))
            refs.append(ref)
            run.progress.done = done + 1
            if run.stop.is_set():
                raise JobCancelled("cancelled while cutting clips")  # finished clips stay; the rest are cut on resume
        run.log.info("clips.done", count=len(refs), format=fmt)
        return ClipsOutput(index=store.put_model(job, "clips.json", index, STAGE), clips=refs)

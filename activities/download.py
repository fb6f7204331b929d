"""Stage `download`: fetch the media (yt-dlp, resumable), normalise it to 16 kHz mono WAV, probe it."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage
from clipper.errors import ClipperError
from clipper.job.messages import DownloadInput, DownloadOutput
from clipper.job.request import MediaInfo

STAGE = "download"
INFO = "media.json"
AUDIO = "audio.wav"


class DownloadActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: DownloadInput) -> DownloadOutput:
        return await run_stage(self.deps, STAGE, request, DownloadOutput, lambda run: self._download(request, run))

    def _download(self, request: DownloadInput, run: StageRun) -> DownloadOutput:
        from clipper.media.download import download
        from clipper.media.ffmpeg import to_wav16k_mono
        from clipper.media.probe import probe_media, require_audio

        store, settings, job = self.deps.store, self.deps.settings, request.job_id
        manifest = store.read_manifest(job).artifacts
        source = next(
            (store.valid_ref(job, name) for name in manifest if name.startswith("source.")), None
        )
        info_ref = store.valid_ref(job, INFO)
        audio = store.valid_ref(job, AUDIO)
        if source and info_ref and audio and not request.rebuild:
            # Finished by an earlier attempt whose completion never reached the server: don't redo it.
            run.log.info("download.reused", source=source.name)
            info = MediaInfo.model_validate_json(store.path(job, INFO).read_bytes())
            return DownloadOutput(source=source, audio=audio, media=info_ref, info=info)

        scratch = store.scratch_dir(job) / STAGE
        scratch.mkdir(exist_ok=True)
        try:
            if source is None or info_ref is None:
                run.progress.unit = "bytes"

                def on_progress(done: int, total: int | None) -> None:
                    run.progress.done, run.progress.total = float(done), float(total) if total else None

                def on_note(note: str | None) -> None:
                    if note is not None:
                        run.log.info("download.waiting", note=note)
                    run.progress.note = note

                # The stage's first attempt, not this one: a Space's wait for its recording spans the attempts.
                result = download(request.url, scratch, settings, on_progress=on_progress,
                                  should_stop=run.stop.is_set, started_at=run.first_scheduled,
                                  on_note=on_note)
                source = store.put_file(job, "source" + Path(result.path).suffix, result.path, STAGE)
                info = result.info
            else:
                info = MediaInfo.model_validate_json(store.path(job, INFO).read_bytes())
            run.progress.note = "converting to 16 kHz mono"
            wav = scratch / AUDIO
            to_wav16k_mono(store.path(job, source.name), wav, should_stop=run.stop.is_set)
            probe = probe_media(wav)
            require_audio(probe, settings)
            info = info.model_copy(update={"duration_s": probe.duration_s or info.duration_s})
            info_ref = store.put_model(job, INFO, info, STAGE)
            audio = store.put_file(job, AUDIO, wav, STAGE, "audio/wav")
        except BaseException as exc:
            # Cancelled, or failed for good (bad input: no attempt will come to resume it): leave nothing
            # half-done behind. A retryable failure or a crash keeps the .part file for the next attempt.
            if run.stop.is_set() or (isinstance(exc, ClipperError) and exc.non_retryable):
                store.discard_scratch(job, STAGE)
            raise
        store.discard_scratch(job, STAGE)
        run.log.info("download.done", title=info.title, duration_s=info.duration_s, bytes=source.size)
        return DownloadOutput(source=source, audio=audio, media=info_ref, info=info)

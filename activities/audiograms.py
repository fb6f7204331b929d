"""Stage `audiograms`: a video per top quote and aspect (waveform, captions timed word by word, speaker, title).

Resumable file by file: each finished video has a receipt of what it was made from (the audio's, the quote's,
its words', the title's and speaker's and the renderer settings' fingerprint); a retry keeps a video whose
receipt matches and whose file still matches the manifest, and makes the rest. Encoding is the slow part
(about 0.1 s per second of video on 2 cores), so a cancel kills ffmpeg mid-video rather than waiting.
"""

from __future__ import annotations

import hashlib
import json

from temporalio import activity

from activities.report import named_speakers
from activities.runtime import StageDeps, StageRun, run_stage
from clipper.config import Settings
from clipper.errors import JobCancelled
from clipper.job.messages import AudiogramsInput, AudiogramsOutput
from clipper.job.outputs import AudiogramIndex, AudiogramInfo, Quote, QuoteSet, Transcript, Word
from clipper.job.request import MediaInfo
from clipper.job.status import StageProgress
from clipper.store.refs import ArtifactRef

STAGE = "audiograms"
CONTENT_TYPE = "video/mp4"
RENDER_VERSION = 1  # bump when the look changes, so finished videos are made again


def audiogram_name(rank: int, aspect: str) -> str:
    from clipper.media.audiogram import aspect_slug

    return f"audiograms/{rank:02d}-{aspect_slug(aspect)}.mp4"


def _receipt_name(rank: int, aspect: str) -> str:
    return "audiogram-" + audiogram_name(rank, aspect).removeprefix("audiograms/").removesuffix(".mp4")


class AudiogramsActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: AudiogramsInput) -> AudiogramsOutput:
        return await run_stage(self.deps, STAGE, request, AudiogramsOutput, lambda run: self._make(request, run))

    def _make(self, request: AudiogramsInput, run: StageRun) -> AudiogramsOutput:
        from clipper.media.audiogram import (
            audiogram_span,
            layout_for,
            make_audiogram,
            quote_words,
        )

        store, settings, job = self.deps.store, self.deps.settings, request.job_id
        index = AudiogramIndex(padding_s=settings.clip_padding_s)
        top = sorted(store.read_model(job, request.quotes, QuoteSet).quotes, key=lambda q: q.rank)
        top = top[: settings.audiograms_top]
        aspects = settings.audiogram_aspects()
        if not settings.audiograms_enabled or not top or not aspects:
            index.note = "audiograms are turned off" if not settings.audiograms_enabled else "no quotes to show"
            run.log.info("audiograms.skipped", reason=index.note)
            return AudiogramsOutput(index=store.put_model(job, "audiograms.json", index, STAGE))

        audio = store.verify(job, request.audio)
        info = store.read_model(job, request.media, MediaInfo)
        transcript = store.read_model(job, request.transcript, Transcript)
        words = [w for seg in transcript.segments for w in seg.words]
        speakers = named_speakers(store, job, None)
        names = speakers.names() if speakers else {}
        run.progress = StageProgress(total=len(top) * len(aspects), unit="videos")
        files: list[ArtifactRef] = []
        for quote in top:
            speaker = names.get(quote.speaker) if quote.speaker else None
            used = quote_words(quote, words)
            for aspect in aspects:
                name = audiogram_name(quote.rank, aspect)
                key = _key(request.audio.sha256, quote, used, info.title, speaker, aspect, settings)
                ref = self._reusable(job, name, _receipt_name(quote.rank, aspect), key)
                if ref is None:
                    tmp = store.scratch_dir(job) / name.replace("/", "_")
                    make_audiogram(audio, quote, used, tmp, title=info.title, speaker=speaker, aspect=aspect,
                                   settings=settings, media_duration_s=info.duration_s,
                                   should_stop=run.stop.is_set)
                    ref = store.put_file(job, name, tmp, STAGE, CONTENT_TYPE)
                    store.put_receipt(job, _receipt_name(quote.rank, aspect),
                                      json.dumps({"input": key, "sha256": ref.sha256}).encode())
                start, end = audiogram_span(quote, settings.clip_padding_s, info.duration_s)
                layout = layout_for(aspect)
                index.audiograms.append(AudiogramInfo(
                    rank=quote.rank, aspect=aspect, name=name, width=layout.width, height=layout.height,
                    start=start, end=end, duration_s=end - start, speaker=speaker))
                files.append(ref)
                run.progress.done += 1
                if run.stop.is_set():
                    raise JobCancelled("cancelled while making audiograms")  # finished videos stay for the resume
        run.log.info("audiograms.done", count=len(files), aspects=aspects)
        return AudiogramsOutput(index=store.put_model(job, "audiograms.json", index, STAGE), files=files)

    def _reusable(self, job: str, name: str, receipt: str, key: str) -> ArtifactRef | None:
        """The video an earlier attempt made from the same input, if it is still intact; else None."""
        store = self.deps.store
        ref = store.valid_ref(job, name)
        raw = store.read_receipt(job, receipt) if ref is not None else None
        try:
            done = json.loads(raw) if raw else {}
        except ValueError:
            return None
        return ref if ref is not None and done.get("input") == key and done.get("sha256") == ref.sha256 else None


def _key(audio_sha: str, quote: Quote, words: list[Word], title: str | None, speaker: str | None, aspect: str,
         settings: Settings) -> str:
    """What a video is made from: the same key means the same video."""
    data = {
        "v": RENDER_VERSION, "audio": audio_sha, "span": [quote.start, quote.end], "text": quote.text,
        "words": [[w.start, w.end, w.word] for w in words], "title": title, "speaker": speaker, "aspect": aspect,
        "padding": settings.clip_padding_s, "fade": settings.clip_fade_s, "fps": settings.audiogram_fps,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

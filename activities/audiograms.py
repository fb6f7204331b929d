"""Stage `audiograms`: a video per top quote and aspect (waveform, captions timed word by word, speaker, title).

Resumable file by file: each finished video has a receipt of what it was made from (the audio's, the quote's,
its words', the title's and speaker's and the renderer settings' fingerprint); a retry keeps a video whose
receipt matches and whose file still matches the manifest, and makes the rest. Encoding is the slow part
(about 0.1 s per second of video on 2 cores), so a cancel kills ffmpeg mid-video rather than waiting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio import activity

from activities.report import named_speakers
from activities.runtime import StageDeps, StageRun, run_stage
from clipper.config import Settings
from clipper.errors import JobCancelled
from clipper.job.messages import AudiogramsInput, AudiogramsOutput
from clipper.job.outputs import AudiogramIndex, AudiogramInfo, Quote, QuoteSet, SpeakerSet, Transcript, Word
from clipper.job.request import MediaInfo
from clipper.job.status import StageProgress
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef

STAGE = "audiograms"
CONTENT_TYPE = "video/mp4"
INDEX = "audiograms.json"
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
        store, job = self.deps.store, request.job_id
        plan = plan_audiograms(store, self.deps.settings, job, AudiogramSources(
            audio=request.audio, media=request.media, transcript=request.transcript, quotes=request.quotes))
        run.progress = StageProgress(total=len(plan.videos), unit="videos")
        if plan.note:
            run.log.info("audiograms.skipped", reason=plan.note)

        def made() -> None:
            run.progress.done += 1
            if run.stop.is_set():
                raise JobCancelled("cancelled while making audiograms")  # finished videos stay for the resume

        index, files = draw_audiograms(store, self.deps.settings, job, plan, STAGE, run.stop.is_set, made)
        run.log.info("audiograms.done", count=len(files), aspects=self.deps.settings.audiogram_aspects())
        return AudiogramsOutput(index=index, files=files)


@dataclass
class AudiogramSources:
    """What the videos are made from (a stage's input, or the job's current artifacts when names change)."""

    audio: ArtifactRef
    media: ArtifactRef
    transcript: ArtifactRef
    quotes: ArtifactRef


@dataclass
class Video:
    quote: Quote
    words: list[Word]
    aspect: str
    name: str
    speaker: str | None
    key: str  # what it is made from: the same key, the same video
    reusable: ArtifactRef | None  # the video made earlier from the same key, still intact


@dataclass
class AudiogramPlan:
    audio: ArtifactRef
    info: MediaInfo
    videos: list[Video] = field(default_factory=list)
    note: str | None = None  # why there are none

    def changing(self) -> list[str]:
        """The videos that drawing will replace (a version keeps them first)."""
        return [v.name for v in self.videos if v.reusable is None]


def plan_audiograms(store: ArtifactStore, settings: Settings, job: str, src: AudiogramSources,
                    speakers: SpeakerSet | None = None) -> AudiogramPlan:
    """Which videos the job gets (top quotes × aspects), each with the speaker line it shows and whether the one
    already made still fits. The speaker line follows `speakers` (default: speakers.json as it is now), so
    naming speakers redraws the videos whose line changes."""
    from clipper.media.audiogram import quote_words

    info = store.read_model(job, src.media, MediaInfo)
    plan = AudiogramPlan(audio=src.audio, info=info)
    top = sorted(store.read_model(job, src.quotes, QuoteSet).quotes, key=lambda q: q.rank)[: settings.audiograms_top]
    aspects = settings.audiogram_aspects()
    if not settings.audiograms_enabled or not top or not aspects:
        plan.note = "audiograms are turned off" if not settings.audiograms_enabled else "no quotes to show"
        return plan
    transcript = store.read_model(job, src.transcript, Transcript)
    words = [w for seg in transcript.segments for w in seg.words]
    speakers = speakers if speakers is not None else named_speakers(store, job, None)
    for quote in top:
        speaker = speakers.caption(quote.speaker) if speakers else None
        used = quote_words(quote, words)
        for aspect in aspects:
            name = audiogram_name(quote.rank, aspect)
            key = _key(src.audio.sha256, quote, used, info.title, speaker, aspect, settings)
            plan.videos.append(Video(quote, used, aspect, name, speaker, key,
                                     _reusable(store, job, name, _receipt_name(quote.rank, aspect), key)))
    return plan


def draw_audiograms(store: ArtifactStore, settings: Settings, job: str, plan: AudiogramPlan, stage: str,
                    should_stop: Callable[[], bool], made: Callable[[], None]) -> tuple[ArtifactRef, list[ArtifactRef]]:
    """Make the planned videos that do not exist yet (reusing the rest) and write audiograms.json."""
    from clipper.media.audiogram import audiogram_span, layout_for, make_audiogram

    index = AudiogramIndex(padding_s=settings.clip_padding_s, note=plan.note)
    files: list[ArtifactRef] = []
    audio = store.verify(job, plan.audio) if plan.videos else None
    for video in plan.videos:
        ref = video.reusable
        if ref is None:
            tmp = store.scratch_dir(job) / video.name.replace("/", "_")
            make_audiogram(audio, video.quote, video.words, tmp, title=plan.info.title, speaker=video.speaker,
                           aspect=video.aspect, settings=settings, media_duration_s=plan.info.duration_s,
                           should_stop=should_stop)
            ref = store.put_file(job, video.name, tmp, stage, CONTENT_TYPE)
            store.put_receipt(job, _receipt_name(video.quote.rank, video.aspect),
                              json.dumps({"input": video.key, "sha256": ref.sha256}).encode())
        start, end = audiogram_span(video.quote, settings.clip_padding_s, plan.info.duration_s)
        layout = layout_for(video.aspect)
        index.audiograms.append(AudiogramInfo(
            rank=video.quote.rank, aspect=video.aspect, name=video.name, width=layout.width, height=layout.height,
            start=start, end=end, duration_s=end - start, speaker=video.speaker))
        files.append(ref)
        made()
    return store.put_model(job, INDEX, index, stage), files


def _reusable(store: ArtifactStore, job: str, name: str, receipt: str, key: str) -> ArtifactRef | None:
    """The video an earlier attempt made from the same input, if it is still intact; else None."""
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

"""MediaJob end to end on the real dev server: real yt-dlp over HTTP, real ffmpeg, real Whisper model."""

from __future__ import annotations


import jiwer
import pytest
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from clipper.errors import UnsupportedUrl
from clipper.job.outputs import ClipIndex, QuoteSet, Summary, Transcript
from clipper.job.request import JobResult
from clipper.job.status import JobState, StageState
from clipper.media.probe import probe_media
from clipper.store.local import ArtifactStore
from clipper.text.formats import parse_srt, parse_vtt
from clipper_app.client import ClipperClient, JobFailed, connect
from clipper_app.workers.pools import build_worker
from tests.helpers import REFERENCE, after, run, through
from tests.helpers.jobs import assert_manifest_matches, history_json, normalise, run_job, scheduled_activities












def test_e2e_transcript_matches_reference(settings, media_server):
    clipper, job_id, result = run(run_job(settings, media_server.url("/episode.mp3")))
    assert isinstance(result, JobResult), result
    assert result.state == JobState.done
    assert all(s.state == StageState.done for s in result.status.stages)
    store = ArtifactStore(settings.storage_dir)
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    wer = jiwer.wer(normalise(REFERENCE.read_text()), normalise(transcript.text))
    assert wer <= 0.15, f"WER {wer:.1%}"
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and len(starts) > 3
    words = [w.start for s in transcript.segments for w in s.words]
    assert words == sorted(words)
    assert result.info.title == "Building software that never loses work"
    assert abs(result.info.duration_s - 54.4) < 0.5
    assert {"audio.wav", "transcript.json", "transcript.txt", "media.json", "transcript.srt", "transcript.vtt",
            "quotes.json", "quotes.md", "summary.json", "summary.md", "clips.json", "report.md",
            "report.json"} <= set(result.artifacts)
    assert_outputs_grounded(store, job_id, transcript)
    assert_manifest_matches(store, job_id)
    # Only references travel through history: the transcript text is nowhere in it.
    history = run(history_json(settings, job_id))
    assert "boring on purpose" not in history.lower()
    assert not list((store.job_dir(job_id) / ".tmp").glob("*.partial.jsonl")), "partial transcript left behind"


def assert_outputs_grounded(store: ArtifactStore, job_id: str, transcript: Transcript) -> None:
    """Offline engine on the sample: verbatim quotes with their words' times, clips, subtitles, report."""
    words = [w for s in transcript.segments for w in s.words]
    quotes = QuoteSet.model_validate_json(store.path(job_id, "quotes.json").read_bytes())
    assert 3 <= len(quotes.quotes) <= 10 and quotes.engine == "offline"
    for quote in quotes.quotes:
        spans = [(i, j) for i in range(len(words)) for j in range(i, min(len(words), i + 60))
                 if words[i].start == quote.start and words[j].end == quote.end]
        assert spans, f"quote {quote.text!r} does not start and end on transcript words"
        i, j = spans[0]
        assert quote.text == " ".join(w.word for w in words[i:j + 1])
    summary = Summary.model_validate_json(store.path(job_id, "summary.json").read_bytes())
    assert summary.overview and 3 <= len(summary.key_points) <= 7
    assert all(0 <= p.start < p.end <= transcript.duration_s + 0.5 for p in summary.key_points)
    index = ClipIndex.model_validate_json(store.path(job_id, "clips.json").read_bytes())
    assert [c.rank for c in index.clips] == [q.rank for q in quotes.quotes]
    for clip, quote in zip(index.clips, quotes.quotes):
        expected = min(quote.end + 0.5, transcript.duration_s) - max(0.0, quote.start - 0.5)
        assert abs(probe_media(store.path(job_id, clip.name)).duration_s - expected) <= 0.1, clip.name
    srt = parse_srt(store.path(job_id, "transcript.srt").read_text())
    vtt = parse_vtt(store.path(job_id, "transcript.vtt").read_text())
    assert [t for _, _, t in srt] == [t for _, _, t in vtt] == [s.text.strip() for s in transcript.segments]
    assert all(abs(a[0] - b.start) < 0.002 for a, b in zip(srt, transcript.segments))
    report = store.path(job_id, "report.md").read_text()
    assert quotes.quotes[0].text in report and index.clips[0].name in report






def test_same_url_twice_is_one_job(settings, media_server):
    async def body():
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        # No worker yet: the first job stays queued, so the second submit must find it, not start another.
        first = await clipper.submit(media_server.url("/episode.mp3") + "?utm_source=x")
        second = await clipper.submit(media_server.url("/episode.mp3"))
        assert first.job_id == second.job_id and not first.existing and second.existing
        status = await clipper.status(first.job_id)
        count = await client.count_workflows(f"WorkflowId = '{first.job_id}'")
        await clipper.handle(first.job_id).terminate("test over")
        return status, count.count

    status, count = run(body())
    assert status.state in (JobState.queued, JobState.running)
    assert count == 1


class FlipAudioByteOnce(Interceptor):
    """Simulates disk corruption: flips one byte of audio.wav right before the first transcribe attempt."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store, self.flipped = store, []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Flip(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                if activity.info().activity_type == "transcribe" and not outer.flipped:
                    path = outer.store.path(input.args[0].job_id, "audio.wav")
                    data = bytearray(path.read_bytes())
                    data[len(data) // 2] ^= 0xFF
                    path.write_bytes(bytes(data))
                    outer.flipped.append(path)
                return await super().execute_activity(input)

        return Flip(next)


def test_corrupt_audio_is_rebuilt(settings, media_server):
    store = ArtifactStore(settings.storage_dir)
    flip = FlipAudioByteOnce(store)
    clipper, job_id, result = run(run_job(settings, media_server.url("/episode.mp3"), [flip]))
    assert flip.flipped, "the corruption hook never ran"
    assert isinstance(result, JobResult), result
    assert result.state == JobState.done
    scheduled = run(scheduled_activities(settings, job_id))
    # The rebuild, then the retry, then the rest of the pipeline.
    assert scheduled == [*through("transcribe"), "download", "transcribe", *after("transcribe")]
    assert "CorruptArtifact" in run(history_json(settings, job_id))
    assert_manifest_matches(store, job_id)
    # The source was intact, so the rebuild re-converted it without fetching it again.
    manifest = store.read_manifest(job_id).artifacts
    assert manifest["source.mp3"].created_at < manifest["audio.wav"].created_at
    assert manifest["audio.wav"].sha256 == result.artifacts["audio.wav"].sha256


def test_client_refuses_unsupported_scheme_before_submitting(settings):
    async def body():
        clipper = ClipperClient(await connect(settings), settings)
        with pytest.raises(UnsupportedUrl, match="'ftp'"):
            await clipper.submit("ftp://example.com/a.mp3")

    run(body())


@pytest.mark.parametrize(
    ("url", "error_type"),
    [("ftp://example.com/a.mp3", "UnsupportedUrl"), (None, "MediaNotFound"), ("file:///etc/passwd", "LocalPathNotAllowed")],
)
def test_bad_url_fails_fast_with_typed_error(settings, media_server, url, error_type):
    """Started as any client could (e.g. `temporal workflow start`), bypassing our client's own checks."""
    url = url or media_server.url("/missing.mp3")
    media_server.set_status("/missing.mp3", 404)
    clipper, job_id, result = run(run_job(settings, url, raw_start=True))
    assert isinstance(result, JobFailed)
    assert result.error_type == error_type and result.stage == "download"
    status = run(_status(settings, job_id))
    assert status.state == JobState.failed and status.error.type == error_type
    assert status.stage("download").attempt == 1  # not after the whole retry budget


async def _status(settings, job_id):
    client = await connect(settings)
    async with build_worker(client, settings):  # a query on a closed job replays it on a worker
        return await ClipperClient(client, settings).status(job_id)

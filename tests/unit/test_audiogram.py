"""Audiograms from the real phone call and its real word times (Whisper tiny.en through faster-whisper): the MP4
probed back with PyAV, a frame looked at, the captions file read, and the stage run through its activity."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import pytest
from temporalio.testing import ActivityEnvironment

from activities.audiograms import AudiogramsActivity
from activities.runtime import StageDeps
from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.job.messages import AudiogramsInput
from clipper.job.outputs import AudiogramIndex, Quote, QuoteSet, Speaker, SpeakerSet, Transcript, Word
from clipper.job.request import MediaInfo
from clipper.media.audiogram import (
    LAYOUTS,
    caption_font,
    captions_ass,
    make_audiogram,
    quote_words,
)
from clipper.media.ffmpeg import ffmpeg_exe, to_wav16k_mono
from clipper.store.local import ArtifactStore
from tests.helpers import conversations as conv
from tests.helpers import run
from tests.helpers.transcripts import labelled

TITLE = "Two strangers on a phone line"
BACKGROUND_GRAY = 40  # the navy background is ~31 in gray; text and waveform are far brighter


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audiogram")


@pytest.fixture(scope="module")
def wav(work: Path) -> Path:
    path = work / "source" / "call.wav"  # not in `work`: the transcript helper removes its own call.wav there
    to_wav16k_mono(conv.audio(conv.CALL), path)
    return path


@pytest.fixture(scope="module")
def transcript(work: Path) -> Transcript:
    return labelled(conv.CALL, work)  # the real engine's words and times, speakers from the reference turns


def _quote(transcript: Transcript, rank: int, lo: float, hi: float) -> tuple[Quote, list[Word]]:
    """A quote made of the real words said between `lo` and `hi` (as the quotes stage grounds them)."""
    words = [w for s in transcript.segments for w in s.words if lo <= w.start and w.end <= hi]
    assert len(words) >= 4, words
    speakers = [w.speaker for w in words if w.speaker]
    return Quote(rank=rank, text=" ".join(w.word.strip() for w in words), start=words[0].start, end=words[-1].end,
                 speaker=max(set(speakers), key=speakers.count) if speakers else None), words


def _gray_frame(video: Path, at_s: float, width: int, height: int) -> bytes:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-ss", f"{at_s:.2f}", "-i", str(video), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    assert len(raw) == width * height
    return raw


def _lit(frame: bytes, width: int, rows: range) -> float:
    band = frame[rows.start * width: rows.stop * width]
    return sum(1 for px in band if px > BACKGROUND_GRAY) / len(band)


@pytest.mark.slow
@pytest.mark.parametrize("aspect", ["1:1", "9:16"])
def test_audiogram_is_a_postable_video_of_the_quote(wav, transcript, tmp_path, aspect):
    quote, words = _quote(transcript, 1, 14.0, 21.6)
    settings = Settings(clip_padding_s=0.5)
    out = make_audiogram(wav, quote, words, tmp_path / "a.mp4", title=TITLE, speaker="Sheila", aspect=aspect,
                         settings=settings)
    layout = LAYOUTS[aspect]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]  # no temp video or captions file left

    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert (video.codec_context.width, video.codec_context.height) == (layout.width, layout.height)
        assert video.codec_context.pix_fmt == "yuv420p"
        assert 24 <= float(video.average_rate) <= 30
        duration = container.duration / av.time_base
    assert duration == pytest.approx(quote.end - quote.start + 2 * 0.5, abs=0.15)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays while it downloads
    assert out.stat().st_size < 250_000 * duration  # small: under 2 Mbit/s

    frame = _gray_frame(out, duration / 2, layout.width, layout.height)
    middle = range(layout.height // 2 - 60, layout.height // 2 + 60)  # the caption
    wave = range(layout.wave_y, layout.wave_y + layout.wave_height)
    top = range(layout.title_margin + 2 * layout.title_size)
    assert _lit(frame, layout.width, middle) > 0.02, "no caption drawn"
    assert _lit(frame, layout.width, wave) > 0.01, "no waveform drawn"
    assert _lit(frame, layout.width, top) > 0.005, "no title drawn"


@pytest.mark.slow
def test_captions_time_every_word_of_the_quote_in_order(transcript):
    quote, words = _quote(transcript, 1, 6.0, 21.6)
    used = quote_words(quote, [w for s in transcript.segments for w in s.words])  # picked from all the words
    assert [w.word for w in used] == [w.word for w in words]
    start, length = quote.start - 0.5, quote.end - quote.start + 1.0
    _, family = caption_font()
    ass = captions_ass(used, start, length, LAYOUTS["9:16"], family, title=TITLE, speaker="Diane")

    def seconds(stamp: str) -> float:
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    events = [line.split(",", 9) for line in ass.splitlines() if line.startswith("Dialogue:")]
    captions = [e for e in events if e[3] == "Caption"]
    said = []
    for e in captions:  # exactly one word is highlighted in each: the one said then
        highlighted = re.findall(r"\{\\c&H0011A3FC&\}([^{]+)", e[9])
        assert len(highlighted) == 1, e
        said.append(highlighted[0].strip())
    assert said == [w.word.strip() for w in words]
    starts = [seconds(e[1]) for e in captions]
    assert starts[0] == 0 and starts == sorted(starts) and len(set(starts)) == len(starts)
    for e, w in zip(captions[1:], words[1:]):
        assert seconds(e[1]) == pytest.approx(w.start - start, abs=0.011)  # at the word's own time
    assert seconds(captions[-1][2]) == pytest.approx(length, abs=0.011)
    assert any(e[3] == "Title" and TITLE in e[9] for e in events)
    assert any(e[3] == "Speaker" and "Diane" in e[9] for e in events)


def test_caption_text_cannot_inject_ass_commands():
    words = [Word(start=0.0, end=0.5, word="{\\pos(0,0)}hi"), Word(start=0.5, end=1.0, word="back\\Nslash")]
    ass = captions_ass(words, 0.0, 1.0, LAYOUTS["1:1"], "DejaVu Sans", title="{\\an1}x", speaker=None)
    body = ass.split("[Events]")[1]
    assert "\\pos" not in body and "\\N" not in body and "\\an1" not in body


@pytest.mark.slow
def test_a_stop_kills_the_encode_and_leaves_nothing(wav, transcript, tmp_path):
    quote, words = _quote(transcript, 1, 6.0, 29.0)
    with pytest.raises(StopRequested):
        make_audiogram(wav, quote, words, tmp_path / "a.mp4", title=None, speaker=None, aspect="9:16",
                       settings=Settings(), should_stop=lambda: True)
    assert list(tmp_path.iterdir()) == []


def _job(store: ArtifactStore, job: str, wav: Path, transcript: Transcript, title: str) -> AudiogramsInput:
    quotes = [_quote(transcript, 1, 14.0, 18.0)[0], _quote(transcript, 2, 24.0, 28.6)[0],
              _quote(transcript, 3, 8.0, 12.6)[0]]
    speakers = SpeakerSet(engine="test", speakers=[Speaker(label="S1", name="Diane"), Speaker(label="S2")])
    store.put_model(job, "speakers.json", speakers, "speakers")
    return AudiogramsInput(
        job_id=job, audio=store.put_bytes(job, "audio.wav", wav.read_bytes(), "download"),
        transcript=store.put_model(job, "transcript.json", transcript, "speakers"),
        quotes=store.put_model(job, "quotes.json", QuoteSet(engine="test", quotes=quotes), "quotes"),
        media=store.put_model(job, "media.json", MediaInfo(title=title, source_url="file:///call.mp3",
                                                           duration_s=30.0), "download"))


@pytest.mark.slow
def test_the_stage_makes_the_top_quotes_and_reuses_finished_videos(wav, transcript, tmp_path):
    store = ArtifactStore(tmp_path / "storage")
    settings = Settings(storage_dir=tmp_path / "storage", audiograms_top=2, audiograms_aspects="1:1")
    deps, env = StageDeps(settings=settings, store=store), ActivityEnvironment()
    request = _job(store, "job-a", wav, transcript, TITLE)

    out = run(env.run(AudiogramsActivity(deps).run, request))
    assert [f.name for f in out.files] == ["audiograms/01-1x1.mp4", "audiograms/02-1x1.mp4"]  # the top 2
    index = store.read_model("job-a", out.index, AudiogramIndex)
    assert [(a.rank, a.aspect, a.width, a.height) for a in index.audiograms] == [(1, "1:1", 720, 720),
                                                                                (2, "1:1", 720, 720)]
    quotes = {q.rank: q for q in store.read_model("job-a", request.quotes, QuoteSet).quotes}
    shown = {a.rank: a.speaker for a in index.audiograms}
    # The name people gave, else the label: two voices here, so who speaks is worth showing before it is named.
    assert shown == {r: ("Diane" if quotes[r].speaker == "S1" else quotes[r].speaker) for r in shown}
    for ref in out.files:
        assert store.verify("job-a", ref).stat().st_size > 10_000 and ref.content_type == "video/mp4"

    # Another input whose videos would be the same (another quote cap): the stage's receipt doesn't apply, the
    # videos' receipts do, so they are kept as they are; a new title changes every video, so all are made again.
    again = run(env.run(AudiogramsActivity(deps).run, request.model_copy(update={"options": request.options.model_copy(
        update={"max_quotes": 5})})))
    assert [(f.name, f.sha256, f.created_at) for f in again.files] == \
        [(f.name, f.sha256, f.created_at) for f in out.files]

    retitled = _job(store, "job-a", wav, transcript, "Another title")
    third = run(env.run(AudiogramsActivity(deps).run, retitled))
    assert all(new.created_at > old.created_at for new, old in zip(third.files, out.files))


@pytest.mark.slow
def test_the_stage_turned_off_writes_an_empty_index(wav, transcript, tmp_path):
    store = ArtifactStore(tmp_path / "storage")
    settings = Settings(storage_dir=tmp_path / "storage", audiograms_enabled=False)
    out = run(ActivityEnvironment().run(AudiogramsActivity(StageDeps(settings=settings, store=store)).run,
                                        _job(store, "job-b", wav, transcript, TITLE)))
    index = store.read_model("job-b", out.index, AudiogramIndex)
    assert out.files == [] and index.audiograms == [] and "off" in (index.note or "")

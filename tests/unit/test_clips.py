"""Cutting quote clips with the real ffmpeg binary, probed back with PyAV: lengths, padding, formats, accuracy."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from clipper.errors import InvalidRequest
from clipper.media.clips import clip_name, cut_clip
from clipper.media.ffmpeg import to_wav16k_mono
from clipper.media.probe import probe_media

SAMPLE = Path(__file__).parent.parent / "data" / "sample.mp3"
TOLERANCE_S = 0.1


@pytest.fixture(scope="session")
def wav16k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample as the pipeline's 16 kHz mono WAV, converted once per session."""
    path = tmp_path_factory.mktemp("clips-src") / "audio.wav"
    to_wav16k_mono(SAMPLE, path)
    return path


@pytest.fixture(scope="session")
def wav_duration(wav16k: Path) -> float:
    duration = probe_media(wav16k).duration_s
    assert duration is not None and 54.0 < duration < 55.0
    return duration


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (10.0, 15.9, 5.9 + 2 * 0.5),  # padding on both sides
        (0.1, 2.0, 2.0 + 0.5),  # padding before the start clamped at 0
        (52.0, 54.4, None),  # padding after the end clamped at the media's end
    ],
)
@pytest.mark.parametrize("fmt", ["mp3", "wav", "ogg"])
def test_clip_duration_is_span_plus_clamped_padding(
    wav16k: Path, wav_duration: float, tmp_path: Path, fmt: str, start: float, end: float, expected: float | None
) -> None:
    if expected is None:
        expected = wav_duration - (start - 0.5)
    dst = tmp_path / "clips" / f"01-test.{fmt}"
    returned = cut_clip(wav16k, dst, start, end, fmt=fmt, padding_s=0.5)

    probe = probe_media(dst)
    assert probe.has_audio and not probe.has_video
    assert probe.format_name is not None and fmt in probe.format_name
    assert probe.duration_s == pytest.approx(expected, abs=TOLERANCE_S)
    assert returned == pytest.approx(expected, abs=TOLERANCE_S)
    # Only the clip itself: the temp file it was written under has been renamed, not left behind.
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]


def test_known_duration_skips_probe_and_clamps_to_it(wav16k: Path, tmp_path: Path) -> None:
    # The caller's duration wins: a clip near it is clamped there even though the file is longer.
    got = cut_clip(wav16k, tmp_path / "c.wav", 18.0, 19.8, fmt="wav", media_duration_s=20.0)
    assert got == pytest.approx(20.0 - 17.5, abs=TOLERANCE_S)


def test_m4a_clip_is_aac(wav16k: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.m4a"
    assert cut_clip(wav16k, dst, 10.0, 12.0, fmt="m4a") == pytest.approx(3.0, abs=TOLERANCE_S)
    assert probe_media(dst).has_audio


def _frames(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())


def test_cut_is_sample_accurate(wav16k: Path, tmp_path: Path) -> None:
    """Without padding and fade, a WAV clip holds exactly the source's samples of the span: decode, then trim."""
    dst = tmp_path / "exact.wav"
    cut_clip(wav16k, dst, 10.0, 12.5, fmt="wav", padding_s=0.0, fade_s=0.0)
    rate, channels, source = _frames(wav16k)
    clip_rate, clip_channels, clip = _frames(dst)
    assert (clip_rate, clip_channels) == (rate, channels) == (16000, 1)
    width = 2  # bytes per 16-bit mono sample
    assert clip == source[10 * rate * width : int(12.5 * rate) * width]


def test_fade_starts_and_ends_near_silence(wav16k: Path, tmp_path: Path) -> None:
    dst = tmp_path / "faded.wav"
    cut_clip(wav16k, dst, 10.0, 12.0, fmt="wav", padding_s=0.0, fade_s=0.05)
    _, _, clip = _frames(dst)
    samples = [int.from_bytes(clip[i : i + 2], "little", signed=True) for i in range(0, len(clip), 2)]
    # The fade starts and ends at (near) zero gain; the middle of speech is not silent.
    assert abs(samples[0]) <= 64 and abs(samples[-1]) <= 64
    assert max(abs(s) for s in samples) > 1000


def test_unknown_format_raises_and_writes_nothing(wav16k: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="flac"):
        cut_clip(wav16k, tmp_path / "c.flac", 1.0, 2.0, fmt="flac")
    with pytest.raises(InvalidRequest):
        clip_name(1, "hello", "flac")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("start", "end"), [(5.0, 5.0), (6.0, 5.0), (-1.0, 2.0), (60.0, 61.0)])
def test_invalid_spans_raise(wav16k: Path, tmp_path: Path, start: float, end: float) -> None:
    with pytest.raises(InvalidRequest):
        cut_clip(wav16k, tmp_path / "c.mp3", start, end)
    assert list(tmp_path.iterdir()) == []


def test_clip_name() -> None:
    text = "Durable systems are boring on purpose, and boring is exactly what our users pay for."
    assert clip_name(1, text, "mp3") == "clips/01-durable-systems-are-boring-on-purpose.mp3"
    assert clip_name(12, "Ça déjà-vu — naïve café!", "ogg") == "clips/12-ca-deja-vu-naive-cafe.ogg"
    assert clip_name(3, "...", "wav") == "clips/03-clip.wav"
    slug = clip_name(2, "x" * 100, "mp3").removeprefix("clips/02-").removesuffix(".mp3")
    assert slug == "x" * 40
    for name in (clip_name(1, text, "mp3"), clip_name(7, "Don't log a secret!", "wav")):
        slug = name.split("/", 1)[1].split("-", 1)[1].rsplit(".", 1)[0]
        assert slug.isascii() and len(slug) <= 40 and " " not in slug


def test_cut_from_compressed_source(tmp_path: Path) -> None:
    # Straight from the MP3: an input-side seek there would land on an estimate; decode-then-trim does not.
    dst = tmp_path / "from-mp3.wav"
    got = cut_clip(SAMPLE, dst, 30.0, 33.0, fmt="wav")
    assert got == pytest.approx(4.0, abs=TOLERANCE_S)
    with wave.open(str(dst)) as w:
        assert w.getnchannels() == 1

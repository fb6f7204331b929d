"""Probing (PyAV) and conversion (the real ffmpeg binary) on real files, good and bad."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import ffmpeg
import pytest

from clipper.config import Settings
from clipper.errors import InvalidMedia, MediaNotFound, MediaTooLong, NoAudioStream
from clipper.media.ffmpeg import ffmpeg_exe, first_error_line, to_wav16k_mono
from clipper.media.probe import ProbeResult, probe_media, require_audio

SAMPLE = Path(__file__).parent.parent / "data" / "sample.mp3"


def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG, built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\xff" * 6) * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-second test-pattern video with no audio track, made with ffmpeg's lavfi `testsrc`."""
    path = tmp_path_factory.mktemp("media") / "no_audio.mp4"
    (
        ffmpeg.input("testsrc=duration=1:size=64x48:rate=10", f="lavfi")
        .output(str(path), vcodec="mpeg4")
        .run(cmd=ffmpeg_exe(), overwrite_output=True, quiet=True)
    )
    return path


def test_ffmpeg_exe_runs() -> None:
    assert Path(ffmpeg_exe()).exists()


def test_probe_sample() -> None:
    probe = probe_media(SAMPLE)
    assert probe.duration_s == pytest.approx(54.4, abs=0.2)
    assert probe.has_audio and not probe.has_video
    assert probe.title == "Building software that never loses work"
    assert probe.artist == "Clipper Podcast"
    assert probe.format_name == "mp3"
    assert probe.size == SAMPLE.stat().st_size


def test_to_wav16k_mono(tmp_path: Path) -> None:
    dst = tmp_path / "out" / "audio.wav"
    to_wav16k_mono(SAMPLE, dst)
    assert [p.name for p in dst.parent.iterdir()] == ["audio.wav"]  # no temp file left behind
    with av.open(str(dst)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "pcm_s16le"
        assert stream.codec_context.sample_rate == 16000
        assert stream.codec_context.channels == 1
    probe = probe_media(dst)
    assert probe.format_name == "wav"
    assert probe.duration_s == pytest.approx(54.4, abs=0.2)


def test_to_wav_overwrites_existing(tmp_path: Path) -> None:
    dst = tmp_path / "audio.wav"
    dst.write_bytes(b"old")
    to_wav16k_mono(SAMPLE, dst)
    assert dst.stat().st_size > 1_000_000


def test_zero_byte_file_is_invalid(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(InvalidMedia, match="empty"):
        probe_media(empty)
    with pytest.raises(InvalidMedia, match="empty"):
        to_wav16k_mono(empty, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_png_renamed_mp3_is_invalid(tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_bytes(tiny_png())
    with pytest.raises(InvalidMedia, match="still image"):
        probe_media(fake)


def test_garbage_is_invalid_with_a_short_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not media at all " * 40)
    with pytest.raises(InvalidMedia) as probe_error:
        probe_media(junk)
    with pytest.raises(InvalidMedia) as convert_error:
        to_wav16k_mono(junk, tmp_path / "out.wav")
    for error in (probe_error.value, convert_error.value):
        assert "junk.mp3" in error.message
        assert "\n" not in error.message and len(error.message) < 400
    assert list(tmp_path.iterdir()) == [junk]


def test_video_without_audio(silent_video: Path, tmp_path: Path) -> None:
    probe = probe_media(silent_video)
    assert probe.has_video and not probe.has_audio
    with pytest.raises(NoAudioStream):
        require_audio(probe, Settings())
    with pytest.raises(NoAudioStream, match="no audio"):
        to_wav16k_mono(silent_video, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFound):
        probe_media(tmp_path / "nope.mp3")
    with pytest.raises(MediaNotFound):
        to_wav16k_mono(tmp_path / "nope.mp3", tmp_path / "out.wav")


def test_require_audio_duration_limit() -> None:
    probe = probe_media(SAMPLE)
    require_audio(probe, Settings())
    with pytest.raises(MediaTooLong) as info:
        require_audio(probe, Settings(max_duration_s=30))
    assert "0:00:54" in info.value.message and "0:00:30" in info.value.message


def test_require_audio_unknown_duration_passes() -> None:
    require_audio(ProbeResult(duration_s=None, has_audio=True, has_video=False, size=10), Settings())


def test_first_error_line_strips_noise() -> None:
    stderr = (
        b"[in#0 @ 0x5555] Error opening input: Invalid data found when processing input\n"
        b"Error opening input file x.mp3.\nError opening input files: Invalid data found when processing input\n"
    )
    assert first_error_line(stderr) == "Error opening input: Invalid data found when processing input"
    assert first_error_line(b"") == "ffmpeg failed without saying why"


@pytest.mark.slow
def test_a_conversion_stops_when_asked(tmp_path: Path) -> None:
    """Converting hours of audio takes seconds: a cancel (`should_stop`) kills ffmpeg instead of waiting for it,
    and leaves neither the output nor its temp file (control latency)."""
    import subprocess
    import threading

    from clipper.asr.base import StopRequested

    long = tmp_path / "long.mp3"  # the sample 120 times over: ~1.8 h, copied without re-encoding
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-stream_loop", "119", "-i", str(SAMPLE), "-c", "copy",
                    str(long)], check=True)
    asked = threading.Event()

    def should_stop() -> bool:
        stop = asked.is_set()
        asked.set()  # the first question says "go on"; the next, a tenth of a second in, says "stop"
        return stop

    dst = tmp_path / "out.wav"
    with pytest.raises(StopRequested):
        to_wav16k_mono(long, dst, should_stop=should_stop)
    assert not dst.exists() and list(tmp_path.iterdir()) == [long]

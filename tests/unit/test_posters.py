"""The audiogram posters of the job page (clipper_app/web/posters.py): one frame of a real video drawn by real
ffmpeg as a JPEG, drawn once however many ask at once; a file that is no video is a typed error."""

from __future__ import annotations

import subprocess
import threading

import pytest

from clipper.errors import InvalidMedia
from clipper.media.ffmpeg import ffmpeg_exe
from clipper_app.web import posters


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """Two seconds of a plain frame with a white box from 1 s on: a frame taken at 1 s shows the box."""
    out = tmp_path_factory.mktemp("poster") / "a.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=0x14213d:s=160x160:d=2:r=10", "-vf", "drawbox=x=40:y=40:w=80:h=80:c=white:t=fill:"
                    "enable='gte(t,1)'", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def test_a_poster_is_a_jpeg_of_the_frame_a_second_in(video):
    image = posters.frame(video)
    assert image[:3] == b"\xff\xd8\xff" and image[-2:] == b"\xff\xd9"
    first = posters.frame(video, at_s=0)
    assert first != image  # the white box is there only from 1 s on
    assert posters.frame(video, at_s=60)[:3] == b"\xff\xd8\xff"  # past the end: the first frame


def test_a_file_that_is_no_video_is_a_typed_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(InvalidMedia, match="broken.mp4 has no frame to show as a poster"):
        posters.frame(bad)


def test_many_asking_at_once_get_one_drawing(video):
    key = "test-" + video.name
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(posters._drawn(key, video))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and len({id(image) for image in got}) == 1  # one object: drawn once, then the cache's
    assert posters._cache[key] is got[0] and key not in posters._drawing

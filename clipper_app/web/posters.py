"""Posters for the job page's audiogram players: one frame of the audiogram, as a JPEG, so a player shows the
quote, the title and the waveform before it plays instead of a black box.

Drawn on request from the artifact itself (real ffmpeg, one frame a second in: the words are on screen by then),
so every job that has audiograms gets posters, old ones too, without a stage of its own or a file in the store.
Only a listed `.mp4` artifact of the job is read, verified by the client as any artifact served; the frames are
kept in memory by the video's sha256 (a bounded LRU), so a poster is drawn once per server and a changed video
(a new version, speakers named) gets a new one; the ETag is that sha256 too.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response

from clipper.errors import InvalidMedia
from clipper.media.ffmpeg import ffmpeg_exe, first_error_line
from clipper_app.client import ArtifactNotFound, ClipperClient
from clipper_app.web import artifacts
from clipper_app.web.api import _job_manifest, client
from clipper_app.web.security import require_reader

AT_S = 1.0  # where the frame is taken; a video shorter than that gets its first frame
KEEP = 64  # posters kept in memory (a 270 px JPEG is some 10–30 kB)
WIDTH = 540  # pixels across: twice what the page shows, sharp on a phone's dense screen

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_reader)])
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()  # guards _cache and _drawing: the frames are drawn in worker threads
_drawing: dict[str, threading.Lock] = {}  # one draw per video at a time: a page of many players asks at once


def frame(video: Path, at_s: float = AT_S) -> bytes:
    """One frame of `video` at `at_s` (or its first, if it is shorter) as JPEG bytes, scaled to `WIDTH`."""
    for seek in (at_s, 0.0):
        args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", f"{seek:.3f}", "-i",
                str(video), "-frames:v", "1", "-vf", f"scale={WIDTH}:-2", "-q:v", "4", "-f", "image2pipe",
                "-c:v", "mjpeg", "pipe:1"]
        try:
            done = subprocess.run(args, capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired as err:
            done = subprocess.CompletedProcess(args, -1, b"", err.stderr or b"ffmpeg took over 30 s")
        if done.returncode == 0 and done.stdout:
            return done.stdout
    raise InvalidMedia(f"{video.name} has no frame to show as a poster ({first_error_line(done.stderr)}); "
                       "the video itself may be broken: check that its artifact plays")


@router.get("/jobs/{job_id}/posters/{name:path}", response_class=Response)
async def poster(request: Request, job_id: str, name: str, clipper: ClipperClient = Depends(client)) -> Response:
    """The poster of audiogram `name` (a manifest name, e.g. `audiograms/01-1x1.mp4`): image/jpeg."""
    if not name.endswith(".mp4"):
        raise ArtifactNotFound(f"{job_id} has no video {name!r} to draw a poster of")
    ref = artifacts.lookup(job_id, await _job_manifest(clipper, job_id), name)
    etag = f'"poster-{ref.sha256}"'
    headers = {"ETag": etag, **artifacts.SAFE_HEADERS}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    with _lock:
        image = _cache.get(ref.sha256)
        if image is not None:
            _cache.move_to_end(ref.sha256)
    if image is None:
        path = await clipper.artifact_file(job_id, ref)  # verified: inside the job's folder, sha256 matches
        image = await asyncio.to_thread(_drawn, ref.sha256, path)
    return Response(image, media_type="image/jpeg", headers=headers)


def _drawn(key: str, video: Path) -> bytes:
    """The poster of `video` (sha256 `key`) from the cache, or drawn once and kept, however many ask at once."""
    with _lock:
        drawing = _drawing.setdefault(key, threading.Lock())
    with drawing:
        with _lock:
            image = _cache.get(key)
        if image is not None:
            return image
        try:
            image = frame(video)
            with _lock:  # kept before the draw is let go of: whoever asks next finds it
                _cache[key] = image
                while len(_cache) > KEEP:
                    _cache.popitem(last=False)
        finally:
            with _lock:
                _drawing.pop(key, None)
        return image

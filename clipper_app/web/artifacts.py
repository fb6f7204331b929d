"""Serving a job's (or batch's) artifacts, local folder or S3, through the client (never the store itself).

Only names listed in the job's manifest are served (`JobResult.artifacts` of a finished job, the batch
folder's manifest for a batch): a name is looked up, never joined to a path, which alone closes `..`, encoded
slashes and absolute paths; the client's `artifact_file` then resolves the file and refuses one that leaves the
job's folder (a symlink) or no longer matches its sha256 (it remembers files it verified, so a browser seeking
in audio does not hash the file on every Range request). HTTP Range (206, 416, If-Range) is Starlette's
`FileResponse`; the ETag is the manifest's sha256, so a client revalidates without a download (304). One small
byte range (what a player asks for when it starts or seeks) is read in one go instead: `FileResponse` streams it
with a worker-thread hop per step (stat, open, read, close), which under many players at once costs more than
the read itself.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from pathlib import Path

from fastapi import Request, Response
from fastapi.responses import FileResponse

from clipper_app.client import ArtifactNotFound, ArtifactRef, ClipperClient

# Types `mimetypes` does not know (or guesses wrong) for what clipper writes.
CONTENT_TYPES = {
    ".md": "text/markdown; charset=utf-8", ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
    ".jsonl": "application/x-ndjson", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
    ".ogg": "audio/ogg", ".mp4": "video/mp4", ".zip": "application/zip",
}
# Artifacts are data, never pages of this app: no sniffing, no scripts, even if a file looked like HTML.
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-cache"}

SMALL_RANGE = 1 << 20  # bytes: a single range up to this long is read whole and sent at once


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def listing(artifacts: dict[str, ArtifactRef]) -> list[ArtifactRef]:
    return [artifacts[name] for name in sorted(artifacts)]


def lookup(job_id: str, artifacts: dict[str, ArtifactRef], name: str) -> ArtifactRef:
    ref = artifacts.get(name)
    if ref is None:
        raise ArtifactNotFound(f"{job_id} has no artifact {name!r}")
    return ref


async def serve(request: Request, clipper: ClipperClient, job_id: str, ref: ArtifactRef) -> Response:
    path = await clipper.artifact_file(job_id, ref)  # ArtifactNotFound outside the job's folder, CorruptArtifact
    return await file_response(request, path, ref)


async def file_response(request: Request, path: Path, ref: ArtifactRef) -> Response:
    """The verified file `path` of `ref` as this request asks for it (304, one small range, or `FileResponse`)."""
    etag = f'"{ref.sha256}"'
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag, **SAFE_HEADERS})
    whole = FileResponse(path, media_type=content_type(ref.name), headers={"ETag": etag, **SAFE_HEADERS},
                         content_disposition_type="inline", filename=Path(ref.name).name)
    span = small_range(request, etag, ref.size)
    if span is None:
        return whole
    start, end = span
    body = await asyncio.to_thread(_read, path, start, end - start + 1)
    headers = {**whole.headers, "content-range": f"bytes {start}-{end}/{ref.size}"}
    headers.pop("content-length", None)  # Response sets it from the body
    return Response(body, status_code=206, headers=headers, media_type=whole.media_type)


def small_range(request: Request, etag: str, size: int) -> tuple[int, int] | None:
    """(first, last byte) of a GET for one satisfiable range of at most `SMALL_RANGE` bytes, whose If-Range (if
    any) names this ETag; None for anything else (no range, several, a suffix beyond the file, 416 cases), which
    `FileResponse` answers."""
    header = request.headers.get("range")
    if request.method != "GET" or not header or request.headers.get("if-range", etag).strip() != etag:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (first or last) or not (first + last).isdigit():
        return None
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # the last `last` bytes
        start, end = max(size - int(last), 0), size - 1
    if start > end or end - start + 1 > SMALL_RANGE:
        return None
    return start, end


def _read(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as f:
        return os.pread(f.fileno(), length, start)

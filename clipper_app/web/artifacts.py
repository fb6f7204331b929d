"""Serving a job's (or batch's) artifacts from the configured store, local folder or S3.

Only names listed in the job's manifest are served (`JobResult.artifacts` of a finished job, the batch
folder's manifest for a batch): a name is looked up, never joined to a path, which alone closes `..`, encoded
slashes and absolute paths; the store's `verify` then resolves the file and refuses one that leaves the job's
folder (a symlink) or no longer matches its sha256. HTTP Range (206, 416, If-Range) is Starlette's
`FileResponse`; the ETag is the manifest's sha256, so a client revalidates without a download (304).

Checking the sha256 reads the whole file, and a browser seeking in audio sends many Range requests: a file
verified once is trusted while its size, mtime and inode stay the same (`_VERIFIED`).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections import OrderedDict
from pathlib import Path

from fastapi import Request, Response
from fastapi.responses import FileResponse

from clipper.errors import InvalidRequest
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef
from clipper_app.client import ArtifactNotFound

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
_VERIFIED: OrderedDict[tuple[str, str, str], tuple[int, int, int]] = OrderedDict()
_VERIFIED_MAX = 1024


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


def _verified_path(store: ArtifactStore, job_id: str, ref: ArtifactRef) -> Path:
    key = (job_id, ref.name, ref.sha256)
    path = store.path(job_id, ref.name)  # InvalidRequest when it resolves outside the job's folder
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        stamp = None
    if stamp is not None and _VERIFIED.get(key) == stamp:
        _VERIFIED.move_to_end(key)
        return path
    path = store.verify(job_id, ref)
    st = path.stat()
    _VERIFIED[key] = (st.st_size, st.st_mtime_ns, st.st_ino)
    while len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return path


async def serve(request: Request, store: ArtifactStore, job_id: str, ref: ArtifactRef) -> Response:
    try:
        path = await asyncio.to_thread(_verified_path, store, job_id, ref)
    except InvalidRequest:  # a listed name whose file leaves the job's folder (a symlink): never served
        raise ArtifactNotFound(f"{job_id} has no artifact {ref.name!r} inside its folder") from None
    etag = f'"{ref.sha256}"'
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag, **SAFE_HEADERS})
    return FileResponse(path, media_type=content_type(ref.name), headers={"ETag": etag, **SAFE_HEADERS},
                        content_disposition_type="inline", filename=Path(ref.name).name)

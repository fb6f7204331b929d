"""All of a job's clips as one zip, streamed: nothing is built in memory or on disk first.

`zipfile` writes to a stream it cannot seek (sizes go into data descriptors after each file), so the archive is
produced piece by piece while it is sent. The files are checked against the manifest's sha256 before the first
byte goes out (`verified_paths`), so a damaged clip is a 404 problem, never a truncated download. Clips are MP3s:
stored, not deflated (compressing them again gains nothing and costs CPU).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

from clipper.errors import InvalidRequest
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef
from clipper_app.client import ArtifactNotFound
from clipper_app.web.artifacts import _verified_path

CHUNK = 256 * 1024


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def verified_paths(store: ArtifactStore, job_id: str, refs: list[ArtifactRef]) -> list[tuple[str, Path]]:
    """(name in the zip, local verified file) for each ref: a name is a manifest name, never a path from a user."""
    out = []
    for ref in refs:
        try:
            out.append((ref.name, _verified_path(store, job_id, ref)))
        except InvalidRequest:
            raise ArtifactNotFound(f"{job_id} has no artifact {ref.name!r} inside its folder") from None
    return out


def stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            with archive.open(name, "w") as dst, path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()

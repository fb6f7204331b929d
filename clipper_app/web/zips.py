"""All of a job's clips as one zip, streamed: nothing is built in memory or on disk first.

`zipfile` writes to a stream it cannot seek (sizes go into data descriptors after each file), so the archive is
produced piece by piece while it is sent. The files are checked against the manifest's sha256 before the first
byte goes out (the client's `clip_files`), so a damaged clip is a problem answer, never a truncated download.
Clips are MP3s: stored, not deflated (compressing them again gains nothing and costs CPU).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

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


def stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """The zip of `files`: (name in the zip, a manifest name, never a path from a user; its verified local file)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            with archive.open(name, "w") as dst, path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()

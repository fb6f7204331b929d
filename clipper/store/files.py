"""Durable file writes, below the artifact store: atomic replace, fsync, and append-only progress logs.

A crash at any moment leaves either the old file or the new one, never half of one; "disk full" surfaces as a
typed, retryable `StorageFull` naming what could not be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from clipper.errors import is_storage_full, storage_full


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn "disk full" (ENOSPC, EFBIG, EDQUOT) while writing `what` into a typed, retryable `StorageFull`."""
    try:
        yield
    except OSError as e:
        if is_storage_full(e):
            raise storage_full(what, e) from e
        raise


# The name of a temp file: hidden, the target's name, a random hex part, `.tmp`. Every writer names its temp files
# with `temp_path`, so that `is_temp_file` recognises what a writer killed before its rename left behind.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def temp_path(path: Path) -> Path:
    """A hidden temp file beside `path` (same filesystem, so renaming it into place is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def is_temp_file(path: Path) -> bool:
    """True for a name `temp_path` makes: a file that is only ever renamed into place or removed."""
    return bool(_TEMP_NAME.match(path.name))


def write_synced(path: Path, data: bytes, what: str) -> None:
    with writing(what):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        write_synced(tmp, data, path.name)
        with writing(path.name):
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


class JsonlLog:
    """An append-only JSON-lines file for resumable progress (e.g. finished transcript segments).

    Each line is flushed and fsynced; a torn last line (crash mid-write) is ignored on read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def rewrite(self, records: list[dict]) -> None:
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        atomic_write_bytes(self.path, data)

    def append(self, record: dict) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        with writing(self.path.name):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab", buffering=0) as f:  # unbuffered: nothing left to flush at close
                size = f.seek(0, os.SEEK_END)
                try:
                    view = memoryview(line)
                    while view:  # a raw write may be short (e.g. at a file-size limit)
                        view = view[f.write(view):]
                    os.fsync(f.fileno())
                except OSError:
                    # A torn line would hide every record appended after it; put the file back as it was.
                    with contextlib.suppress(OSError):
                        f.truncate(size)
                    raise

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

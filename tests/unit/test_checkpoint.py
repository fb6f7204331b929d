"""Torch zip checkpoints read without torch (clipper/speakers/checkpoint.py): tensors come back exact, and a
crafted file cannot make the unpickler call anything but the tensor rebuild."""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from clipper.errors import SpeakerModelMissing
from clipper.speakers.checkpoint import read_zip_state_dict


def _write(path: Path, payload: bytes, storages: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)


def _tensor_pickle() -> bytes:
    """A state dict {"w": 2×3 float32 tensor, "b": its transposed view} in torch's zip pickle layout, written by
    hand: GLOBAL opcodes for the rebuild function and the storage type, a persistent id for the storage."""
    def glob(module: str, name: str) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    storage = b"(" + b"X\x07\x00\x00\x00storage" + glob("torch", "FloatStorage") + b"X\x01\x00\x00\x000" \
        + b"X\x03\x00\x00\x00cpu" + b"K\x06" + b"tQ"  # persistent id tuple, BINPERSID
    def tensor(size: tuple, stride: tuple) -> bytes:
        ints = lambda xs: b"(" + b"".join(b"K" + bytes([x]) for x in xs) + b"t"  # noqa: E731
        return glob("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + b"K\x00" + ints(size) \
            + ints(stride) + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR"
    body = glob("collections", "OrderedDict") + b")R" + b"(" \
        + b"X\x01\x00\x00\x00w" + tensor((2, 3), (3, 1)) + b"X\x01\x00\x00\x00b" + tensor((3, 2), (1, 3)) + b"u."
    return b"\x80\x02" + body


def test_a_state_dict_comes_back_exact(tmp_path: Path) -> None:
    values = np.arange(6, dtype="<f4")
    path = tmp_path / "model.pt"
    _write(path, _tensor_pickle(), {"0": values.tobytes()})
    sd = read_zip_state_dict(path)
    np.testing.assert_array_equal(sd["w"], values.reshape(2, 3))
    np.testing.assert_array_equal(sd["b"], values.reshape(2, 3).T)  # strides honoured


def test_foreign_classes_and_broken_files_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    _write(evil, b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.", {})
    with pytest.raises(SpeakerModelMissing, match="unexpected class os.system"):
        read_zip_state_dict(evil)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a zip")
    with pytest.raises(SpeakerModelMissing):
        read_zip_state_dict(broken)
    with pytest.raises(SpeakerModelMissing):
        read_zip_state_dict(tmp_path / "absent.pt")
    not_tensors = tmp_path / "dict.pt"
    _write(not_tensors, pickle.dumps(OrderedDict(a=1), protocol=2), {})
    with pytest.raises(SpeakerModelMissing, match="state dict"):
        read_zip_state_dict(not_tensors)

"""Settings a new user meets first: where the outputs go."""

from __future__ import annotations

from pathlib import Path

from clipper.config import Settings


def test_the_store_is_the_user_data_directory_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPPER_STORAGE_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    here = Settings().storage_dir
    monkeypatch.chdir(tmp_path)
    assert Settings().storage_dir == here == tmp_path / "data" / "clipper"
    assert here.is_absolute()


def test_the_environment_moves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPPER_STORAGE_DIR", str(tmp_path / "elsewhere"))
    assert Settings().storage_dir == Path(tmp_path / "elsewhere")

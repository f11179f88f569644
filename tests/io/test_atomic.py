"""Atomic replacement of files and folders."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.io import replace_folder, write_atomic


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "sub" / "a.bin", b"new")
    write_atomic(path, b"newer")
    assert path.read_bytes() == b"newer"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin"]


def test_replace_folder_swaps_the_whole_content(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "stale.json").write_text("old")
    staging = Path(tempfile.mkdtemp(dir=tmp_path))
    (staging / "fresh.json").write_text("new")
    assert replace_folder(staging, folder) == folder
    assert [p.name for p in folder.iterdir()] == ["fresh.json"]  # nothing of the old content survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # staging and the old copy are gone
    second = Path(tempfile.mkdtemp(dir=tmp_path))
    replace_folder(second, tmp_path / "new_folder")  # a folder that did not exist yet
    assert (tmp_path / "new_folder").is_dir() and not second.exists()

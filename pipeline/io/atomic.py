"""Atomic file-system updates: a reader never sees a half-written file or a half-replaced folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["replace_folder", "write_atomic"]


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path`` and rename it into place (no half-written file).

    Args:
        path: the file to write (its folder is created).
        data: its bytes.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def replace_folder(staging: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Move the finished folder ``staging`` to ``folder``, replacing whatever ``folder`` held, by renames only.

    ``staging`` must lie on the same file system as ``folder`` (e.g. a ``tempfile.mkdtemp`` in its parent). An
    existing ``folder`` is first renamed aside and removed only after ``staging`` took its place, so at every
    moment ``folder`` is either the old or the new content.

    Args:
        staging: the new content.
        folder: where it goes.

    Returns:
        ``folder``.

    Raises:
        OSError: a rename failed (``staging`` is then left for the caller to remove).
    """
    staging, folder = Path(staging), Path(folder)
    if not folder.exists():
        os.replace(staging, folder)
        return folder
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
    os.replace(folder, old / folder.name)
    os.replace(staging, folder)
    shutil.rmtree(old)
    return folder

"""A per-file cache of header inspections and data checks, so start-up over large collections is fast.

Inspecting a file opens it and reads its header (milliseconds); checking its data reads every slice (the
whole file). Both results, good or bad, are stored per file in one JSON file, keyed by the file's absolute
path and the reader, and valid while the file's modification time and size are unchanged. The start-up
check (:func:`pipeline.engines.preflight`), the datasets and ``python -m pipeline.data.inspect`` share it.

The cache file of a manifest lives in the user cache folder: ``$PIPELINE_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/jssl_pipeline`` (default ``~/.cache/jssl_pipeline``), named after a hash of the
manifest's absolute path. It is written atomically (a temporary file renamed), so concurrent readers never
see half a file; the last writer wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline.data.errors import DataError
from pipeline.data.formats import VolumeInfo

__all__ = ["CACHE_VERSION", "HeaderCache", "default_cache_path"]

CACHE_VERSION = 1
"""Bumped when a format's checks change, so older records are ignored."""


def default_cache_path(manifest: str | os.PathLike) -> Path:
    """The cache file of ``manifest`` (see the module docstring for the folder)."""
    folder = os.environ.get("PIPELINE_CACHE_DIR")
    if not folder:
        folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jssl_pipeline")
    digest = hashlib.sha256(os.path.abspath(os.fspath(manifest)).encode()).hexdigest()[:16]
    return Path(folder) / f"headers-{Path(manifest).stem}-{digest}.json"


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _error_record(err: DataError) -> dict[str, Any]:
    return {"problem": err.problem, "slice": err.slice_idx}


def _error(path: str, record: dict[str, Any]) -> DataError:
    return DataError(path, record["problem"], record["slice"])


class HeaderCache:
    """Header records and data-check results of files, valid while a file's mtime and size are unchanged.

    Args:
        path: the JSON cache file (created on :meth:`save`); ``None`` keeps the records in memory only.

    Example:
        >>> cache = HeaderCache(None)
        >>> cache.info("/nonexistent.h5", "auto") is None
        True
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self.hits = 0
        self.misses = 0
        if self.path is not None and self.path.is_file():
            try:
                content = json.loads(self.path.read_text())
            except (OSError, ValueError):
                content = {}
            if isinstance(content, dict) and content.get("version") == CACHE_VERSION:
                self._records = dict(content.get("files", {}))

    def _record(self, path: str, reader: str) -> dict[str, Any] | None:
        key = f"{os.path.abspath(path)}|{reader}"
        record = self._records.get(key)
        stat = _stat(path)
        if record is None or stat is None or [record["mtime_ns"], record["size"]] != list(stat):
            return None
        return record

    def _entry(self, path: str, reader: str) -> dict[str, Any]:
        key = f"{os.path.abspath(path)}|{reader}"
        stat = _stat(path) or (0, 0)
        record = self._record(path, reader)
        if record is None:
            record = {"mtime_ns": stat[0], "size": stat[1]}
            self._records[key] = record
        self._dirty = True
        return record

    def info(self, path: str, reader: str) -> VolumeInfo | DataError | None:
        """The cached inspection of ``path``: its :class:`VolumeInfo`, the :class:`DataError` it raised, or
        ``None`` when there is no valid record (missing, or the file changed)."""
        record = self._record(path, reader)
        if record is None or "info" not in record:
            self.misses += 1
            return None
        self.hits += 1
        if record["info"] is None:
            return _error(path, record["error"])
        return VolumeInfo.from_dict({**record["info"], "file": path})

    def put_info(self, path: str, reader: str, result: VolumeInfo | DataError) -> None:
        """Store an inspection result (a :class:`VolumeInfo` or the :class:`DataError` it raised)."""
        record = self._entry(path, reader)
        if isinstance(result, DataError):
            record.update(info=None, error=_error_record(result))
        else:
            record.update(info=result.to_dict(), error=None)

    def data_check(self, path: str, reader: str) -> DataError | bool | None:
        """The cached data check: ``True`` (every slice read fine), its :class:`DataError`, or ``None``."""
        record = self._record(path, reader)
        if record is None or "data" not in record:
            return None
        return True if record["data"] is None else _error(path, record["data"])

    def put_data_check(self, path: str, reader: str, error: DataError | None) -> None:
        """Store a data check's result (``None`` for a file whose every slice reads fine)."""
        self._entry(path, reader)["data"] = None if error is None else _error_record(error)

    def save(self) -> None:
        """Write the records (atomically) if anything changed; a read-only cache folder is ignored."""
        if self.path is None or not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": self._records}))
            tmp.replace(self.path)
        except OSError:
            return
        self._dirty = False

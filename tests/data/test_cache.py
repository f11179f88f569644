"""The header cache: hits, invalidation by mtime/size, cached errors and data checks, atomic file."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from pipeline.data.cache import CACHE_VERSION, HeaderCache, default_cache_path
from pipeline.data.datasets import scan_items
from pipeline.data.errors import DataError


def _write(path, kspace):
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
    return str(path)


@pytest.fixture
def files(tmp_path):
    good = _write(tmp_path / "good.h5", np.ones((2, 2, 8, 6), np.complex64))
    nan = np.ones((2, 2, 8, 6), np.complex64)
    nan[1, 0, 0, 0] = np.nan
    bad_data = _write(tmp_path / "nan.h5", nan)
    bad_header = _write(tmp_path / "rank.h5", np.ones((2, 8), np.complex64))
    return good, bad_data, bad_header


def test_second_scan_reads_from_the_cache(files, tmp_path):
    path = tmp_path / "cache" / "headers.json"
    cache = HeaderCache(path)
    items = [{"file": f} for f in files]
    first = scan_items(items, on_error="skip", cache=cache)
    assert [os.path.basename(e.file) for e in first.skipped] == ["nan.h5", "rank.h5"]
    assert "slice 1: NaN or Inf" in str(first.skipped[0])
    content = json.loads(path.read_text())
    assert content["version"] == CACHE_VERSION and len(content["files"]) == 3
    again = HeaderCache(path)
    second = scan_items(items, on_error="skip", cache=again)
    assert again.hits == 3 and again.misses == 0
    assert [str(e) for e in second.skipped] == [str(e) for e in first.skipped]
    assert second.volumes[0][1] == first.volumes[0][1]
    # raise mode reads only headers: the cached data problem is not needed, the header one is raised
    with pytest.raises(DataError, match="rank.h5"):
        scan_items(items, on_error="raise", cache=HeaderCache(path))


def test_a_changed_file_is_inspected_again(files, tmp_path):
    good, _, _ = files
    cache = HeaderCache(tmp_path / "c.json")
    scan_items([{"file": good}], cache=cache)
    _write(good, np.ones((3, 2, 8, 6), np.complex64))  # new size and mtime
    os.utime(good, ns=(1, 1))
    fresh = HeaderCache(tmp_path / "c.json")
    assert fresh.info(good, "auto") is None
    assert scan_items([{"file": good}], cache=fresh).volumes[0][1].num_slices == 3


def test_default_cache_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "here"))
    a, b = default_cache_path("data_manifests/demo.json"), default_cache_path(tmp_path / "demo.json")
    assert a.parent == b.parent == tmp_path / "here" and a != b and a.name.startswith("headers-demo-")
    assert default_cache_path("data_manifests/demo.json") == a


def test_unreadable_cache_files_are_ignored(tmp_path, files):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert HeaderCache(path).info(files[0], "auto") is None
    path.write_text(json.dumps({"version": CACHE_VERSION - 1, "files": {"x": {}}}))
    assert HeaderCache(path).info(files[0], "auto") is None

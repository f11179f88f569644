"""Slice expansion, skip mode and the MONAI slice dataset (with DataLoader workers)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from monai.data import DataLoader

from pipeline.data.datasets import SliceDataset, expand_slices
from pipeline.data.errors import DataError, data_error_message
from pipeline.data.manifests import load_manifest
from pipeline.keys import Keys


def _write(path: Path, kspace: np.ndarray) -> dict:
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
    return {"file": str(path), "domain": "proxy"}


@pytest.fixture
def items(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        _write(tmp_path / f"v{i}.h5", (rng.standard_normal((n, 2, 8, 6)) + 0j).astype(np.complex64))
        for i, n in enumerate((3, 2))
    ]


def test_expand_one_item_per_slice(items):
    out = expand_slices(items + [{**items[0], "slices": [1, 3]}])
    assert [(Path(i["file"]).name, i["slice_idx"]) for i in out] == [
        ("v0.h5", 0), ("v0.h5", 1), ("v0.h5", 2), ("v1.h5", 0), ("v1.h5", 1), ("v0.h5", 1), ("v0.h5", 2)
    ]
    assert all(i["domain"] == "proxy" for i in out)
    with pytest.raises(DataError, match=r"v1\.h5: 'slices' \[0, 5\] outside"):
        expand_slices([{**items[1], "slices": [0, 5]}])


def test_skip_mode_warns_once_listing_bad_files(items, tmp_path):
    bad_rank = _write(tmp_path / "bad_rank.h5", np.zeros((2, 8), np.complex64))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00" * 2048)
    bad = [bad_rank, {"file": str(garbage)}, {"file": str(tmp_path / "missing.h5")}]
    with pytest.raises(DataError, match="bad_rank.h5"):
        expand_slices(items + bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = expand_slices(items[:1] + bad + items[1:], on_error="skip")
    assert len(out) == 5
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1
    assert "3 bad file(s)" in messages[0]
    for name, problem in (("bad_rank.h5", "rank 2"), ("garbage.h5", "HDF5"), ("missing.h5", "not found")):
        assert name in messages[0] and problem in messages[0]
    with pytest.raises(ValueError, match="on_error"):
        expand_slices(items, on_error="ignore")


def test_slice_dataset_loads_lazily_and_pickles(tiny_dataset):
    ds = SliceDataset(load_manifest(tiny_dataset, "target"))
    assert len(ds) == 6
    clone = pickle.loads(pickle.dumps(ds))
    sample = clone[4]
    assert sample[Keys.FILENAME] == "target_001.h5" and sample[Keys.SLICE] == 1 and sample[Keys.DOMAIN] == "target"
    assert sample[Keys.MASK].shape == (1, 128, 72, 1)


def test_slice_dataset_in_dataloader_workers(tiny_dataset):
    ds = SliceDataset(load_manifest(tiny_dataset, "validation"), transform=lambda d: {**d, "extra": 1})
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=1)))
    assert batch[Keys.KSPACE].shape == (2, 4, 128, 72, 2) and batch[Keys.TARGET].shape == (2, 1, 64, 64)
    assert batch[Keys.MASK].dtype == torch.bool and batch["extra"].tolist() == [1, 1]


def test_skip_mode_reads_the_data_once_and_skips_bad_data(items, tmp_path):
    """A NaN inside a slice or a volume that is zero everywhere is found at start-up in skip mode, not mid-run."""
    nan = np.ones((3, 2, 8, 6), np.complex64)
    nan[2, 1, 4, 4] = np.nan
    bad = [_write(tmp_path / "nan.h5", nan), _write(tmp_path / "zero.h5", np.zeros((2, 2, 8, 6), np.complex64))]
    assert len(expand_slices(items + bad)) == 5 + 3 + 2  # raise mode checks headers only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = expand_slices(items + bad, on_error="skip")
        again = expand_slices(items + bad, on_error="skip")  # listed once per process
    assert len(out) == len(again) == 5
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "2 bad file(s)" in messages[0]
    assert "nan.h5, slice 2: NaN or Inf values in 'kspace'" in messages[0] and "zero.h5: k-space is zero" in messages[0]


def test_loader_errors_are_data_errors_not_monai_runtime_errors(tmp_path):
    nan = np.ones((2, 2, 8, 6), np.complex64)
    nan[1, 0, 0, 0] = np.nan
    ds = SliceDataset([_write(tmp_path / "late_nan.h5", nan)], transform=lambda d: d)
    ds[0]
    with pytest.raises(DataError, match=r"late_nan\.h5, slice 1: NaN or Inf"):
        ds[1]
    with pytest.raises(DataError) as err:  # also from a DataLoader worker
        list(DataLoader(ds, batch_size=1, num_workers=1))
    assert str(err.value) == f"{tmp_path / 'late_nan.h5'}, slice 1: NaN or Inf values in 'kspace'"
    assert (err.value.file, err.value.slice_idx) == (str(tmp_path / "late_nan.h5"), 1)
    assert data_error_message(RuntimeError("applying transform")) is None


def test_items_carry_volume_source_and_batch_key(items):
    out = expand_slices([{**items[0], "volume": "knee/v0.h5", "source": "knee"}, items[1]])
    assert out[0]["volume"] == "knee/v0.h5" and out[0]["source"] == "knee"
    assert out[-1]["volume"] == "v1.h5" and out[-1]["source"] == "proxy"
    assert out[0]["batch_key"] == [2, 8, 6, 6, 6, False, False]
    ds = SliceDataset([{**items[0], "volume": "knee/v0.h5", "source": "knee"}])
    assert ds.sources == ["knee"] * 3 and ds.batch_keys == [(2, 8, 6, 6, 6, False, False)] * 3
    assert ds[0][Keys.VOLUME] == "knee/v0.h5" and ds[0][Keys.FILENAME] == "v0.h5"

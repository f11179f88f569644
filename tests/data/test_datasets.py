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
from pipeline.data.errors import DataError
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

"""Format registry: a new layout is one RawFormat plus registration, and ambiguous files are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from pipeline.data.datasets import SliceDataset
from pipeline.data.errors import DataError
from pipeline.data.formats import FORMATS, READERS, RawFormat, VolumeInfo, detect_format, register_format
from pipeline.data.formats.base import kspace_dataset, read_dataset
from pipeline.data.ismrmrd import default_encoding
from pipeline.data.readers import LoadSlice, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import to_complex_numpy, to_tensor


class Toy(RawFormat):
    """Throw-away layout: ``toy_kspace`` complex ``(S, H, W)``, single coil, nothing else."""

    name = "toy"

    def detect(self, f: h5py.File) -> bool:
        return "toy_kspace" in f

    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        s, h, w = kspace_dataset(f, path, "toy_kspace").shape
        return VolumeInfo(path, self.name, s, 1, (h, w), default_encoding((h, w)), None, None)

    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        kspace = read_dataset(info.file, f["toy_kspace"], slice_idx, slice_idx)
        return {Keys.KSPACE.value: to_tensor(kspace[None].astype(np.complex64))}


class Greedy(Toy):
    """Claims every file with a ``kspace`` dataset, like fastMRI and CC-359 together."""

    name = "greedy"

    def detect(self, f: h5py.File) -> bool:
        return "kspace" in f


@pytest.fixture
def register():
    """Register formats for one test; they are removed again afterwards."""
    added: list[str] = []

    def _register(fmt: RawFormat) -> RawFormat:
        added.append(register_format(fmt).name)
        return fmt

    yield _register
    for name in added:
        FORMATS.pop(name)


def _kspace(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_new_format_needs_no_other_edit(tmp_path: Path, register):
    register(Toy())
    kspace = _kspace((3, 10, 8))
    path = tmp_path / "toy.h5"
    with h5py.File(path, "w") as f:
        f["toy_kspace"] = kspace
    assert detect_format(path) == "toy" and inspect_volume(path).num_slices == 3
    sample = LoadSlice(reader="auto")(path, 1, "proxy")
    np.testing.assert_array_equal(to_complex_numpy(sample[Keys.KSPACE]), kspace[1][None])
    # the entries the format does not set get the readers' defaults
    assert sample[Keys.PE_RANGE].tolist() == [0, 8] and sample[Keys.RECON_SIZE].tolist() == [8, 8]
    assert sample[Keys.MAX] == 0.0 and sample[Keys.NUM_LOW_FREQUENCIES] == 0 and sample[Keys.ACQUISITION] == ""
    assert sample[Keys.FILENAME] == "toy.h5" and sample[Keys.DOMAIN] == "proxy"
    assert torch.equal(LoadSlice(reader="toy")(path, 1)[Keys.KSPACE], sample[Keys.KSPACE])
    assert len(SliceDataset([{"file": path}])) == 3


def test_file_claimed_by_two_formats(tmp_path: Path, register):
    register(Greedy())
    path = tmp_path / "both.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = _kspace((2, 2, 8, 6))
    with pytest.raises(DataError, match=r"both\.h5: claimed by more than one format \(fastmri, greedy\).*explicitly"):
        LoadSlice()(path, 0)
    with pytest.raises(DataError, match="fastmri, greedy"):
        detect_format(path)
    assert LoadSlice(reader="fastmri")(path, 0)[Keys.KSPACE].shape == (2, 8, 6, 2)


def test_registry_names():
    assert READERS == ("auto", *FORMATS) == (
        "auto", "fastmri", "cc359", "fastmri_prostate_t2", "cmrxrecon", "cmrxrecon_crop", "mrd"
    )
    for name in ("auto", "fastmri"):
        fmt = Toy()
        fmt.name = name
        with pytest.raises(ValueError, match=name):
            register_format(fmt)
    with pytest.raises(ValueError, match="reader must be one of.*'toy'"):
        LoadSlice(reader="toy")

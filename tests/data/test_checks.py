"""Files that look valid but are not: one DataError line each (file, slice where relevant, what is wrong);
fastMRI single-coil files with both references; real/imaginary-stacked k-space and ambiguous detection."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.data.datasets import expand_slices
from pipeline.data.errors import DataError
from pipeline.data.formats import detect_format
from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.readers import LoadSlice, LoadSliced, check_volume_data, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import to_complex_numpy


def _kspace(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _write(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


def test_singlecoil_file_with_esc_and_rss_targets_esc(tmp_path):
    """fastMRI single-coil files carry reconstruction_esc AND reconstruction_rss: one coil, ESC target."""
    kspace = _kspace((2, 20, 12))
    esc, rss = np.full((2, 10, 10), 1.0, np.float32), np.full((2, 10, 10), 2.0, np.float32)
    path = _write(tmp_path / "file1000001.h5", kspace=kspace, reconstruction_esc=esc, reconstruction_rss=rss)
    info = inspect_volume(path)
    assert info.num_coils == 1 and info.target_key == "reconstruction_esc"
    sample = LoadSlice()(path, 1)
    assert sample[Keys.KSPACE].shape == (1, 20, 12, 2) and float(sample[Keys.TARGET].mean()) == 1.0
    multi_esc = _write(tmp_path / "multi_esc.h5", kspace=_kspace((2, 3, 20, 12)), reconstruction_esc=esc)
    with pytest.raises(DataError, match=r"multi_esc\.h5: 'kspace' has rank 4 .* reference is reconstruction_esc"):
        inspect_volume(multi_esc)


def test_real_imaginary_stacked_kspace(tmp_path):
    kspace = _kspace((2, 3, 16, 12))
    stacked = np.stack([kspace.real, kspace.imag], axis=-1)
    path = _write(tmp_path / "stacked.h5", kspace=stacked, reconstruction_rss=np.ones((2, 8, 8), np.float32))
    assert detect_format(path) == "fastmri"
    np.testing.assert_array_equal(to_complex_numpy(LoadSlice()(path, 1)[Keys.KSPACE]), kspace[1])


def test_a_file_two_formats_claim_needs_the_manifest_format(tmp_path):
    """A real array (S, H, W, 2) is a stacked single-coil fastMRI slice stack AND a 1-coil CC-359 volume."""
    single = _kspace((3, 16, 12))
    path = _write(tmp_path / "ambiguous.h5", kspace=np.stack([single.real, single.imag], axis=-1))
    with pytest.raises(DataError, match=r"ambiguous\.h5: claimed by more than one format \(fastmri, cc359\).*format"):
        inspect_volume(path)
    with pytest.raises(DataError, match="more than one format"):
        expand_slices([{"file": str(path)}])
    items = expand_slices([{"file": str(path), "format": "fastmri"}])
    assert len(items) == 3 and items[0]["format"] == "fastmri"
    sample = LoadSliced()(items[1])
    np.testing.assert_array_equal(to_complex_numpy(sample[Keys.KSPACE])[0], single[1])
    assert LoadSliced()({**items[1], "format": "cc359"})[Keys.KSPACE].shape == (1, 16, 12, 2)


def test_recon_size_larger_than_the_kspace(tmp_path):
    header = write_ismrmrd_header((16, 12), (20, 12))
    path = _write(tmp_path / "bigrecon.h5", kspace=_kspace((2, 2, 16, 12)), ismrmrd_header=np.bytes_(header))
    with pytest.raises(DataError, match=r"bigrecon\.h5: recon size \(20, 12\) is larger than the k-space \(16, 12\)"):
        inspect_volume(path)
    tall = _write(tmp_path / "tallref.h5", kspace=_kspace((2, 2, 16, 12)), reconstruction_rss=np.ones((2, 18, 8)))
    with pytest.raises(DataError, match=r"tallref\.h5: .*larger than the k-space \(16, 12\)"):
        inspect_volume(tall)


def test_padding_band_outside_the_kspace(tmp_path):
    header = write_ismrmrd_header((16, 20), (8, 8), (2, 18))  # written for W = 20, the file has W = 12
    path = _write(tmp_path / "band.h5", kspace=_kspace((2, 2, 16, 12)), ismrmrd_header=np.bytes_(header))
    with pytest.raises(DataError, match=r"band\.h5: header's acquired phase-encode columns \[2, 18\) .* 12 columns"):
        inspect_volume(path)


def test_masks_that_are_not_binary(tmp_path):
    mask = np.zeros(12, np.float32)
    mask[::2] = 1.0
    mask[5] = 0.5
    path = _write(tmp_path / "softmask.h5", kspace=_kspace((2, 2, 16, 12)), mask=mask)
    with pytest.raises(DataError, match=r"softmask\.h5: 'mask' is not a binary mask.*\(0\.5\)"):
        LoadSlice()(path, 0)
    mask[5] = 1.0
    _write(tmp_path / "softmask.h5", kspace=_kspace((2, 2, 16, 12)), mask=mask)
    assert inspect_volume(tmp_path / "softmask.h5").acquired_fraction == pytest.approx(7 / 12)


def test_volume_zero_in_every_slice(tmp_path):
    blank = _kspace((3, 2, 16, 12))
    blank[1] = 0  # one blank slice inside a volume is legitimate data
    path = _write(tmp_path / "oneblank.h5", kspace=blank)
    assert not LoadSlice()(path, 1)[Keys.KSPACE].any()
    check_volume_data(path)
    zero = _write(tmp_path / "allzero.h5", kspace=np.zeros((3, 2, 16, 12), np.complex64))
    LoadSlice()  # the check needs no set-up
    with pytest.raises(DataError, match=r"allzero\.h5: k-space is zero in every one of the 3 slices"):
        LoadSlice()(zero, 2)
    with pytest.raises(DataError, match=r"allzero\.h5: k-space is zero in every one"):
        check_volume_data(zero)


def test_directory_and_group_instead_of_file_and_dataset(tmp_path):
    folder = tmp_path / "volume.h5"
    folder.mkdir()
    with pytest.raises(DataError, match=r"volume\.h5: is a directory, expected a k-space file"):
        LoadSlice()(folder, 0)
    with pytest.raises(DataError, match="is a directory"):
        inspect_volume(folder)
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as f:
        f.create_group("kspace")
        f["kspace"].create_dataset("data", data=np.zeros(3))
    with pytest.raises(DataError, match=r"groups\.h5: 'kspace' is an HDF5 group, expected a dataset"):
        LoadSlice(reader="fastmri")(path, 0)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=_kspace((2, 2, 16, 12)))
        f.create_group("reconstruction_rss")
    with pytest.raises(DataError, match=r"groups\.h5: 'reconstruction_rss' is an HDF5 group, expected a dataset"):
        LoadSlice()(path, 0)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=_kspace((2, 2, 16, 12)))
        f.create_group("mask")
    with pytest.raises(DataError, match=r"groups\.h5: 'mask' is an HDF5 group"):
        LoadSlice()(path, 0)

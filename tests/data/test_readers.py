"""Slice readers: round trips of every layout, one-slice reads, and real broken files."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats import detect_format
from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.readers import LoadSlice, LoadSliced, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import fft2c, ifft2c, to_complex_numpy, to_tensor

PATIENT = "PATIENT-SECRET-1234"


def _kspace(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write_fastmri(path: Path, kspace: np.ndarray, **extra) -> Path:
    """fastMRI file with ``kspace`` plus the datasets/attributes in ``extra`` (``attrs`` = dict)."""
    attrs = extra.pop("attrs", {})
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        for key, value in extra.items():
            f.create_dataset(key, data=value)
        for key, value in attrs.items():
            f.attrs[key] = value
    return path


@pytest.fixture
def multicoil(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    kspace = _kspace(rng, (3, 4, 32, 24))
    recon = rng.random((3, 16, 16)).astype(np.float32)
    header = write_ismrmrd_header((32, 24), (16, 16), (2, 22))
    path = write_fastmri(
        tmp_path / "multi.h5",
        kspace,
        reconstruction_rss=recon,
        ismrmrd_header=np.bytes_(header),
        attrs={"acquisition": "AXT2", "max": 7.5, "patient_id": PATIENT},
    )
    return path, kspace, recon


def test_multicoil_round_trip(multicoil):
    path, kspace, recon = multicoil
    sample = LoadSlice(reader="fastmri")(path, 1, "proxy")
    assert sample[Keys.KSPACE].dtype == torch.float32 and sample[Keys.KSPACE].shape == (4, 32, 24, 2)
    np.testing.assert_array_equal(to_complex_numpy(sample[Keys.KSPACE]), kspace[1])
    np.testing.assert_array_equal(sample[Keys.TARGET].numpy(), recon[1][None])
    assert Keys.MASK.value not in sample
    assert sample[Keys.FILENAME] == "multi.h5" and sample[Keys.SLICE] == 1 and sample[Keys.NUM_SLICES] == 3
    assert sample[Keys.RECON_SIZE].tolist() == [16, 16] and sample[Keys.RECON_SIZE].dtype == torch.int64
    assert sample[Keys.PE_RANGE].tolist() == [2, 22] and sample[Keys.PE_RANGE].dtype == torch.int64
    assert sample[Keys.MAX] == 7.5 and sample[Keys.ACQUISITION] == "AXT2" and sample[Keys.DOMAIN] == "proxy"
    assert sample[Keys.NUM_LOW_FREQUENCIES] == 0
    assert set(sample) <= {k.value for k in Keys}


def test_patient_id_never_passed_on(multicoil):
    path, _, _ = multicoil
    sample = LoadSliced()({"file": str(path), "slice_idx": 0, "domain": "proxy", "patient_id": PATIENT})
    assert "patient_id" not in sample and "file" not in sample
    assert all(PATIENT not in str(v) for v in sample.values())
    assert PATIENT.encode() not in pickle.dumps(sample)


def test_dictionary_twin_equals_array_transform(multicoil):
    path, _, _ = multicoil
    a = LoadSlice(reader="fastmri")(path, 2, "target")
    d = LoadSliced(reader="fastmri")({"file": path, "slice_idx": 2, "domain": "target"})
    assert a.keys() == d.keys()
    for key in a:
        assert torch.equal(a[key], d[key]) if isinstance(a[key], torch.Tensor) else a[key] == d[key]


def test_volume_max_computed_from_reference_when_no_attribute(tmp_path):
    rng = np.random.default_rng(1)
    recon = rng.random((4, 8, 8)).astype(np.float32)
    recon[3, 2, 2] = 9.0
    path = write_fastmri(tmp_path / "nomax.h5", _kspace(rng, (4, 2, 16, 8)), reconstruction_rss=recon)
    loader = LoadSlice()
    assert loader(path, 0)[Keys.MAX] == pytest.approx(9.0)
    assert pickle.loads(pickle.dumps(loader))(path, 1)[Keys.MAX] == pytest.approx(9.0)
    no_ref = write_fastmri(tmp_path / "noref.h5", _kspace(rng, (1, 2, 16, 8)))
    sample = loader(no_ref, 0)
    assert sample[Keys.MAX] == 0.0 and Keys.TARGET.value not in sample
    # no header: PE range = all columns, recon size = fastMRI's (W, W)
    assert sample[Keys.PE_RANGE].tolist() == [0, 8] and sample[Keys.RECON_SIZE].tolist() == [8, 8]


def test_singlecoil_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    kspace = _kspace(rng, (2, 20, 12))
    esc = rng.random((2, 10, 10)).astype(np.float32)
    path = write_fastmri(tmp_path / "single.h5", kspace, reconstruction_esc=esc)
    sample = LoadSlice()(path, 1)
    assert sample[Keys.KSPACE].shape == (1, 20, 12, 2)
    np.testing.assert_array_equal(to_complex_numpy(sample[Keys.KSPACE])[0], kspace[1])
    np.testing.assert_array_equal(sample[Keys.TARGET].numpy()[0], esc[1])
    assert sample[Keys.RECON_SIZE].tolist() == [10, 10]


@pytest.mark.parametrize("layout", ["columns", "slice_columns", "2d"])
def test_test_style_file_with_mask(tmp_path, layout):
    """Challenge-style file: undersampled k-space + mask + attributes, no reference."""
    rng = np.random.default_rng(3)
    s, c, h, w = 3, 2, 16, 12
    masks = rng.random((s, w)) < 0.4
    masks[:, w // 2] = True
    mask = {"columns": masks[0], "slice_columns": masks, "2d": np.broadcast_to(masks[0], (h, w))}[layout]
    per_slice = masks if layout == "slice_columns" else np.broadcast_to(masks[0], (s, w))
    kspace = _kspace(rng, (s, c, h, w)) * per_slice[:, None, None, :]
    path = write_fastmri(
        tmp_path / "test_style.h5",
        kspace,
        mask=mask,
        attrs={"acceleration": 4, "num_low_frequency": 3, "patient_id": PATIENT},
    )
    sample = LoadSlice()(path, 2)
    assert sample[Keys.MASK].dtype == torch.bool and sample[Keys.MASK].shape == (1, h, w, 1)
    np.testing.assert_array_equal(sample[Keys.MASK][0, :, :, 0].numpy(), np.broadcast_to(per_slice[2], (h, w)))
    np.testing.assert_array_equal(to_complex_numpy(sample[Keys.KSPACE]), kspace[2])
    assert sample[Keys.NUM_LOW_FREQUENCIES] == 3 and sample[Keys.MAX] == 0.0
    assert Keys.TARGET.value not in sample


def write_cc359(path: Path, centred: np.ndarray) -> Path:
    """Write centred k-space ``(S, C, H, W)`` in CC-359's real layout (independent of the reader code).

    CC-359 stores ``k_raw`` with ``numpy.fft.ifft2(k_raw)`` = image, i.e. centred k-space times a
    +-1 checkerboard (unnormalised FFT: times ``sqrt(H W)``), coils interleaved real/imag last.
    """
    s, c, h, w = centred.shape
    checkerboard = (-1.0) ** np.add.outer(np.arange(h), np.arange(w))
    raw = centred * checkerboard * np.sqrt(h * w)
    interleaved = np.empty((s, h, w, 2 * c), dtype=np.float32)
    interleaved[..., 0::2] = raw.real.transpose(0, 2, 3, 1)
    interleaved[..., 1::2] = raw.imag.transpose(0, 2, 3, 1)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=interleaved)
    return path


def test_cc359_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    s, c, h, w = 2, 3, 22, 18
    image = np.zeros((s, c, h, w), dtype=np.complex64)
    image[..., 5:17, 4:14] = _kspace(rng, (s, c, 12, 10))
    centred = to_complex_numpy(fft2c(to_tensor(image)))
    centred[..., int(0.85 * w) :] = 0  # partial Fourier: only ~85% of kz acquired
    path = write_cc359(tmp_path / "e14089s3_P53248.h5", centred)
    assert detect_format(path) == "cc359"
    for loader in (LoadSlice(reader="cc359"), LoadSlice("auto")):
        sample = loader(path, 1)
        np.testing.assert_allclose(to_complex_numpy(sample[Keys.KSPACE]), centred[1], atol=1e-5)
    # the image is the one CC-359's own plain ifft2 gives (magnitude)
    with h5py.File(path) as f:
        raw = f["kspace"][1]
    plain = np.fft.ifft2((raw[..., 0::2] + 1j * raw[..., 1::2]).transpose(2, 0, 1))
    np.testing.assert_allclose(
        np.abs(to_complex_numpy(ifft2c(sample[Keys.KSPACE]))), np.abs(plain), atol=1e-5 * np.abs(plain).max()
    )
    expected_rss = np.sqrt((np.abs(plain) ** 2).sum(0))
    np.testing.assert_allclose(sample[Keys.TARGET][0].numpy(), expected_rss, rtol=1e-4, atol=1e-6)
    assert sample[Keys.PE_RANGE].tolist() == [0, int(0.85 * w)]
    assert sample[Keys.RECON_SIZE].tolist() == [h, w] and sample[Keys.MAX] == 0.0
    d = LoadSliced(reader="cc359")({"file": path, "slice_idx": 0})
    assert d[Keys.KSPACE].shape == (c, h, w, 2) and d[Keys.DOMAIN] == ""


def test_reads_one_slice_only(tmp_path):
    """Reading one slice allocates about one slice, not the volume (control: a full read does exceed it)."""
    rng = np.random.default_rng(5)
    s, c, h, w = 24, 4, 128, 96
    slice_bytes = c * h * w * 8
    path = write_fastmri(tmp_path / "big.h5", _kspace(rng, (s, c, h, w)))
    loader = LoadSlice()
    loader(path, 0)  # warm-up: imports, caches

    def peak(fn) -> int:
        tracemalloc.start()
        fn()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    limit = 6 * slice_bytes  # < volume size (24 slices)
    assert peak(lambda: loader(path, s // 2)) < limit
    with h5py.File(path) as f:
        assert peak(lambda: f["kspace"][()]) > limit  # the check can fail


# ---------------------------------------------------------------------------------------------
# real broken files


def _good(tmp_path: Path, name: str = "good.h5", **extra) -> Path:
    return write_fastmri(tmp_path / name, _kspace(np.random.default_rng(6), (2, 2, 8, 6)), **extra)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="absent.h5.*not found"):
        LoadSlice()(tmp_path / "absent.h5", 0)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_file(tmp_path, cut):
    path = _good(tmp_path, "truncated.h5")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataError, match=r"truncated\.h5.*(truncated|corrupt)"):
        LoadSlice()(path, 0)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(DataError, match=r"garbage\.h5.*cannot be opened as HDF5"):
        inspect_volume(path)


def test_missing_kspace(tmp_path):
    path = tmp_path / "nokspace.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction_rss"] = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(DataError, match=r"nokspace\.h5.*no 'kspace'"):
        LoadSlice()(path, 0)


def test_wrong_rank(tmp_path):
    path = write_fastmri(tmp_path / "rank5.h5", np.zeros((2, 2, 2, 8, 6), np.complex64))
    with pytest.raises(DataError, match=r"rank5\.h5.*rank 5.*4-D"):
        LoadSlice()(path, 0)
    path = write_fastmri(
        tmp_path / "rank3rss.h5", np.zeros((2, 8, 6), np.complex64), reconstruction_rss=np.zeros((2, 4, 4))
    )
    with pytest.raises(DataError, match=r"rank3rss\.h5.*rank 3.*multi-coil"):
        LoadSlice()(path, 0)


def test_wrong_dtype(tmp_path):
    path = write_fastmri(
        tmp_path / "floatk.h5", np.zeros((2, 2, 8, 6), np.float32), ismrmrd_header=np.bytes_(b"<ismrmrdHeader/>")
    )
    with pytest.raises(DataError, match=r"floatk\.h5.*dtype float32.*complex"):
        LoadSlice()(path, 0)
    with pytest.raises(DataError, match=r"floatk\.h5.*dtype float32"):
        LoadSlice(reader="fastmri")(path, 0)


def test_nan_in_slice(tmp_path):
    kspace = _kspace(np.random.default_rng(8), (3, 2, 8, 6))
    kspace[2, 1, 3, 3] = np.nan
    path = write_fastmri(tmp_path / "nan.h5", kspace)
    LoadSlice()(path, 0)  # other slices are fine
    with pytest.raises(DataError, match=r"nan\.h5, slice 2: NaN or Inf"):
        LoadSlice()(path, 2)


def test_empty_coil_axis(tmp_path):
    path = write_fastmri(tmp_path / "nocoils.h5", np.zeros((2, 0, 8, 6), np.complex64))
    with pytest.raises(DataError, match=r"nocoils\.h5.*empty coil axis"):
        LoadSlice()(path, 0)


def test_bad_mask_length(tmp_path):
    path = _good(tmp_path, "badmask.h5", mask=np.ones(5, bool))
    with pytest.raises(DataError, match=r"badmask\.h5.*mask shape \(5,\).*W = 6"):
        LoadSlice()(path, 0)


def test_slice_out_of_range(tmp_path):
    path = _good(tmp_path, "short.h5")
    with pytest.raises(DataError, match=r"short\.h5, slice 5: slice index out of range.*2 slices"):
        LoadSlice()(path, 5)


def test_bad_reader_name():
    with pytest.raises(ValueError, match="reader"):
        LoadSlice("dicom")

"""fastMRI prostate T2: files in the release's exact layout, made from known coil images by GRAPPA-style
undersampling (three R = 2 averages + separate calibration lines); reader, GRAPPA reference, conversion."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.data.convert_prostate import main
from pipeline.data.errors import DataError
from pipeline.data.formats import detect_format
from pipeline.data.formats.prostate import convert_file, flip_up_down, grappa_reference
from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.readers import LoadSlice, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import fft2c, ifft2c, rss_image, to_complex_numpy, to_tensor

S, C, H, W_ENC, WA, NC = 2, 8, 64, 64, 44, 24
PAD = (W_ENC - WA) // 2
RECON = (32, 32)
PATIENT = "PROSTATE-PATIENT-77"


def _nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sum((gt - pred) ** 2) / np.sum(gt**2))


def _coil_images(rng: np.random.Generator) -> np.ndarray:
    """Smooth object times smooth complex coil sensitivities on the encoded grid, ``(S, C, H, W_ENC)``."""
    y, x = np.mgrid[-1 : 1 : H * 1j, -1 : 1 : W_ENC * 1j]
    images = []
    for s in range(S):
        obj = ((x / 0.6) ** 2 + (y / (0.75 - 0.1 * s)) ** 2 < 1) * (1.0 + 0.5 * np.cos(3 * x + s) * np.sin(2 * y))
        obj = obj * np.exp(1j * 0.5 * (x + y))
        coils = []
        for c in range(C):
            angle = 2 * np.pi * c / C
            cx, cy = 1.3 * np.cos(angle), 1.3 * np.sin(angle)
            sens = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 1.2) * np.exp(1j * (angle + 0.3 * x))
            coils.append(sens * obj)
        images.append(coils)
    return np.asarray(images, dtype=np.complex64)


def write_prostate(path: Path, rng: np.random.Generator, **overrides) -> tuple[Path, np.ndarray]:
    """A prostate T2 raw file in the release's layout; returns it and the known published reference."""
    band = np.zeros((S, C, H, W_ENC), np.complex64)
    full = to_complex_numpy(fft2c(to_tensor(_coil_images(rng))))
    band[..., PAD : PAD + WA] = full[..., PAD : PAD + WA]
    known = np.stack([np.flipud(rss_image(to_tensor(b)).numpy()) for b in band])  # the published orientation
    top = (H - RECON[0]) // 2
    known = known[:, top : top + RECON[0], top : top + RECON[1]].astype(np.float32)
    stored = band[..., PAD : PAD + WA]  # (S, C, H, Wa): the scanner's phase-encode window
    kspace = np.zeros((3, S, C, H, WA), np.complex64)
    kspace[0, ..., 0::2] = kspace[2, ..., 0::2] = stored[..., 0::2]  # averages 0 and 2 share a pattern
    kspace[1, ..., 1::2] = stored[..., 1::2]
    calib = stored[..., WA // 2 - NC // 2 : WA // 2 + NC // 2]
    content = {
        "kspace": kspace,
        "calibration_data": calib,
        "reconstruction_rss": known,
        "ismrmrd_header": np.bytes_(write_ismrmrd_header((H, W_ENC), RECON, (PAD, PAD + WA), num_coils=C)),
    }
    content.update(overrides)
    with h5py.File(path, "w") as f:
        for key, value in content.items():
            if value is not None:
                f.create_dataset(key, data=value)
        f.attrs.update({"max": float(known.max()), "norm": 1.0, "acquisition": "AXT2", "patient_id": PATIENT})
    return path, known


@pytest.fixture(scope="module")
def prostate(tmp_path_factory) -> tuple[Path, np.ndarray]:
    return write_prostate(tmp_path_factory.mktemp("prostate") / "file_prostate_AXT2_001.h5", np.random.default_rng(0))


def test_flip_is_the_image_flip():
    k = to_complex_numpy(fft2c(torch.randn(3, 10, 7, 2)))
    for kspace in (k, k[:, :9]):  # even and odd H
        flipped = np.abs(to_complex_numpy(ifft2c(to_tensor(flip_up_down(kspace)))))
        np.testing.assert_allclose(flipped, np.abs(to_complex_numpy(ifft2c(to_tensor(kspace))))[:, ::-1], atol=1e-5)
    column = np.zeros((4, 6), np.complex64)
    column[:, 2] = 1
    assert np.all(flip_up_down(column)[:, [0, 1, 3, 4, 5]] == 0)  # unacquired columns stay exactly zero


def test_reader_returns_the_measurement_in_the_published_orientation(prostate):
    path, known = prostate
    assert detect_format(path) == "fastmri_prostate_t2"
    info = inspect_volume(path)
    assert (info.num_slices, info.num_coils, info.kspace_size, info.pe_range, info.recon_size) == (
        S, C, (H, W_ENC), (PAD, PAD + WA), RECON
    )
    sample = LoadSlice()(path, 1, "target")
    assert sample[Keys.KSPACE].shape == (C, H, W_ENC, 2) and sample[Keys.MASK].shape == (1, H, W_ENC, 1)
    columns = sample[Keys.MASK][0, 0, :, 0].numpy()
    assert columns[PAD : PAD + WA].all() and not columns[:PAD].any() and not columns[PAD + WA :].any()
    assert not sample[Keys.KSPACE][:, :, :PAD].any()  # the padding stays exactly zero
    # every column was acquired by one of the averages: the measurement's image is the published one
    image = rss_image(sample[Keys.KSPACE], RECON).numpy()
    assert _nmse(known[1], image) < 1e-6
    np.testing.assert_array_equal(sample[Keys.TARGET][0].numpy(), known[1])
    assert sample[Keys.MAX] == pytest.approx(float(known.max())) and sample[Keys.ACQUISITION] == "AXT2"
    assert PATIENT not in str(sample)


def test_one_average_is_the_measurement_where_the_others_are_missing(tmp_path):
    path, _ = write_prostate(tmp_path / "sparse.h5", np.random.default_rng(1))
    with h5py.File(path, "a") as f:
        k = f["kspace"][()]
        k[1] = 0  # average 1 lost except one column: the odd columns are then unmeasured
        k[1, ..., 1] = k[0, ..., 0] * 0 + 1
        f["kspace"][...] = k
    sample = LoadSlice()(path, 0)
    columns = sample[Keys.MASK][0, 0, PAD : PAD + WA, 0].numpy()
    assert columns[0::2].all() and columns[1] and not columns[3::2].any()


def test_grappa_reference_matches_the_known_image(prostate):
    """The reference rebuilt the dataset's way (GRAPPA per average, padding, flip, mean of RSS) is the known RSS."""
    path, known = prostate
    info = inspect_volume(path)
    with h5py.File(path) as f:
        kspace, image = grappa_reference(f, info, 0)
    assert kspace.shape == (C, H, W_ENC) and image.shape == RECON
    assert _nmse(known[0], image) < 1e-2
    assert _nmse(known[0], rss_image(to_tensor(kspace), RECON).numpy()) < 1e-2


def test_conversion_writes_the_papers_layout(prostate, tmp_path):
    path, known = prostate
    assert main([str(path), "--out", str(tmp_path / "converted")]) == 0
    out = tmp_path / "converted" / path.name
    with h5py.File(out) as f:
        assert f["kspace"].shape == (S, C, H, W_ENC) and f["kspace"].dtype == np.complex64
        assert f["reconstruction_rss"].shape == (S, *RECON) and "patient_id" not in f.attrs
    assert detect_format(out) == "fastmri"
    sample = LoadSlice()(out, 1)
    assert sample[Keys.PE_RANGE].tolist() == [PAD, PAD + WA] and sample[Keys.RECON_SIZE].tolist() == list(RECON)
    assert _nmse(known[1], sample[Keys.TARGET][0].numpy()) < 1e-2
    np.testing.assert_allclose(rss_image(sample[Keys.KSPACE], RECON)[None], sample[Keys.TARGET], rtol=1e-4, atol=1e-6)
    assert main([str(path), "--out", str(tmp_path / "converted")]) == 0  # an existing output is kept


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"calibration_data": None}, "no 'calibration_data'"),
        ({"calibration_data": np.zeros((S, C, H - 2, NC), np.complex64)}, r"'calibration_data' has shape \(2, 8, 62"),
        ({"kspace": np.zeros((S, C, H, WA), np.complex64)}, r"'kspace' has .*shape \(2, 8, 64, 44\).*averages, slices"),
    ],
)
def test_bad_prostate_files(tmp_path, overrides, message):
    path, _ = write_prostate(tmp_path / "bad.h5", np.random.default_rng(2), **overrides)
    with pytest.raises(DataError, match=rf"bad\.h5: {message}"):
        LoadSlice(reader="fastmri_prostate_t2")(path, 0)


def test_empty_average_is_named_with_its_slice(tmp_path):
    path, _ = write_prostate(tmp_path / "empty_avg.h5", np.random.default_rng(3))
    with h5py.File(path, "a") as f:
        f["kspace"][2, 1] = 0
    LoadSlice()(path, 0)
    with pytest.raises(DataError, match=r"empty_avg\.h5, slice 1: average\(s\) \[2\] of 'kspace' hold no data"):
        LoadSlice()(path, 1)
    with pytest.raises(DataError, match=r"empty_avg\.h5.*slice 1"):
        convert_file(path, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()

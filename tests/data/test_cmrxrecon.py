"""CMRxRecon 2023/2024: MATLAB v7.3 (HDF5, compound real/imag, reversed axes) and v5 files in the challenges'
exact folder layouts; every (frame, slice) is one slice; measured k-space + mask, fully sampled reference."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pipeline.data.errors import DataError
from pipeline.data.formats import detect_format
from pipeline.data.readers import LoadSlice, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import rss_image, to_complex_numpy, to_tensor

KX, KY, NC, NZ, NT = 25, 21, 3, 2, 3  # MATLAB order (kx, ky, coils, slices, frames); odd sizes on purpose


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 MAT-file as MATLAB writes it: a 512-byte user block, reversed axes, real/imag compounds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            data = np.asarray(value).T  # h5py sees MATLAB's column-major axes reversed
            if np.iscomplexobj(data):
                compound = np.empty(data.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
                compound["real"], compound["imag"] = data.real, data.imag
                f.create_dataset(name, data=compound).attrs["MATLAB_class"] = np.bytes_("single")
            else:
                f.create_dataset(name, data=data.astype(np.float64)).attrs["MATLAB_class"] = np.bytes_("double")
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {time.ctime()} HDF5 schema 1.00 .".encode()
    with open(path, "r+b") as fh:
        fh.write(text.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path


def write_mat5(path: Path, variables: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables, format="5")
    return path


def _kspace(rng: np.random.Generator, shape=(KX, KY, NC, NZ, NT)) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _mask(ky_step: int = 4) -> np.ndarray:
    lines = np.zeros(KY, bool)
    lines[::ky_step] = True
    lines[KY // 2 - 3 : KY // 2 + 3] = True
    return np.broadcast_to(lines, (KX, KY)).astype(np.float64)


@pytest.fixture(scope="module")
def cmrx2023(tmp_path_factory) -> dict:
    """ChallengeData/MultiCoil/Cine/TrainingSet/{FullSample,AccFactor04}/P00x: P001 in v7.3, P002 in v5."""
    root = tmp_path_factory.mktemp("cmrx") / "MultiCoil" / "Cine" / "TrainingSet"
    rng = np.random.default_rng(0)
    out = {}
    for patient, write in (("P001", write_mat73), ("P002", write_mat5)):
        full = _kspace(rng)
        mask = _mask()
        write(root / "FullSample" / patient / "cine_sax.mat", {"kspace_full": full})
        sub = root / "AccFactor04" / patient / "cine_sax.mat"
        write(sub, {"kspace_sub04": (full * mask[:, :, None, None, None]).astype(np.complex64)})
        write(root / "AccFactor04" / patient / "cine_sax_mask.mat", {"mask04": mask})
        full_file = root / "FullSample" / patient / "cine_sax.mat"
        out[patient] = {"sub": sub, "full": full, "mask": mask, "full_file": full_file}
    return out


@pytest.mark.parametrize("patient", ["P001", "P002"])
def test_2023_round_trip_every_frame_and_slice(cmrx2023, patient):
    case = cmrx2023[patient]
    assert detect_format(case["sub"]) == "cmrxrecon"
    info = inspect_volume(case["sub"])
    assert (info.num_slices, info.num_coils, info.kspace_size, info.recon_size) == (NZ * NT, NC, (KX, KY), (KX, KY))
    assert info.mask_layout == "2d" and info.acquired_fraction == pytest.approx(case["mask"][0].mean())
    loader = LoadSlice()
    for index in range(NZ * NT):
        t, z = divmod(index, NZ)
        sample = loader(case["sub"], index, "target")
        expected = case["full"][:, :, :, z, t].transpose(2, 0, 1) * case["mask"]
        np.testing.assert_allclose(to_complex_numpy(sample[Keys.KSPACE]), expected, atol=1e-6)
        np.testing.assert_array_equal(sample[Keys.MASK][0, :, :, 0].numpy(), case["mask"] != 0)
        reference = rss_image(to_tensor(case["full"][:, :, :, z, t].transpose(2, 0, 1)))
        np.testing.assert_allclose(sample[Keys.TARGET][0].numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    full = loader(case["full_file"], 4)
    assert Keys.MASK.value not in full and full[Keys.TARGET].shape == (1, KX, KY)


def test_evaluation_crop_uses_matlab_rounding(cmrx2023):
    sample = LoadSlice(reader="cmrxrecon_crop")(cmrx2023["P001"]["sub"], 0)
    # round(25 / 3) = 8; MATLAB rounds 21 / 2 = 10.5 up to 11 (Python's round would give 10)
    assert sample[Keys.RECON_SIZE].tolist() == [8, 11] and sample[Keys.TARGET].shape == (1, 8, 11)
    assert detect_format(cmrx2023["P001"]["sub"]) == "cmrxrecon"  # the crop variant is never auto-detected


def test_2024_kus_with_kt_mask_and_blackblood(tmp_path):
    """ValidationSet/UnderSample_Task2/P001/<name>_kus_<pattern>.mat with its Mask_Task2 k-t mask."""
    rng = np.random.default_rng(1)
    full = _kspace(rng)
    kt = np.stack([_mask(step) for step in (2, 3, 4)], axis=-1)  # (kx, ky, frames)
    kus = (full * kt[:, :, None, None, :]).astype(np.complex64)
    root = tmp_path / "Cine" / "ValidationSet"
    path = write_mat73(root / "UnderSample_Task2" / "P001" / "cine_lax_kus_ktUniform8.mat", {"kus": kus})
    write_mat73(root / "Mask_Task2" / "P001" / "cine_lax_mask_ktUniform8.mat", {"mask": kt})
    info = inspect_volume(path)
    assert info.mask_layout == "frame_2d" and info.target_key is None
    sample = LoadSlice()(path, 5)  # frame 2, slice 1
    np.testing.assert_array_equal(sample[Keys.MASK][0, :, :, 0].numpy(), kt[:, :, 2] != 0)
    assert Keys.TARGET.value not in sample
    blackblood = write_mat5(tmp_path / "bb" / "blackblood.mat", {"kspace_full": full[..., 0]})  # (kx, ky, nc, nz)
    assert inspect_volume(blackblood).num_slices == NZ
    np.testing.assert_allclose(
        to_complex_numpy(LoadSlice()(blackblood, 1)[Keys.KSPACE]), full[:, :, :, 1, 0].transpose(2, 0, 1), atol=1e-6
    )


def test_single_file_with_all_variables(tmp_path):
    rng = np.random.default_rng(2)
    full, mask = _kspace(rng), _mask()
    variables = {"kspace_full": full, "kspace_sub08": full * mask[..., None, None, None], "mask08": mask}
    path = write_mat73(tmp_path / "combined.mat", variables)
    sample = LoadSlice()(path, 0)
    assert sample[Keys.MASK].any() and sample[Keys.TARGET].shape == (1, KX, KY)


@pytest.mark.parametrize("writer", [write_mat73, write_mat5])
def test_bad_mat_files(tmp_path, writer):
    rng = np.random.default_rng(3)
    other = writer(tmp_path / "other.mat", {"img4ranking": np.ones((4, 4))})
    with pytest.raises(DataError, match=r"other\.mat: no CMRxRecon k-space variable .*found \['img4ranking'\]"):
        LoadSlice(reader="cmrxrecon")(other, 0)
    real = writer(tmp_path / "real.mat", {"kspace_full": np.ones((KX, KY, NC, NZ, NT))})
    with pytest.raises(DataError, match=r"real\.mat: 'kspace_full' is not complex"):
        LoadSlice(reader="cmrxrecon")(real, 0)
    lonely = writer(tmp_path / "AccFactor04" / "P001" / "cine_sax.mat", {"kspace_sub04": _kspace(rng)})
    with pytest.raises(DataError, match=r"cine_sax\.mat: undersampled 'kspace_sub04' without its mask.*cine_sax_mask"):
        inspect_volume(lonely)
    writer(tmp_path / "AccFactor04" / "P001" / "cine_sax_mask.mat", {"mask04": _mask() * 3})
    with pytest.raises(DataError, match=r"cine_sax_mask\.mat: 'mask04' is not a binary mask.*\(3\)"):
        inspect_volume(lonely)
    writer(tmp_path / "AccFactor04" / "P001" / "cine_sax_mask.mat", {"mask04": np.ones((KX - 1, KY))})
    with pytest.raises(DataError, match=r"mask 'mask04' has MATLAB shape \(24, 21\), expected \(25, 21\)"):
        inspect_volume(lonely)


def test_truncated_v73_file(cmrx2023, tmp_path):
    data = cmrx2023["P001"]["full_file"].read_bytes()
    cut = tmp_path / "cut.mat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.mat.*(truncated|corrupt)"):
        LoadSlice(reader="cmrxrecon")(cut, 0)

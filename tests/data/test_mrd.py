"""ISMRMRD/MRD raw files written with ismrmrd's own API: noise scans, calibration lines, R = 2 imaging lines,
repeated averages, a 2x oversampled readout; assembly into Cartesian k-space and the malformed cases."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import ismrmrd.xsd
import numpy as np
import pytest

from pipeline.data.errors import DataError
from pipeline.data.formats import detect_format
from pipeline.data.readers import LoadSlice, inspect_volume
from pipeline.keys import Keys
from pipeline.physics import fft2c, ifft2c, rss_image, to_complex_numpy, to_tensor

C, RX, EY, SLICES = 4, 16, 20, 2
EX = 2 * RX  # the readout is 2x oversampled
CALIB = range(EY // 2 - 3, EY // 2 + 3)


def _header(ex=EX, ey=EY, limits=(0, EY - 1, EY // 2), slices=SLICES) -> str:
    space = ismrmrd.xsd.encodingSpaceType
    limit = ismrmrd.xsd.limitType
    encoding = ismrmrd.xsd.encodingType(
        encodedSpace=space(matrixSize=ismrmrd.xsd.matrixSizeType(x=ex, y=ey, z=1),
                           fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=2 * 200.0, y=200.0, z=5.0)),
        reconSpace=space(matrixSize=ismrmrd.xsd.matrixSizeType(x=RX, y=ey, z=1),
                         fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=200.0, y=200.0, z=5.0)),
        encodingLimits=ismrmrd.xsd.encodingLimitsType(
            kspace_encoding_step_1=limit(minimum=limits[0], maximum=limits[1], center=limits[2]),
            slice=limit(minimum=0, maximum=slices - 1, center=0),
        ),
        trajectory=ismrmrd.xsd.trajectoryType("cartesian"),
    )
    header = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63500000),
        acquisitionSystemInformation=ismrmrd.xsd.acquisitionSystemInformationType(receiverChannels=C),
        encoding=[encoding],
    )
    return ismrmrd.xsd.ToXML(header)


def _object(rng: np.random.Generator) -> np.ndarray:
    """Coil images ``(SLICES, C, EX, EY)``; the object stays inside the central half of the readout."""
    images = np.zeros((SLICES, C, EX, EY), np.complex64)
    shape = (SLICES, C, EX // 2 - 4, EY - 6)
    images[..., EX // 4 + 2 : 3 * EX // 4 - 2, 3:-3] = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return images


def _line(data: np.ndarray, step: int, slice_idx: int, flags=(), average: int = 0) -> ismrmrd.Acquisition:
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, dtype=np.complex64))
    acq.idx.kspace_encode_step_1 = step
    acq.idx.slice = slice_idx
    acq.idx.average = average
    acq.center_sample = data.shape[1] // 2
    for flag in flags:
        acq.set_flag(flag)
    return acq


def write_mrd(path: Path, kspace: np.ndarray | None = None, header: str | None = None, imaging: bool = True,
              rng: np.random.Generator | None = None) -> tuple[Path, np.ndarray]:
    """An MRD file with ismrmrd's API: a noise scan, calibration lines, R = 2 imaging lines (column 0 twice)."""
    rng = rng or np.random.default_rng(0)
    kspace = to_complex_numpy(fft2c(to_tensor(_object(rng)))) if kspace is None else kspace
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dset.write_xml_header(header or _header())
    for _ in range(2):
        dset.append_acquisition(_line(1e6 * np.ones((C, EX)), 0, 0, (ismrmrd.ACQ_IS_NOISE_MEASUREMENT,)))
    for s in range(SLICES):
        for step in CALIB:
            if step % 2:
                dset.append_acquisition(_line(kspace[s, :, :, step], step, s, (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,)))
        for step in range(0, EY, 2) if imaging else ():
            flags = (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,) if step in CALIB else ()
            dset.append_acquisition(_line(kspace[s, :, :, step], step, s, flags))
        if imaging:  # a repeated average of line 0: averaged with the first
            dset.append_acquisition(_line(kspace[s, :, :, 0] * 3, 0, s, average=1))
    dset.close()
    return path, kspace


def test_assembly_from_acquisitions(tmp_path):
    path, kspace = write_mrd(tmp_path / "meas_MID00042.h5")
    assert detect_format(path) == "mrd"
    info = inspect_volume(path)
    assert (info.num_slices, info.num_coils, info.kspace_size, info.recon_size, info.pe_range) == (
        SLICES, C, (RX, EY), (RX, EY), (0, EY)
    )
    acquired = np.zeros(EY, bool)
    acquired[0::2] = True
    acquired[list(CALIB)] = True
    assert info.acquired_fraction == pytest.approx(acquired.mean())
    sample = LoadSlice()(path, 1)
    assert sample[Keys.KSPACE].shape == (C, RX, EY, 2)
    np.testing.assert_array_equal(sample[Keys.MASK][0, 0, :, 0].numpy(), acquired)
    expected = kspace[1] * acquired
    expected[..., 0] *= 2  # line 0 = mean of the line and its 3x repeat
    # readout oversampling removed: the image is the central half of the oversampled one
    full_image = to_complex_numpy(ifft2c(to_tensor(expected.astype(np.complex64))))[:, EX // 4 : 3 * EX // 4]
    np.testing.assert_allclose(to_complex_numpy(ifft2c(sample[Keys.KSPACE])), full_image, atol=1e-4)
    assert not sample[Keys.KSPACE][:, :, ~acquired].any()  # unacquired columns stay exactly zero
    np.testing.assert_allclose(rss_image(sample[Keys.KSPACE]).numpy(), np.sqrt((np.abs(full_image) ** 2).sum(0)),
                               rtol=1e-4, atol=1e-4)
    assert Keys.TARGET.value not in sample and sample[Keys.MAX] == 0.0


def test_no_imaging_acquisitions(tmp_path):
    path, _ = write_mrd(tmp_path / "calib_only.h5", imaging=False)
    with pytest.raises(DataError, match=r"calib_only\.h5: no imaging acquisitions \(2 noise, 6 calibration"):
        inspect_volume(path)


def test_encoding_limits_that_do_not_fit(tmp_path):
    path, _ = write_mrd(tmp_path / "limits.h5", header=_header(limits=(0, EY - 1, EY // 2 - 3)))
    with pytest.raises(DataError, match=r"limits\.h5: encoding limits kspace_encoding_step_1 .* outside the encoded"):
        LoadSlice()(path, 0)
    path, _ = write_mrd(tmp_path / "narrow.h5", header=_header(limits=(0, EY - 3, EY // 2)))
    with pytest.raises(DataError, match=r"narrow\.h5: .*kspace_encode_step_1 outside the encoding limits \[0, 17\]"):
        LoadSlice()(path, 0)


def test_not_an_mrd_file(tmp_path):
    path = tmp_path / "empty.h5"
    ismrmrd.Dataset(str(path), "dataset", create_if_needed=True).close()
    with pytest.raises(DataError, match=r"empty\.h5: no '\S*dataset\S*' group|empty\.h5: no ISMRMRD header"):
        LoadSlice(reader="mrd")(path, 0)

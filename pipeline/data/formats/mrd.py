"""ISMRMRD / MRD raw data (``reader="mrd"``), read with the ``ismrmrd`` Python package.

Source: the ISMRM raw data format (https://ismrmrd.github.io), as written by scanner converters
(siemens_to_ismrmrd, ...) and by ``ismrmrd_generate_cartesian_shepp_logan``. One HDF5 group (``dataset``)
holds ``xml`` (the ISMRMRD header) and ``data``: one acquisition per readout line, with its encoding
counters (``kspace_encode_step_1``, ``slice``, ``average``, ``contrast``, ``phase``, ``repetition``,
``set``), flags, ``center_sample`` and the samples of every active coil.

Acquisitions are assembled into Cartesian 2-D k-space from the first encoding's limits:

- imaging lines go to column ``W // 2 - center + step_1`` of the encoded matrix ``(x, y)``, readout
  samples around ``center_sample`` at row ``x // 2``; lines repeated over ``average`` are averaged;
- parallel-imaging calibration lines (``ACQ_IS_PARALLEL_CALIBRATION``) fill the columns the imaging lines
  did not acquire (lines flagged calibration *and* imaging count as imaging); noise scans
  (``ACQ_IS_NOISE_MEASUREMENT``) and navigator, phase-correction, dummy and feedback lines are recognised
  and left out;
- readout oversampling is removed: when the encoded field of view (or matrix) along x is larger than the
  recon one, the image is cropped to the recon matrix along the readout (centred FFTs), so ``H`` is the
  recon ``x``;
- every distinct ``(slice, contrast, phase, repetition, set)`` is one slice of the pipeline.

Per slice the reader returns ``kspace`` ``(C, H, W, 2)``, the acquired columns as ``mask`` and
``pe_range`` from the limits. Raw files carry no reference image. Only Cartesian 2-D encodings are read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, check_file, check_finite, check_sizes
from pipeline.data.ismrmrd import EncodingInfo
from pipeline.keys import Keys
from pipeline.physics import fft2c, ifft2c, to_complex_numpy, to_tensor

__all__ = ["MRD"]

GROUP = "dataset"
"""The HDF5 group of the acquisitions (the ISMRMRD default)."""

#: ISMRMRD acquisition flags (bit numbers, 1-based, as in ``ismrmrd.constants``).
NOISE, CALIBRATION, CALIBRATION_AND_IMAGING, REVERSE = 19, 20, 21, 22
SKIPPED = (23, 24, 26, 27, 28, 29, 30, 31)  # navigation, phasecorr, hp/rt feedback, dummy, coil correction, ...
COUNTERS = ("slice", "contrast", "phase", "repetition", "set")


def _flag(flags: np.ndarray, bit: int) -> np.ndarray:
    return (flags >> np.uint64(bit - 1)) & np.uint64(1) == 1


class _Acquisitions:
    """An open MRD file: the parsed header, the acquisition headers and the line classification."""

    def __init__(self, path: str) -> None:
        import ismrmrd

        self.path = path
        try:
            self.file = ismrmrd.File(path, mode="r")
        except OSError as err:
            raise DataError(path, f"cannot be opened as an ISMRMRD/MRD file (truncated?): {err}") from None
        try:
            self._load()
        except BaseException:
            self.file.close()
            raise

    def _load(self) -> None:
        path = self.path
        if GROUP not in self.file:
            raise DataError(path, f"no '{GROUP}' group: not an ISMRMRD/MRD file (found {list(self.file.keys())})")
        container = self.file[GROUP]
        if "xml" not in container.keys():
            raise DataError(path, f"no ISMRMRD header ('{GROUP}/xml')")
        try:
            self.header = container.header
        except Exception as err:  # the xsd binding raises its own parser errors
            raise DataError(path, f"the ISMRMRD header is not valid: {err}") from None
        self.acquisitions = container.acquisitions
        if self.acquisitions is None or not isinstance(self.acquisitions.data, h5py.Dataset):
            raise DataError(path, f"no acquisitions ('{GROUP}/data')")
        try:
            self.heads = self.acquisitions.data.fields("head")[()]
        except OSError as err:
            raise DataError(path, f"reading the acquisition headers failed (truncated file?): {err}") from None
        flags = self.heads["flags"]
        self.noise = _flag(flags, NOISE)
        other = np.zeros_like(self.noise)
        for bit in SKIPPED:
            other |= _flag(flags, bit)
        calibration = _flag(flags, CALIBRATION) & ~_flag(flags, CALIBRATION_AND_IMAGING)
        self.calibration = calibration & ~self.noise & ~other
        self.imaging = ~(self.noise | other | calibration)

    def close(self) -> None:
        self.file.close()


class MRD(RawFormat):
    """ISMRMRD/MRD raw files, Cartesian 2-D (see the module docstring)."""

    name = "mrd"

    @contextlib.contextmanager
    def open(self, path: str, slice_idx: int | None = None) -> Iterator[_Acquisitions]:
        """Open the file with ``ismrmrd.File`` and read its header and acquisition headers."""
        check_file(path)
        handle = _Acquisitions(path)
        try:
            yield handle
        finally:
            handle.close()

    def detect(self, f: h5py.File) -> bool:
        """A ``dataset`` group holding ``xml`` and ``data``."""
        group = f.get(GROUP)
        return isinstance(group, h5py.Group) and "xml" in group and "data" in group

    def _layout(self, f: _Acquisitions) -> dict[str, Any]:
        """Grid sizes, limits and the slice keys, checked against the acquisitions."""
        path = f.path
        if not f.header.encoding:
            raise DataError(path, "the ISMRMRD header has no encoding")
        enc = f.header.encoding[0]
        trajectory = getattr(enc.trajectory, "value", enc.trajectory)
        if str(trajectory) != "cartesian":
            raise DataError(path, f"trajectory is {trajectory}; only Cartesian acquisitions are read")
        ex, ey, ez = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z
        rx, ry = enc.reconSpace.matrixSize.x, enc.reconSpace.matrixSize.y
        if ez > 1:
            raise DataError(path, f"3-D encoding (encoded matrix z = {ez}) is not supported; only 2-D slices")
        heads = f.heads[f.imaging]
        if heads.size == 0:
            raise DataError(path, f"no imaging acquisitions ({int(f.noise.sum())} noise, {int(f.calibration.sum())} "
                            f"calibration of {f.heads.size} lines)")
        limit = enc.encodingLimits.kspace_encoding_step_1
        if limit is None:
            raise DataError(path, "the header has no encodingLimits/kspace_encoding_step_1")
        lo, hi, center = int(limit.minimum), int(limit.maximum), int(limit.center)
        first, last = ey // 2 - center + lo, ey // 2 - center + hi
        if lo > hi or first < 0 or last >= ey:
            raise DataError(
                path,
                f"encoding limits kspace_encoding_step_1 [min {lo}, max {hi}, centre {center}] put columns "
                f"[{first}, {last}] outside the encoded matrix of {ey} columns",
            )
        steps = heads["idx"]["kspace_encode_step_1"].astype(np.int64)
        bad = np.flatnonzero((steps < lo) | (steps > hi))
        if bad.size:
            raise DataError(path, f"{bad.size} imaging acquisition(s) have kspace_encode_step_1 outside the encoding "
                            f"limits [{lo}, {hi}] (e.g. {int(steps[bad[0]])})")
        if np.any(heads["idx"]["kspace_encode_step_2"] != 0):
            raise DataError(path, "acquisitions use kspace_encode_step_2 (3-D encoding); only 2-D slices are read")
        channels = np.unique(heads["active_channels"])
        if channels.size != 1 or channels[0] == 0:
            raise DataError(path, f"imaging acquisitions have differing or zero coil counts {channels.tolist()}")
        keys = sorted({tuple(int(v) for v in row) for row in self._keys(heads)})
        fov_e, fov_r = enc.encodedSpace.fieldOfView_mm.x, enc.reconSpace.fieldOfView_mm.x
        factor = fov_e / fov_r if fov_e and fov_r and fov_e > fov_r else ex / rx if ex > rx else 1.0
        h = int(round(ex / factor))
        return {
            "encoded": (ex, ey),
            "recon": (rx, ry),
            "limits": (lo, hi, center),
            "coils": int(channels[0]),
            "keys": keys,
            "height": h,
        }

    @staticmethod
    def _keys(heads: np.ndarray) -> np.ndarray:
        return np.stack([heads["idx"][c] for c in COUNTERS], axis=-1)

    def inspect(self, f: _Acquisitions, path: str) -> VolumeInfo:
        """Check header and acquisition headers (no samples read) and describe the assembled volume.

        Raises:
            DataError: no imaging acquisitions, no or malformed header, non-Cartesian or 3-D encoding,
                encoding limits that do not fit the encoded matrix, lines outside those limits, or differing
                coil counts.
        """
        layout = self._layout(f)
        (_, ey), (rx, ry), (lo, hi, center) = layout["encoded"], layout["recon"], layout["limits"]
        h = layout["height"]
        heads = f.heads[f.imaging | f.calibration]
        keys = self._keys(heads)
        columns = ey // 2 - center + heads["idx"]["kspace_encode_step_1"].astype(np.int64)
        per_slice = [np.unique(columns[np.all(keys == k, axis=-1)]).size for k in layout["keys"]]
        info = VolumeInfo(
            file=path,
            format=self.name,
            num_slices=len(layout["keys"]),
            num_coils=layout["coils"],
            kspace_size=(h, ey),
            encoding=EncodingInfo((h, ey), (rx, ry), pe_center=center - lo, pe_maximum=hi - lo, from_header=True),
            mask_layout="acquired",
            target_key=None,
            acquired_fraction=float(np.mean(per_slice)) / ey,
        )
        return check_sizes(path, info)

    def read_slice(self, f: _Acquisitions, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """Assemble one slice: imaging lines (averaged), calibration fill, oversampling removed."""
        import ismrmrd.file

        layout = self._layout(f)
        (ex, ey), (_, _, center) = layout["encoded"], layout["limits"]
        key = np.asarray(layout["keys"][slice_idx])
        selected = np.flatnonzero((f.imaging | f.calibration) & np.all(self._keys(f.heads) == key, axis=-1))
        try:
            raws = f.acquisitions.data[selected.tolist()]
        except OSError as err:
            raise DataError(f.path, f"reading acquisitions failed (truncated file?): {err}", slice_idx) from None
        coils = layout["coils"]
        sums = {kind: np.zeros((coils, ex, ey), np.complex128) for kind in ("imaging", "calibration")}
        counts = {kind: np.zeros(ey, np.int64) for kind in sums}
        for index, raw in zip(selected, raws):
            acq = ismrmrd.file.Acquisitions.from_numpy(raw)
            data = acq.data[:, acq.discard_pre : acq.number_of_samples - acq.discard_post]
            if _flag(np.uint64(acq.flags), REVERSE):
                data = data[:, ::-1]
            start = ex // 2 - (acq.center_sample - acq.discard_pre)
            if start < 0 or start + data.shape[1] > ex:
                raise DataError(f.path, f"acquisition {index}: {data.shape[1]} samples centred at "
                                f"{acq.center_sample} do not fit the encoded readout of {ex}", slice_idx)
            column = ey // 2 - center + acq.idx.kspace_encode_step_1
            kind = "imaging" if f.imaging[index] else "calibration"
            sums[kind][:, start : start + data.shape[1], column] += data
            counts[kind][column] += 1
        check_finite(f.path, "data", sums["imaging"], slice_idx)
        check_finite(f.path, "data", sums["calibration"], slice_idx)
        imaging, calibration = counts["imaging"] > 0, (counts["calibration"] > 0) & (counts["imaging"] == 0)
        kspace = np.zeros((coils, ex, ey), np.complex64)
        kspace[..., imaging] = sums["imaging"][..., imaging] / counts["imaging"][imaging]
        kspace[..., calibration] = sums["calibration"][..., calibration] / counts["calibration"][calibration]
        acquired = imaging | calibration
        h = info.kspace_size[0]
        if h < ex:  # remove readout oversampling: crop the image along x, re-zero unacquired columns
            image = ifft2c(to_tensor(kspace))
            top = (ex - h) // 2
            kspace = to_complex_numpy(fft2c(image[:, top : top + h].contiguous())) * acquired
        mask = np.broadcast_to(acquired, (h, ey)).copy()
        return {
            Keys.KSPACE.value: to_tensor(kspace.astype(np.complex64)),
            Keys.MASK.value: torch.from_numpy(mask).reshape(1, h, ey, 1),
        }

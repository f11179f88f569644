"""The fastMRI prostate T2 raw layout (``reader="fastmri_prostate_t2"``), and its one-off conversion.

Source: the fastMRI prostate release (https://fastmri.med.nyu.edu/, Tibrewala et al., Sci. Data 2024),
files ``file_prostate_AXT2_*.h5``:

- ``kspace`` complex ``(A, S, C, H, Wa)``: ``A`` averages (3), each undersampled along the phase encode
  (about R = 2; averages 0 and 2 share one pattern, average 1 another); the acquired columns are the
  non-zero ones (no ``mask`` dataset). ``H`` is the 2x oversampled readout (640);
- ``calibration_data`` complex ``(S, C, H, Nc)``: ``Nc`` fully sampled calibration lines per slice;
- ``reconstruction_rss`` float32 ``(S, 320, 320)``, ``ismrmrd_header``, attributes ``max``, ``norm``,
  ``acquisition`` (and ``patient_id``, never read).

The dataset's own reconstruction (``fastmri_prostate/reconstruction/t2``): per slice and average, GRAPPA
(5x5 kernel) weights from the calibration lines fill the missing columns; the phase encode is zero-padded
symmetrically by ``(encodedSpace.x - (kspace_encoding_step_1.maximum + 1)) / 2`` columns per side; the
image of each average is the RSS of the centred inverse FFT, **flipped up-down**; the magnitudes are
averaged over the averages and centre-cropped to 320 x 320.

The reader returns, per slice, in the orientation of ``reconstruction_rss`` (flipped up-down):

- ``kspace`` ``(C, H, W, 2)``: the *measurement*: each acquired column is the mean of the averages that
  acquired it (no GRAPPA synthesis), zero-padded to ``W = Wa + padding``;
- ``mask`` ``(1, H, W, 1)``: the columns acquired by any average; ``pe_range`` the un-padded columns;
- ``target``: the file's ``reconstruction_rss`` slice, when present.

:func:`grappa_reference` rebuilds the dataset's reference for one slice with ``pygrappa`` (the GRAPPA
fill costs seconds to minutes per slice, so it is not done on the fly). :func:`convert_file` (CLI:
``python -m pipeline.data.convert_prostate IN... --out DIR``) pays it once: it writes each file in the JSSL paper's
preprocessed layout, a fastMRI multi-coil file with the GRAPPA-filled, average-combined k-space
``(S, C, H, W)``, its ``reconstruction_rss`` and a consistent ``ismrmrd_header`` (no ``patient_id``),
which the paper then re-masks retrospectively (equispaced 4x/8x/16x).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats.base import (
    RawFormat,
    VolumeInfo,
    check_finite,
    check_sizes,
    get_dataset,
    open_h5,
    read_dataset,
    stored_volume_max,
)
from pipeline.data.formats.fastmri import header_bytes
from pipeline.data.ismrmrd import EncodingInfo, parse_ismrmrd_header, write_ismrmrd_header
from pipeline.keys import Keys
from pipeline.physics import rss_image, to_tensor

__all__ = ["ProstateT2", "convert_file", "flip_up_down", "grappa_reference"]

RECON_SIZE = (320, 320)
"""The published reconstruction's size, used when a file has neither ``reconstruction_rss`` nor header."""

KERNEL_SIZE = (5, 5)
"""GRAPPA kernel of the dataset's reconstruction (readout x phase encode)."""


def flip_up_down(kspace: np.ndarray) -> np.ndarray:
    """The k-space of the image flipped up-down (along ``H``), exactly and without an FFT.

    With the centred FFT, flipping the image ``I'[n] = I[H - 1 - n]`` maps k-space row ``k`` to
    ``K'[k] = exp(2 pi i d (k - H // 2) / H) K[(H - k) % H]`` with ``d = 1`` for even ``H`` (``0`` for odd),
    so unacquired (zero) columns stay exactly zero.

    Args:
        kspace: complex ``(..., H, W)`` centred k-space.

    Returns:
        Complex ``(..., H, W)``, same dtype.

    >>> k = np.arange(4, dtype=np.complex64).reshape(4, 1)
    >>> np.allclose(flip_up_down(flip_up_down(k)), k, atol=1e-6)  # flipping twice is the identity
    True
    """
    h = kspace.shape[-2]
    rows = (-np.arange(h)) % h
    shift = 1 - h % 2
    phase = np.exp(2j * np.pi * shift * (np.arange(h) - h // 2) / h).astype(kspace.dtype)
    return kspace[..., rows, :] * phase[:, None]


def _padding(encoding: EncodingInfo | None, h: int, wa: int) -> tuple[int, int]:
    """Zero columns left/right of the ``Wa`` stored ones (the dataset's ``zero_pad_kspace_hdr``)."""
    acquired = encoding.pe_maximum + 1 if encoding is not None else wa
    readout = encoding.encoded_size[0] if encoding is not None else h
    total = max(0, readout - acquired)
    return total // 2, total - total // 2


class ProstateT2(RawFormat):
    """fastMRI prostate T2 raw files (see the module docstring for the layout and the outputs)."""

    name = "fastmri_prostate_t2"

    def detect(self, f: h5py.File) -> bool:
        """A complex 5-D ``kspace`` next to ``calibration_data``, ``reconstruction_rss`` or a header."""
        ds = f.get("kspace")
        return (
            isinstance(ds, h5py.Dataset)
            and ds.ndim == 5
            and np.issubdtype(ds.dtype, np.complexfloating)
            and any(k in f for k in ("calibration_data", "reconstruction_rss", "ismrmrd_header"))
        )

    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        """Check ``kspace``, ``calibration_data``, the reference and the header; work out the padding.

        Raises:
            DataError: no ``kspace`` or not complex 5-D ``(averages, slices, coils, H, W)``, empty axes,
                missing ``calibration_data`` or one whose ``(slices, coils, H)`` differ from the averages',
                a reference of the wrong slice count, malformed header, or sizes that contradict each other.
        """
        ds = get_dataset(f, path, "kspace")
        if not np.issubdtype(ds.dtype, np.complexfloating) or ds.ndim != 5:
            raise DataError(
                path,
                f"'kspace' has dtype {ds.dtype} and shape {ds.shape}; fastMRI prostate T2 files hold complex "
                "(averages, slices, coils, H, W)",
            )
        averages, num_slices, coils, h, wa = ds.shape
        if 0 in ds.shape:
            raise DataError(path, f"empty 'kspace' of shape {ds.shape}")
        calib = get_dataset(f, path, "calibration_data", required=False)
        if calib is None:
            raise DataError(path, "no 'calibration_data': the GRAPPA reference of a prostate T2 file needs it")
        if calib.ndim != 4 or tuple(calib.shape[:3]) != (num_slices, coils, h) or calib.shape[3] == 0:
            raise DataError(
                path,
                f"'calibration_data' has shape {calib.shape}; expected ({num_slices}, {coils}, {h}, lines) to match "
                f"the {averages} averages of shape {ds.shape[1:]}",
            )
        target = get_dataset(f, path, "reconstruction_rss", required=False)
        target_shape = None
        if target is not None:
            if target.ndim != 3 or target.shape[0] != num_slices:
                raise DataError(path, f"'reconstruction_rss' has shape {target.shape}, expected ({num_slices}, Hr, Wr)")
            target_shape = tuple(target.shape[1:])
        header = get_dataset(f, path, "ismrmrd_header", required=False)
        parsed = None
        if header is not None:
            parsed = parse_ismrmrd_header(header_bytes(read_dataset(path, header, (), None)), file=path)
        left, right = _padding(parsed, h, wa)
        w = wa + left + right
        recon = target_shape or (parsed.recon_size if parsed is not None else RECON_SIZE)
        encoding = EncodingInfo(
            encoded_size=(h, w),
            recon_size=(int(recon[0]), int(recon[1])),
            pe_center=w // 2 - left,
            pe_maximum=wa - 1,
            encoded_fov_mm=parsed.encoded_fov_mm if parsed is not None else None,
            recon_fov_mm=parsed.recon_fov_mm if parsed is not None else None,
            from_header=parsed is not None,
        )
        info = VolumeInfo(
            file=path,
            format=self.name,
            num_slices=num_slices,
            num_coils=coils,
            kspace_size=(h, w),
            encoding=encoding,
            mask_layout="acquired",
            target_key="reconstruction_rss" if target is not None else None,
        )
        return check_sizes(path, info, target_shape)

    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """The averages combined on their acquired columns, padded and flipped; the union mask; the reference."""
        k = _averages(f, info, slice_idx)
        acquired = np.any(k != 0, axis=(1, 2))  # (A, Wa)
        count = acquired.sum(axis=0)
        combined = k.sum(axis=0) / np.maximum(count, 1).astype(np.float32)
        kspace = flip_up_down(_pad(info, combined.astype(np.complex64)))
        h, w = info.kspace_size
        mask = np.broadcast_to(_pad(info, count > 0), (h, w))
        sample: dict[str, Any] = {
            Keys.KSPACE.value: to_tensor(kspace),
            Keys.MASK.value: torch.from_numpy(mask.copy()).reshape(1, h, w, 1),
            Keys.ACQUISITION.value: _attr_str(f, "acquisition"),
        }
        if info.target_key is not None:
            target = read_dataset(info.file, f[info.target_key], slice_idx, slice_idx).astype(np.float32)
            check_finite(info.file, info.target_key, target, slice_idx)
            sample[Keys.TARGET.value] = torch.from_numpy(target)[None]
        return sample

    def volume_max(self, f: h5py.File, info: VolumeInfo) -> float:
        """The ``max`` attribute, else the maximum of ``reconstruction_rss``, else 0.0."""
        return stored_volume_max(f, info)


def _averages(f: h5py.File, info: VolumeInfo, slice_idx: int) -> np.ndarray:
    """The averages of one slice, ``(A, C, H, Wa)`` complex64, checked."""
    path = info.file
    k = read_dataset(path, f["kspace"], (slice(None), slice_idx), slice_idx)
    check_finite(path, "kspace", k, slice_idx)
    empty = [a for a in range(k.shape[0]) if not np.any(k[a])]
    if empty:
        raise DataError(path, f"average(s) {empty} of 'kspace' hold no data", slice_idx)
    return k.astype(np.complex64, copy=False)


def _pad(info: VolumeInfo, columns: np.ndarray) -> np.ndarray:
    """Place the ``Wa`` stored columns inside the padded width ``W``."""
    start, stop = info.pe_range
    out = np.zeros((*columns.shape[:-1], info.kspace_size[1]), dtype=columns.dtype)
    out[..., start:stop] = columns
    return out


def _attr_str(f: h5py.File, name: str) -> str:
    value = f.attrs.get(name, "")
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def grappa_reference(f: h5py.File, info: VolumeInfo, slice_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild one slice the way the dataset's own reconstruction does.

    Each average is GRAPPA-filled (``pygrappa.mdgrappa``, 5x5 kernel, weights from ``calibration_data``;
    averages with the same sampling pattern share their weights), zero-padded, and flipped up-down.

    Args:
        f: the open prostate file.
        info: its :class:`VolumeInfo` (from :meth:`ProstateT2.inspect`).
        slice_idx: the slice.

    Returns:
        ``(kspace, image)``: the average-combined (complex mean) filled k-space ``(C, H, W)`` complex64, and
        the reference image ``(Hr, Wr)`` float32: the mean over averages of each average's RSS image,
        centre-cropped (what ``reconstruction_rss`` holds).

    Raises:
        DataError: unreadable or non-finite data, or an empty average.
    """
    from pygrappa import mdgrappa

    path = info.file
    k = _averages(f, info, slice_idx).astype(np.complex128)
    calib = read_dataset(path, f["calibration_data"], slice_idx, slice_idx).astype(np.complex128)
    check_finite(path, "calibration_data", calib, slice_idx)
    weights: dict[bytes, dict] = {}
    filled = []
    for average in k:
        pattern = np.any(average != 0, axis=(0, 1)).tobytes()
        if pattern in weights:
            out = mdgrappa(average, calib, kernel_size=KERNEL_SIZE, coil_axis=0, weights=weights[pattern])
        else:
            out, weights[pattern] = mdgrappa(average, calib, kernel_size=KERNEL_SIZE, coil_axis=0, ret_weights=True)
        filled.append(flip_up_down(_pad(info, out.astype(np.complex64))))
    stack = np.stack(filled)  # (A, C, H, W)
    recon = torch.as_tensor(info.recon_size)
    image = rss_image(to_tensor(stack), recon).mean(dim=0)
    return stack.mean(axis=0).astype(np.complex64), image.numpy().astype(np.float32)


def convert_file(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Write one prostate T2 file in the JSSL paper's preprocessed layout (a fastMRI multi-coil file).

    ``kspace`` complex64 ``(S, C, H, W)`` (GRAPPA-filled, average-combined, padded, flipped up-down),
    ``reconstruction_rss`` float32 ``(S, Hr, Wr)`` (the RSS of that k-space, centre-cropped: fastMRI's
    definition, so reference and k-space agree), an ``ismrmrd_header`` with the encoded size, recon size and
    the un-padded columns as acquired range, and the attributes ``max`` and ``acquisition``. The file is
    written to a temporary name and renamed, so an interrupted conversion leaves no half file.

    Args:
        source: the raw prostate T2 file.
        destination: the output ``.h5`` path (its folder is created).

    Returns:
        ``destination`` as a :class:`Path`.

    Raises:
        DataError: for any problem of the source file (see :meth:`ProstateT2.inspect`).
    """
    source, destination = os.fspath(source), Path(destination)
    fmt = ProstateT2()
    with open_h5(source) as f:
        info = fmt.inspect(f, source)
        kspaces, images = [], []
        for s in range(info.num_slices):
            kspace, _ = grappa_reference(f, info, s)
            kspaces.append(kspace)
            images.append(rss_image(to_tensor(kspace), torch.as_tensor(info.recon_size)).numpy())
        acquisition = _attr_str(f, "acquisition")
    volume = np.stack(kspaces)
    recon = np.stack(images).astype(np.float32)
    h, w = info.kspace_size
    header = write_ismrmrd_header(
        (h, w), info.recon_size, info.pe_range, info.encoding.encoded_fov_mm, info.encoding.recon_fov_mm, info.num_coils
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp")
    with h5py.File(tmp, "w") as out:
        out.create_dataset("kspace", data=volume)
        out.create_dataset("reconstruction_rss", data=recon)
        out.create_dataset("ismrmrd_header", data=np.bytes_(header))
        out.attrs["max"] = float(recon.max())
        out.attrs["acquisition"] = acquisition
    tmp.replace(destination)
    return destination

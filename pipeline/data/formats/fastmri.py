"""The fastMRI layout (``reader="fastmri"``), also the fallback of ``reader="auto"``.

``kspace`` complex ``(S, C, H, W)`` (multi-coil) or ``(S, H, W)`` (single-coil, returned with
``C = 1``); optional ``reconstruction_rss`` / ``reconstruction_esc`` ``(S, Hr, Wr)``, ``mask``,
``ismrmrd_header`` and the attributes ``max``, ``acquisition`` and ``num_low_frequency``.

Mask layouts accepted in the ``mask`` dataset (``W`` = phase-encode columns, ``S`` = slices):

- ``(W,)``: one column mask for the whole volume (fastMRI test/challenge files);
- ``(S, W)``: one column mask per slice (this project's target/validation/test files, which also
  set ``mask.attrs["layout"] = "slice_columns"``); row ``slice_idx`` is returned;
- ``(H, W)``: one 2-D mask for the whole volume;
- ``(S, H, W)``: one 2-D mask per slice.

A 2-D ``mask`` whose shape fits both ``(S, W)`` and ``(H, W)`` is read as ``(H, W)`` unless its
``layout`` attribute says ``"slice_columns"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, check_finite, kspace_dataset, read_dataset
from pipeline.data.ismrmrd import default_encoding, parse_ismrmrd_header
from pipeline.keys import Keys
from pipeline.physics import to_tensor

__all__ = ["FastMRI"]

TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
"""Reference-image datasets, in order of preference."""

FASTMRI_KEYS = ("ismrmrd_header", "mask", *TARGET_KEYS)
"""Datasets that only fastMRI files have (any of them marks a file as fastMRI)."""


def _mask_layout(f: h5py.File, path: str, num_slices: int, h: int, w: int) -> str | None:
    if "mask" not in f:
        return None
    mask = f["mask"]
    shape = tuple(mask.shape)
    if mask.attrs.get("layout") == "slice_columns" and shape == (num_slices, w):
        return "slice_columns"
    if shape == (w,):
        return "columns"
    if shape == (h, w):
        return "2d"
    if shape == (num_slices, w):
        return "slice_columns"
    if shape == (num_slices, h, w):
        return "slice_2d"
    raise DataError(
        path,
        f"mask shape {shape} does not match kspace: expected ({w},) columns (W = {w}), ({num_slices}, {w}) "
        f"per slice, ({h}, {w}) or ({num_slices}, {h}, {w})",
    )


def _header_bytes(value: Any) -> bytes:
    """The XML of an ``ismrmrd_header`` dataset as bytes (stored as bytes, a string or a 0-d array)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.ndarray):
        value = value.item() if value.dtype.kind in "OSU" else value.tobytes()
        return _header_bytes(value)
    return bytes(value)


def _read_mask(f: h5py.File, info: VolumeInfo, slice_idx: int) -> torch.Tensor:
    """The file's mask for one slice as ``(1, H, W, 1)`` bool."""
    h, w = info.kspace_size
    ds = f["mask"]
    if info.mask_layout == "columns":
        mask = read_dataset(info.file, ds, (), slice_idx)[None, :]
    elif info.mask_layout == "slice_columns":
        mask = read_dataset(info.file, ds, slice_idx, slice_idx)[None, :]
    elif info.mask_layout == "2d":
        mask = read_dataset(info.file, ds, (), slice_idx)
    else:
        mask = read_dataset(info.file, ds, slice_idx, slice_idx)
    mask = np.broadcast_to(np.asarray(mask) != 0, (h, w)).copy()
    return torch.from_numpy(mask).reshape(1, h, w, 1)


class FastMRI(RawFormat):
    """fastMRI multi-coil and single-coil files (see the module docstring for the layout)."""

    name = "fastmri"

    def detect(self, f: h5py.File) -> bool:
        """A complex ``kspace`` dataset, or any of :data:`FASTMRI_KEYS`."""
        ds = f.get("kspace")
        is_complex = isinstance(ds, h5py.Dataset) and np.issubdtype(ds.dtype, np.complexfloating)
        return is_complex or any(k in f for k in FASTMRI_KEYS)

    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        """Check dtype, rank, coils, reference and mask shapes and the ISMRMRD header.

        Raises:
            DataError: no ``kspace``, non-complex dtype, rank other than 3/4 (or not matching the
                reference: ``reconstruction_rss`` needs 4-D, ``reconstruction_esc`` 3-D), empty axes,
                reference or mask shape not matching ``kspace``, malformed header or empty
                phase-encode range.
        """
        ds = kspace_dataset(f, path)
        if not np.issubdtype(ds.dtype, np.complexfloating):
            raise DataError(path, f"'kspace' has dtype {ds.dtype}, expected complex64/complex128 (fastMRI layout)")
        target_key = next((k for k in TARGET_KEYS if k in f), None)
        if ds.ndim not in (3, 4) or (target_key == "reconstruction_rss" and ds.ndim != 4):
            raise DataError(
                path,
                f"'kspace' has rank {ds.ndim} (shape {ds.shape}); multi-coil files must be 4-D (slices, coils, H, W), "
                "single-coil files 3-D (slices, H, W)",
            )
        if target_key == "reconstruction_esc" and ds.ndim != 3:
            raise DataError(
                path, f"single-coil file (has reconstruction_esc) must have 3-D 'kspace', got shape {ds.shape}"
            )
        num_slices, h, w = ds.shape[0], ds.shape[-2], ds.shape[-1]
        num_coils = ds.shape[1] if ds.ndim == 4 else 1
        if num_coils == 0:
            raise DataError(path, f"empty coil axis: 'kspace' has shape {ds.shape}")
        if num_slices == 0 or h == 0 or w == 0:
            raise DataError(path, f"empty 'kspace' of shape {ds.shape}")
        target_shape = None
        if target_key is not None:
            target = f[target_key]
            if target.ndim != 3 or target.shape[0] != num_slices:
                raise DataError(path, f"'{target_key}' has shape {target.shape}, expected ({num_slices}, Hr, Wr)")
            target_shape = tuple(target.shape[1:])
        if "ismrmrd_header" in f:
            xml = _header_bytes(read_dataset(path, f["ismrmrd_header"], (), None))
            encoding = parse_ismrmrd_header(xml, file=path)
            if target_shape is not None and target_shape != encoding.recon_size:
                encoding = dataclasses.replace(encoding, recon_size=target_shape)
        else:
            encoding = default_encoding((h, w), target_shape)
        info = VolumeInfo(
            file=path,
            format=self.name,
            num_slices=num_slices,
            num_coils=num_coils,
            kspace_size=(h, w),
            encoding=encoding,
            mask_layout=_mask_layout(f, path, num_slices, h, w),
            target_key=target_key,
        )
        start, stop = info.pe_range
        if start >= stop:
            raise DataError(path, f"ismrmrd_header gives an empty phase-encode range {encoding.pe_range} for W = {w}")
        return info

    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """``kspace`` as stored, the reference and mask where present, ACS width and acquisition."""
        path = info.file
        kspace = read_dataset(path, f["kspace"], slice_idx, slice_idx)
        check_finite(path, "kspace", kspace, slice_idx)
        kspace = kspace.astype(np.complex64, copy=False)
        if kspace.ndim == 2:
            kspace = kspace[None]
        sample: dict[str, Any] = {Keys.KSPACE.value: to_tensor(kspace)}
        if info.target_key is not None:
            target = read_dataset(path, f[info.target_key], slice_idx, slice_idx).astype(np.float32, copy=False)
            check_finite(path, info.target_key, target, slice_idx)
            sample[Keys.TARGET.value] = torch.from_numpy(np.ascontiguousarray(target))[None]
        if info.mask_layout is not None:
            sample[Keys.MASK.value] = _read_mask(f, info, slice_idx)
        acquisition = f.attrs.get("acquisition", "")
        if isinstance(acquisition, bytes):
            acquisition = acquisition.decode("utf-8", errors="replace")
        sample[Keys.NUM_LOW_FREQUENCIES.value] = int(f.attrs.get("num_low_frequency", 0))
        sample[Keys.ACQUISITION.value] = str(acquisition)
        return sample

    def volume_max(self, f: h5py.File, info: VolumeInfo) -> float:
        """The ``max`` attribute, else the maximum of the whole reference (slice by slice), else 0.0."""
        if "max" in f.attrs:
            return float(f.attrs["max"])
        if info.target_key is None:
            return 0.0
        ds = f[info.target_key]
        return max(float(np.max(read_dataset(info.file, ds, s, None))) for s in range(ds.shape[0]))

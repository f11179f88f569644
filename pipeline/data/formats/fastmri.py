"""The fastMRI layout (``reader="fastmri"``), also the fallback of ``reader="auto"``.

Source: the fastMRI dataset (https://fastmri.med.nyu.edu/), knee and brain releases.
``kspace`` complex ``(S, C, H, W)`` (multi-coil) or ``(S, H, W)`` (single-coil, returned with
``C = 1``); optional ``reconstruction_rss`` / ``reconstruction_esc`` ``(S, Hr, Wr)``, ``mask``,
``ismrmrd_header`` and the attributes ``max``, ``acquisition`` and ``num_low_frequency``. Single-coil
files carry ``reconstruction_esc`` (their target) and usually also ``reconstruction_rss``; multi-coil
files use ``reconstruction_rss``. A real-valued ``kspace`` with a trailing real/imaginary axis of size 2,
``(S, C, H, W, 2)`` or ``(S, H, W, 2)``, is read the same way; the single-coil variant also fits the
CC-359 rule, so such files need their format named in the manifest.

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
from pipeline.data.formats.base import (
    RawFormat,
    VolumeInfo,
    check_binary_mask,
    check_finite,
    check_sizes,
    get_dataset,
    read_dataset,
    stored_volume_max,
)
from pipeline.data.ismrmrd import default_encoding, parse_ismrmrd_header
from pipeline.keys import Keys
from pipeline.physics import to_tensor

__all__ = ["FastMRI", "header_bytes", "is_matlab"]

TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
"""Reference-image datasets, in order of preference."""

FASTMRI_KEYS = ("ismrmrd_header", "mask", *TARGET_KEYS)
"""Datasets that only fastMRI files have (any of them marks a file as fastMRI)."""


def is_matlab(f: h5py.File) -> bool:
    """Whether ``f`` is a MATLAB v7.3 ``.mat`` file (its variables carry a ``MATLAB_class`` attribute)."""
    return any(isinstance(obj, h5py.Dataset) and "MATLAB_class" in obj.attrs for obj in f.values())


def _stacked(ds: h5py.Dataset) -> bool:
    """A real ``kspace`` whose last axis of size 2 holds (real, imaginary)."""
    return np.issubdtype(ds.dtype, np.floating) and ds.ndim in (4, 5) and ds.shape[-1] == 2


def _mask_layout(f: h5py.File, path: str, num_slices: int, h: int, w: int) -> str | None:
    mask = get_dataset(f, path, "mask", required=False)
    if mask is None:
        return None
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


def header_bytes(value: Any) -> bytes:
    """The XML of an ``ismrmrd_header`` dataset as bytes (stored as bytes, a string or a 0-d array)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.ndarray):
        value = value.item() if value.dtype.kind in "OSU" else value.tobytes()
        return header_bytes(value)
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
        """A complex (or real/imaginary-stacked) ``kspace``, or any of :data:`FASTMRI_KEYS`.

        Files with ``calibration_data`` or a complex 5-D ``kspace`` (the fastMRI prostate layouts) and MATLAB files
        are left to their own formats (a 5-D file nobody claims still falls back here and is refused).
        """
        ds = f.get("kspace")
        complex_5d = isinstance(ds, h5py.Dataset) and ds.ndim == 5 and np.issubdtype(ds.dtype, np.complexfloating)
        if "calibration_data" in f or is_matlab(f) or complex_5d:
            return False
        is_kspace = isinstance(ds, h5py.Dataset) and (np.issubdtype(ds.dtype, np.complexfloating) or _stacked(ds))
        return is_kspace or any(k in f for k in FASTMRI_KEYS)

    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        """Check dtype, rank, coils, reference and mask shapes and the ISMRMRD header.

        Raises:
            DataError: no ``kspace`` (or an HDF5 group where a dataset belongs), non-complex dtype, rank
                other than 3/4 (or not matching the reference: ``reconstruction_rss`` needs 4-D,
                ``reconstruction_esc`` 3-D), empty axes, reference or mask shape not matching ``kspace``, a
                mask that is not binary, malformed header, a recon size larger than the k-space, or a
                padding band outside it.
        """
        ds = get_dataset(f, path, "kspace")
        stacked = _stacked(ds)
        if not (np.issubdtype(ds.dtype, np.complexfloating) or stacked):
            raise DataError(path, f"'kspace' has dtype {ds.dtype}, expected complex64/complex128 (fastMRI layout)")
        shape = ds.shape[:-1] if stacked else ds.shape
        present = [k for k in TARGET_KEYS if get_dataset(f, path, k, required=False) is not None]
        # single-coil files have the ESC target (and often an RSS one too); multi-coil files the RSS target
        wanted = "reconstruction_esc" if len(shape) == 3 else "reconstruction_rss"
        target_key = wanted if wanted in present else None
        if len(shape) not in (3, 4):
            raise DataError(
                path,
                f"'kspace' has rank {len(shape)} (shape {ds.shape}); multi-coil files must be 4-D "
                "(slices, coils, H, W), single-coil files 3-D (slices, H, W)",
            )
        if present and target_key is None:
            raise DataError(
                path,
                f"'kspace' has rank {len(shape)} (shape {ds.shape}) but the reference is {present[0]}: multi-coil "
                "files are 4-D with reconstruction_rss, single-coil files 3-D with reconstruction_esc",
            )
        num_slices, h, w = shape[0], shape[-2], shape[-1]
        num_coils = shape[1] if len(shape) == 4 else 1
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
        header = get_dataset(f, path, "ismrmrd_header", required=False)
        if header is not None:
            encoding = parse_ismrmrd_header(header_bytes(read_dataset(path, header, (), None)), file=path)
            if target_shape is not None and target_shape != encoding.recon_size:
                encoding = dataclasses.replace(encoding, recon_size=target_shape)
        else:
            encoding = default_encoding((h, w), target_shape)
        mask_layout = _mask_layout(f, path, num_slices, h, w)
        info = VolumeInfo(
            file=path,
            format=self.name,
            num_slices=num_slices,
            num_coils=num_coils,
            kspace_size=(h, w),
            encoding=encoding,
            mask_layout=mask_layout,
            target_key=target_key,
        )
        check_sizes(path, info, target_shape)
        if mask_layout is None:
            start, stop = info.pe_range
            fraction = (stop - start) / w
        else:
            values = read_dataset(path, f["mask"], (), None)
            check_binary_mask(path, "mask", values)
            columns = values != 0 if mask_layout in ("columns", "slice_columns") else np.any(values != 0, axis=-2)
            fraction = float(np.mean(columns))
        return dataclasses.replace(info, acquired_fraction=fraction)

    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """``kspace`` as stored, the reference and mask where present, ACS width and acquisition."""
        path = info.file
        kspace = read_dataset(path, f["kspace"], slice_idx, slice_idx)
        check_finite(path, "kspace", kspace, slice_idx)
        if np.issubdtype(kspace.dtype, np.floating):  # real/imaginary stacked on the last axis
            kspace = kspace[..., 0] + 1j * kspace[..., 1]
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
        return stored_volume_max(f, info)

"""Slice-level readers for raw k-space files, as MONAI transforms.

Each call opens the HDF5 file, reads ONE slice with h5py hyperslab selection and closes the file
again, so no file handle is kept in the transform (safe to pickle into DataLoader workers) and the
rest of the volume is never read. K-space is never copied into metadata, and ``patient_id`` is never
read.

The transforms are format-neutral: the layouts (fastMRI, Calgary-Campinas CC-359, ...) live in
:mod:`pipeline.data.formats`, one module each, and ``reader=`` names one of them or ``"auto"``
(detect per file, :func:`pipeline.data.formats.detect_format`).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import h5py
import torch
from monai.transforms import MapTransform, Transform

from pipeline.data.errors import DataError
from pipeline.data.formats import RawFormat, VolumeInfo, check_reader, select_format
from pipeline.data.formats.base import open_h5
from pipeline.keys import Keys

__all__ = ["inspect_volume", "LoadSlice", "LoadSliced"]


def inspect_volume(path: str | os.PathLike, reader: str = "auto") -> VolumeInfo:
    """Check a file at header level (shapes, dtype, rank, coils, mask shape) without reading k-space.

    Args:
        path: the ``.h5`` file.
        reader: ``"auto"`` or a format name of :data:`pipeline.data.formats.FORMATS`
            (``"fastmri"``, ``"cc359"``).

    Returns:
        The file's :class:`~pipeline.data.formats.VolumeInfo`.

    Raises:
        DataError: missing or unreadable file, missing ``kspace``, wrong dtype or rank, empty coil axis,
            mask or reference shapes that do not match ``kspace``, malformed ISMRMRD header, or (with
            ``"auto"``) a file claimed by more than one format.
        ValueError: unknown ``reader``.
    """
    check_reader(reader)
    path = os.fspath(path)
    with open_h5(path) as f:
        return select_format(f, path, reader).inspect(f, path)


class LoadSlice(Transform):
    """Read one slice of a raw k-space file into a flat sample dict (array-style transform).

    Args:
        reader: ``"auto"`` (detect per file) or a format name of :data:`pipeline.data.formats.FORMATS`
            (``"fastmri"``, ``"cc359"``).

    The sample holds (shapes per slice, see :class:`pipeline.keys.Keys`):

    - ``kspace``: ``(C, H, W, 2)`` float32, centred k-space as stored (zeros at unacquired columns of
      subsampled files);
    - ``target``: ``(1, Hr, Wr)`` float32 reference magnitude (``reconstruction_rss`` /
      ``reconstruction_esc``; for CC-359 the RSS of the slice) when known;
    - ``mask``: ``(1, H, W, 1)`` bool, only when the file has a ``mask`` dataset. Files that store
      fully sampled k-space together with a fixed mask (this project's validation/test files) return
      the full k-space; the mask-application transform zeroes the unsampled columns;
    - ``filename`` (base name), ``slice_idx``, ``num_slices``, ``recon_size`` ``(2,)`` int64,
      ``pe_range`` ``(2,)`` int64, ``num_low_frequencies`` (int, 0 = unknown), ``max`` (float, volume
      maximum of the reference, 0.0 if unknown), ``acquisition`` (str), ``domain`` (str).

    The volume maximum (:meth:`~pipeline.data.formats.RawFormat.volume_max`) is computed once per file
    and cached in the transform (a plain dict of floats keyed by path, mtime and size, safe to pickle).

    Raises:
        DataError: on any bad input (see :func:`inspect_volume`), a slice index out of range, or
            NaN/Inf values in the slice read.
        ValueError: unknown ``reader``.
    """

    def __init__(self, reader: str = "auto") -> None:
        self.reader = check_reader(reader)
        self._max_cache: dict[tuple[str, int, int], float] = {}

    def __call__(self, path: str | os.PathLike, slice_idx: int, domain: str = "") -> dict[str, Any]:
        """Read slice ``slice_idx`` of ``path``.

        Args:
            path: the ``.h5`` file.
            slice_idx: slice index, ``0 <= slice_idx < S``.
            domain: manifest section the slice belongs to (``"proxy"``, ``"target"``, ...).

        Returns:
            The sample dict (keys from :class:`pipeline.keys.Keys`).
        """
        path = os.fspath(path)
        slice_idx = int(slice_idx)
        with open_h5(path, slice_idx) as f:
            fmt = select_format(f, path, self.reader)
            info = fmt.inspect(f, path)
            if not 0 <= slice_idx < info.num_slices:
                raise DataError(path, f"slice index out of range: the volume has {info.num_slices} slices", slice_idx)
            sample: dict[str, Any] = {
                Keys.PE_RANGE.value: torch.tensor(info.pe_range, dtype=torch.int64),
                Keys.NUM_LOW_FREQUENCIES.value: 0,
                Keys.ACQUISITION.value: "",
            }
            sample.update(fmt.read_slice(f, info, slice_idx))
            sample[Keys.MAX.value] = self._volume_max(fmt, f, info)
        sample.update(
            {
                Keys.FILENAME.value: os.path.basename(path),
                Keys.SLICE.value: slice_idx,
                Keys.NUM_SLICES.value: info.num_slices,
                Keys.RECON_SIZE.value: torch.tensor(info.recon_size, dtype=torch.int64),
                Keys.DOMAIN.value: str(domain),
            }
        )
        return sample

    def _volume_max(self, fmt: RawFormat, f: h5py.File, info: VolumeInfo) -> float:
        stat = os.stat(info.file)
        key = (os.path.abspath(info.file), stat.st_mtime_ns, stat.st_size)
        if key not in self._max_cache:
            self._max_cache[key] = fmt.volume_max(f, info)
        return self._max_cache[key]


class LoadSliced(MapTransform):
    """Dictionary twin of :class:`LoadSlice`: ``{"file", "slice_idx", "domain"}`` -> sample dict.

    The output holds only :class:`pipeline.keys.Keys` entries (the input's ``file`` and any other
    manifest fields are not passed on), so the default collate works.

    Args:
        keys: the key holding the file path (default ``"file"``).
        slice_key: the key holding the slice index.
        domain_key: the key holding the domain name (optional in the input; ``""`` if absent).
        reader: ``"auto"`` or a format name (see :class:`LoadSlice`).
    """

    def __init__(
        self,
        keys: str = "file",
        slice_key: str = "slice_idx",
        domain_key: str = "domain",
        reader: str = "auto",
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys must name one file key, got {self.keys}")
        self.slice_key = slice_key
        self.domain_key = domain_key
        self.loader = LoadSlice(reader)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[str, Any]:
        """Load the slice described by ``data``; see :class:`LoadSlice` for the returned keys."""
        return self.loader(data[self.keys[0]], data[self.slice_key], data.get(self.domain_key, ""))

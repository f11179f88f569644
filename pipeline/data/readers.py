"""Slice-level readers for raw k-space files, as MONAI transforms.

Each call opens the file, reads ONE slice (h5py hyperslab selection, or the format's own one-slice read)
and closes the file again, so no file handle is kept in the transform (safe to pickle into DataLoader
workers) and the rest of the volume is never read. K-space is never copied into metadata, and
``patient_id`` is never read.

The transforms are format-neutral: the layouts (fastMRI, CC-359, fastMRI prostate, CMRxRecon, MRD, ...)
live in :mod:`pipeline.data.formats`, one module each, and ``reader=`` names one of them or ``"auto"``
(detect per file, :func:`pipeline.data.formats.detect_format`); a manifest entry's ``format`` wins.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import MapTransform, Transform

from pipeline.data.errors import DataError
from pipeline.data.formats import RawFormat, VolumeInfo, check_reader, open_volume
from pipeline.keys import Keys

__all__ = ["check_volume_data", "inspect_volume", "LoadSlice", "LoadSliced"]


def inspect_volume(path: str | os.PathLike, reader: str = "auto") -> VolumeInfo:
    """Check a file at header level (shapes, dtype, rank, coils, mask shape) without reading k-space.

    Args:
        path: the k-space file.
        reader: ``"auto"`` or a format name of :data:`pipeline.data.formats.FORMATS`
            (``"fastmri"``, ``"cc359"``, ...).

    Returns:
        The file's :class:`~pipeline.data.formats.VolumeInfo`.

    Raises:
        DataError: missing or unreadable file, a directory, missing ``kspace``, wrong dtype or rank, empty
            coil axis, mask or reference shapes that do not match ``kspace``, a non-binary mask, header facts
            that contradict the k-space, or (with ``"auto"``) a file claimed by more than one format.
        ValueError: unknown ``reader``.
    """
    path = os.fspath(path)
    with open_volume(path, reader) as (fmt, f):
        return fmt.inspect(f, path)


def _file_key(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_mtime_ns, stat.st_size


class LoadSlice(Transform):
    """Read one slice of a raw k-space file into a flat sample dict (array-style transform).

    Args:
        reader: ``"auto"`` (detect per file) or a format name of :data:`pipeline.data.formats.FORMATS`
            (``"fastmri"``, ``"cc359"``, ...); a call's ``reader`` argument wins.

    The sample holds (shapes per slice, see :class:`pipeline.keys.Keys`):

    - ``kspace``: ``(C, H, W, 2)`` float32, centred k-space as stored (zeros at unacquired columns of
      subsampled files);
    - ``target``: ``(1, Hr, Wr)`` float32 reference magnitude (``reconstruction_rss`` /
      ``reconstruction_esc``; for CC-359 the RSS of the slice) when known;
    - ``mask``: ``(1, H, W, 1)`` bool, only when the file has a mask. Files that store fully sampled
      k-space together with a fixed mask (this project's validation/test files) return the full k-space;
      the mask-application transform zeroes the unsampled columns;
    - ``volume`` (the volume's identity: its path relative to the data root, as set by the manifest
      loader, else the base name), ``filename`` (base name), ``slice_idx``, ``num_slices``,
      ``recon_size`` ``(2,)`` int64, ``pe_range`` ``(2,)`` int64, ``num_low_frequencies`` (int, 0 =
      unknown), ``max`` (float, volume maximum of the reference, 0.0 if unknown), ``acquisition`` (str),
      ``domain`` (str).

    The volume maximum (:meth:`~pipeline.data.formats.RawFormat.volume_max`) is computed once per file
    and cached in the transform (a plain dict of floats keyed by path, mtime and size, safe to pickle).
    A slice whose k-space is all zero is legitimate (a blank slice), unless every slice of the volume is:
    that is checked once per file, only when a zero slice is met.

    Raises:
        DataError: on any bad input (see :func:`inspect_volume`), a slice index out of range, NaN/Inf
            values in the slice read, or a volume whose k-space is zero in every slice.
        ValueError: unknown ``reader``.
    """

    def __init__(self, reader: str = "auto") -> None:
        self.reader = check_reader(reader)
        self._max_cache: dict[tuple[str, int, int], float] = {}
        self._zero_cache: dict[tuple[str, int, int], bool] = {}

    def __call__(
        self,
        path: str | os.PathLike,
        slice_idx: int,
        domain: str = "",
        volume: str | None = None,
        reader: str | None = None,
    ) -> dict[str, Any]:
        """Read slice ``slice_idx`` of ``path``.

        Args:
            path: the k-space file.
            slice_idx: slice index, ``0 <= slice_idx < S``.
            domain: manifest section the slice belongs to (``"proxy"``, ``"target"``, ...).
            volume: the volume's identity (default: the file's base name).
            reader: the format for this file (default: the transform's ``reader``).

        Returns:
            The sample dict (keys from :class:`pipeline.keys.Keys`).
        """
        path = os.fspath(path)
        slice_idx = int(slice_idx)
        reader = self.reader if reader is None else check_reader(reader)
        with open_volume(path, reader, slice_idx) as (fmt, f):
            info = fmt.inspect(f, path)
            if not 0 <= slice_idx < info.num_slices:
                raise DataError(path, f"slice index out of range: the volume has {info.num_slices} slices", slice_idx)
            sample: dict[str, Any] = {
                Keys.PE_RANGE.value: torch.tensor(info.pe_range, dtype=torch.int64),
                Keys.NUM_LOW_FREQUENCIES.value: 0,
                Keys.ACQUISITION.value: "",
            }
            sample.update(fmt.read_slice(f, info, slice_idx))
            if not bool(sample[Keys.KSPACE.value].any()) and self._all_zero(fmt, f, info):
                raise DataError(path, f"k-space is zero in every one of the {info.num_slices} slices")
            sample[Keys.MAX.value] = self._volume_max(fmt, f, info)
        sample.update(
            {
                Keys.VOLUME.value: os.path.basename(path) if volume is None else str(volume),
                Keys.FILENAME.value: os.path.basename(path),
                Keys.SLICE.value: slice_idx,
                Keys.NUM_SLICES.value: info.num_slices,
                Keys.RECON_SIZE.value: torch.tensor(info.recon_size, dtype=torch.int64),
                Keys.DOMAIN.value: str(domain),
            }
        )
        return sample

    def _volume_max(self, fmt: RawFormat, f: Any, info: VolumeInfo) -> float:
        key = _file_key(info.file)
        if key not in self._max_cache:
            self._max_cache[key] = fmt.volume_max(f, info)
        return self._max_cache[key]

    def _all_zero(self, fmt: RawFormat, f: Any, info: VolumeInfo) -> bool:
        key = _file_key(info.file)
        if key not in self._zero_cache:
            self._zero_cache[key] = not any(
                bool(fmt.read_slice(f, info, s)[Keys.KSPACE.value].any()) for s in range(info.num_slices)
            )
        return self._zero_cache[key]


class LoadSliced(MapTransform):
    """Dictionary twin of :class:`LoadSlice`: ``{"file", "slice_idx", "domain", "volume", "format"}`` -> sample.

    The output holds only :class:`pipeline.keys.Keys` entries (the input's ``file`` and any other
    manifest fields are not passed on), so the default collate works.

    Args:
        keys: the key holding the file path (default ``"file"``).
        slice_key: the key holding the slice index.
        domain_key: the key holding the domain name (optional in the input; ``""`` if absent).
        volume_key: the key holding the volume identity (optional; the base name if absent).
        format_key: the key holding the file's format (optional; ``reader`` if absent).
        reader: ``"auto"`` or a format name (see :class:`LoadSlice`).
    """

    def __init__(
        self,
        keys: str = "file",
        slice_key: str = "slice_idx",
        domain_key: str = "domain",
        volume_key: str = "volume",
        format_key: str = "format",
        reader: str = "auto",
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys must name one file key, got {self.keys}")
        self.slice_key = slice_key
        self.domain_key = domain_key
        self.volume_key = volume_key
        self.format_key = format_key
        self.loader = LoadSlice(reader)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[str, Any]:
        """Load the slice described by ``data``; see :class:`LoadSlice` for the returned keys."""
        return self.loader(
            data[self.keys[0]],
            data[self.slice_key],
            data.get(self.domain_key, ""),
            volume=data.get(self.volume_key),
            reader=data.get(self.format_key),
        )


def check_volume_data(path: str | os.PathLike, reader: str = "auto") -> VolumeInfo:
    """Read every slice of a file once, as training would, and check its data.

    Finds what the header cannot show: NaN/Inf values, truncated data blocks, and a volume whose k-space is
    zero in every slice (a single blank slice is legitimate).

    Args:
        path: the k-space file.
        reader: ``"auto"`` or a registered format's name.

    Returns:
        The file's :class:`~pipeline.data.formats.VolumeInfo`.

    Raises:
        DataError: the first problem, naming the file and the slice.
        ValueError: unknown ``reader``.
    """
    path = os.fspath(path)
    with open_volume(path, reader) as (fmt, f):
        info = fmt.inspect(f, path)
        nonzero = False
        for s in range(info.num_slices):
            nonzero |= bool(fmt.read_slice(f, info, s)[Keys.KSPACE.value].any())
        if not nonzero:
            raise DataError(path, f"k-space is zero in every one of the {info.num_slices} slices")
    return info

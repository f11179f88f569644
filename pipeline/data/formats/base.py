"""The raw-format interface (:class:`RawFormat`), :class:`VolumeInfo` and the shared HDF5 helpers.

A format turns one HDF5 layout into the sample convention of :class:`pipeline.keys.Keys`. It is
stateless and never keeps a file handle: :class:`pipeline.data.readers.LoadSlice` opens the file,
passes the open :class:`h5py.File` to :meth:`RawFormat.inspect` and :meth:`RawFormat.read_slice`,
and closes it again.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from pipeline.data.errors import DataError
from pipeline.data.ismrmrd import EncodingInfo

__all__ = ["RawFormat", "VolumeInfo", "check_finite", "kspace_dataset", "open_h5", "read_dataset"]


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    """What the header-level inspection of one file found (no k-space values are read).

    Attributes:
        file: path of the file.
        format: name of the format that inspected it (a key of
            :data:`pipeline.data.formats.FORMATS`, e.g. ``"fastmri"`` or ``"cc359"``).
        num_slices: ``S``, slices in the volume.
        num_coils: ``C`` (1 for single-coil fastMRI files).
        kspace_size: ``(H, W)`` of one k-space slice (readout, phase encode).
        encoding: matrix sizes and acquired phase-encode range (header or fallback).
        mask_layout: ``None`` (no mask), ``"columns"``, ``"slice_columns"``, ``"2d"`` or ``"slice_2d"``.
        target_key: name of the reference-image dataset, or ``None``.
    """

    file: str
    format: str
    num_slices: int
    num_coils: int
    kspace_size: tuple[int, int]
    encoding: EncodingInfo
    mask_layout: str | None
    target_key: str | None

    @property
    def recon_size(self) -> tuple[int, int]:
        """``(Hr, Wr)`` crop size: the reference's shape when stored, else the header's recon size.

        As in fastMRI, a crop wider than the k-space (narrow brain files) becomes ``(W, W)``.
        """
        hr, wr = self.encoding.recon_size
        w = self.kspace_size[1]
        return (w, w) if wr > w else (hr, wr)

    @property
    def pe_range(self) -> tuple[int, int]:
        """``[start, stop)`` acquired phase-encode columns, clipped to ``[0, W]``."""
        start, stop = self.encoding.pe_range
        w = self.kspace_size[1]
        return max(0, start), min(w, stop)


class RawFormat(abc.ABC):
    """One raw k-space layout: detection, header-level inspection and one-slice reading.

    Subclasses set :attr:`name` and implement the three abstract methods; registering an instance
    with :func:`pipeline.data.formats.register_format` makes it a ``reader=`` value and a candidate
    of ``reader="auto"``.

    Attributes:
        name: the format's ``reader=`` value and :attr:`VolumeInfo.format`.
    """

    name: str

    @abc.abstractmethod
    def detect(self, f: h5py.File) -> bool:
        """Whether ``f`` is in this layout, from dataset names, dtypes and shapes only (no data read).

        Must not raise for files of other layouts; two formats claiming one file is a
        :class:`DataError` of :func:`pipeline.data.formats.detect_format`.
        """

    @abc.abstractmethod
    def inspect(self, f: h5py.File, path: str) -> VolumeInfo:
        """Check ``f`` at header level (shapes, dtypes, attributes) without reading k-space.

        Args:
            f: the open file.
            path: its path, for :class:`VolumeInfo` and error messages.

        Returns:
            The file's :class:`VolumeInfo`, with ``format`` set to :attr:`name`.

        Raises:
            DataError: for anything that does not fit the layout.
        """

    @abc.abstractmethod
    def read_slice(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """Read slice ``slice_idx`` (already range-checked) of ``f``.

        Args:
            f: the open file.
            info: what :meth:`inspect` returned for ``f``.
            slice_idx: ``0 <= slice_idx < info.num_slices``.

        Returns:
            The layout-specific sample entries: ``kspace`` ``(C, H, W, 2)`` float32 centred k-space,
            and where known ``target`` ``(1, Hr, Wr)`` float32 and ``mask`` ``(1, H, W, 1)`` bool; it
            may override the defaults of :class:`pipeline.data.readers.LoadSlice` for ``pe_range``
            (``info.pe_range``), ``num_low_frequencies`` (0) and ``acquisition`` (``""``).

        Raises:
            DataError: unreadable data or NaN/Inf values in the slice.
        """

    def volume_max(self, f: h5py.File, info: VolumeInfo) -> float:
        """Volume maximum of the reference image (data range of PSNR/SSIM); 0.0 if unknown.

        May read the whole reference: :class:`pipeline.data.readers.LoadSlice` caches the result per
        file. This default knows no reference.
        """
        return 0.0


@contextlib.contextmanager
def open_h5(path: str, slice_idx: int | None = None) -> Iterator[h5py.File]:
    """Open ``path`` read-only, turning a missing or unreadable file into :class:`DataError`."""
    if not os.path.isfile(path):
        raise DataError(path, "file not found", slice_idx)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataError(path, f"cannot be opened as HDF5 (truncated or corrupt file?): {err}", slice_idx) from None
    try:
        yield f
    finally:
        f.close()


def read_dataset(path: str, dataset: h5py.Dataset, selection: Any, slice_idx: int | None) -> np.ndarray:
    """Read ``dataset[selection]``; an h5py ``OSError`` (truncated data) becomes :class:`DataError`."""
    try:
        return dataset[selection]
    except OSError as err:
        name = dataset.name.lstrip("/")
        raise DataError(path, f"reading '{name}' failed (truncated file?): {err}", slice_idx) from None


def kspace_dataset(f: h5py.File, path: str, name: str = "kspace") -> h5py.Dataset:
    """The dataset ``name`` of ``f``.

    Raises:
        DataError: if ``f`` has no dataset of that name.
    """
    ds = f.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise DataError(path, f"no '{name}' dataset (found: {sorted(f.keys())})")
    return ds


def check_finite(path: str, name: str, data: np.ndarray, slice_idx: int) -> None:
    """Raise :class:`DataError` naming dataset ``name`` if ``data`` holds NaN or Inf values."""
    if not np.isfinite(data).all():
        raise DataError(path, f"NaN or Inf values in '{name}'", slice_idx)

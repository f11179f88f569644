"""The raw-format interface (:class:`RawFormat`), :class:`VolumeInfo` and the shared file helpers.

A format turns one file layout into the sample convention of :class:`pipeline.keys.Keys`. It is
stateless and never keeps a file handle between calls: :class:`pipeline.data.readers.LoadSlice` asks
the format to :meth:`RawFormat.open` the file, passes the handle to :meth:`RawFormat.inspect` and
:meth:`RawFormat.read_slice`, and closes it again. The default handle is a read-only
:class:`h5py.File`; a format whose files are not plain HDF5 (MATLAB v5 ``.mat``, ISMRMRD/MRD through the
``ismrmrd`` package) opens them itself and hands its own handle to its other methods.
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

__all__ = [
    "RawFormat",
    "VolumeInfo",
    "check_binary_mask",
    "check_file",
    "check_finite",
    "check_sizes",
    "get_dataset",
    "kspace_dataset",
    "open_h5",
    "read_dataset",
]


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    """What the header-level inspection of one file found (no k-space values are read).

    Attributes:
        file: path of the file.
        format: name of the format that inspected it (a key of
            :data:`pipeline.data.formats.FORMATS`, e.g. ``"fastmri"`` or ``"cc359"``).
        num_slices: ``S``, slices in the volume (for dynamic data: frames x slices).
        num_coils: ``C`` (1 for single-coil files).
        kspace_size: ``(H, W)`` of one k-space slice as returned by the reader (readout, phase encode).
        encoding: matrix sizes and acquired phase-encode range (header or fallback).
        mask_layout: ``None`` (no stored mask), ``"columns"``, ``"slice_columns"``, ``"2d"``, ``"slice_2d"``
            or a format's own name for where its mask comes from (e.g. ``"acquired"``).
        target_key: name of the reference-image dataset, or ``None``.
        acquired_fraction: fraction of the ``W`` phase-encode columns that hold measured data (the stored
            mask's mean where there is one, else the padding band's share); ``None`` if unknown without
            reading k-space.
    """

    file: str
    format: str
    num_slices: int
    num_coils: int
    kspace_size: tuple[int, int]
    encoding: EncodingInfo
    mask_layout: str | None
    target_key: str | None
    acquired_fraction: float | None = None

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

    @property
    def batch_key(self) -> tuple:
        """What must agree for two slices to be collated into one batch.

        ``(C, H, W, Hr, Wr, has_target, has_mask)``: k-space and reference shapes, and which optional
        keys the sample dict has (the default collate needs the same keys in every sample).
        """
        c, (h, w), (hr, wr) = self.num_coils, self.kspace_size, self.recon_size
        return (c, h, w, hr, wr, self.target_key is not None, self.mask_layout is not None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the header cache's record); :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolumeInfo:
        """Rebuild a :class:`VolumeInfo` from :meth:`to_dict`'s output (lists back to tuples)."""
        enc = dict(data["encoding"])
        for key in ("encoded_size", "recon_size", "encoded_fov_mm", "recon_fov_mm"):
            if enc.get(key) is not None:
                enc[key] = tuple(enc[key])
        fields = {**data, "kspace_size": tuple(data["kspace_size"]), "encoding": EncodingInfo(**enc)}
        return cls(**fields)


class RawFormat(abc.ABC):
    """One raw k-space layout: detection, header-level inspection and one-slice reading.

    Subclasses set :attr:`name` and implement :meth:`detect`, :meth:`inspect` and :meth:`read_slice`;
    registering an instance with :func:`pipeline.data.formats.register_format` makes it a ``reader=``
    value and a candidate of ``reader="auto"``. A format whose files are not read with h5py overrides
    :meth:`open` (and :meth:`detect_file` if they are not HDF5 at all).

    Attributes:
        name: the format's ``reader=`` value and :attr:`VolumeInfo.format`.
    """

    name: str

    def open(self, path: str, slice_idx: int | None = None) -> contextlib.AbstractContextManager[Any]:
        """Open ``path`` for :meth:`inspect`, :meth:`read_slice` and :meth:`volume_max`.

        The default opens the file read-only with h5py (:func:`open_h5`).

        Args:
            path: an existing file (checked by the caller).
            slice_idx: slice being read, for error messages.

        Returns:
            A context manager yielding the handle the other methods receive as ``f``.

        Raises:
            DataError: if the file cannot be opened in this layout.
        """
        return open_h5(path, slice_idx)

    @abc.abstractmethod
    def detect(self, f: h5py.File) -> bool:
        """Whether the HDF5 file ``f`` is in this layout, from dataset names, dtypes and shapes only.

        Must not raise for files of other layouts; two formats claiming one file is a
        :class:`DataError` naming both, unless the manifest names the format.
        """

    def detect_file(self, path: str) -> bool:
        """Whether a file that is *not* HDF5 is in this layout (e.g. from its first bytes).

        The default claims no such file.
        """
        return False

    @abc.abstractmethod
    def inspect(self, f: Any, path: str) -> VolumeInfo:
        """Check ``f`` at header level (shapes, dtypes, attributes) without reading k-space.

        Args:
            f: the handle from :meth:`open`.
            path: the file's path, for :class:`VolumeInfo` and error messages.

        Returns:
            The file's :class:`VolumeInfo`, with ``format`` set to :attr:`name`.

        Raises:
            DataError: for anything that does not fit the layout.
        """

    @abc.abstractmethod
    def read_slice(self, f: Any, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        """Read slice ``slice_idx`` (already range-checked) of ``f``.

        Args:
            f: the handle from :meth:`open`.
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

    def volume_max(self, f: Any, info: VolumeInfo) -> float:
        """Volume maximum of the reference image (data range of PSNR/SSIM); 0.0 if unknown.

        May read the whole reference: :class:`pipeline.data.readers.LoadSlice` caches the result per
        file. This default knows no reference; HDF5 formats with one use :func:`stored_volume_max`.
        """
        return 0.0


def stored_volume_max(f: h5py.File, info: VolumeInfo) -> float:
    """The file's ``max`` attribute, else the maximum of its reference dataset read slice by slice, else 0.0."""
    if "max" in f.attrs:
        return float(f.attrs["max"])
    if info.target_key is None:
        return 0.0
    ds = f[info.target_key]
    return max(float(np.max(read_dataset(info.file, ds, s, None))) for s in range(ds.shape[0]))


def check_file(path: str) -> None:
    """Raise :class:`DataError` if ``path`` is missing or not a regular file (e.g. a directory)."""
    if os.path.isdir(path):
        raise DataError(path, "is a directory, expected a k-space file")
    if not os.path.isfile(path):
        raise DataError(path, "file not found")


@contextlib.contextmanager
def open_h5(path: str, slice_idx: int | None = None) -> Iterator[h5py.File]:
    """Open ``path`` read-only, turning a missing or unreadable file into :class:`DataError`."""
    check_file(path)
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


def get_dataset(f: h5py.Group, path: str, name: str, required: bool = True) -> h5py.Dataset | None:
    """The dataset ``name`` of ``f``; ``None`` if it is absent and not ``required``.

    Raises:
        DataError: if ``name`` is an HDF5 group (or another non-dataset object), or is required and absent.
    """
    obj = f.get(name)
    if obj is None:
        if required:
            raise DataError(path, f"no '{name}' dataset (found: {sorted(f.keys())})")
        return None
    if not isinstance(obj, h5py.Dataset):
        kind = "an HDF5 group" if isinstance(obj, h5py.Group) else f"a {type(obj).__name__}"
        raise DataError(path, f"'{name}' is {kind}, expected a dataset")
    return obj


def kspace_dataset(f: h5py.File, path: str, name: str = "kspace") -> h5py.Dataset:
    """The dataset ``name`` of ``f`` (see :func:`get_dataset`).

    Raises:
        DataError: if ``f`` has no dataset of that name, or it is a group.
    """
    return get_dataset(f, path, name)  # type: ignore[return-value]


def check_finite(path: str, name: str, data: np.ndarray, slice_idx: int) -> None:
    """Raise :class:`DataError` naming dataset ``name`` if ``data`` holds NaN or Inf values."""
    if not np.isfinite(data).all():
        raise DataError(path, f"NaN or Inf values in '{name}'", slice_idx)


def check_binary_mask(path: str, name: str, values: np.ndarray) -> None:
    """Raise :class:`DataError` if a stored mask holds values other than 0 and 1 (or False/True)."""
    if values.dtype == np.bool_:
        return
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(bad)[:4].astype(np.float64))
        raise DataError(path, f"'{name}' is not a binary mask: it holds values other than 0 and 1 ({shown})")


def check_sizes(path: str, info: VolumeInfo, target_shape: tuple[int, int] | None = None) -> VolumeInfo:
    """Refuse header facts that contradict the k-space; return ``info`` unchanged.

    Raises:
        DataError: if the recon size is larger than the k-space grid (a crop wider than ``W`` is fastMRI's
            narrow-file case and becomes ``(W, W)``), the stored reference has more rows than ``H``, or the
            header's acquired phase-encode range (padding band) lies outside the k-space's ``W`` columns.
    """
    h, w = info.kspace_size
    hr, wr = info.recon_size
    if hr > h or wr > w:
        raise DataError(path, f"recon size {(hr, wr)} is larger than the k-space {(h, w)}")
    if target_shape is not None and target_shape[0] > h:
        raise DataError(path, f"reference of shape {target_shape} is larger than the k-space {(h, w)}")
    start, stop = info.encoding.pe_range
    if start < 0 or stop > w or start >= stop:
        raise DataError(
            path,
            f"header's acquired phase-encode columns [{start}, {stop}) (padding band) do not fit the k-space's "
            f"{w} columns",
        )
    return info

"""Slice-level readers for raw k-space files, as MONAI transforms.

Each call opens the HDF5 file, reads ONE slice with h5py hyperslab selection and closes the file
again, so no file handle is kept in the transform (safe to pickle into DataLoader workers) and the
rest of the volume is never read. K-space is never copied into metadata, and ``patient_id`` is never
read.

Two layouts are supported (see ``docs``/``data_formats.md`` of the project):

- **fastMRI** (``reader="fastmri"``): ``kspace`` complex ``(S, C, H, W)`` (multi-coil) or
  ``(S, H, W)`` (single-coil, returned with ``C = 1``); optional ``reconstruction_rss`` /
  ``reconstruction_esc`` ``(S, Hr, Wr)``, ``mask``, ``ismrmrd_header`` and attributes.
- **Calgary-Campinas CC-359** (``reader="cc359"``): ``kspace`` float ``(S, H, W, 2 C)`` with real and
  imaginary parts interleaved on the last axis, readout already in image space, stored for a plain
  (non-centred) ``ifft2``. It is converted to the fastMRI convention: centred k-space
  ``kc = k_raw * (-1) ** (ky + kz) / sqrt(H * W)``, so that ``|ifft2c(kc)| == |numpy.fft.ifft2(k_raw)|``.

``reader="auto"`` picks the layout from the file's datasets (:func:`detect_format`).

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

import contextlib
import dataclasses
import os
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import h5py
import numpy as np
import torch
from monai.transforms import MapTransform, Transform

from pipeline.data.errors import DataError
from pipeline.data.ismrmrd import EncodingInfo, default_encoding, parse_ismrmrd_header
from pipeline.keys import Keys
from pipeline.physics import ifft2c, rss, to_tensor

__all__ = [
    "READERS",
    "VolumeInfo",
    "detect_format",
    "inspect_volume",
    "LoadSlice",
    "LoadSliced",
    "LoadFastMRISlice",
    "LoadFastMRISliced",
    "LoadCC359Slice",
    "LoadCC359Sliced",
]

READERS = ("auto", "fastmri", "cc359")
"""Accepted values of the ``reader`` argument."""

_TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
_FASTMRI_ONLY_KEYS = ("ismrmrd_header", "mask", *_TARGET_KEYS)


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    """What the header-level inspection of one file found (no k-space values are read).

    Attributes:
        file: path of the file.
        format: ``"fastmri"`` or ``"cc359"``.
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


@contextlib.contextmanager
def _open(path: str, slice_idx: int | None = None) -> Iterator[h5py.File]:
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


def _read(path: str, dataset: h5py.Dataset, selection: Any, slice_idx: int | None) -> np.ndarray:
    """Read ``dataset[selection]``; an h5py ``OSError`` (truncated data) becomes :class:`DataError`."""
    try:
        return dataset[selection]
    except OSError as err:
        name = dataset.name.lstrip("/")
        raise DataError(path, f"reading '{name}' failed (truncated file?): {err}", slice_idx) from None


def _detect(f: h5py.File, path: str) -> str:
    if "kspace" not in f:
        raise DataError(path, f"no 'kspace' dataset (found: {sorted(f.keys())})")
    ds = f["kspace"]
    is_float = np.issubdtype(ds.dtype, np.floating)
    if is_float and ds.ndim == 4 and ds.shape[-1] % 2 == 0 and not any(k in f for k in _FASTMRI_ONLY_KEYS):
        return "cc359"
    return "fastmri"


def detect_format(path: str | os.PathLike) -> str:
    """Detect the layout of a k-space file from its datasets.

    A float ``kspace`` of rank 4 with an even last axis (interleaved real/imaginary coils) and none of
    the fastMRI datasets (``ismrmrd_header``, ``mask``, ``reconstruction_*``) is CC-359; anything else
    is treated as fastMRI (whose checks then report e.g. a wrong dtype).

    Args:
        path: the ``.h5`` file.

    Returns:
        ``"fastmri"`` or ``"cc359"``.

    Raises:
        DataError: if the file is missing, unreadable, or has no ``kspace`` dataset.
    """
    path = os.fspath(path)
    with _open(path) as f:
        return _detect(f, path)


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


def _inspect_fastmri(f: h5py.File, path: str) -> VolumeInfo:
    ds = f["kspace"]
    if not np.issubdtype(ds.dtype, np.complexfloating):
        raise DataError(path, f"'kspace' has dtype {ds.dtype}, expected complex64/complex128 (fastMRI layout)")
    target_key = next((k for k in _TARGET_KEYS if k in f), None)
    if ds.ndim not in (3, 4) or (target_key == "reconstruction_rss" and ds.ndim != 4):
        raise DataError(
            path,
            f"'kspace' has rank {ds.ndim} (shape {ds.shape}); multi-coil files must be 4-D (slices, coils, H, W), "
            "single-coil files 3-D (slices, H, W)",
        )
    if target_key == "reconstruction_esc" and ds.ndim != 3:
        raise DataError(path, f"single-coil file (has reconstruction_esc) must have 3-D 'kspace', got shape {ds.shape}")
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
        encoding = parse_ismrmrd_header(_header_bytes(_read(path, f["ismrmrd_header"], (), None)), file=path)
        if target_shape is not None and target_shape != encoding.recon_size:
            encoding = dataclasses.replace(encoding, recon_size=target_shape)
    else:
        encoding = default_encoding((h, w), target_shape)
    info = VolumeInfo(
        file=path,
        format="fastmri",
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


def _inspect_cc359(f: h5py.File, path: str) -> VolumeInfo:
    ds = f["kspace"]
    if not np.issubdtype(ds.dtype, np.floating):
        raise DataError(path, f"'kspace' has dtype {ds.dtype}, expected float (CC-359 layout, real/imag interleaved)")
    if ds.ndim != 4:
        raise DataError(
            path, f"'kspace' has rank {ds.ndim} (shape {ds.shape}); CC-359 files are 4-D (slices, H, W, 2*coils)"
        )
    num_slices, h, w, channels = ds.shape
    if channels == 0:
        raise DataError(path, f"empty coil axis: 'kspace' has shape {ds.shape}")
    if channels % 2:
        raise DataError(path, f"last axis of 'kspace' has {channels} channels; CC-359 interleaves real/imag (even)")
    if num_slices == 0 or h % 2 or w % 2 or h == 0 or w == 0:
        raise DataError(path, f"'kspace' shape {ds.shape}: CC-359 slices must be non-empty with even H and W")
    return VolumeInfo(
        file=path,
        format="cc359",
        num_slices=num_slices,
        num_coils=channels // 2,
        kspace_size=(h, w),
        encoding=default_encoding((h, w), (h, w)),
        mask_layout=None,
        target_key=None,
    )


def _inspect(f: h5py.File, path: str, reader: str) -> VolumeInfo:
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    fmt = _detect(f, path) if reader == "auto" else reader
    if "kspace" not in f:
        raise DataError(path, f"no 'kspace' dataset (found: {sorted(f.keys())})")
    return _inspect_cc359(f, path) if fmt == "cc359" else _inspect_fastmri(f, path)


def inspect_volume(path: str | os.PathLike, reader: str = "auto") -> VolumeInfo:
    """Check a file at header level (shapes, dtype, rank, coils, mask shape) without reading k-space.

    Args:
        path: the ``.h5`` file.
        reader: ``"auto"``, ``"fastmri"`` or ``"cc359"``.

    Returns:
        The file's :class:`VolumeInfo`.

    Raises:
        DataError: missing or unreadable file, missing ``kspace``, wrong dtype or rank, empty coil axis,
            mask or reference shapes that do not match ``kspace``, malformed ISMRMRD header.
        ValueError: unknown ``reader``.
    """
    path = os.fspath(path)
    with _open(path) as f:
        return _inspect(f, path, reader)


def _check_finite(path: str, name: str, data: np.ndarray, slice_idx: int) -> None:
    if not np.isfinite(data).all():
        raise DataError(path, f"NaN or Inf values in '{name}'", slice_idx)


def _read_mask(f: h5py.File, info: VolumeInfo, slice_idx: int) -> torch.Tensor:
    """The file's mask for one slice as ``(1, H, W, 1)`` bool."""
    h, w = info.kspace_size
    ds = f["mask"]
    if info.mask_layout == "columns":
        mask = _read(info.file, ds, (), slice_idx)[None, :]
    elif info.mask_layout == "slice_columns":
        mask = _read(info.file, ds, slice_idx, slice_idx)[None, :]
    elif info.mask_layout == "2d":
        mask = _read(info.file, ds, (), slice_idx)
    else:
        mask = _read(info.file, ds, slice_idx, slice_idx)
    mask = np.broadcast_to(np.asarray(mask) != 0, (h, w)).copy()
    return torch.from_numpy(mask).reshape(1, h, w, 1)


def _rss_image(coil_kspace: np.ndarray) -> np.ndarray:
    """RSS magnitude ``(H, W)`` float32 of centred coil k-space ``(C, H, W)`` complex, via ``ifft2c``."""
    return rss(ifft2c(to_tensor(coil_kspace))).numpy()


class LoadSlice(Transform):
    """Read one slice of a raw k-space file into a flat sample dict (array-style transform).

    Args:
        reader: ``"auto"`` (detect per file), ``"fastmri"`` or ``"cc359"``.

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

    The volume maximum, when not stored as the ``max`` attribute, is computed once per file from the
    stored reference and cached in the transform (a plain dict of floats, safe to pickle).

    Raises:
        DataError: on any bad input (see :func:`inspect_volume`), a slice index out of range, or
            NaN/Inf values in the slice read.
    """

    def __init__(self, reader: str = "auto") -> None:
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
        self.reader = reader
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
        with _open(path, slice_idx) as f:
            info = _inspect(f, path, self.reader)
            if not 0 <= slice_idx < info.num_slices:
                raise DataError(path, f"slice index out of range: the volume has {info.num_slices} slices", slice_idx)
            if info.format == "cc359":
                sample = self._read_cc359(f, info, slice_idx)
            else:
                sample = self._read_fastmri(f, info, slice_idx)
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

    def _read_fastmri(self, f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        path = info.file
        kspace = _read(path, f["kspace"], slice_idx, slice_idx)
        _check_finite(path, "kspace", kspace, slice_idx)
        kspace = kspace.astype(np.complex64, copy=False)
        if kspace.ndim == 2:
            kspace = kspace[None]
        sample: dict[str, Any] = {Keys.KSPACE.value: to_tensor(kspace)}
        if info.target_key is not None:
            target = _read(path, f[info.target_key], slice_idx, slice_idx).astype(np.float32, copy=False)
            _check_finite(path, info.target_key, target, slice_idx)
            sample[Keys.TARGET.value] = torch.from_numpy(np.ascontiguousarray(target))[None]
        if info.mask_layout is not None:
            sample[Keys.MASK.value] = _read_mask(f, info, slice_idx)
        acquisition = f.attrs.get("acquisition", "")
        if isinstance(acquisition, bytes):
            acquisition = acquisition.decode("utf-8", errors="replace")
        sample.update(
            {
                Keys.PE_RANGE.value: torch.tensor(info.pe_range, dtype=torch.int64),
                Keys.NUM_LOW_FREQUENCIES.value: int(f.attrs.get("num_low_frequency", 0)),
                Keys.MAX.value: self._volume_max(f, info),
                Keys.ACQUISITION.value: str(acquisition),
            }
        )
        return sample

    def _volume_max(self, f: h5py.File, info: VolumeInfo) -> float:
        if "max" in f.attrs:
            return float(f.attrs["max"])
        if info.target_key is None:
            return 0.0
        stat = os.stat(info.file)
        key = (os.path.abspath(info.file), stat.st_mtime_ns, stat.st_size)
        if key not in self._max_cache:
            ds = f[info.target_key]
            self._max_cache[key] = max(float(np.max(_read(info.file, ds, s, None))) for s in range(ds.shape[0]))
        return self._max_cache[key]

    @staticmethod
    def _read_cc359(f: h5py.File, info: VolumeInfo, slice_idx: int) -> dict[str, Any]:
        path = info.file
        raw = _read(path, f["kspace"], slice_idx, slice_idx)  # (H, W, 2C)
        _check_finite(path, "kspace", raw, slice_idx)
        h, w = info.kspace_size
        k_raw = (raw[..., 0::2] + 1j * raw[..., 1::2]).transpose(2, 0, 1)  # (C, H, W)
        checkerboard = np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, 1.0, -1.0)
        kspace = (k_raw * (checkerboard / np.sqrt(h * w))).astype(np.complex64)
        acquired = np.flatnonzero(np.any(kspace != 0, axis=(0, 1)))
        pe_range = (int(acquired[0]), int(acquired[-1]) + 1) if acquired.size else (0, w)
        return {
            Keys.KSPACE.value: to_tensor(kspace),
            Keys.TARGET.value: torch.from_numpy(_rss_image(kspace))[None],
            Keys.PE_RANGE.value: torch.tensor(pe_range, dtype=torch.int64),
            Keys.NUM_LOW_FREQUENCIES.value: 0,
            Keys.MAX.value: 0.0,
            Keys.ACQUISITION.value: "",
        }


class LoadFastMRISlice(LoadSlice):
    """:class:`LoadSlice` fixed to the fastMRI layout."""

    def __init__(self) -> None:
        super().__init__(reader="fastmri")


class LoadCC359Slice(LoadSlice):
    """:class:`LoadSlice` fixed to the CC-359 layout (``MAX`` is 0.0: no stored reference volume)."""

    def __init__(self) -> None:
        super().__init__(reader="cc359")


class LoadSliced(MapTransform):
    """Dictionary twin of :class:`LoadSlice`: ``{"file", "slice_idx", "domain"}`` -> sample dict.

    The output holds only :class:`pipeline.keys.Keys` entries (the input's ``file`` and any other
    manifest fields are not passed on), so the default collate works.

    Args:
        keys: the key holding the file path (default ``"file"``).
        slice_key: the key holding the slice index.
        domain_key: the key holding the domain name (optional in the input; ``""`` if absent).
        reader: ``"auto"``, ``"fastmri"`` or ``"cc359"``.
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


class LoadFastMRISliced(LoadSliced):
    """:class:`LoadSliced` fixed to the fastMRI layout."""

    def __init__(self, keys: str = "file", slice_key: str = "slice_idx", domain_key: str = "domain") -> None:
        super().__init__(keys, slice_key, domain_key, reader="fastmri")


class LoadCC359Sliced(LoadSliced):
    """:class:`LoadSliced` fixed to the CC-359 layout."""

    def __init__(self, keys: str = "file", slice_key: str = "slice_idx", domain_key: str = "domain") -> None:
        super().__init__(keys, slice_key, domain_key, reader="cc359")

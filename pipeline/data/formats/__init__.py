"""Raw k-space formats behind one registry: detection, header-level inspection, slice reading.

One module per layout (:mod:`~pipeline.data.formats.fastmri`, :mod:`~pipeline.data.formats.cc359`,
:mod:`~pipeline.data.formats.prostate`, :mod:`~pipeline.data.formats.cmrxrecon`,
:mod:`~pipeline.data.formats.mrd`), each a :class:`RawFormat`. Adding a format is one new module plus
its entry in :data:`FORMATS` (or a :func:`register_format` call at run time); the readers need no change.

``reader="auto"`` asks every registered format: HDF5 files through :meth:`RawFormat.detect`, other files
through :meth:`RawFormat.detect_file`. Exactly one claim picks that format; an HDF5 file nobody claims
falls back to fastMRI (whose checks then report e.g. a wrong dtype); more than one claim is a
:class:`DataError` naming the formats, resolved by naming the format in the manifest (``"format"`` of an
entry, or ``"formats": {section: name}``) or with ``reader=``.

>>> READERS
('auto', 'fastmri', 'cc359', 'fastmri_prostate_t2', 'cmrxrecon', 'cmrxrecon_crop', 'mrd')
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import h5py

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, check_file, open_h5
from pipeline.data.formats.cc359 import CC359
from pipeline.data.formats.cmrxrecon import CMRxRecon
from pipeline.data.formats.fastmri import FastMRI
from pipeline.data.formats.mrd import MRD
from pipeline.data.formats.prostate import ProstateT2

__all__ = [
    "FALLBACK",
    "FORMATS",
    "READERS",
    "RawFormat",
    "VolumeInfo",
    "check_reader",
    "detect_format",
    "open_volume",
    "register_format",
    "select_format",
]

FORMATS: dict[str, RawFormat] = {
    fmt.name: fmt
    for fmt in (FastMRI(), CC359(), ProstateT2(), CMRxRecon(), CMRxRecon(evaluation_crop=True), MRD())
}
"""The registered formats, by name."""

FALLBACK = "fastmri"
"""The format ``reader="auto"`` picks when no format claims an HDF5 file."""

READERS = ("auto", *FORMATS)
"""The ``reader`` values of the built-in formats; formats registered later are accepted too."""


def register_format(fmt: RawFormat) -> RawFormat:
    """Add ``fmt`` to :data:`FORMATS` under ``fmt.name`` (remove it with ``FORMATS.pop(name)``).

    The registration lives in this process only: DataLoader workers started with ``spawn`` re-import
    the package, so a permanent format belongs in the :data:`FORMATS` literal.

    Args:
        fmt: the format instance.

    Returns:
        ``fmt``, so the call can sit where the instance is created.

    Raises:
        ValueError: if the name is ``"auto"`` or already registered.
    """
    if fmt.name == "auto" or fmt.name in FORMATS:
        raise ValueError(f"format name {fmt.name!r} is reserved or already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def check_reader(reader: str) -> str:
    """Return ``reader`` if it is ``"auto"`` or a registered format's name.

    Args:
        reader: the ``reader=`` (or manifest ``format``) value to check.

    Returns:
        ``reader`` unchanged.

    Raises:
        ValueError: unknown ``reader``.
    """
    if reader != "auto" and reader not in FORMATS:
        raise ValueError(f"reader must be one of {('auto', *FORMATS)}, got {reader!r}")
    return reader


def _claims(f: h5py.File | None, path: str) -> list[RawFormat]:
    if f is not None:
        return [fmt for fmt in FORMATS.values() if fmt.detect(f)]
    return [fmt for fmt in FORMATS.values() if fmt.detect_file(path)]


def _pick(claims: list[RawFormat], path: str, hdf5: bool, slice_idx: int | None) -> RawFormat:
    if len(claims) > 1:
        names = ", ".join(fmt.name for fmt in claims)
        raise DataError(
            path,
            f"claimed by more than one format ({names}); give the format explicitly: \"format\": \"<name>\" in its "
            "manifest entry, \"formats\": {\"<section>\": \"<name>\"} in the manifest, or reader=",
        )
    if claims:
        return claims[0]
    if not hdf5:
        problem = "cannot be opened as HDF5 (truncated or corrupt file?) and no format recognises it"
        raise DataError(path, problem, slice_idx)
    return FORMATS[FALLBACK]


def select_format(path: str | os.PathLike, reader: str = "auto", slice_idx: int | None = None) -> RawFormat:
    """The format to read ``path`` with: ``reader``'s, or the detected one for ``"auto"``.

    Args:
        path: the file.
        reader: ``"auto"`` or a registered format's name.
        slice_idx: slice being read, for error messages.

    Returns:
        The registered :class:`RawFormat`.

    Raises:
        DataError: missing file, a directory, or (with ``"auto"``) a file claimed by more than one format, or
            neither HDF5 nor recognised by any format.
        ValueError: unknown ``reader``.
    """
    with open_volume(path, reader, slice_idx, detect_only=True) as (fmt, _):
        return fmt


@contextlib.contextmanager
def open_volume(
    path: str | os.PathLike, reader: str = "auto", slice_idx: int | None = None, detect_only: bool = False
) -> Iterator[tuple[RawFormat, Any]]:
    """Pick the format of ``path`` (see :func:`select_format`) and open the file with it.

    An HDF5 file opened for detection is handed on when the format reads with h5py, so it is opened once.

    Args:
        path: the file.
        reader: ``"auto"`` or a registered format's name.
        slice_idx: slice being read, for error messages.
        detect_only: yield ``(format, None)`` without opening the file for reading.

    Yields:
        ``(format, handle)``: the handle is what :meth:`RawFormat.inspect` and :meth:`RawFormat.read_slice`
        take.

    Raises:
        DataError: see :func:`select_format`, or the file cannot be opened in the chosen layout.
        ValueError: unknown ``reader``.
    """
    path = os.fspath(path)
    check_reader(reader)
    check_file(path)
    with contextlib.ExitStack() as stack:
        handle = None
        if reader != "auto":
            fmt = FORMATS[reader]
        else:
            hdf5 = h5py.is_hdf5(path)
            if hdf5:
                handle = stack.enter_context(open_h5(path, slice_idx))
            fmt = _pick(_claims(handle, path), path, hdf5, slice_idx)
        if detect_only:
            yield fmt, None
            return
        if handle is None or type(fmt).open is not RawFormat.open:
            handle = stack.enter_context(fmt.open(path, slice_idx))
        yield fmt, handle


def detect_format(path: str | os.PathLike) -> str:
    """Detect the layout of a k-space file (header level, no data read).

    Every registered format is asked (see the module docstring). Built in: a float ``kspace`` of rank 4
    with an even last axis (interleaved real/imaginary coils) and none of the fastMRI datasets is CC-359;
    a complex ``kspace`` or any fastMRI dataset is fastMRI; a 5-D complex ``kspace`` with
    ``calibration_data`` is fastMRI prostate T2; MATLAB files with CMRxRecon variables are CMRxRecon; a
    ``dataset`` group with ``xml`` and ``data`` is ISMRMRD/MRD; an HDF5 file nobody claims falls back to
    :data:`FALLBACK`.

    Args:
        path: the file.

    Returns:
        The format's name, e.g. ``"fastmri"`` or ``"cc359"``.

    Raises:
        DataError: if the file is missing or unreadable, or more than one format claims it.
    """
    return select_format(path).name

"""Raw k-space formats behind one registry: detection, header-level inspection, slice reading.

One module per layout (:mod:`~pipeline.data.formats.fastmri`, :mod:`~pipeline.data.formats.cc359`),
each a :class:`RawFormat`. Adding a format is one new module plus its entry in :data:`FORMATS`
(or a :func:`register_format` call at run time); the readers need no change.

``reader="auto"`` asks every registered format's :meth:`RawFormat.detect`: exactly one claim picks
that format, none falls back to fastMRI (whose checks then report e.g. a wrong dtype), and more than
one is a :class:`DataError`.

>>> READERS
('auto', 'fastmri', 'cc359')
"""

from __future__ import annotations

import os

import h5py

from pipeline.data.errors import DataError
from pipeline.data.formats.base import RawFormat, VolumeInfo, open_h5
from pipeline.data.formats.cc359 import CC359
from pipeline.data.formats.fastmri import FastMRI

__all__ = [
    "FALLBACK",
    "FORMATS",
    "READERS",
    "RawFormat",
    "VolumeInfo",
    "check_reader",
    "detect_format",
    "register_format",
    "select_format",
]

FORMATS: dict[str, RawFormat] = {fmt.name: fmt for fmt in (FastMRI(), CC359())}
"""The registered formats, by name."""

FALLBACK = "fastmri"
"""The format ``reader="auto"`` picks when no format claims a file."""

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
        reader: the ``reader=`` value to check.

    Returns:
        ``reader`` unchanged.

    Raises:
        ValueError: unknown ``reader``.
    """
    if reader != "auto" and reader not in FORMATS:
        raise ValueError(f"reader must be one of {('auto', *FORMATS)}, got {reader!r}")
    return reader


def select_format(f: h5py.File, path: str, reader: str) -> RawFormat:
    """The format to read the open file ``f`` with: ``reader``'s, or the detected one for ``"auto"``.

    Args:
        f: the open file.
        path: its path, for error messages.
        reader: ``"auto"`` or a registered format's name.

    Returns:
        The registered :class:`RawFormat`.

    Raises:
        DataError: with ``"auto"``, if more than one format claims the file (see :func:`detect_format`).
        ValueError: unknown ``reader``.
    """
    if check_reader(reader) != "auto":
        return FORMATS[reader]
    claims = [fmt for fmt in FORMATS.values() if fmt.detect(f)]
    if len(claims) > 1:
        names = ", ".join(fmt.name for fmt in claims)
        raise DataError(path, f"claimed by more than one format ({names}); give the format explicitly (reader=...)")
    return claims[0] if claims else FORMATS[FALLBACK]


def detect_format(path: str | os.PathLike) -> str:
    """Detect the layout of a k-space file from its datasets (header level, no data read).

    Every registered format's :meth:`RawFormat.detect` is asked. Built in: a float ``kspace`` of rank
    4 with an even last axis (interleaved real/imaginary coils) and none of the fastMRI datasets
    (``ismrmrd_header``, ``mask``, ``reconstruction_*``) is CC-359; a complex ``kspace`` or any fastMRI
    dataset is fastMRI; a file nobody claims falls back to :data:`FALLBACK`.

    Args:
        path: the ``.h5`` file.

    Returns:
        The format's name, e.g. ``"fastmri"`` or ``"cc359"``.

    Raises:
        DataError: if the file is missing or unreadable, or more than one format claims it.
    """
    path = os.fspath(path)
    with open_h5(path) as f:
        return select_format(f, path, "auto").name

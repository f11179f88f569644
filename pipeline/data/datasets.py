"""Slice-level datasets over manifest items.

:func:`expand_slices` turns volume items (``{"file", "domain", "slices"?}``, as returned by
:func:`pipeline.data.manifests.load_manifest`) into one item per slice after checking each file's
header; :class:`SliceDataset` is a :class:`monai.data.Dataset` over those slices whose first
transform is the slice loader. Items hold only paths and numbers, never open h5py handles, so the
dataset pickles cleanly into DataLoader workers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monai.data import Dataset
from monai.transforms import Compose

from pipeline.data.errors import DataError
from pipeline.data.readers import LoadSliced, inspect_volume

__all__ = ["expand_slices", "SliceDataset"]

_ON_ERROR = ("raise", "skip")


def _slice_range(item: Mapping[str, Any], num_slices: int) -> range:
    slices = item.get("slices")
    if slices is None:
        return range(num_slices)
    if not isinstance(slices, Sequence) or len(slices) != 2:
        raise DataError(item["file"], f"'slices' must be [start, stop], got {slices!r}")
    start, stop = int(slices[0]), int(slices[1])
    if not 0 <= start < stop <= num_slices:
        raise DataError(item["file"], f"'slices' {[start, stop]} outside the volume's {num_slices} slices")
    return range(start, stop)


def expand_slices(
    items: Iterable[Mapping[str, Any]], on_error: str = "raise", reader: str = "auto"
) -> list[dict[str, Any]]:
    """List one item per slice, checking each file's header (no k-space values are read).

    The check covers: file exists and opens as HDF5, ``kspace`` present, dtype and rank, non-empty
    coil axis, mask and reference shapes, ISMRMRD header, and the item's optional ``slices`` range.
    Problems that only show when slice data are read (NaN/Inf values, truncated data blocks) are
    raised later by the loader.

    Args:
        items: volume items with a ``"file"`` path, an optional ``"domain"`` and an optional
            ``"slices": [start, stop]``.
        on_error: ``"raise"`` to raise the first :class:`DataError`; ``"skip"`` to drop bad files and
            emit ONE :class:`UserWarning` listing all of them with their problems.
        reader: ``"auto"`` or a registered format, e.g. ``"fastmri"`` (see :mod:`pipeline.data.formats`).

    Returns:
        ``[{"file": path, "slice_idx": i, "domain": domain}, ...]`` in item order, then slice order.

    Raises:
        DataError: with ``on_error="raise"``, for the first bad file.
        ValueError: for an unknown ``on_error`` or ``reader``, or an item without ``"file"``.
    """
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    out: list[dict[str, Any]] = []
    bad: list[str] = []
    for item in items:
        if "file" not in item:
            raise ValueError(f"every item needs a 'file' entry, got {dict(item)}")
        path = os.fspath(item["file"])
        try:
            info = inspect_volume(path, reader=reader)
            slices = _slice_range(item, info.num_slices)
        except DataError as err:
            if on_error == "raise":
                raise
            bad.append(str(err))
            continue
        domain = str(item.get("domain", ""))
        out.extend({"file": path, "slice_idx": i, "domain": domain} for i in slices)
    if bad:
        warnings.warn(f"skipped {len(bad)} bad file(s):\n  " + "\n  ".join(bad), UserWarning, stacklevel=2)
    return out


class SliceDataset(Dataset):
    """A :class:`monai.data.Dataset` of single slices, loaded lazily one slice per ``__getitem__``.

    Args:
        items: volume items (see :func:`expand_slices`).
        transform: applied after the loader to each sample dict (optional).
        on_error: ``"raise"`` or ``"skip"`` (see :func:`expand_slices`).
        reader: ``"auto"``, ``"fastmri"`` or ``"cc359"``.

    Each element is the sample dict of :class:`pipeline.data.readers.LoadSlice` (then ``transform``).
    ``self.data`` holds the per-slice items.
    """

    def __init__(
        self,
        items: Iterable[Mapping[str, Any]],
        transform: Callable[[dict[str, Any]], Any] | None = None,
        on_error: str = "raise",
        reader: str = "auto",
    ) -> None:
        loader = LoadSliced(reader=reader)
        super().__init__(
            data=expand_slices(items, on_error=on_error, reader=reader),
            transform=loader if transform is None else Compose([loader, transform]),
        )


def manifest_dataset(
    manifest: str | os.PathLike,
    section: str,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    data_root: str | os.PathLike | None = None,
    on_error: str = "raise",
    reader: str = "auto",
) -> SliceDataset:
    """A :class:`SliceDataset` over one section of a manifest (what bundle configs instantiate)."""
    from pipeline.data.manifests import load_manifest

    return SliceDataset(load_manifest(manifest, section, data_root), transform, on_error=on_error, reader=reader)

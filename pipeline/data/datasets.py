"""Slice-level datasets over manifest items.

:func:`scan_items` checks each volume item (``{"file", "domain", "slices"?, "format"?, "source"?,
"volume"?}``, as returned by :func:`pipeline.data.manifests.load_manifest`) at header level, and in skip
mode also reads its data once; :func:`expand_slices` turns the good volumes into one item per slice;
:class:`SliceDataset` is a :class:`monai.data.Dataset` over those slices whose first step is the slice
loader. Items hold only paths, names and numbers, never open file handles, so the dataset pickles cleanly
into DataLoader workers. Both checks go through a :class:`~pipeline.data.cache.HeaderCache`, so a second
start-up over the same files reads nothing.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monai.data import Dataset
from monai.transforms import Randomizable, apply_transform

from pipeline.data.cache import HeaderCache, default_cache_path
from pipeline.data.errors import DataError
from pipeline.data.formats import VolumeInfo, check_reader
from pipeline.data.readers import LoadSliced, check_volume_data, inspect_volume
from pipeline.seeds import stable_seed

__all__ = ["Scan", "SliceDataset", "expand_slices", "manifest_dataset", "scan_items"]

_ON_ERROR = ("raise", "skip")
_REPORTED: set[str] = set()  # skipped-file messages already warned about in this process


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


@dataclasses.dataclass
class Scan:
    """What :func:`scan_items` found.

    Attributes:
        volumes: ``(item, info, slices)`` of every good volume, in item order.
        skipped: the :class:`DataError` of every bad file (skip mode), in item order.
    """

    volumes: list[tuple[dict[str, Any], VolumeInfo, range]]
    skipped: list[DataError]


def _inspect(path: str, reader: str, cache: HeaderCache, check_data: bool) -> VolumeInfo:
    cached = cache.info(path, reader)
    if cached is None:
        try:
            cached = inspect_volume(path, reader)
        except DataError as err:
            cached = err
        cache.put_info(path, reader, cached)
    if isinstance(cached, DataError):
        raise cached
    if check_data:
        checked = cache.data_check(path, reader)
        if checked is None:
            try:
                check_volume_data(path, reader)
                checked = True
            except DataError as err:
                checked = err
            cache.put_data_check(path, reader, None if checked is True else checked)
        if isinstance(checked, DataError):
            raise checked
    return cached


def scan_items(
    items: Iterable[Mapping[str, Any]],
    on_error: str = "raise",
    reader: str = "auto",
    cache: HeaderCache | None = None,
    check_data: bool | None = None,
) -> Scan:
    """Check each volume item's file: its header always, and its data (every slice read once) if asked.

    Args:
        items: volume items with a ``"file"`` path and optionally ``"domain"``, ``"slices": [start, stop]``,
            ``"format"`` (wins over ``reader``), ``"source"`` and ``"volume"``.
        on_error: ``"raise"`` to raise the first :class:`DataError`; ``"skip"`` to collect bad files.
        reader: ``"auto"`` or a registered format, e.g. ``"fastmri"`` (see :mod:`pipeline.data.formats`).
        cache: header cache (default: in memory only); saved before returning.
        check_data: read every slice once (NaN/Inf, truncated blocks, a volume that is zero in every slice);
            default: only with ``on_error="skip"``, so that such files are skipped before training.

    Returns:
        A :class:`Scan`.

    Raises:
        DataError: with ``on_error="raise"``, for the first bad file.
        ValueError: for an unknown ``on_error`` or ``reader``, or an item without ``"file"``.
    """
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    check_reader(reader)
    cache = HeaderCache(None) if cache is None else cache
    check_data = on_error == "skip" if check_data is None else check_data
    scan = Scan([], [])
    try:
        for item in items:
            if "file" not in item:
                raise ValueError(f"every item needs a 'file' entry, got {dict(item)}")
            path = os.fspath(item["file"])
            try:
                info = _inspect(path, str(item.get("format", reader)), cache, check_data)
                slices = _slice_range(item, info.num_slices)
            except DataError as err:
                if on_error == "raise":
                    raise
                scan.skipped.append(err)
                continue
            scan.volumes.append((dict(item), info, slices))
    finally:
        cache.save()
    return scan


def report_skipped(skipped: Sequence[DataError]) -> list[str]:
    """Warn ONCE per process about skipped files (one :class:`UserWarning` listing those not reported yet).

    Returns:
        The messages of all ``skipped`` files, one line each.
    """
    lines = [str(err) for err in skipped]
    new = [line for line in lines if line not in _REPORTED]
    if new:
        _REPORTED.update(new)
        warnings.warn(f"skipped {len(new)} bad file(s):\n  " + "\n  ".join(new), UserWarning, stacklevel=3)
    return lines


def expand_slices(
    items: Iterable[Mapping[str, Any]],
    on_error: str = "raise",
    reader: str = "auto",
    cache: HeaderCache | None = None,
    check_data: bool | None = None,
) -> list[dict[str, Any]]:
    """List one item per slice of the good volumes (see :func:`scan_items` for the checks).

    In skip mode the bad files are listed in ONE :class:`UserWarning` (each file once per process, so the
    start-up check and the datasets built after it do not repeat the list).

    Returns:
        ``[{"file", "slice_idx", "domain", "volume", "source", "batch_key", "format"?}, ...]`` in item
        order, then slice order. ``volume`` defaults to the file's base name, ``source`` to the domain;
        ``batch_key`` is the volume's :attr:`~pipeline.data.formats.VolumeInfo.batch_key` as a list.

    Raises:
        DataError: with ``on_error="raise"``, for the first bad file.
        ValueError: for an unknown ``on_error`` or ``reader``, or an item without ``"file"``.
    """
    scan = scan_items(items, on_error, reader, cache, check_data)
    report_skipped(scan.skipped)
    out: list[dict[str, Any]] = []
    for item, info, slices in scan.volumes:
        domain = str(item.get("domain", ""))
        base = {
            "file": os.fspath(item["file"]),
            "domain": domain,
            "volume": str(item.get("volume") or os.path.basename(item["file"])),
            "source": str(item.get("source") or domain),
            "batch_key": list(info.batch_key),
        }
        if "format" in item:
            base["format"] = str(item["format"])
        out.extend({**base, "slice_idx": i} for i in slices)
    return out


class SliceDataset(Dataset):
    """A :class:`monai.data.Dataset` of single slices, loaded lazily one slice per ``__getitem__``.

    Args:
        items: volume items (see :func:`expand_slices`).
        transform: applied after the loader to each sample dict (optional).
        on_error: ``"raise"`` or ``"skip"`` (see :func:`scan_items`).
        reader: ``"auto"`` or a registered format name (an item's ``format`` wins).
        cache: header cache for the start-up checks (default: in memory only).
        seed: if given, the random transforms of slice ``i`` in pass ``epoch`` (:meth:`set_epoch`) draw from
            a generator seeded by ``stable_seed(f"{seed}:{epoch}:{i}")``: what a sample gets depends only on
            which sample it is, not on the process, worker or order that made it, so a resumed run redraws
            exactly the masks and SSDU splits of an uninterrupted one. ``None``: MONAI's usual per-worker
            random state.

    Each element is the sample dict of :class:`pipeline.data.readers.LoadSlice` (then ``transform``). A
    :class:`DataError` of the loader reaches the caller as itself, not wrapped in MONAI's transform
    ``RuntimeError``. ``self.data`` holds the per-slice items; :attr:`batch_keys` and :attr:`sources` feed
    :class:`pipeline.data.samplers.ShapeBatchSampler`.
    """

    epoch = 0

    def __init__(
        self,
        items: Iterable[Mapping[str, Any]],
        transform: Callable[[dict[str, Any]], Any] | None = None,
        on_error: str = "raise",
        reader: str = "auto",
        cache: HeaderCache | None = None,
        seed: int | None = None,
    ) -> None:
        self.loader = LoadSliced(reader=reader)
        self.seed = None if seed is None else int(seed)
        super().__init__(data=expand_slices(items, on_error=on_error, reader=reader, cache=cache), transform=transform)

    @property
    def batch_keys(self) -> list[tuple]:
        """Per slice: what must agree for two slices to share a batch (shapes and optional keys)."""
        return [tuple(item["batch_key"]) for item in self.data]

    @property
    def sources(self) -> list[str]:
        """Per slice: the sub-collection it belongs to (manifest ``source``, default the domain)."""
        return [item["source"] for item in self.data]

    def set_epoch(self, epoch: int) -> None:
        """Draw the random transforms of pass ``epoch`` (with ``seed``; set before a loader's workers start)."""
        self.epoch = int(epoch)

    def _transform(self, index: int) -> Any:
        if self.seed is not None and isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed=stable_seed(f"{self.seed}:{self.epoch}:{index}"))
        sample = self.loader(self.data[index])
        return sample if self.transform is None else apply_transform(self.transform, sample)


def manifest_dataset(
    manifest: str | os.PathLike,
    section: str,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    data_root: str | os.PathLike | None = None,
    on_error: str = "raise",
    reader: str = "auto",
    seed: int | None = None,
) -> SliceDataset:
    """A :class:`SliceDataset` over one section of a manifest (what bundle configs instantiate).

    Uses the manifest's header cache (:func:`pipeline.data.cache.default_cache_path`). In skip mode,
    listed files that are missing are skipped like other bad files.
    """
    from pipeline.data.manifests import load_manifest

    items = load_manifest(manifest, section, data_root, check_files=on_error == "raise")
    cache = HeaderCache(default_cache_path(manifest))
    return SliceDataset(items, transform, on_error=on_error, reader=reader, cache=cache, seed=seed)

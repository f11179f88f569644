"""Dataset manifests: MONAI datalist JSON files naming the volumes of each data section.

A manifest is a JSON object that :func:`monai.data.load_decathlon_datalist` reads
(``is_segmentation=False``, ``data_list_key=<section>``, ``base_dir=<data root>``)::

    {
      "name": "demo",
      "description": "...",
      "data_root": "../data/demo",
      "generator": {"preset": "demo", "seed": 0},
      "proxy":      [{"file": "proxy/proxy_000.h5"}, ...],
      "target":     [{"file": "target_train/target_000.h5"}, ...],
      "validation": [{"file": "validation/validation_000.h5"}, ...],
      "test":       [{"file": "test/test_000.h5", "slices": [0, 6]}, ...]
    }

- ``data_root`` (optional) is resolved relative to the manifest file; without it the manifest's own
  directory is the root. ``file`` paths are relative to the root. ``slices`` (optional) restricts an
  item to slices ``[start, stop)``. ``generator`` (optional) records how the data were simulated.
- ``format`` (optional, per item) names the item's raw format (a key of
  :data:`pipeline.data.formats.FORMATS`, e.g. ``"cc359"``); ``"formats": {"<section>": "<name>"}``
  (optional, top level) sets it for a whole section. Without either the format is detected per file.
- ``source`` (optional, per item) names the sub-collection an item belongs to, e.g. ``"knee"`` and
  ``"brain"`` inside ``proxy``; a batch sampler can weight sources explicitly
  (:class:`pipeline.data.samplers.ShapeBatchSampler`). Default: the section name.
- Every item gets a ``volume``: its path relative to the data root (POSIX), the volume's identity
  everywhere downstream (metrics, written outputs, fixed-mask seeds, logs), so two files with the same
  name in different folders stay two volumes.
- Sections (:data:`SECTIONS`):

  - ``proxy``: fully sampled volumes of the proxy domain (``kspace`` + ``reconstruction_rss``);
  - ``target``: subsampled training volumes of the target domain: ``kspace`` with zeros at unacquired
    columns plus their fixed ``mask``, and no reference;
  - ``validation`` / ``test``: ONE file per volume holding the *fully sampled* ``kspace``, its
    ``reconstruction_rss`` (used only for scoring) and a stored fixed ``mask`` (one row per slice)
    that defines the undersampled input. The reader returns the full k-space and that mask; the
    mask-application transform zeroes the unsampled columns to form the network input;
  - ``target_reference`` (optional, retrospective studies only): the ``target`` training slices fully
    sampled, with reference and the same stored mask. Only the ``sl_target`` oracle reads it.

Every item gets ``"domain": <section>`` when loaded. Domains are not written into the JSON because
MONAI's loader would replace any string value that names an existing path under the root (e.g. a
``proxy/`` directory) by that path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

from pipeline.data.errors import DataError

__all__ = [
    "SECTIONS",
    "resolve_inputs",
    "load_manifest",
    "manifest_data_root",
    "manifest_digest",
    "manifest_sections",
    "read_manifest",
    "volume_id",
]

SECTIONS = ("proxy", "target", "validation", "test", "target_reference")
"""The data sections a JSSL manifest may hold."""


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest's JSON content, checked to be an object.

    Raises:
        DataError: if the file is missing, not JSON, or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"manifest is not valid JSON ({err})") from None
    if not isinstance(content, dict):
        raise DataError(path, "manifest must be a JSON object with one list per section")
    return content


def manifest_sections(path: str | os.PathLike) -> list[str]:
    """Names of the non-empty item lists in a manifest, in file order.

    Raises:
        DataError: if the manifest is missing or not a JSON object.
    """
    content = read_manifest(Path(path))
    return [k for k, v in content.items() if isinstance(v, list) and v]


def manifest_data_root(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """The absolute data root of a manifest (no existence check).

    Args:
        path: the manifest file.
        data_root: override; relative paths are taken relative to the current directory.

    Returns:
        ``data_root`` if given, else the manifest's ``"data_root"`` resolved relative to the manifest
        file, else the manifest's directory.

    Raises:
        DataError: if the manifest is missing or malformed.
    """
    path = Path(path)
    if data_root is not None:
        return Path(data_root).resolve()
    content = read_manifest(path)
    root = content.get("data_root", ".")
    if not isinstance(root, str):
        raise DataError(path, f"'data_root' must be a string, got {root!r}")
    return (path.resolve().parent / root).resolve()


def load_manifest(
    path: str | os.PathLike,
    section: str,
    data_root: str | os.PathLike | None = None,
    check_files: bool = True,
) -> list[dict[str, Any]]:
    """Load one section of a manifest as a list of items with absolute file paths.

    Args:
        path: the manifest JSON file.
        section: the section to load, e.g. ``"proxy"``, ``"target"``, ``"validation"``, ``"test"``.
        data_root: overrides the manifest's ``data_root`` (see :func:`manifest_data_root`).
        check_files: raise if a listed file does not exist.

    Returns:
        One dict per volume: ``{"file": <absolute path>, "domain": section, "volume": <path relative to the
        root>}`` plus the item's other fields (e.g. ``"slices": [start, stop]``, ``"source"``, ``"format"``,
        the latter also from the manifest's ``"formats"``).

    Raises:
        DataError: manifest missing or malformed; section missing or empty (the message names the
            available sections); item without a ``file``; unknown format names; data root missing or
            without files; listed files missing (with ``check_files``).
    """
    path = Path(path)
    content = read_manifest(path)
    available = [k for k, v in content.items() if isinstance(v, list) and v]
    if not isinstance(content.get(section), list) or not content[section]:
        state = "is empty" if isinstance(content.get(section), list) else "not found"
        raise DataError(path, f"section {section!r} {state}; available sections: {available}")
    root = manifest_data_root(path, data_root)
    if not root.is_dir():
        raise DataError(path, f"data root {root} does not exist (set data_root or generate the data)")
    if not any(p.is_file() for p in root.rglob("*")):
        raise DataError(path, f"data root {root} contains no files")
    items = load_decathlon_datalist(path, is_segmentation=False, data_list_key=section, base_dir=root)
    section_format = _section_formats(path, content).get(section)
    out = []
    for i, (item, raw) in enumerate(zip(items, content[section])):
        if not isinstance(item.get("file"), str):
            raise DataError(path, f"item {i} of section {section!r} has no 'file' string: {item}")
        file = (root / item["file"]).resolve()
        # names, not paths: MONAI's loader would turn a value naming a folder under the root into a path
        labels = {key: raw[key] for key in ("source", "format") if isinstance(raw, dict) and key in raw}
        fmt = labels.get("format", section_format)
        if fmt is not None:
            labels["format"] = _check_format(path, fmt, f"item {i} of section {section!r}")
        if not isinstance(labels.get("source", ""), str):
            raise DataError(path, f"item {i} of section {section!r}: 'source' must be a string, got {raw['source']!r}")
        out.append({**item, **labels, "file": str(file), "domain": section, "volume": volume_id(file, root)})
    if check_files:
        folders = [item["file"] for item in out if os.path.isdir(item["file"])]
        if folders:
            problem = f"{len(folders)} entries of section {section!r} are directories, expected k-space files"
            raise DataError(path, f"{problem}: {_shown(folders)}")
        missing = [item["file"] for item in out if not os.path.isfile(item["file"])]
        if missing:
            raise DataError(path, f"{len(missing)} file(s) of section {section!r} not found: {_shown(missing)}")
    return out


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def volume_id(file: str | os.PathLike, root: str | os.PathLike) -> str:
    """A volume's identity: ``file``'s path relative to ``root`` in POSIX form, or its absolute path if outside.

    >>> volume_id("/data/raw/knee/file1.h5", "/data/raw")
    'knee/file1.h5'
    >>> volume_id("/elsewhere/file1.h5", "/data/raw")
    '/elsewhere/file1.h5'
    """
    file, root = Path(os.path.abspath(file)), Path(os.path.abspath(root))
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return file.as_posix()


def _check_format(path: Path, name: Any, where: str) -> str:
    from pipeline.data.formats import FORMATS

    if name not in FORMATS:
        raise DataError(path, f"{where}: unknown format {name!r}; registered formats: {sorted(FORMATS)}")
    return name


def _section_formats(path: Path, content: dict[str, Any]) -> dict[str, str]:
    formats = content.get("formats", {})
    if not isinstance(formats, dict):
        raise DataError(path, f"'formats' must map section names to format names, got {formats!r}")
    return {section: _check_format(path, name, f"'formats' of {section!r}") for section, name in formats.items()}


def manifest_digest(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the manifest file's bytes (for experiment-tracking tags).

    Raises:
        DataError: if the manifest does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_inputs(
    manifest: str | os.PathLike | None = None,
    section: str = "test",
    data_root: str | os.PathLike | None = None,
    input_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Volume items for inference: every ``*.h5`` in ``input_dir`` if given, else a manifest section.

    Raises:
        DataError: for a missing or empty ``input_dir``, or any :func:`load_manifest` problem.
    """
    if input_dir is None:
        if manifest is None:
            raise ValueError("give a manifest (and section) or an input_dir of .h5 files")
        return load_manifest(manifest, section, data_root)
    folder = Path(input_dir)
    if not folder.is_dir():
        raise DataError(folder, "input_dir does not exist")
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise DataError(folder, "input_dir contains no .h5 files")
    return [{"file": str(f.resolve()), "domain": "input", "volume": f.name} for f in files]

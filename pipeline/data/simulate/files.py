"""Files of a simulated dataset: names, the manifest, writing volumes, and generating on first use.

Files by section (``S`` slices, ``C`` coils, ``H = 2 R``, ``W = R + 2 pad`` for recon size ``R``):

- ``proxy/proxy_NNN.h5``: fully sampled ``kspace`` ``(S, C, H, W)`` + ``reconstruction_rss``;
- ``target_train/target_NNN.h5``: subsampled ``kspace`` (zeros at unacquired columns), ``mask``
  ``(S, W)`` bool with ONE fixed column mask per slice (``mask.attrs["layout"] = "slice_columns"``),
  attributes ``acceleration`` and ``num_low_frequency``; no reference;
- ``target_reference/target_NNN.h5``: the same target training slices fully sampled, with reference
  and mask (the retrospective oracle of mode ``sl_target``);
- ``validation/validation_NNN.h5`` and ``test/test_NNN.h5``: fully sampled ``kspace``,
  ``reconstruction_rss`` (for scoring only) and the fixed per-slice ``mask`` ``(S, W)`` that defines
  the undersampled input, with ``acceleration`` and ``num_low_frequency``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from filelock import FileLock

from pipeline.data.manifests import SECTIONS, manifest_data_root, read_manifest
from pipeline.data.simulate.acquisition import simulate_volume
from pipeline.data.simulate.anatomy import slice_positions
from pipeline.data.simulate.presets import EXTRA_CONTRAST_SECTIONS, get_preset
from pipeline.io.atomic import replace_folder

__all__ = ["build_manifest", "ensure_dataset", "file_name", "generate"]

logger = logging.getLogger(__name__)

# section -> (folder, file prefix)
_FILES = {
    "proxy": ("proxy", "proxy"),
    "target": ("target_train", "target"),
    "validation": ("validation", "validation"),
    "test": ("test", "test"),
    "target_reference": ("target_reference", "target"),
}
_MASK_LAYOUT = "slice_columns"


def file_name(section: str, index: int) -> str:
    """Relative path of volume ``index`` of ``section``.

    Example:
        >>> file_name("target", 0)
        'target_train/target_000.h5'
    """
    folder, prefix = _FILES[section]
    return f"{folder}/{prefix}_{index:03d}.h5"


def build_manifest(preset: str, seed: int = 0, data_root: str = ".") -> dict[str, Any]:
    """The manifest a :func:`generate` run writes (pure: touches no file).

    Args:
        preset: a key of :data:`~pipeline.data.simulate.presets.PRESETS`.
        seed: the generation seed (recorded in ``generator``).
        data_root: the data directory relative to the manifest file (POSIX separators).

    Returns:
        The manifest as a JSON-ready dict (see :mod:`pipeline.data.manifests`).

    Raises:
        ValueError: unknown preset.
    """
    p = get_preset(preset)
    brain_only = p.proxy.anatomy == p.target.anatomy == "brain"
    source = "brain k-space from the MNI152 template" if brain_only else "k-space of real anatomy"
    proxy, target = ("", "") if brain_only else (f"{p.proxy.anatomy} ", f"{p.target.anatomy} ")
    manifest: dict[str, Any] = {
        "name": p.name,
        "description": (
            f"Simulated multi-coil {source}: proxy = fully sampled {proxy}"
            f"{p.proxy.orientation} {p.proxy.contrast.upper()}-like ({p.proxy.num_coils} coils, SNR {p.proxy.snr:g}); "
            f"target = {target}{p.target.orientation} {p.target.contrast.upper()}-like ({p.target.num_coils} coils, "
            f"SNR {p.target.snr:g}) with one fixed {p.acceleration}x mask per slice. Validation/test files hold "
            "fully sampled kspace + reconstruction_rss + the fixed input mask."
        ),
        "data_root": data_root,
        "generator": {"module": "pipeline.data.simulate", "preset": p.name, "seed": int(seed)},
    }
    for section in SECTIONS:
        count = p.section_volumes(section)
        manifest[section] = [{"file": file_name(section, i)} for i in range(count)]
    return manifest


def _as_acquired(volume: dict[str, Any]) -> dict[str, Any]:
    """The subsampled acquisition of a simulated volume: zeros at unacquired columns, no reference."""
    attrs = {k: v for k, v in volume["attrs"].items() if k not in ("max", "norm")}
    kspace = volume["kspace"] * volume["mask"][:, None, None, :]
    return {"attrs": attrs, "header": volume["header"], "mask": volume["mask"], "kspace": kspace}


def _write_volume(path: Path, volume: dict[str, Any]) -> None:
    """Write one volume atomically (``.partial`` file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    kspace = volume["kspace"]
    with h5py.File(partial, "w") as f:
        f.create_dataset("kspace", data=kspace, chunks=(1, *kspace.shape[1:]))
        if "reconstruction_rss" in volume:
            ref = volume["reconstruction_rss"]
            f.create_dataset("reconstruction_rss", data=ref, chunks=(1, *ref.shape[1:]))
        if "mask" in volume:
            f.create_dataset("mask", data=volume["mask"]).attrs["layout"] = _MASK_LAYOUT
        f.create_dataset("ismrmrd_header", data=np.bytes_(volume["header"]))
        for key, value in volume["attrs"].items():
            f.attrs[key] = value
    os.replace(partial, path)


def generate(
    preset: str, out_dir: str | os.PathLike, seed: int = 0, manifest_path: str | os.PathLike | None = None
) -> Path:
    """Simulate a dataset and write its manifest.

    Args:
        preset: a key of :data:`~pipeline.data.simulate.presets.PRESETS` (``"demo"``, ``"tiny"``).
        out_dir: the data root; created if missing, existing files of the same names are replaced.
        seed: generation seed; the same seed gives identical k-space.
        manifest_path: where to write the manifest; its ``data_root`` is ``out_dir`` relative to the
            manifest's directory. ``None`` writes ``<out_dir>/<preset>.json`` with ``data_root = "."``.

    Returns:
        The manifest path.

    Raises:
        ValueError: unknown preset.
    """
    p = get_preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for domain in ("proxy", "target"):
        for section, slabs in slice_positions(p, domain).items():
            contrasts = p.target_contrasts[: 1 if section not in EXTRA_CONTRAST_SECTIONS else None]
            for index, (contrast, positions) in enumerate(itertools.product(contrasts, slabs)):
                name = file_name(section, index)
                spec = None if domain == "proxy" else dataclasses.replace(p.target, contrast=contrast)
                volume = simulate_volume(p, section, name, positions, seed, spec)
                if section == "target":
                    # the retrospective oracle (mode sl_target) sees the same slices fully sampled
                    _write_volume(out_dir / file_name("target_reference", index), volume)
                    volume = _as_acquired(volume)
                _write_volume(out_dir / name, volume)
    manifest_path = Path(manifest_path) if manifest_path is not None else out_dir / f"{p.name}.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.relpath(out_dir.resolve(), manifest_path.resolve().parent)).as_posix()
    manifest_path.write_text(json.dumps(build_manifest(p.name, seed, root), indent=2) + "\n")
    return manifest_path


def _missing_files(manifest: dict[str, Any], root: Path) -> list[str]:
    return [
        item["file"]
        for section in SECTIONS
        for item in manifest.get(section, [])
        if not (root / item["file"]).is_file()
    ]


def ensure_dataset(
    manifest_path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    preset: str = "demo",
    seed: int = 0,
) -> Path:
    """Generate the data of a manifest if any listed file is missing (first use of the demo).

    Generation goes into a temporary sibling directory that is renamed into place when complete,
    under an inter-process lock, so an interrupted run never leaves a half dataset and concurrent
    callers (e.g. DDP ranks) generate once. The manifest file itself is not rewritten.

    Args:
        manifest_path: an existing manifest (e.g. ``data_manifests/demo.json``).
        data_root: overrides the manifest's ``data_root``.
        preset: preset that produces the manifest's files.
        seed: generation seed.

    Returns:
        The absolute data root.

    Raises:
        ValueError: if the preset/seed would not produce the files the manifest lists.
        DataError: if the manifest is missing or malformed.
    """
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    root = manifest_data_root(manifest_path, data_root)
    if not _missing_files(manifest, root):
        return root
    expected = build_manifest(preset, seed, manifest.get("data_root", "."))
    if any(manifest.get(s) != expected[s] for s in SECTIONS) or manifest.get("generator", {}).get("seed", seed) != seed:
        raise ValueError(
            f"{manifest_path}: files are missing and preset={preset!r}, seed={seed} would not produce this "
            "manifest's files; pass the preset and seed it was generated with"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(root.parent / f".{root.name}.lock"):  # one process generates, the others wait
        if not _missing_files(manifest, root):
            return root
        logger.info(f"simulating the {preset!r} data of {manifest_path} into {root} (first use; seconds to minutes)")
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            generate(preset, staging, seed=seed, manifest_path=staging / "manifest.json")
            (staging / "manifest.json").unlink()
            replace_folder(staging, root)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return root

"""Realistic offline raw data: real anatomy (MNI152 via nilearn), simulated multi-coil acquisition.

Writes fastMRI-layout multi-coil ``.h5`` files plus a manifest (:mod:`pipeline.data.manifests`)::

    python -m pipeline.data.simulate --preset demo --out data/demo --manifest data_manifests/demo.json

Per slice (see the project's ``simulation.md``):

1. a 2-D slice of the MNI ICBM152 2009 template (1 mm, shipped inside the nilearn wheel, no network),
   sampled on a grid 2x finer than the stored matrix so the brain fills ~90% of the field of view;
   contrasts from tissue fractions ``a GM + b WM + c CSF`` with the T1's fine texture
   (proxy: axial T1-like; target: coronal FLAIR-like, CSF dark and GM > WM);
2. a smooth random phase (low-pass random field scaled to +-pi plus a linear ramp);
3. birdcage coil maps (``sigpy.mri.birdcage_maps``) rotated by a random angle, with random per-coil
   complex gains, fixed per volume;
4. 2x readout oversampling (zero padding along H), centred orthonormal FFT on the fine grid, k-space
   cropped to the stored matrix (no inverse crime);
5. the never-acquired padding band (``pad_columns`` zero columns at each edge of W) and complex
   Gaussian noise correlated across coils (rho = 0.2) with sigma = mean object RSS / SNR;
6. ``reconstruction_rss`` = centre crop of the RSS of the noisy coil images (fastMRI's definition),
   ``max`` and ``norm`` (volume maximum and Euclidean norm of that reference), ``acquisition``, an
   ISMRMRD header (encoded = stored k-space size, recon = crop size, ``kspace_encoding_step_1``
   giving the padding band) and a dummy ``patient_id`` that the readers never pass on.

Files by section (``S`` slices, ``C`` coils, ``H = 2 R``, ``W = R + 2 pad`` for recon size ``R``):

- ``proxy/proxy_NNN.h5``: fully sampled ``kspace`` ``(S, C, H, W)`` + ``reconstruction_rss``;
- ``target_train/target_NNN.h5``: subsampled ``kspace`` (zeros at unacquired columns), ``mask``
  ``(S, W)`` bool with ONE fixed column mask per slice (``mask.attrs["layout"] = "slice_columns"``),
  attributes ``acceleration`` and ``num_low_frequency``; no reference;
- ``validation/validation_NNN.h5`` and ``test/test_NNN.h5``: fully sampled ``kspace``,
  ``reconstruction_rss`` (for scoring only) and the fixed per-slice ``mask`` ``(S, W)`` that defines
  the undersampled input, with ``acceleration`` and ``num_low_frequency``.

Masks are fastMRI-style equispaced 1-D masks (4x, 8% centre fraction by default) drawn inside the
acquired band, seeded from ``sha256(f"{seed}:{file name}:{slice}")``. Volumes are disjoint slabs
of the template; target-domain slabs for training, validation and test are interleaved along the
slice axis and never share a slice position. Everything is deterministic given ``--seed``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.manifests import SECTIONS, manifest_data_root, read_manifest
from pipeline.physics import center_crop, fft2c, ifft2c, rss, to_tensor

__all__ = [
    "DomainSpec",
    "Preset",
    "PRESETS",
    "build_manifest",
    "column_mask",
    "ensure_dataset",
    "file_name",
    "generate",
    "main",
]


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """How one domain is acquired.

    Attributes:
        orientation: slice orientation, ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        contrast: ``"t1"``, ``"flair"`` or ``"t2"``.
        acquisition: value of the ``acquisition`` attribute (fastMRI style, e.g. ``"AXT1"``).
        num_coils: receiver coils ``C``.
        coil_radius: birdcage radius relative to half the field of view (sigpy's ``r``, 1.2-1.8).
        snr: mean object RSS signal over the noise standard deviation per coil.
    """

    orientation: str
    contrast: str
    acquisition: str
    num_coils: int
    coil_radius: float
    snr: float


@dataclasses.dataclass(frozen=True)
class Preset:
    """A simulated dataset.

    Attributes:
        name: preset name.
        recon_size: ``R``: the reconstruction is ``(R, R)``; k-space is ``(2 R, R + 2 pad_columns)``.
        pad_columns: never-acquired zero columns at each edge of the phase-encode axis.
        proxy: the proxy domain.
        target: the target domain (sections ``target``, ``validation``, ``test``).
        volumes: per section, ``(number of volumes, slices per volume)``.
        slice_spacing_mm: distance between neighbouring slices of a volume, in mm.
        slab_gap_mm: extra distance between neighbouring volumes (slabs), in mm.
        acceleration: undersampling factor of the stored masks (ratio, e.g. 4).
        center_fraction: fraction of the acquired columns fully sampled at the centre, in (0, 1).
    """

    name: str
    recon_size: int
    pad_columns: int
    proxy: DomainSpec
    target: DomainSpec
    volumes: dict[str, tuple[int, int]]
    slice_spacing_mm: float = 2.0
    slab_gap_mm: float = 2.0
    acceleration: int = 4
    center_fraction: float = 0.08

    @property
    def kspace_size(self) -> tuple[int, int]:
        """``(H, W)`` of the stored k-space: 2x oversampled readout, recon width plus padding band."""
        return 2 * self.recon_size, self.recon_size + 2 * self.pad_columns


_PROXY = DomainSpec("axial", "t1", "AXT1", num_coils=8, coil_radius=1.5, snr=40.0)
_TARGET = DomainSpec("coronal", "flair", "CORFLAIR", num_coils=6, coil_radius=1.25, snr=25.0)

PRESETS: dict[str, Preset] = {
    "demo": Preset(
        name="demo",
        recon_size=128,
        pad_columns=4,
        proxy=_PROXY,
        target=_TARGET,
        volumes={"proxy": (6, 8), "target": (6, 8), "validation": (2, 4), "test": (3, 6)},
    ),
    "tiny": Preset(
        name="tiny",
        recon_size=64,
        pad_columns=4,
        proxy=dataclasses.replace(_PROXY, num_coils=4),
        target=dataclasses.replace(_TARGET, num_coils=4),
        volumes={"proxy": (2, 3), "target": (2, 3), "validation": (1, 2), "test": (1, 2)},
        slice_spacing_mm=4.0,
        slab_gap_mm=8.0,
    ),
}
"""Available presets. ``demo``: the documented demo dataset; ``tiny``: seconds, for unit tests."""

# section -> (folder, file prefix)
_FILES = {
    "proxy": ("proxy", "proxy"),
    "target": ("target_train", "target"),
    "validation": ("validation", "validation"),
    "test": ("test", "test"),
    "target_reference": ("target_reference", "target"),
}
_COIL_CORRELATION = 0.2
_OBJECT_FILL = 0.9
_MASK_LAYOUT = "slice_columns"
# (row axis, column axis, slice axis) of the template for each orientation, radiological display:
# rows run anterior->posterior (axial) or superior->inferior, columns run patient right->left.
_ORIENTATION_AXES = {"axial": (1, 0, 2), "coronal": (2, 0, 1), "sagittal": (2, 1, 0)}
# Tissue weights (GM, WM, CSF) per contrast.
_CONTRASTS = {"flair": (0.85, 0.55, 0.06), "t2": (0.6, 0.4, 1.0)}


def _seed(*parts: Any) -> int:
    """A stable 63-bit seed from the parts' text (sha256; unlike ``hash`` it is not salted per process)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def file_name(section: str, index: int) -> str:
    """Relative path of volume ``index`` of ``section``, e.g. ``"target_train/target_000.h5"``."""
    folder, prefix = _FILES[section]
    return f"{folder}/{prefix}_{index:03d}.h5"


def build_manifest(preset: str, seed: int = 0, data_root: str = ".") -> dict[str, Any]:
    """The manifest a :func:`generate` run writes (pure: touches no file).

    Args:
        preset: a key of :data:`PRESETS`.
        seed: the generation seed (recorded in ``generator``).
        data_root: the data directory relative to the manifest file (POSIX separators).

    Returns:
        The manifest as a JSON-ready dict (see :mod:`pipeline.data.manifests`).
    """
    p = _preset(preset)
    manifest: dict[str, Any] = {
        "name": p.name,
        "description": (
            f"Simulated multi-coil brain k-space from the MNI152 template: proxy = fully sampled "
            f"{p.proxy.orientation} {p.proxy.contrast.upper()}-like ({p.proxy.num_coils} coils, SNR {p.proxy.snr:g}); "
            f"target = {p.target.orientation} {p.target.contrast.upper()}-like ({p.target.num_coils} coils, "
            f"SNR {p.target.snr:g}) with one fixed {p.acceleration}x mask per slice. Validation/test files hold "
            "fully sampled kspace + reconstruction_rss + the fixed input mask."
        ),
        "data_root": data_root,
        "generator": {"module": "pipeline.data.simulate", "preset": p.name, "seed": int(seed)},
    }
    for section in SECTIONS:
        count = p.volumes["target" if section == "target_reference" else section][0]
        manifest[section] = [{"file": file_name(section, i)} for i in range(count)]
    return manifest


def _manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2) + "\n"


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


# ----------------------------------------------------------------------------------------------
# anatomy


@functools.lru_cache(maxsize=1)
def _anatomy() -> dict[str, Any]:
    """MNI152 2009 1 mm T1, GM, WM, CSF and brain mask, cropped to the brain with a margin (cached).

    Returns:
        ``{"t1", "gm", "wm", "csf", "brain"}`` float32 volumes indexed ``(x, y, z)`` in mm from the
        crop corner, plus ``"fit"``: least-squares T1 weights ``(GM, WM, CSF)`` for the texture map.
    """
    from nilearn import datasets

    volumes = {
        "t1": datasets.load_mni152_template(resolution=1),
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "brain": datasets.load_mni152_brain_mask(resolution=1),
    }
    arrays = {k: np.asarray(v.dataobj, dtype=np.float32) for k, v in volumes.items()}
    inside = np.nonzero(arrays["brain"] > 0.5)
    box = tuple(slice(max(int(i.min()) - 6, 0), int(i.max()) + 7) for i in inside)
    arrays = {k: np.ascontiguousarray(v[box]) for k, v in arrays.items()}
    arrays["csf"] = np.clip(arrays["brain"] - arrays["gm"] - arrays["wm"], 0.0, 1.0)
    voxels = arrays["brain"] > 0.5
    design = np.stack([arrays[k][voxels] for k in ("gm", "wm", "csf")], axis=1)[::7]
    arrays["fit"] = np.linalg.lstsq(design, arrays["t1"][voxels][::7], rcond=None)[0]
    return arrays


def _brain_extent(axis: int) -> tuple[float, float]:
    """First and last index (mm) of the brain along template ``axis``, in crop coordinates."""
    brain = _anatomy()["brain"]
    profile = np.flatnonzero(brain.max(axis=tuple(a for a in range(3) if a != axis)) > 0.5)
    return float(profile[0]), float(profile[-1])


def _slice_positions(preset: Preset, domain: str) -> dict[str, list[np.ndarray]]:
    """Slice positions (mm, template crop coordinates) of every volume of the sections of ``domain``.

    Volumes are slabs of ``S`` slices ``slice_spacing_mm`` apart, separated by ``slab_gap_mm``.
    The target domain's slabs of ``target``/``validation``/``test`` are interleaved (each section
    spread over the brain) and the layout is centred on the brain's extent along the slice axis.
    """
    sections = ["proxy"] if domain == "proxy" else ["target", "validation", "test"]
    spec = preset.proxy if domain == "proxy" else preset.target
    slabs = [
        ((j + 0.5) / preset.volumes[s][0], order, s, j)
        for order, s in enumerate(sections)
        for j in range(preset.volumes[s][0])
    ]
    slabs.sort()
    lengths = [(preset.volumes[s][1] - 1) * preset.slice_spacing_mm for _, _, s, _ in slabs]
    span = sum(lengths) + preset.slab_gap_mm * (len(slabs) - 1) + preset.slice_spacing_mm * (len(slabs) - 1)
    lo, hi = _brain_extent(_ORIENTATION_AXES[spec.orientation][2])
    if span > hi - lo:
        raise ValueError(f"preset {preset.name!r}: {span:g} mm of slabs do not fit the brain's {hi - lo:g} mm")
    start = (lo + hi - span) / 2
    placed: dict[tuple[str, int], np.ndarray] = {}
    for (_, _, section, j), length in zip(slabs, lengths):
        placed[section, j] = start + preset.slice_spacing_mm * np.arange(preset.volumes[section][1])
        start += length + preset.slice_spacing_mm + preset.slab_gap_mm
    return {s: [placed[s, j] for j in range(preset.volumes[s][0])] for s in sections}


def _field_of_view(orientation: str) -> tuple[float, tuple[float, float]]:
    """Square in-plane field of view (mm) filled ~90% by the brain, and its centre (row, col) in mm."""
    rows, cols, _ = _ORIENTATION_AXES[orientation]
    (r0, r1), (c0, c1) = _brain_extent(rows), _brain_extent(cols)
    return max(r1 - r0, c1 - c0) / _OBJECT_FILL, ((r0 + r1) / 2, (c0 + c1) / 2)


def _object_slice(spec: DomainSpec, position: float, grid: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """Real, non-negative anatomy image ``grid = (rows, cols)`` sampled at ``pixel_mm`` (float64)."""
    from scipy.ndimage import map_coordinates

    anatomy = _anatomy()
    rows_axis, cols_axis, slice_axis = _ORIENTATION_AXES[spec.orientation]
    _, (row_c, col_c) = _field_of_view(spec.orientation)
    n_r, n_c = grid
    coords = np.zeros((3, n_r, n_c))
    # rows and columns run towards decreasing template coordinates (anterior/superior/right first)
    coords[rows_axis] = row_c - (np.arange(n_r)[:, None] - n_r // 2) * pixel_mm
    coords[cols_axis] = col_c - (np.arange(n_c)[None, :] - n_c // 2) * pixel_mm
    coords[slice_axis] = position
    sample = {k: map_coordinates(anatomy[k], coords, order=1, mode="constant") for k in ("t1", "gm", "wm", "csf")}
    if spec.contrast == "t1":
        return np.clip(sample["t1"], 0.0, None)
    tissues = np.stack([sample["gm"], sample["wm"], sample["csf"]])
    t1_model = np.tensordot(anatomy["fit"], tissues, axes=1)
    texture = np.clip(sample["t1"] / np.maximum(t1_model, 1e-3), 0.75, 1.33)
    return np.clip(np.tensordot(np.asarray(_CONTRASTS[spec.contrast]), tissues, axes=1) * texture, 0.0, None)


# ----------------------------------------------------------------------------------------------
# acquisition


def _coil_maps(rng: np.random.Generator, spec: DomainSpec, grid: tuple[int, int], fov_px: int) -> np.ndarray:
    """Rotated birdcage maps with per-coil complex gains, ``(C, rows, cols)`` complex128.

    ``fov_px`` is the field of view in grid pixels; the coils sit at ``coil_radius * fov_px / 2``
    from the centre (index ``n // 2``), rotated by a random angle.
    """
    import sigpy.mri
    from scipy.ndimage import rotate

    # odd square covering the grid when rotated: coil centres (integer offsets) never hit a grid point
    size = 2 * (3 * max(fov_px, *grid) // 4) + 1
    maps = sigpy.mri.birdcage_maps((spec.num_coils, size, size), r=spec.coil_radius * fov_px / size)
    angle = rng.uniform(0.0, 360.0)
    maps = rotate(maps.real, angle, axes=(1, 2), reshape=False, order=1) + 1j * rotate(
        maps.imag, angle, axes=(1, 2), reshape=False, order=1
    )
    top, left = size // 2 - grid[0] // 2, size // 2 - grid[1] // 2
    maps = maps[:, top : top + grid[0], left : left + grid[1]]
    gains = rng.uniform(0.8, 1.2, spec.num_coils) * np.exp(1j * rng.uniform(-np.pi, np.pi, spec.num_coils))
    return maps * gains[:, None, None]


def _smooth_phase(rng: np.random.Generator, grid: tuple[int, int]) -> np.ndarray:
    """Smooth random phase (radians): low-pass random field scaled to +-pi plus a linear ramp."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(grid), sigma=max(grid) / 8, mode="wrap")
    field *= np.pi / np.abs(field).max()
    u = np.linspace(-1.0, 1.0, grid[0])[:, None]
    v = np.linspace(-1.0, 1.0, grid[1])[None, :]
    slope = rng.uniform(-1.0, 1.0, 2)
    return field + np.pi * (slope[0] * u + slope[1] * v)


def _fft2c(x: np.ndarray) -> np.ndarray:
    return torch.view_as_complex(fft2c(to_tensor(x))).numpy()


def _rss_recon(kspace: np.ndarray, recon: int) -> np.ndarray:
    """fastMRI reference ``(S, R, R)`` float32: centre crop of the RSS of ``ifft2c`` of ``(S, C, H, W)``."""
    images = ifft2c(to_tensor(kspace))
    return center_crop(rss(images), (recon, recon)).numpy().astype(np.float32)


def column_mask(
    rng: np.random.Generator, width: int, pe_range: tuple[int, int], acceleration: int, center_fraction: float
) -> tuple[np.ndarray, int]:
    """fastMRI-style equispaced 1-D column mask inside the acquired band.

    Args:
        rng: source of the random offset.
        width: ``W`` columns.
        pe_range: ``[start, stop)`` acquired columns; the mask is False outside.
        acceleration: undersampling ratio over the acquired columns (e.g. 4).
        center_fraction: fraction of the acquired columns sampled contiguously at the centre.

    Returns:
        ``(mask, num_low_frequencies)``: bool ``(W,)`` and the number of centre columns.
    """
    start, stop = pe_range
    n = stop - start
    num_low = max(1, round(n * center_fraction))
    band = np.zeros(n, dtype=bool)
    left = (n - num_low + 1) // 2
    band[left : left + num_low] = True
    adjusted = acceleration * (num_low - n) / (num_low * acceleration - n)
    offset = int(rng.integers(0, max(1, round(adjusted))))
    band[np.around(np.arange(offset, n - 1, adjusted)).astype(int)] = True
    mask = np.zeros(width, dtype=bool)
    mask[start:stop] = band
    return mask, num_low


def _simulate_volume(
    preset: Preset, section: str, name: str, positions: np.ndarray, seed: int
) -> dict[str, Any]:
    """All arrays and attributes of one volume (nothing written)."""
    spec = preset.proxy if section == "proxy" else preset.target
    rng = np.random.default_rng(_seed(seed, name))
    recon = preset.recon_size
    h, w = preset.kspace_size
    pe_range = (preset.pad_columns, w - preset.pad_columns)
    fov_mm, _ = _field_of_view(spec.orientation)
    # fine grid: 2x the stored resolution; the object region spans 2x the recon FOV along W's width
    fine_obj = (2 * recon, 2 * w)  # object region (readout FOV without oversampling, full W)
    fine_full = (2 * h, 2 * w)  # with 2x readout oversampling
    maps = _coil_maps(rng, spec, fine_obj, fov_px=2 * recon).astype(np.complex64)
    top = (fine_full[0] - fine_obj[0]) // 2
    image = np.zeros((len(positions), spec.num_coils, *fine_full), dtype=np.complex64)
    for s, position in enumerate(positions):
        obj = _object_slice(spec, float(position), fine_obj, pixel_mm=fov_mm / (2 * recon))
        image[s, :, top : top + fine_obj[0]] = maps * (obj * np.exp(1j * _smooth_phase(rng, fine_obj)))
    k_fine = _fft2c(image)
    del image
    r0, c0 = (fine_full[0] - h) // 2, (fine_full[1] - w) // 2
    # crop k-space to the stored matrix; the factor keeps image intensities unchanged
    clean = k_fine[..., r0 : r0 + h, c0 : c0 + w] * np.float32(math.sqrt((h * w) / (fine_full[0] * fine_full[1])))
    del k_fine
    clean_rss = _rss_recon(clean, recon)
    sigma = float(clean_rss[clean_rss > 0.1 * clean_rss.max()].mean()) / spec.snr
    covariance = (1 - _COIL_CORRELATION) * np.eye(spec.num_coils) + _COIL_CORRELATION
    white = (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape)) / math.sqrt(2)
    noise = sigma * np.einsum("cd,sdhw->schw", np.linalg.cholesky(covariance), white)
    kspace = clean + noise.astype(np.complex64)
    kspace[..., : pe_range[0]] = 0
    kspace[..., pe_range[1] :] = 0
    kspace = kspace.astype(np.complex64)

    out: dict[str, Any] = {
        "attrs": {
            "acquisition": spec.acquisition,
            "patient_id": f"SIM{_seed(seed, name, 'patient'):016x}",
        },
        "header": write_ismrmrd_header(
            (h, w),
            (recon, recon),
            pe_range,
            encoded_fov_mm=(2 * fov_mm, fov_mm * w / recon, preset.slice_spacing_mm),
            recon_fov_mm=(fov_mm, fov_mm, preset.slice_spacing_mm),
            num_coils=spec.num_coils,
        ),
    }
    if section != "proxy":
        masks = [
            column_mask(
                np.random.default_rng(_seed(seed, name, s)), w, pe_range, preset.acceleration, preset.center_fraction
            )
            for s in range(len(positions))
        ]
        out["mask"] = np.stack([m for m, _ in masks])
        out["attrs"].update({"acceleration": preset.acceleration, "num_low_frequency": masks[0][1]})
    reference = _rss_recon(kspace, recon)
    out["reconstruction_rss"] = reference
    out["attrs"].update({"max": float(reference.max()), "norm": float(np.linalg.norm(reference))})
    out["kspace"] = kspace
    return out


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
        preset: a key of :data:`PRESETS` (``"demo"``, ``"tiny"``).
        out_dir: the data root; created if missing, existing files of the same names are replaced.
        seed: generation seed; the same seed gives identical k-space.
        manifest_path: where to write the manifest; its ``data_root`` is ``out_dir`` relative to the
            manifest's directory. ``None`` writes ``<out_dir>/<preset>.json`` with ``data_root = "."``.

    Returns:
        The manifest path.

    Raises:
        ValueError: unknown preset.
    """
    p = _preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for domain in ("proxy", "target"):
        for section, slabs in _slice_positions(p, domain).items():
            for index, positions in enumerate(slabs):
                name = file_name(section, index)
                volume = _simulate_volume(p, section, name, positions, seed)
                if section == "target":
                    # the retrospective oracle (mode sl_target) sees the same slices fully sampled
                    _write_volume(out_dir / file_name("target_reference", index), volume)
                    volume = _as_acquired(volume)
                _write_volume(out_dir / name, volume)
    manifest_path = Path(manifest_path) if manifest_path is not None else out_dir / f"{p.name}.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.relpath(out_dir.resolve(), manifest_path.resolve().parent)).as_posix()
    manifest_path.write_text(_manifest_text(build_manifest(p.name, seed, root)))
    return manifest_path


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (POSIX ``flock``; no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    with _lock(root.parent / f".{root.name}.lock"):
        if not _missing_files(manifest, root):
            return root
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            generate(preset, staging, seed=seed, manifest_path=staging / "manifest.json")
            (staging / "manifest.json").unlink()
            if root.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, old / root.name)
                os.replace(staging, root)
                shutil.rmtree(old)
            else:
                os.replace(staging, root)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m pipeline.data.simulate --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data.simulate",
        description=(
            "Simulate fastMRI-layout multi-coil brain k-space from the MNI152 template shipped with nilearn "
            "(no network): a fully sampled proxy domain (axial T1-like) and a subsampled target domain "
            "(coronal FLAIR-like, other coils and SNR), plus a MONAI datalist manifest."
        ),
        epilog=(
            "Presets: "
            + "; ".join(
                f"{p.name}: recon {p.recon_size}x{p.recon_size}, k-space {p.kspace_size[0]}x{p.kspace_size[1]}, "
                + ", ".join(f"{s} {n}x{k}" for s, (n, k) in p.volumes.items())
                + " (volumes x slices)"
                for p in PRESETS.values()
            )
            + ". Example: python -m pipeline.data.simulate --preset demo --out data/demo "
            "--manifest data_manifests/demo.json"
        ),
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="dataset size (default: demo)")
    parser.add_argument("--out", type=Path, default=None, help="data root to write (default: data/<preset>)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed; same seed -> same data (default: 0)")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="manifest JSON to write, data_root stored relative to it (default: <out>/<preset>.json)",
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path("data") / args.preset
    start = time.perf_counter()
    manifest = generate(args.preset, out, seed=args.seed, manifest_path=args.manifest)
    size = sum(f.stat().st_size for f in out.rglob("*.h5")) / 2**20
    print(f"wrote {out} ({size:.1f} MiB) and {manifest} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

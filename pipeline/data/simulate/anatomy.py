"""The object: slices of real anatomy that installs offline from a package, and their contrasts.

Two anatomies (``DomainSpec.anatomy``):

- ``"brain"``: the MNI152 2009 template shipped inside the nilearn wheel (BSD-3). Positions and lengths
  are in mm of the template (1 mm voxels), counted from the corner of a crop around the brain. The T1 is
  the template itself, other contrasts are tissue-fraction mixtures ``a GM + b WM + c CSF`` carrying the
  T1's fine texture.
- ``"abdomen"``: the coronal free-breathing abdominal variable-flip-angle series shipped inside the
  ``mdreg`` wheel (Apache-2.0; ``mdreg/datafiles/VFA.pkl``: 78 x 96 x 36 voxels of 4.6875 x 4.6875 x 5 mm,
  flip angles 2, 10, 15, 20, 25 degrees), read with pickle and numpy without importing ``mdreg``. The
  contrast names the flip angle (``"fa15"``). Positions are in mm along its slice axis from the first slice.

Images are sampled on a grid 2x finer than the stored matrix so that the object fills ~90% of the field
of view.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pipeline.data.simulate.presets import DomainSpec, Preset

__all__ = ["field_of_view", "object_slice", "slice_positions"]

_OBJECT_FILL = 0.9
# (row axis, column axis, slice axis) of the template for each orientation, radiological display:
# rows run anterior->posterior (axial) or superior->inferior, columns run patient right->left.
_ORIENTATION_AXES = {"axial": (1, 0, 2), "coronal": (2, 0, 1), "sagittal": (2, 1, 0)}
# Tissue weights (GM, WM, CSF) per contrast.
_CONTRASTS = {"flair": (0.85, 0.55, 0.06), "t2": (0.6, 0.4, 1.0)}


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


#: Voxel size (mm) of the abdominal series along its (rows, columns, slices).
_ABDOMEN_SPACING = (4.6875, 4.6875, 5.0)
#: Slices at each end of the abdominal series left out of every section (partial-volume ends, low signal).
_ABDOMEN_END_SLICES = 2


@functools.lru_cache(maxsize=1)
def _abdomen() -> dict[str, np.ndarray]:
    """The abdominal VFA series of the ``mdreg`` wheel: flip angle (degrees) -> volume ``(78, 96, 36)`` float32.

    Raises:
        ImportError: if ``mdreg`` is not installed (``pip install mdreg``), naming the package.
        ValueError: if the file does not hold the expected ``array`` ``(X, Y, Z, 5)`` and ``FA`` entries.
    """
    import importlib.util
    import pickle

    spec = importlib.util.find_spec("mdreg")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the abdomen anatomy needs the 'mdreg' package (pip install mdreg), which ships VFA.pkl")
    path = f"{list(spec.submodule_search_locations)[0]}/datafiles/VFA.pkl"
    with open(path, "rb") as handle:
        data = pickle.load(handle)  # a dict of numpy arrays written by mdreg's authors (a trusted wheel)
    array, angles = np.asarray(data.get("array")), np.asarray(data.get("FA"))
    if array.ndim != 4 or angles.shape != (array.shape[-1],):
        raise ValueError(f"{path}: expected 'array' (X, Y, Z, F) and 'FA' (F,), got {array.shape} and {angles.shape}")
    return {f"fa{int(a)}": np.ascontiguousarray(array[..., i], dtype=np.float32) for i, a in enumerate(angles)}


def _brain_extent(axis: int) -> tuple[float, float]:
    """First and last index (mm) of the brain along template ``axis``, in crop coordinates."""
    brain = _anatomy()["brain"]
    profile = np.flatnonzero(brain.max(axis=tuple(a for a in range(3) if a != axis)) > 0.5)
    return float(profile[0]), float(profile[-1])


def _extent(spec: DomainSpec, axis: int) -> tuple[float, float]:
    """First and last position (mm) of the object of ``spec`` along its volume's ``axis``."""
    if spec.anatomy == "brain":
        return _brain_extent(axis)
    size = next(iter(_abdomen().values())).shape[axis]
    ends = _ABDOMEN_END_SLICES if axis == 2 else 0
    return ends * _ABDOMEN_SPACING[axis], (size - 1 - ends) * _ABDOMEN_SPACING[axis]


def _axes(spec: DomainSpec) -> tuple[int, int, int]:
    """(row, column, slice) axes of the object's volume for the orientation of ``spec``."""
    if spec.anatomy == "brain":
        return _ORIENTATION_AXES[spec.orientation]
    if spec.orientation != "coronal":
        raise ValueError(f"the abdomen anatomy is a coronal series; orientation {spec.orientation!r} is not available")
    return (0, 1, 2)


def slice_positions(preset: Preset, domain: str) -> dict[str, list[np.ndarray]]:
    """Slice positions (mm, template crop coordinates) of every volume of the sections of ``domain``.

    Volumes are slabs of ``S`` slices ``slice_spacing_mm`` apart, separated by ``slab_gap_mm``.
    The target domain's slabs of ``target``/``validation``/``test`` are interleaved (each section
    spread over the brain) and the layout is centred on the brain's extent along the slice axis.

    Args:
        preset: the dataset.
        domain: ``"proxy"`` (section ``proxy``) or ``"target"`` (sections ``target``, ``validation``, ``test``).

    Returns:
        section -> one float64 array ``(S,)`` of positions per volume.

    Raises:
        ValueError: if the slabs do not fit the brain's extent.
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
    lo, hi = _extent(spec, _axes(spec)[2])
    if span > hi - lo:
        raise ValueError(f"preset {preset.name!r}: {span:g} mm of slabs do not fit the {spec.anatomy}'s {hi - lo:g} mm")
    start = (lo + hi - span) / 2
    placed: dict[tuple[str, int], np.ndarray] = {}
    for (_, _, section, j), length in zip(slabs, lengths):
        placed[section, j] = start + preset.slice_spacing_mm * np.arange(preset.volumes[section][1])
        start += length + preset.slice_spacing_mm + preset.slab_gap_mm
    return {s: [placed[s, j] for j in range(preset.volumes[s][0])] for s in sections}


def field_of_view(spec: DomainSpec) -> tuple[float, tuple[float, float]]:
    """Square in-plane field of view (mm) filled ~90% by the object, and its centre ``(row, col)`` in mm."""
    rows, cols, _ = _axes(spec)
    (r0, r1), (c0, c1) = _extent(spec, rows), _extent(spec, cols)
    return max(r1 - r0, c1 - c0) / _OBJECT_FILL, ((r0 + r1) / 2, (c0 + c1) / 2)


def object_slice(spec: DomainSpec, position: float, grid: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """Real, non-negative anatomy image of one slice.

    Args:
        spec: the domain (anatomy, orientation and contrast).
        position: slice position along the orientation's slice axis, mm (template crop coordinates).
        grid: ``(rows, cols)`` of the image, centred on the field of view.
        pixel_mm: pixel size in mm.

    Returns:
        float64 ``(rows, cols)``, arbitrary intensity units (0 outside the object).

    Raises:
        ValueError: for an abdominal contrast that is not one of the series' flip angles.
    """
    from scipy.ndimage import map_coordinates

    rows_axis, cols_axis, slice_axis = _axes(spec)
    _, (row_c, col_c) = field_of_view(spec)
    n_r, n_c = grid
    if spec.anatomy == "abdomen":
        series = _abdomen()
        if spec.contrast not in series:
            raise ValueError(f"abdomen contrast must be one of {sorted(series)} (flip angles), got {spec.contrast!r}")
        # voxel coordinates; rows/columns in the series' own order, cubic interpolation onto the fine grid
        coords = np.zeros((3, n_r, n_c))
        coords[0] = (row_c + (np.arange(n_r)[:, None] - n_r // 2) * pixel_mm) / _ABDOMEN_SPACING[0]
        coords[1] = (col_c + (np.arange(n_c)[None, :] - n_c // 2) * pixel_mm) / _ABDOMEN_SPACING[1]
        coords[2] = position / _ABDOMEN_SPACING[2]
        return np.clip(map_coordinates(series[spec.contrast], coords, order=3, mode="constant"), 0.0, None)
    anatomy = _anatomy()
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

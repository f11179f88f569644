"""The multi-coil acquisition of one simulated volume: coils, phase, k-space, noise, masks and header.

Per volume (``S`` slices, ``C`` coils, recon size ``R``, stored k-space ``(H, W) = (2 R, R + 2 pad)``):

1. a smooth random phase per slice (low-pass random field scaled to +-pi plus a linear ramp);
2. birdcage coil maps (``sigpy.mri.birdcage_maps``) rotated by a random angle, with random per-coil
   complex gains, fixed per volume;
3. 2x readout oversampling (zero padding along H), centred orthonormal FFT on a grid 2x finer than the
   stored one, k-space cropped to the stored matrix (no inverse crime);
4. the never-acquired padding band (``pad`` zero columns at each edge of W) and complex Gaussian noise
   correlated across coils (rho = 0.2) with sigma = mean object RSS / SNR;
5. ``reconstruction_rss`` (:func:`pipeline.physics.rss_image` of the noisy k-space, fastMRI's
   definition), ``max`` and ``norm`` of that reference, an ISMRMRD header and a dummy ``patient_id``;
6. for target-domain volumes, ONE fastMRI equispaced column mask per slice
   (:func:`pipeline.transforms.masks.equispaced_column_mask`) inside the acquired band.

Every random draw comes from generators seeded with :func:`pipeline.seeds.stable_seed` of
``"{seed}:{file name}"`` (the volume) and ``"{seed}:{file name}:{slice}"`` (its masks).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.simulate.anatomy import field_of_view, object_slice
from pipeline.data.simulate.presets import DomainSpec, Preset
from pipeline.physics import fft2c, rss_image, to_tensor
from pipeline.seeds import stable_seed
from pipeline.transforms.masks import acs_range, equispaced_column_mask

__all__ = ["simulate_volume"]

_COIL_CORRELATION = 0.2


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


def _reference(kspace: np.ndarray, recon: int) -> np.ndarray:
    """fastMRI reference ``(S, R, R)`` float32 of k-space ``(S, C, H, W)`` complex64."""
    return rss_image(to_tensor(kspace), (recon, recon)).numpy().astype(np.float32)


def _noiseless_kspace(
    rng: np.random.Generator, preset: Preset, spec: DomainSpec, positions: np.ndarray
) -> np.ndarray:
    """Noise-free k-space ``(S, C, H, W)`` complex64 cropped from the 2x finer, 2x oversampled grid."""
    recon = preset.recon_size
    h, w = preset.kspace_size
    fov_mm, _ = field_of_view(spec)
    # fine grid: 2x the stored resolution; the object region spans 2x the recon FOV along W's width
    fine_obj = (2 * recon, 2 * w)  # object region (readout FOV without oversampling, full W)
    fine_full = (2 * h, 2 * w)  # with 2x readout oversampling
    maps = _coil_maps(rng, spec, fine_obj, fov_px=2 * recon).astype(np.complex64)
    top = (fine_full[0] - fine_obj[0]) // 2
    image = np.zeros((len(positions), spec.num_coils, *fine_full), dtype=np.complex64)
    for s, position in enumerate(positions):
        obj = object_slice(spec, float(position), fine_obj, pixel_mm=fov_mm / (2 * recon))
        image[s, :, top : top + fine_obj[0]] = maps * (obj * np.exp(1j * _smooth_phase(rng, fine_obj)))
    k_fine = torch.view_as_complex(fft2c(to_tensor(image))).numpy()
    del image
    r0, c0 = (fine_full[0] - h) // 2, (fine_full[1] - w) // 2
    # crop k-space to the stored matrix; the factor keeps image intensities unchanged
    return k_fine[..., r0 : r0 + h, c0 : c0 + w] * np.float32(math.sqrt((h * w) / (fine_full[0] * fine_full[1])))


def simulate_volume(
    preset: Preset, section: str, name: str, positions: np.ndarray, seed: int, spec: DomainSpec | None = None
) -> dict[str, Any]:
    """All arrays and attributes of one fully sampled volume (nothing written).

    Args:
        preset: the dataset.
        section: manifest section; ``"proxy"`` uses the proxy domain and has no mask, every other section
            the target domain with one fixed column mask per slice.
        name: the volume's file name (:func:`pipeline.data.simulate.files.file_name`), part of its seeds.
        positions: slice positions ``(S,)`` in mm (:func:`pipeline.data.simulate.anatomy.slice_positions`).
        seed: generation seed.
        spec: the domain acquired instead of the section's own (e.g. the target at one of the preset's
            ``extra_contrasts``); ``None``: ``preset.proxy`` for ``"proxy"``, else ``preset.target``.

    Returns:
        ``{"kspace": (S, C, H, W) complex64, "reconstruction_rss": (S, R, R) float32, "header": str,
        "attrs": {...}}`` plus ``"mask": (S, W) bool`` outside the proxy section.
    """
    if spec is None:
        spec = preset.proxy if section == "proxy" else preset.target
    rng = np.random.default_rng(stable_seed(f"{seed}:{name}", bits=63))
    recon = preset.recon_size
    h, w = preset.kspace_size
    pe_range = preset.pe_range
    clean = _noiseless_kspace(rng, preset, spec, positions)
    clean_rss = _reference(clean, recon)
    sigma = float(clean_rss[clean_rss > 0.1 * clean_rss.max()].mean()) / spec.snr
    covariance = (1 - _COIL_CORRELATION) * np.eye(spec.num_coils) + _COIL_CORRELATION
    white = (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape)) / math.sqrt(2)
    noise = sigma * np.einsum("cd,sdhw->schw", np.linalg.cholesky(covariance), white)
    kspace = clean + noise.astype(np.complex64)
    kspace[..., : pe_range[0]] = 0
    kspace[..., pe_range[1] :] = 0
    kspace = kspace.astype(np.complex64)

    fov_mm, _ = field_of_view(spec)
    out: dict[str, Any] = {
        "attrs": {
            "acquisition": spec.acquisition,
            "patient_id": f"SIM{stable_seed(f'{seed}:{name}:patient', bits=63):016x}",
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
        out["mask"] = np.stack([
            equispaced_column_mask(
                w,
                preset.center_fraction,
                preset.acceleration,
                np.random.default_rng(stable_seed(f"{seed}:{name}:{s}", bits=63)),
                pe_range,
            )
            for s in range(len(positions))
        ])
        _, num_low = acs_range(w, preset.center_fraction, pe_range)
        out["attrs"].update({"acceleration": preset.acceleration, "num_low_frequency": num_low})
    reference = _reference(kspace, recon)
    out["reconstruction_rss"] = reference
    out["attrs"].update({"max": float(reference.max()), "norm": float(np.linalg.norm(reference))})
    out["kspace"] = kspace
    return out

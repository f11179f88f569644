"""Coil-sensitivity estimation: low-resolution ACS maps (E2E-VarNet style) and ESPIRiT (sigpy).

Both return maps ``(C, H, W, 2)`` normalised so that ``sum_c |S_c|^2 = 1`` wherever they are non-zero.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.physics import acs_block, acs_slice, fft2c, ifft2c, normalize_sens_maps, to_complex_numpy, to_tensor


def _kspace_centre_slices(shape: tuple[int, int], block: tuple[int, int]) -> tuple[slice, slice]:
    """Slices of a ``block`` of k-space whose centre sample ``b // 2`` sits on the grid centre ``N // 2``.

    This keeps the k-space origin in place when a calibration block is cut out and zero-padded back
    (band-limited up-sampling); it is not the ACS placement (:func:`pipeline.physics.acs.acs_start`).
    """
    (h, w), (bh, bw) = shape, block
    return slice(h // 2 - bh // 2, h // 2 - bh // 2 + bh), slice(w // 2 - bw // 2, w // 2 - bw // 2 + bw)


def acs_sensitivity_maps(
    kspace: torch.Tensor,
    num_low_frequencies: int = 0,
    mask: torch.Tensor | np.ndarray | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Low-resolution sensitivity maps from the ACS region (fastMRI E2E-VarNet ``SensitivityModel`` init).

    Keeps the fully sampled centre block of k-space (``num_low_frequencies`` central columns over the full
    readout when given and fully sampled, otherwise the block detected from ``mask`` / the non-zero
    k-space, e.g. after an SSDU split), transforms it to image space and divides each coil image by the RSS.

    Args:
        kspace: k-space ``(C, H, W, 2)`` (fully sampled or undersampled, any scale).
        num_low_frequencies: ACS columns (``0`` = detect).
        mask: bool ``(1, H, W, 1)`` or ``(H, W)`` sampling mask used for detection (``None``: non-zero
            k-space samples).
        eps: RSS floor below which maps are zero.

    Returns:
        maps ``(C, H, W, 2)`` float32, ``sum_c |S_c|^2 = 1`` where the low-resolution RSS exceeds ``eps``.

    Raises:
        ValueError: if the k-space has no ACS lines (centre not sampled).
    """
    if kspace.ndim != 4 or kspace.shape[-1] != 2:
        raise ValueError(f"kspace must be (C, H, W, 2), got shape {tuple(kspace.shape)}")
    _, h, w, _ = kspace.shape
    if mask is None:
        sampled = kspace.abs().sum(dim=(0, -1)) > 0
    else:
        sampled = torch.as_tensor(mask).reshape(h, w).to(torch.bool).cpu()
    n = min(int(num_low_frequencies), w) if num_low_frequencies and num_low_frequencies > 0 else 0
    block = (h, n)
    if n == 0 or not bool(sampled[:, acs_slice(w, n)].all()):  # unknown, or not fully sampled (SSDU split)
        block = acs_block(sampled.cpu())
    if block[0] == 0 or block[1] == 0:
        raise ValueError(
            "kspace has no ACS lines (k-space centre not sampled): pass num_low_frequencies or use ESPIRiT maps"
        )
    rows, cols = acs_slice(h, block[0]), acs_slice(w, block[1])
    low = torch.zeros_like(kspace)
    low[:, rows, cols] = kspace[:, rows, cols]
    return normalize_sens_maps(ifft2c(low), eps=eps)


def _upsample_images(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Band-limited (k-space zero-padding) upsampling of complex images ``(..., h, w)`` to ``(..., H, W)``."""
    small = images.shape[-2:]
    k_small = fft2c(to_tensor(np.ascontiguousarray(images.astype(np.complex64))))
    k_big = torch.zeros(images.shape[:-2] + tuple(shape) + (2,), dtype=k_small.dtype)
    rows, cols = _kspace_centre_slices(shape, small)
    k_big[..., rows, cols, :] = k_small
    scale = float(np.sqrt(shape[0] * shape[1] / (small[0] * small[1])))
    return to_complex_numpy(ifft2c(k_big)) * scale


def espirit_maps(
    kspace: torch.Tensor,
    calib_width: int = 24,
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
    calib_block: int | None = None,
) -> torch.Tensor:
    """ESPIRiT maps via ``sigpy.mri.app.EspiritCalib`` (ESPIRiT needs the full field of view).

    Args:
        kspace: k-space ``(C, H, W, 2)`` on the full-FOV grid (no readout crop before estimation).
        calib_width: ACS width (points per axis) ESPIRiT calibrates on.
        thresh: singular-value threshold, relative to the largest.
        kernel_width: ESPIRiT kernel size.
        crop: eigenvalue threshold in ``(0, 1)``; pixels below it (outside the object) get zero maps.
        max_iter: power iterations.
        calib_block: if given, run ESPIRiT on the central ``calib_block x calib_block`` k-space block and
            upsample the maps to ``(H, W)`` by k-space zero-padding (10-100x faster, smooth maps).

    Returns:
        maps ``(C, H, W, 2)`` float32, ``sum_c |S_c|^2 = 1`` inside the ESPIRiT support, zero outside.

    Raises:
        ImportError: if sigpy is not installed.
        ValueError: for a ``kspace`` that is not ``(C, H, W, 2)`` or a ``calib_block`` smaller than ``calib_width``.
    """
    try:
        from sigpy.mri.app import EspiritCalib
    except ImportError as err:  # pragma: no cover - sigpy is a declared dependency
        raise ImportError("ESPIRiT sensitivity maps need sigpy (pip install sigpy)") from err
    if kspace.ndim != 4 or kspace.shape[-1] != 2:
        raise ValueError(f"kspace must be (C, H, W, 2), got shape {tuple(kspace.shape)}")
    _, h, w, _ = kspace.shape
    ksp = to_complex_numpy(kspace)
    if calib_block is None:
        maps = EspiritCalib(
            ksp, calib_width, thresh, kernel_width, crop, max_iter, output_eigenvalue=False, show_pbar=False
        ).run()
        return normalize_sens_maps(to_tensor(np.asarray(maps, dtype=np.complex64)))
    if calib_block < calib_width:
        raise ValueError(f"calib_block ({calib_block}) must be >= calib_width ({calib_width})")
    block = (min(calib_block, h), min(calib_block, w))
    rows, cols = _kspace_centre_slices((h, w), block)
    small = EspiritCalib(
        np.ascontiguousarray(ksp[:, rows, cols]),
        min(calib_width, *block),
        thresh,
        kernel_width,
        crop,
        max_iter,
        output_eigenvalue=False,
        show_pbar=False,
    ).run()
    small = np.asarray(small, dtype=np.complex64)
    support = (np.abs(small) ** 2).sum(axis=0) > 0.5
    maps = _upsample_images(small, (h, w))
    support_big = _upsample_images(support.astype(np.complex64), (h, w)).real > 0.5
    maps = maps * support_big[None]
    return normalize_sens_maps(to_tensor(maps.astype(np.complex64)))

"""Coil-sensitivity estimation: low-resolution ACS maps (E2E-VarNet style) and ESPIRiT (sigpy).

Both return maps ``(C, H, W, 2)`` normalised so that ``sum_c |S_c|^2 = 1`` wherever they are non-zero.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.physics import complex_abs_sq, fft2c, ifft2c, rss, to_complex_numpy, to_tensor


def _run_length(line: np.ndarray, center: int) -> tuple[int, int]:
    """Contiguous True run ``[first, stop)`` of a 1-D bool array containing ``center`` (empty if False)."""
    if not line[center]:
        return center, center
    false_left = np.flatnonzero(~line[:center])
    false_right = np.flatnonzero(~line[center:])
    first = int(false_left[-1]) + 1 if false_left.size else 0
    stop = center + int(false_right[0]) if false_right.size else line.size
    return first, stop


def detect_acs(mask: np.ndarray) -> tuple[int, int]:
    """Size of the fully sampled centre block of a bool ``(H, W)`` mask.

    The block is the contiguous sampled run through the k-space centre ``(H // 2, W // 2)`` along the
    centre row (width) and along the centre column (height). For a 1-D column mask the height is ``H``;
    sampled columns adjacent to the ACS block count as ACS (pass ``num_low_frequencies`` when known).

    Args:
        mask: bool ``(H, W)``.

    Returns:
        ``(h_acs, w_acs)``, ``(0, 0)`` when the centre is not sampled.
    """
    h, w = mask.shape
    first_w, stop_w = _run_length(mask[h // 2], w // 2)
    first_h, stop_h = _run_length(mask[:, w // 2], h // 2)
    return stop_h - first_h, stop_w - first_w


def _block_slices(shape: tuple[int, int], block: tuple[int, int]) -> tuple[slice, slice]:
    """Slices of a centred block (first index ``N // 2 - b // 2``, so the centre stays at ``b // 2``)."""
    (h, w), (bh, bw) = shape, block
    return slice(h // 2 - bh // 2, h // 2 - bh // 2 + bh), slice(w // 2 - bw // 2, w // 2 - bw // 2 + bw)


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale maps ``(C, H, W, 2)`` so that ``sum_c |S_c|^2 = 1`` where they are non-zero (zero elsewhere)."""
    norm = torch.sqrt(complex_abs_sq(maps).sum(dim=0, keepdim=True)).unsqueeze(-1)  # (1, H, W, 1)
    return torch.where(norm > eps, maps / norm.clamp_min(eps), torch.zeros_like(maps))


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
        sampled = (kspace.abs().sum(dim=(0, -1)) > 0).cpu().numpy()
    else:
        sampled = np.asarray(torch.as_tensor(mask).reshape(h, w).cpu().numpy(), dtype=bool)
    block = (h, min(int(num_low_frequencies), w)) if num_low_frequencies and num_low_frequencies > 0 else (0, 0)
    rows, cols = _block_slices((h, w), block)
    if block[1] == 0 or not sampled[rows, cols].all():  # unknown, or not fully sampled (e.g. after an SSDU split)
        block = detect_acs(sampled)
    if block[0] == 0 or block[1] == 0:
        raise ValueError(
            "kspace has no ACS lines (k-space centre not sampled): pass num_low_frequencies or use ESPIRiT maps"
        )
    rows, cols = _block_slices((h, w), block)
    low = torch.zeros_like(kspace)
    low[:, rows, cols] = kspace[:, rows, cols]
    images = ifft2c(low)
    norm = rss(images).unsqueeze(0).unsqueeze(-1)  # (1, H, W, 1)
    return torch.where(norm > eps, images / norm.clamp_min(eps), torch.zeros_like(images))


def _upsample_images(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Band-limited (k-space zero-padding) upsampling of complex images ``(..., h, w)`` to ``(..., H, W)``."""
    small = images.shape[-2:]
    k_small = fft2c(to_tensor(np.ascontiguousarray(images.astype(np.complex64))))
    k_big = torch.zeros(images.shape[:-2] + tuple(shape) + (2,), dtype=k_small.dtype)
    rows, cols = _block_slices(shape, small)
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
        return normalize_maps(to_tensor(np.asarray(maps, dtype=np.complex64)))
    if calib_block < calib_width:
        raise ValueError(f"calib_block ({calib_block}) must be >= calib_width ({calib_width})")
    block = (min(calib_block, h), min(calib_block, w))
    rows, cols = _block_slices((h, w), block)
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
    return normalize_maps(to_tensor(maps.astype(np.complex64)))

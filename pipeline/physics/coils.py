"""Coil combination and image-grid helpers for ``(..., C, H, W, 2)`` tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.physics.complex import complex_conj, complex_mul


def rss(coil_images: torch.Tensor, coil_dim: int = -4) -> torch.Tensor:
    """Root-sum-of-squares magnitude: ``(..., C, H, W, 2) -> (..., H, W)`` (fastMRI's ``rss_complex``).

    Computed as a vector norm over (coils, real/imag), which has a zero (not NaN) gradient at an all-zero pixel.
    """
    return torch.linalg.vector_norm(coil_images, ord=2, dim=(coil_dim, -1))


def sense_reduce(coil_images: torch.Tensor, sens_maps: torch.Tensor) -> torch.Tensor:
    """SENSE combination ``sum_c conj(S_c) x_c``: ``(..., C, H, W, 2) -> (..., H, W, 2)``."""
    return complex_mul(coil_images, complex_conj(sens_maps)).sum(dim=-4)


def sense_expand(image: torch.Tensor, sens_maps: torch.Tensor) -> torch.Tensor:
    """Coil images ``S_c x``: image ``(..., H, W, 2)`` and maps ``(..., C, H, W, 2)`` -> ``(..., C, H, W, 2)``."""
    return complex_mul(image.unsqueeze(-4), sens_maps)


def center_crop(x: torch.Tensor, size: Sequence[int], spatial_dims: tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """Centre-crop the two ``spatial_dims`` of ``x`` to ``size = (h, w)`` (fastMRI's ``center_crop``).

    Raises:
        ValueError: if ``size`` is larger than the array along either axis.
    """
    h, w = int(size[0]), int(size[1])
    dh, dw = spatial_dims
    H, W = x.shape[dh], x.shape[dw]
    if h > H or w > W:
        raise ValueError(f"crop size {(h, w)} is larger than the image {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x.narrow(dh, top, h).narrow(dw, left, w)


def complex_center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre-crop ``(..., H, W, 2)`` to ``(..., h, w, 2)``."""
    return center_crop(x, size, spatial_dims=(-3, -2))

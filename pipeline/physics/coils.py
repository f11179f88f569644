"""Coil combination and image-grid helpers for ``(..., C, H, W, 2)`` tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.physics.complex import complex_conj_mul, complex_mul
from pipeline.physics.fft import ifft2c


def rss(coil_images: torch.Tensor, coil_dim: int = -4) -> torch.Tensor:
    """Root-sum-of-squares magnitude: ``(..., C, H, W, 2) -> (..., H, W)`` (fastMRI's ``rss_complex``).

    Computed as a vector norm over (coils, real/imag), which has a zero (not NaN) gradient at an all-zero pixel.
    """
    return torch.linalg.vector_norm(coil_images, ord=2, dim=(coil_dim, -1))


def normalize_sens_maps(sens_maps: torch.Tensor, coil_dim: int = -4, eps: float = 1e-12) -> torch.Tensor:
    """Scale coil sensitivities so that ``sum_c |S_c|^2 = 1`` wherever their RSS exceeds ``eps`` (zero elsewhere).

    The maps are divided by their RSS over coils as complex numbers (fastMRI convention). The division
    is masked, not floored, so maps and gradients stay finite for all-zero input (blank slices).

    Args:
        sens_maps: ``(..., C, H, W, 2)``.
        coil_dim: the coil axis.
        eps: RSS below which a pixel's maps are set to zero.

    Returns:
        Maps of the same shape and dtype.
    """
    norm = torch.linalg.vector_norm(sens_maps, ord=2, dim=[coil_dim, -1], keepdim=True)
    inside = norm > eps
    safe_norm = torch.where(inside, norm, torch.ones_like(norm))
    return torch.where(inside, sens_maps / safe_norm, torch.zeros_like(sens_maps))


def sense_reduce(coil_images: torch.Tensor, sens_maps: torch.Tensor) -> torch.Tensor:
    """SENSE combination ``sum_c conj(S_c) x_c``: ``(..., C, H, W, 2) -> (..., H, W, 2)``."""
    return complex_conj_mul(coil_images, sens_maps).sum(dim=-4)


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


def rss_image(kspace: torch.Tensor, recon_size: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """The image a reference is made of: RSS of the centred inverse FFT, centre-cropped to ``recon_size``.

    This is fastMRI's ``reconstruction_rss`` for fully sampled k-space and the zero-filled image for
    masked k-space: ``(..., C, H, W, 2) -> (..., Hr, Wr)`` in k-space units.

    Args:
        kspace: multi-coil k-space ``(..., C, H, W, 2)``.
        recon_size: ``(Hr, Wr)``, clipped to ``(H, W)`` (narrow fastMRI brain files); ``None`` = no crop.

    Example:
        >>> rss_image(torch.zeros(3, 16, 12, 2), (8, 20)).shape
        torch.Size([8, 12])
    """
    image = rss(ifft2c(kspace))
    if recon_size is None:
        return image
    h, w = (int(v) for v in torch.as_tensor(recon_size).reshape(-1)[:2].tolist())
    return center_crop(image, (min(h, image.shape[-2]), min(w, image.shape[-1])))

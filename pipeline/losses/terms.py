"""Loss terms of the JSSL loss mix (image domain and k-space domain), each averaged over the batch.

Image terms take magnitude images ``(B, 1, H, W)``; k-space terms take ``(B, C, H, W, 2)`` k-space and an
optional 0/1 mask ``(B, 1, H, W, 1)`` (or anything broadcastable) restricting the sums. Every term is 0 for
identical inputs and non-negative.

Normalised terms (SSIM, HFEN, k-space NMSE/NMAE) are undefined for a blank reference (zero data range,
zero energy): such a sample contributes 0 to the term, with a zero gradient. The division is masked, not
floored, so a blank or padded slice can never turn a tiny denominator into an overflowing gradient.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.physics.complex import complex_abs_sq

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
HFEN_KERNEL_SIZE = 15
HFEN_SIGMA = 2.5  # pixels
# Normalising denominators and SSIM data ranges at or below this are "blank": that sample is left out.
EPS = 1e-12


def _masked_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` per sample ``(B,)``, 0 (with zero gradient) where ``denominator <= EPS``."""
    valid = denominator > EPS
    return torch.where(valid, numerator / torch.where(valid, denominator, torch.ones_like(denominator)), 0.0)


def l1_image_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of two images ``(B, 1, H, W)`` (image units)."""
    return F.l1_loss(pred, target)


def ssim_loss(pred: Tensor, target: Tensor, data_range: Tensor) -> Tensor:
    """``1 - SSIM`` with fastMRI's definition (= scikit-image ``structural_similarity`` defaults).

    7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample (unbiased) covariances, SSIM map over the
    valid window positions only, averaged per image and then over the batch.

    Args:
        pred: predicted magnitude images ``(B, 1, H, W)``, ``H, W >= 7``.
        target: reference magnitude images ``(B, 1, H, W)``.
        data_range: per-image data range ``(B,)`` (fastMRI: the target volume's maximum); an image whose
            data range is ``<= 1e-12`` (blank) contributes 0.

    Returns:
        Scalar loss in ``[0, 2]`` (mean over the batch), 0 for identical images.
    """
    n = SSIM_WIN_SIZE
    window = torch.full((1, 1, n, n), 1.0 / n**2, dtype=pred.dtype, device=pred.device)
    cov_norm = n**2 / (n**2 - 1)
    # SSIM is invariant to scaling images and data range together: work in units of the data range, so
    # that C1 = K1^2 and C2 = K2^2 cannot underflow.
    data_range = data_range.to(pred).reshape(-1)
    valid = data_range > EPS
    scale = torch.where(valid, data_range, torch.ones_like(data_range)).view(-1, 1, 1, 1)
    pred, target = pred / scale, target / scale
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    b, _, h, w = pred.shape
    moments = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)  # (B, 5, H, W)
    stats = F.conv2d(moments.view(b * 5, 1, h, w), window).view(b, 5, h - n + 1, w - n + 1)
    ux, uy, uxx, uyy, uxy = stats.unbind(dim=1)  # (B, H - 6, W - 6) each
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    # luminance and contrast-structure factors divided separately: no overflow of their products
    ssim_map = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1) * ((2 * vxy + c2) / (vx + vy + c2))
    per_image = 1.0 - ssim_map.flatten(1).mean(dim=1)  # (B,)
    return torch.where(valid, per_image, 0.0).mean()


def laplacian_of_gaussian_kernel(size: int = HFEN_KERNEL_SIZE, sigma: float = HFEN_SIGMA) -> Tensor:
    """Zero-sum Laplacian-of-Gaussian kernel ``(1, 1, size, size)`` (float32), ``sigma`` in pixels."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    r2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    kernel = -(1 - r2 / (2 * sigma**2)) * torch.exp(-r2 / (2 * sigma**2)) / (math.pi * sigma**4)
    kernel = kernel - kernel.mean()  # flat regions respond with exactly 0
    return kernel.to(torch.float32).view(1, 1, size, size)


def hfen_loss(pred: Tensor, target: Tensor, p: int) -> Tensor:
    """Normalised high-frequency error norm: ``||LoG(pred) - LoG(target)||_p / ||LoG(target)||_p``.

    LoG: 15x15 Laplacian of Gaussian, sigma 2.5 pixels, zero padding. The ratio is taken per image (0 for
    a flat reference) and averaged over the batch.

    Args:
        pred: predicted magnitude images ``(B, 1, H, W)``.
        target: reference magnitude images ``(B, 1, H, W)``.
        p: 1 (HFEN-L1) or 2 (HFEN-L2).

    Returns:
        Scalar loss >= 0 (dimensionless).
    """
    kernel = laplacian_of_gaussian_kernel().to(pred)
    b, _, h, w = pred.shape
    both = torch.cat([pred, target], dim=1).view(b * 2, 1, h, w)
    filtered = F.conv2d(both, kernel, padding=HFEN_KERNEL_SIZE // 2).view(b, 2, h * w)
    log_pred, log_target = filtered.unbind(dim=1)  # (B, H * W) each
    error = torch.linalg.vector_norm(log_pred - log_target, ord=p, dim=1)
    norm = torch.linalg.vector_norm(log_target, ord=p, dim=1)
    return _masked_ratio(error, norm).mean()


def kspace_nmse(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Normalised squared k-space error ``sum_M |pred - target|^2 / sum_M |target|^2`` per sample, batch mean.

    Args:
        pred: predicted k-space ``(B, C, H, W, 2)``.
        target: reference k-space ``(B, C, H, W, 2)``.
        mask: 0/1 mask ``(B, 1, H, W, 1)`` (or broadcastable) restricting both sums; ``None`` = everywhere.

    Returns:
        Scalar loss >= 0 (dimensionless).
    """
    diff, ref = complex_abs_sq(pred - target), complex_abs_sq(target)  # (B, C, H, W)
    if mask is not None:
        weight = mask.to(pred).squeeze(-1)  # (B, 1, H, W)
        diff, ref = diff * weight, ref * weight
    return _masked_ratio(diff.flatten(1).sum(1), ref.flatten(1).sum(1)).mean()


def kspace_nmae(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Normalised absolute k-space error ``sum_M |pred - target| / sum_M |target|`` per sample, batch mean.

    ``|.|`` is the complex magnitude (``vector_norm`` over (real, imag): exactly 0 with a zero gradient for
    identical inputs). Arguments as for :func:`kspace_nmse`.

    Returns:
        Scalar loss >= 0 (dimensionless).
    """
    diff = torch.linalg.vector_norm(pred - target, dim=-1)  # (B, C, H, W)
    ref = torch.linalg.vector_norm(target, dim=-1)
    if mask is not None:
        weight = mask.to(pred).squeeze(-1)  # (B, 1, H, W)
        diff, ref = diff * weight, ref * weight
    return _masked_ratio(diff.flatten(1).sum(1), ref.flatten(1).sum(1)).mean()

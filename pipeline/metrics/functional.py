"""NMSE, PSNR and SSIM with exactly fastMRI ``evaluate.py``'s definitions, on numpy and torch volumes.

For a volume ``gt``/``pred`` ``(slices, H, W)`` (magnitude images, same units) and ``maxval`` = the
reference volume maximum (``gt.max()`` when not given):

- ``NMSE = ||gt - pred||^2 / ||gt||^2``;
- ``PSNR = 20 log10(maxval) - 10 log10(mean((gt - pred)^2))`` (dB);
- ``SSIM`` = mean over slices of skimage's ``structural_similarity(gt_s, pred_s, data_range=maxval)``:
  7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariance (``N / (N - 1)``), averaged over
  the pixels at least 3 from the border.

Computation is in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: The fastMRI metrics, in report order: the keys of every metrics dict of the package.
METRIC_NAMES = ("nmse", "psnr", "ssim")
WIN_SIZE = 7
K1 = 0.01
K2 = 0.03


def _check_volumes(gt, pred) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred must have the same shape, got {tuple(gt.shape)} and {tuple(pred.shape)}")
    if gt.ndim != 3:
        raise ValueError(f"volumes must be (slices, H, W), got shape {tuple(gt.shape)}")
    if min(gt.shape[-2:]) < WIN_SIZE:
        raise ValueError(f"images must be at least {WIN_SIZE}x{WIN_SIZE} for SSIM, got {tuple(gt.shape[-2:])}")


def _maxval(gt, maxval: float | None) -> float:
    value = float(gt.max()) if maxval is None else float(maxval)
    if not value > 0:
        raise ValueError(f"maxval (data range) must be > 0, got {value}")
    return value


def nmse(gt: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor) -> float:
    """Normalised MSE ``||gt - pred||^2 / ||gt||^2`` of two arrays of equal shape (any shape)."""
    gt64, pred64 = _to_float64(gt), _to_float64(pred)
    if gt64.shape != pred64.shape:
        raise ValueError(f"gt and pred must have the same shape, got {tuple(gt64.shape)} and {tuple(pred64.shape)}")
    return float(((gt64 - pred64) ** 2).sum() / (gt64**2).sum())


def psnr(gt: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor, maxval: float | None = None) -> float:
    """PSNR in dB with ``data_range = maxval`` (default ``gt.max()``), any shape."""
    gt64, pred64 = _to_float64(gt), _to_float64(pred)
    if gt64.shape != pred64.shape:
        raise ValueError(f"gt and pred must have the same shape, got {tuple(gt64.shape)} and {tuple(pred64.shape)}")
    mse = float(((gt64 - pred64) ** 2).mean())
    return float(20 * np.log10(_maxval(gt64, maxval)) - 10 * np.log10(mse)) if mse > 0 else float("inf")


def ssim_slices(gt: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor, maxval: float) -> torch.Tensor:
    """Per-slice SSIM ``(slices,)`` float64 of volumes ``(slices, H, W)`` with data range ``maxval``."""
    gt64, pred64 = _to_float64(gt), _to_float64(pred)
    _check_volumes(gt64, pred64)
    x, y = gt64.unsqueeze(1), pred64.unsqueeze(1)  # (S, 1, H, W)
    n = WIN_SIZE**2
    # 7x7 uniform means over the valid region (= skimage's uniform_filter output with the border cropped)
    stats = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), WIN_SIZE, stride=1)  # (S, 5, H-6, W-6)
    ux, uy, uxx, uyy, uxy = stats.unbind(dim=1)
    cov_norm = n / (n - 1)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * maxval) ** 2, (K2 * maxval) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1))


def ssim(gt: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor, maxval: float | None = None) -> float:
    """Volume SSIM: mean over slices of the fastMRI/skimage SSIM, data range ``maxval`` (default ``gt.max()``).

    Args:
        gt: reference volume ``(slices, H, W)``.
        pred: reconstruction ``(slices, H, W)``.
        maxval: data range (the reference volume maximum).
    """
    gt64 = _to_float64(gt)
    return float(ssim_slices(gt64, pred, _maxval(gt64, maxval)).mean())


def volume_metrics(
    gt: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor, maxval: float | None = None
) -> dict[str, float]:
    """``{"nmse", "psnr", "ssim"}`` of one volume ``(slices, H, W)`` (fastMRI ``evaluate.py``)."""
    values = {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred, maxval), "ssim": ssim(gt, pred, maxval)}
    return {name: values[name] for name in METRIC_NAMES}


def _to_float64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.from_numpy(np.asarray(x, dtype=np.float64))

"""Realistic-looking magnitude volumes for the metric tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import ndimage


def _make_volume(slices: int, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Realistic-looking magnitude volume (smooth anatomy, texture, Rician-like noise) and a degraded copy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    r = np.hypot((y - h / 2) / (0.45 * h), (x - w / 2) / (0.4 * w))
    gt = []
    for s in range(slices):
        texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), 2.0)
        body = (r < 1 - 0.02 * s) * (1 + 0.5 * texture) + 0.3 * (r < 0.4)
        gt.append(np.abs(body + 0.02 * rng.standard_normal((h, w)) + 0.02j * rng.standard_normal((h, w))))
    gt = (np.stack(gt) * 3e-4).astype(np.float32)
    pred = ndimage.gaussian_filter(gt, (0, 1.0, 1.0)) + 1e-5 * rng.standard_normal(gt.shape).astype(np.float32)
    return gt, pred.astype(np.float32)



@pytest.fixture
def make_volume() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Factory ``make_volume(slices, H, W, seed)`` -> ``(gt, pred)`` float32 ``(slices, H, W)``."""
    return _make_volume

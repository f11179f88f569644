"""Synthetic multi-coil data with known coil maps for the transform tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from pipeline.physics import fft2c, to_tensor


def make_phantom(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth complex phantom ``(H, W)`` complex64 and its support (bool ``(H, W)``)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    yy = (y - height // 2) / (0.42 * height)
    xx = (x - width // 2) / (0.38 * width)
    r = np.sqrt(yy**2 + xx**2)
    body = 1.0 / (1.0 + np.exp((r - 1.0) / 0.03))
    texture = 1.0 + 0.3 * np.sin(2 * np.pi * 3 * xx + rng.uniform(0, 6)) * np.cos(2 * np.pi * 2 * yy)
    phase = 0.8 * xx + 0.5 * yy**2 + rng.uniform(-np.pi, np.pi)
    image = (body * texture * np.exp(1j * phase)).astype(np.complex64)
    return image, r < 0.9


def make_maps(coils: int, height: int, width: int) -> np.ndarray:
    """Birdcage coil maps ``(C, H, W)`` complex64 normalised to ``sum_c |S_c|^2 = 1``."""
    import sigpy.mri

    maps = sigpy.mri.birdcage_maps((coils, height, width), r=1.5).astype(np.complex64)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))


@pytest.fixture
def simulate() -> Callable[..., dict]:
    """Factory: ``simulate(coils, H, W, seed)`` -> dict(image, maps, support, kspace (C, H, W, 2) float32)."""

    def _simulate(coils: int = 6, height: int = 64, width: int = 57, seed: int = 0) -> dict:
        image, support = make_phantom(height, width, seed)
        maps = make_maps(coils, height, width)
        kspace = fft2c(to_tensor(maps * image[None]))
        return {"image": image, "maps": maps, "support": support, "kspace": kspace.to(torch.float32)}

    return _simulate

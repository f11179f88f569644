"""Classical reconstructions for comparison: zero-filled RSS, CG-SENSE and L1-wavelet compressed sensing.

All functions take ONE slice: measured k-space ``(C, H, W, 2)`` (zeros outside the mask), its mask
``(1, H, W, 1)`` and the recon size ``(Hr, Wr)``, and return the centre-cropped magnitude ``(Hr, Wr)`` in
the units of the input. CG-SENSE and L1-wavelet use ESPIRiT maps and sigpy (imported lazily).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline.physics import center_crop, ifft2c, rss, to_complex_numpy


def _sigpy():
    try:
        import sigpy
        import sigpy.mri
    except ImportError as err:  # pragma: no cover - sigpy is in requirements.txt
        raise ImportError("CG-SENSE and compressed-sensing baselines need sigpy: pip install sigpy") from err
    return sigpy


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int]) -> torch.Tensor:
    """RSS of the inverse FFT of the masked k-space, centre-cropped: ``(C,H,W,2) -> (Hr, Wr)``."""
    return center_crop(rss(ifft2c(kspace * mask)), recon_size)


def _prepare(kspace: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """Complex k-space ``(C,H,W)`` scaled to unit zero-filled maximum, the mask ``(H,W)`` and that scale."""
    masked = kspace * mask
    scale = float(rss(ifft2c(masked)).max())
    scale = scale if scale > 0 else 1.0
    ksp = to_complex_numpy(masked / scale).astype(np.complex64)
    weights = mask.to(torch.float32).reshape(mask.shape[-3], mask.shape[-2]).numpy()
    return ksp, weights, scale


def espirit_maps(ksp: np.ndarray, calib_width: int = 24, thresh: float = 0.02, crop: float = 0.95) -> np.ndarray:
    """ESPIRiT sensitivity maps ``(C, H, W)`` complex from full-FOV k-space ``(C, H, W)`` (sigpy)."""
    sp = _sigpy()
    return sp.mri.app.EspiritCalib(ksp, calib_width=calib_width, thresh=thresh, crop=crop, show_pbar=False).run()


def cg_sense(
    kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int], max_iter: int = 30, lamda: float = 1e-3
) -> torch.Tensor:
    """CG-SENSE (Tikhonov ``lamda``, ``max_iter`` CG iterations) with ESPIRiT maps; ``(Hr, Wr)`` magnitude."""
    sp = _sigpy()
    ksp, weights, scale = _prepare(kspace, mask)
    maps = espirit_maps(ksp)
    image = sp.mri.app.SenseRecon(ksp, maps, lamda=lamda, weights=weights, max_iter=max_iter, show_pbar=False).run()
    return center_crop(torch.from_numpy(np.abs(image)).float() * scale, recon_size)


def l1_wavelet(
    kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int], max_iter: int = 100, lamda: float = 2e-3
) -> torch.Tensor:
    """L1-wavelet compressed sensing (``max_iter`` iterations, weight ``lamda`` on unit-scaled data); ``(Hr, Wr)``."""
    sp = _sigpy()
    ksp, weights, scale = _prepare(kspace, mask)
    maps = espirit_maps(ksp)
    image = sp.mri.app.L1WaveletRecon(
        ksp, maps, lamda=lamda, weights=weights, max_iter=max_iter, show_pbar=False
    ).run()
    return center_crop(torch.from_numpy(np.abs(image)).float() * scale, recon_size)


#: Name -> per-slice baseline, as used by evaluators and benchmarks.
BASELINES: dict[str, Callable[..., torch.Tensor]] = {
    "zero_filled": zero_filled,
    "sense": cg_sense,
    "compressed_sensing": l1_wavelet,
}

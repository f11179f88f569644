"""Classical reconstructions for comparison: zero-filled RSS, CG-SENSE and L1-wavelet compressed sensing.

All functions take ONE slice: measured k-space ``(C, H, W, 2)`` (zeros outside the mask), its mask
``(1, H, W, 1)`` and the recon size ``(Hr, Wr)``, and return the centre-cropped magnitude ``(Hr, Wr)`` in
the units of the input. CG-SENSE and L1-wavelet run in sigpy (imported lazily) with sensitivity maps
estimated from the ACS block, normalised to ``sum_c |S_c|^2 = 1`` (so their magnitude is comparable to
RSS). ESPIRiT is not used here: with 1-D masks its square calibration region would include undersampled
columns unless the ACS is wide, and it costs seconds per slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline.physics import center_crop, rss_image, to_complex_numpy
from pipeline.transforms.sensitivity import acs_sensitivity_maps


def _sigpy():
    try:
        import sigpy
        import sigpy.mri
    except ImportError as err:  # pragma: no cover - sigpy is in requirements.txt
        raise ImportError("CG-SENSE and compressed-sensing baselines need sigpy: pip install sigpy") from err
    return sigpy


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int]) -> torch.Tensor:
    """RSS of the inverse FFT of the masked k-space, centre-cropped: ``(C,H,W,2) -> (Hr, Wr)``."""
    return rss_image(kspace * mask, recon_size)


def _prepare(kspace: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Complex k-space ``(C,H,W)`` scaled to unit zero-filled maximum, ACS maps ``(C,H,W)``, mask ``(H,W)``, scale."""
    masked = kspace * mask
    scale = float(rss_image(masked).max())
    scale = scale if scale > 0 else 1.0
    ksp = to_complex_numpy(masked / scale).astype(np.complex64)
    maps = to_complex_numpy(acs_sensitivity_maps(masked, mask=mask)).astype(np.complex64)
    weights = mask.to(torch.float32).reshape(mask.shape[-3], mask.shape[-2]).numpy()
    return ksp, maps, weights, scale


def cg_sense(
    kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int], max_iter: int = 30, lamda: float = 5e-2
) -> torch.Tensor:
    """CG-SENSE (Tikhonov ``lamda``, ``max_iter`` CG iterations); ``(Hr, Wr)`` magnitude."""
    sp = _sigpy()
    ksp, maps, weights, scale = _prepare(kspace, mask)
    image = sp.mri.app.SenseRecon(ksp, maps, lamda=lamda, weights=weights, max_iter=max_iter, show_pbar=False).run()
    return center_crop(torch.from_numpy(np.abs(image)).float() * scale, recon_size)


def l1_wavelet(
    kspace: torch.Tensor, mask: torch.Tensor, recon_size: Sequence[int], max_iter: int = 100, lamda: float = 5e-3
) -> torch.Tensor:
    """L1-wavelet compressed sensing (``max_iter`` iterations, weight ``lamda`` on unit-scaled data); ``(Hr, Wr)``."""
    sp = _sigpy()
    ksp, maps, weights, scale = _prepare(kspace, mask)
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

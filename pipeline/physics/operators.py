"""The multi-coil MRI forward operator ``A = M F S`` and its adjoint ``A^H = S^H F^H M``.

``S`` multiplies an image by each coil sensitivity, ``F`` is the centred orthonormal 2-D FFT
(:func:`pipeline.physics.fft2c`) and ``M`` zeroes unsampled k-space points (no ``M`` when ``mask`` is
``None``). The functions hold no state and are TorchScript-compatible, so every network, data-consistency
step and loss of the package applies the same operator.

Shapes: image ``(..., H, W, 2)``, sensitivity maps and k-space ``(..., C, H, W, 2)``, mask
``(..., 1, H, W, 1)`` (bool or 0/1 float) broadcast against the k-space.
"""

from __future__ import annotations

from typing import Optional

import torch

from pipeline.physics.coils import sense_expand, sense_reduce
from pipeline.physics.fft import fft2c, ifft2c


def forward_operator(image: torch.Tensor, sens_maps: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``A x = M F S x``: image ``(..., H, W, 2)`` -> multi-coil k-space ``(..., C, H, W, 2)``.

    Example:
        >>> x, s = torch.randn(1, 8, 6, 2), torch.randn(1, 3, 8, 6, 2)
        >>> m = torch.ones(1, 1, 8, 6, 1, dtype=torch.bool)
        >>> adjoint_operator(forward_operator(x, s, m), s, m).shape
        torch.Size([1, 8, 6, 2])
    """
    kspace = fft2c(sense_expand(image, sens_maps))
    return kspace if mask is None else kspace * mask.to(kspace.dtype)


def adjoint_operator(
    kspace: torch.Tensor, sens_maps: torch.Tensor, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``A^H y = S^H F^H M y``: multi-coil k-space ``(..., C, H, W, 2)`` -> image ``(..., H, W, 2)``."""
    if mask is not None:
        kspace = kspace * mask.to(kspace.dtype)
    return sense_reduce(ifft2c(kspace), sens_maps)

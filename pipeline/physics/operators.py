"""The masked multi-coil MRI forward operator ``A = M F S`` and its adjoint ``A^H = S^H F^H M``.

``S`` multiplies an image by each coil sensitivity, ``F`` is the centred orthonormal 2-D FFT
(:func:`pipeline.physics.fft2c`) and ``M`` zeroes unsampled k-space points. The operator holds no state:
the maps and the mask are call arguments, so one instance serves every sample and every cascade.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.physics.coils import sense_expand, sense_reduce
from pipeline.physics.fft import fft2c, ifft2c


class MultiCoilOperator(nn.Module):
    """Stateless ``A = M F S`` (``forward``) and ``A^H = S^H F^H M`` (``adjoint``).

    Shapes: image ``(B, H, W, 2)``, sensitivity maps ``(B, C, H, W, 2)``, mask ``(B, 1, H, W, 1)`` (bool or
    0/1 float), k-space ``(B, C, H, W, 2)``. Any leading batch shape works as long as it broadcasts.

    Example:
        >>> op = MultiCoilOperator()
        >>> x, s = torch.randn(1, 8, 6, 2), torch.randn(1, 3, 8, 6, 2); m = torch.ones(1, 1, 8, 6, 1, dtype=torch.bool)
        >>> op.adjoint(op(x, s, m), s, m).shape
        torch.Size([1, 8, 6, 2])
    """

    def forward(self, image: torch.Tensor, sens_maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Image ``(B, H, W, 2)`` -> masked multi-coil k-space ``(B, C, H, W, 2)``."""
        return fft2c(sense_expand(image, sens_maps)) * mask.to(image.dtype)

    def adjoint(self, kspace: torch.Tensor, sens_maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Multi-coil k-space ``(B, C, H, W, 2)`` -> image ``(B, H, W, 2)`` (masked, inverse FFT, SENSE-reduced)."""
        return sense_reduce(ifft2c(kspace * mask.to(kspace.dtype)), sens_maps)

    def normal(self, image: torch.Tensor, sens_maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for an image ``(B, H, W, 2)`` (the mask is idempotent, so it is applied once)."""
        return self.adjoint(self.forward(image, sens_maps, mask), sens_maps, torch.ones_like(mask))

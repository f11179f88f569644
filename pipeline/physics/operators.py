"""The multi-coil MRI forward operator ``A = M F S``, its adjoint ``A^H = S^H F^H M`` and normal operator ``A^H A``.

``S`` multiplies an image by each coil sensitivity, ``F`` is the centred orthonormal 2-D FFT
(:func:`pipeline.physics.fft2c`) and ``M`` zeroes unsampled k-space points (no ``M`` when ``mask`` is
``None``). The functions hold no state; :class:`NormalOperator` holds only the shifted maps and mask it was
built with, for repeated use within one forward pass. All are TorchScript-compatible, so every network,
data-consistency step and loss of the package applies the same operator.

Shapes: image ``(..., H, W, 2)``, sensitivity maps and k-space ``(..., C, H, W, 2)``, mask
``(..., 1, H, W, 1)`` (bool or 0/1 float) broadcast against the k-space.
"""

from __future__ import annotations

from typing import List, Optional

import torch

from pipeline.physics.coils import sense_expand, sense_reduce
from pipeline.physics.complex import as_complex
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


class NormalOperator:
    """The normal operator ``A^H A x = S^H F^H M F S x``, prepared once for many applications.

    Gradient-descent data consistency (vSHARP) applies it ``num_steps * num_steps_dc_gd`` times with the same
    maps and mask. It is the same maths as ``adjoint_operator(forward_operator(x, S, M), S)`` (equal to float
    rounding), in fewer passes over the multi-coil data:

    - the FFT shifts between ``F`` and ``F^H`` cancel (``ifftshift . fftshift = id``), so only the image is
      shifted per application; the maps and the mask are shifted once, here;
    - for column masks ``(..., 1, 1, W, 1)`` (1-D Cartesian sampling) ``M`` acts along ``W`` only, and the 2-D
      FFT is separable, so ``F^H M F = F_W^H M F_W``: 1-D FFTs along ``W`` instead of 2-D ones;
    - the complex products are native complex64 / complex128 kernels.

    Example:
        >>> x, s = torch.randn(1, 8, 6, 2), torch.randn(1, 3, 8, 6, 2)
        >>> m = (torch.rand(1, 1, 1, 6, 1) < 0.5).float()
        >>> torch.allclose(NormalOperator(s, m).apply(x), adjoint_operator(forward_operator(x, s, m), s), atol=1e-5)
        True
    """

    def __init__(self, sens_maps: torch.Tensor, mask: torch.Tensor) -> None:
        """Prepare the operator.

        Args:
            sens_maps: ``(..., C, H, W, 2)``, float32 or float64.
            mask: ``(..., 1, H, W, 1)`` or column mask ``(..., 1, 1, W, 1)``, bool or 0/1 float.
        """
        self.column_mask: bool = mask.shape[-3] == 1
        dims: List[int] = [-1] if self.column_mask else [-2, -1]
        self.dims = dims
        self.shifted_maps = torch.fft.ifftshift(as_complex(sens_maps), dim=dims)  # (..., C, H, W), complex
        self.shifted_mask = torch.fft.ifftshift(mask[..., 0].to(sens_maps.dtype), dim=dims)  # (..., 1, H|1, W)

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """``A^H A x``: image ``(..., H, W, 2)`` -> image ``(..., H, W, 2)``."""
        coil_images = self.shifted_maps * torch.fft.ifftshift(as_complex(image), dim=self.dims).unsqueeze(-3)
        if self.column_mask:
            kspace = torch.fft.fft(coil_images, dim=-1, norm="ortho") * self.shifted_mask
            coil_images = torch.fft.ifft(kspace, dim=-1, norm="ortho")
        else:
            kspace = torch.fft.fft2(coil_images, dim=(-2, -1), norm="ortho") * self.shifted_mask
            coil_images = torch.fft.ifft2(kspace, dim=(-2, -1), norm="ortho")
        combined = (coil_images * self.shifted_maps.conj()).sum(dim=-3)  # (..., H, W), complex
        return torch.view_as_real(torch.fft.fftshift(combined, dim=self.dims))

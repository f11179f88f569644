"""Centred, orthonormal 2-D FFTs over the two spatial axes ``(H, W)`` of ``(..., H, W, 2)`` tensors.

``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))``: the zero frequency sits at index ``N // 2``,
as in fastMRI files, and Parseval holds (``||fft2c(x)|| == ||x||``).
"""

from __future__ import annotations

import torch


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Image ``(..., H, W, 2)`` -> k-space ``(..., H, W, 2)``, centred and orthonormal."""
    x = torch.view_as_complex(image.contiguous())
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.fft2(x, dim=(-2, -1), norm="ortho")
    x = torch.fft.fftshift(x, dim=(-2, -1))
    return torch.view_as_real(x)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """K-space ``(..., H, W, 2)`` -> image ``(..., H, W, 2)``, centred and orthonormal (inverse of :func:`fft2c`)."""
    x = torch.view_as_complex(kspace.contiguous())
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.ifft2(x, dim=(-2, -1), norm="ortho")
    x = torch.fft.fftshift(x, dim=(-2, -1))
    return torch.view_as_real(x)

"""Centred, orthonormal 2-D FFTs over the two spatial axes ``(H, W)`` of ``(..., H, W, 2)`` tensors.

``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))``: the zero frequency sits at index ``N // 2``,
as in fastMRI files, and Parseval holds (``||fft2c(x)|| == ||x||``).

Operators that chain ``fft2c`` and ``ifft2c`` (unrolled networks) may instead shift their data once with
:func:`ifftshift2`, use the uncentred :func:`fft2_uncentred` / :func:`ifft2_uncentred` in between, and shift
back with :func:`fftshift2`: the shifts between consecutive transforms cancel, the maths is the same.
"""

from __future__ import annotations

import torch

from pipeline.physics.complex import as_complex


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Image ``(..., H, W, 2)`` -> k-space ``(..., H, W, 2)``, centred and orthonormal."""
    x = as_complex(image)
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.fft2(x, dim=(-2, -1), norm="ortho")
    x = torch.fft.fftshift(x, dim=(-2, -1))
    return torch.view_as_real(x)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """K-space ``(..., H, W, 2)`` -> image ``(..., H, W, 2)``, centred and orthonormal (inverse of :func:`fft2c`)."""
    x = as_complex(kspace)
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.ifft2(x, dim=(-2, -1), norm="ortho")
    x = torch.fft.fftshift(x, dim=(-2, -1))
    return torch.view_as_real(x)


def fft2_uncentred(image: torch.Tensor) -> torch.Tensor:
    """Uncentred orthonormal 2-D FFT ``(..., H, W, 2) -> (..., H, W, 2)``.

    ``fft2c(x) == fftshift2(fft2_uncentred(ifftshift2(x)))``.
    """
    return torch.view_as_real(torch.fft.fft2(as_complex(image), norm="ortho"))


def ifft2_uncentred(kspace: torch.Tensor) -> torch.Tensor:
    """Uncentred orthonormal inverse 2-D FFT ``(..., H, W, 2) -> (..., H, W, 2)``, inverse of :func:`fft2_uncentred`."""
    return torch.view_as_real(torch.fft.ifft2(as_complex(kspace), norm="ortho"))


def ifftshift2(x: torch.Tensor) -> torch.Tensor:
    """``ifftshift`` over the spatial axes ``(H, W)`` of ``(..., H, W, 2)``: centred -> uncentred."""
    return torch.fft.ifftshift(x, dim=(-3, -2))


def fftshift2(x: torch.Tensor) -> torch.Tensor:
    """``fftshift`` over the spatial axes ``(H, W)`` of ``(..., H, W, 2)``: uncentred -> centred."""
    return torch.fft.fftshift(x, dim=(-3, -2))

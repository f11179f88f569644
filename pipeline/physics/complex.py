"""The one complex-tensor convention of this package.

Inside ``pipeline`` a complex array is a **real** ``torch.Tensor`` whose last axis has size 2 and holds
(real, imaginary), as in fastMRI and MONAI's reconstruction code:

- multi-coil k-space or coil images: ``(..., C, H, W, 2)``;
- coil-combined complex images: ``(..., H, W, 2)``;
- sensitivity maps: ``(..., C, H, W, 2)``;
- masks broadcast against them: ``(..., 1, H, W, 1)``.

``H`` is the readout (frequency-encode) axis, ``W`` the phase-encode axis along which 1-D Cartesian
masks select columns. Numpy complex arrays (``complex64``) appear only at the boundaries (HDF5 files,
sigpy, metrics) and are converted with :func:`to_tensor` / :func:`to_complex_numpy`.
"""

from __future__ import annotations

import numpy as np
import torch


def check_complex(x: torch.Tensor, name: str = "tensor") -> None:
    """Raise ``ValueError`` unless ``x`` follows the ``(..., 2)`` real/imaginary layout."""
    if x.is_complex() or x.ndim < 1 or x.shape[-1] != 2:
        raise ValueError(
            f"{name} must be a real tensor with a trailing (real, imag) axis of size 2, got shape "
            f"{tuple(x.shape)} and dtype {x.dtype}"
        )


def to_tensor(data: np.ndarray) -> torch.Tensor:
    """Convert a numpy array to the package layout: complex ``(...)`` -> real ``(..., 2)``; real arrays pass through."""
    if np.iscomplexobj(data):
        data = np.stack((data.real, data.imag), axis=-1)
    return torch.from_numpy(np.ascontiguousarray(data))


def to_complex_numpy(x: torch.Tensor) -> np.ndarray:
    """Convert ``(..., 2)`` to a numpy complex array ``(...)`` (complex64 for float32 input)."""
    check_complex(x)
    x = x.detach().cpu()
    return as_complex(x).numpy()


def _native(x: torch.Tensor) -> bool:
    """Whether ``x`` has a complex counterpart dtype (float32 -> complex64, float64 -> complex128)."""
    return x.dtype == torch.float32 or x.dtype == torch.float64


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """View ``(..., 2)`` float32/float64 as a complex tensor ``(...)`` (copies only a non-contiguous input)."""
    return torch.view_as_complex(x.contiguous())


def complex_mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise complex product of two broadcastable ``(..., 2)`` tensors.

    float32 / float64 inputs use PyTorch's complex multiply (one fused kernel, and one in the backward pass);
    other dtypes (float16, bfloat16, which have no complex counterpart here) use real arithmetic.
    """
    if _native(x) and _native(y):
        return torch.view_as_real(as_complex(x) * as_complex(y))
    re = x[..., 0] * y[..., 0] - x[..., 1] * y[..., 1]
    im = x[..., 0] * y[..., 1] + x[..., 1] * y[..., 0]
    return torch.stack((re, im), dim=-1)


def complex_conj_mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise ``x * conj(y)`` of two broadcastable ``(..., 2)`` tensors (fused for float32 / float64)."""
    if _native(x) and _native(y):
        return torch.view_as_real(as_complex(x) * as_complex(y).conj())
    return complex_mul(x, complex_conj(y))


def complex_conj(x: torch.Tensor) -> torch.Tensor:
    """Complex conjugate of a ``(..., 2)`` tensor."""
    return torch.stack((x[..., 0], -x[..., 1]), dim=-1)


def complex_abs_sq(x: torch.Tensor) -> torch.Tensor:
    """Squared magnitude ``(..., 2) -> (...)``."""
    return x[..., 0] ** 2 + x[..., 1] ** 2


def complex_abs(x: torch.Tensor) -> torch.Tensor:
    """Magnitude ``(..., 2) -> (...)``; zero (not NaN) gradient at zero."""
    return torch.linalg.vector_norm(x, ord=2, dim=-1)

"""The multi-coil operator: adjointness, agreement with numpy's shifted orthonormal FFT, masking, the normal operator
and the fused complex products."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.physics import (
    complex_conj,
    complex_conj_mul,
    complex_mul,
    fft2_uncentred,
    fft2c,
    fftshift2,
    ifft2_uncentred,
    ifft2c,
    ifftshift2,
    to_complex_numpy,
    to_tensor,
)
from pipeline.physics.operators import NormalOperator, adjoint_operator, forward_operator

SIZES = [(8, 8), (9, 7), (16, 11), (15, 20)]


def _inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    return complex((to_complex_numpy(a.double()).astype(np.complex128) * to_complex_numpy(b.double()).conj()).sum())


def _random(shape, generator):
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("mask_kind", ["ones", "random"])
def test_adjointness(h, w, mask_kind):
    g = torch.Generator().manual_seed(h * 100 + w)
    batch, coils = 2, 3
    x, y = _random((batch, h, w, 2), g), _random((batch, coils, h, w, 2), g)
    maps = _random((batch, coils, h, w, 2), g)
    mask = torch.ones(batch, 1, h, w, 1, dtype=torch.bool)
    if mask_kind == "random":
        mask = torch.rand(batch, 1, h, w, 1, generator=g) < 0.4
    lhs = _inner(forward_operator(x, maps, mask), y)
    rhs = _inner(x, adjoint_operator(y, maps, mask))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_fft2c_matches_numpy_shifted_ortho(h, w):
    rng = np.random.default_rng(h + w)
    data = (rng.standard_normal((2, h, w)) + 1j * rng.standard_normal((2, h, w))).astype(np.complex64)
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(data, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    assert np.allclose(to_complex_numpy(fft2c(to_tensor(data))), expected, atol=1e-5)
    inverse = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(data, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    assert np.allclose(to_complex_numpy(ifft2c(to_tensor(data))), inverse, atol=1e-5)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_uncentred_ffts_between_shifts_are_the_centred_ones(h, w):
    g = torch.Generator().manual_seed(h * 7 + w)
    x = _random((2, 3, h, w, 2), g)
    torch.testing.assert_close(fftshift2(fft2_uncentred(ifftshift2(x))), fft2c(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fftshift2(ifft2_uncentred(ifftshift2(x))), ifft2c(x), rtol=1e-12, atol=1e-12)
    # a chain F^H F in uncentred coordinates needs no shifts in between
    chain = fftshift2(ifft2_uncentred(fft2_uncentred(ifftshift2(x))))
    torch.testing.assert_close(chain, ifft2c(fft2c(x)), rtol=1e-12, atol=1e-12)


def test_forward_matches_definition_and_normal_operator():
    g = torch.Generator().manual_seed(0)
    x, maps = _random((1, 12, 9, 2), g).float(), _random((1, 4, 12, 9, 2), g).float()
    mask = torch.rand(1, 1, 12, 9, 1, generator=g) < 0.5
    xc, sc = to_complex_numpy(x), to_complex_numpy(maps)
    coil = sc * xc[:, None]
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    expected = expected * mask[..., 0].numpy()
    assert np.allclose(to_complex_numpy(forward_operator(x, maps, mask)), expected, atol=1e-5)
    assert torch.equal(forward_operator(x, maps, mask), forward_operator(x, maps) * mask)


def test_operator_masks_and_is_stateless():
    g = torch.Generator().manual_seed(1)
    x, maps = _random((1, 6, 5, 2), g), _random((1, 2, 6, 5, 2), g)
    full, empty = torch.ones(1, 1, 6, 5, 1, dtype=torch.bool), torch.zeros(1, 1, 6, 5, 1, dtype=torch.bool)
    first = forward_operator(x, maps, full)
    assert torch.equal(forward_operator(x, maps, empty), torch.zeros_like(first))
    assert torch.equal(forward_operator(x, maps, full), first)


def test_unit_norm_maps_full_mask_adjoint_is_left_inverse():
    g = torch.Generator().manual_seed(2)
    maps = _random((1, 4, 10, 9, 2), g)
    maps = maps / maps.pow(2).sum(dim=(1, -1), keepdim=True).sqrt()
    x = _random((1, 10, 9, 2), g)
    mask = torch.ones(1, 1, 10, 9, 1, dtype=torch.bool)
    assert torch.allclose(adjoint_operator(forward_operator(x, maps, mask), maps, mask), x, atol=1e-10)


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("mask_kind", ["columns", "points", "columns as 2-D"])
def test_normal_operator_is_adjoint_of_forward(h, w, mask_kind):
    """A^H A with cancelled shifts (and 1-D FFTs for column masks) equals A^H(A x) to float64 rounding."""
    g = torch.Generator().manual_seed(h * 10 + w)
    x, maps = _random((2, h, w, 2), g), _random((2, 3, h, w, 2), g)
    if mask_kind == "points":
        mask = torch.rand(2, 1, h, w, 1, generator=g) < 0.4
    else:
        mask = torch.rand(2, 1, 1, w, 1, generator=g) < 0.4  # a different column mask per sample
        if mask_kind == "columns as 2-D":
            mask = mask.expand(2, 1, h, w, 1)
    normal = NormalOperator(maps, mask)
    assert normal.column_mask == (mask_kind == "columns")
    expected = adjoint_operator(forward_operator(x, maps, mask), maps)
    torch.testing.assert_close(normal.apply(x), expected, rtol=1e-12, atol=1e-12)


def test_normal_operator_gradients_match_the_plain_operators():
    g = torch.Generator().manual_seed(3)
    x, maps = _random((1, 7, 6, 2), g).requires_grad_(), _random((1, 2, 7, 6, 2), g).requires_grad_()
    mask = (torch.rand(1, 1, 1, 6, 1, generator=g) < 0.5).double()
    weights = _random((1, 7, 6, 2), g)
    fast = torch.autograd.grad((NormalOperator(maps, mask).apply(x) * weights).sum(), (x, maps))
    plain = torch.autograd.grad((adjoint_operator(forward_operator(x, maps, mask), maps) * weights).sum(), (x, maps))
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_complex_products_match_numpy(dtype):
    """Native complex kernels (float32/64) and the real-arithmetic path (bfloat16) give the same products."""
    g = torch.Generator().manual_seed(4)
    x, y = _random((3, 1, 5, 2), g), _random((3, 4, 5, 2), g)  # broadcast over the second axis
    xc, yc = to_complex_numpy(x), to_complex_numpy(y)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-6
    for got, expected in [(complex_mul(x.to(dtype), y.to(dtype)), xc * yc),
                          (complex_conj_mul(x.to(dtype), y.to(dtype)), xc * yc.conj()),
                          (complex_conj(x.to(dtype)), xc.conj())]:
        assert got.dtype == dtype
        assert np.allclose(to_complex_numpy(got.double()), expected, rtol=tol, atol=tol)

"""The multi-coil operator: adjointness, agreement with numpy's shifted orthonormal FFT, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.physics import fft2c, ifft2c, to_complex_numpy, to_tensor
from pipeline.physics.operators import adjoint_operator, forward_operator

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

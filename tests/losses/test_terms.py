"""Tests of pipeline.losses.terms: zero for identical inputs, cross-checks, invariances, NaN safety."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pipeline.losses import (
    hfen_loss,
    kspace_nmae,
    kspace_nmse,
    l1_image_loss,
    laplacian_of_gaussian_kernel,
    ssim_loss,
)


def images(seed, b=2, h=24, w=20):
    return torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(seed))


def kspaces(seed, b=2):
    return torch.randn(b, 3, 12, 10, 2, generator=torch.Generator().manual_seed(seed))


IMAGE_TERMS = {
    "l1": l1_image_loss,
    "ssim": lambda p, t: ssim_loss(p, t, t.flatten(1).amax(1)),
    "hfen_l1": lambda p, t: hfen_loss(p, t, p=1),
    "hfen_l2": lambda p, t: hfen_loss(p, t, p=2),
}
KSPACE_TERMS = {"kspace_nmse": kspace_nmse, "kspace_nmae": kspace_nmae}


@pytest.mark.parametrize("name", sorted(IMAGE_TERMS))
def test_image_term_zero_iff_identical(name):
    fn = IMAGE_TERMS[name]
    x, y = images(0), images(1)
    assert abs(fn(x, x.clone()).item()) < 1e-6
    assert fn(x, y).item() > 1e-3


@pytest.mark.parametrize("name", sorted(KSPACE_TERMS))
def test_kspace_term_zero_iff_identical(name):
    fn = KSPACE_TERMS[name]
    x, y = kspaces(0), kspaces(1)
    assert fn(x, x.clone()).item() == 0.0
    assert fn(x, y).item() > 1e-3


def test_ssim_loss_is_one_minus_skimage_ssim():
    pred, target = images(0, b=3, h=32, w=27), images(1, b=3, h=32, w=27)
    pred = 0.6 * target + 0.4 * pred  # partly similar, SSIM well inside (0, 1)
    data_range = torch.tensor([1.0, 1.5, 0.8])
    expected = np.mean(
        [
            structural_similarity(target[i, 0].numpy(), pred[i, 0].numpy(), win_size=7, data_range=float(r))
            for i, r in enumerate(data_range)
        ]
    )
    assert ssim_loss(pred, target, data_range).item() == pytest.approx(1.0 - expected, abs=1e-4)


def test_kspace_terms_analytic_values_and_mask():
    target = kspaces(0)
    assert kspace_nmse(2 * target, target).item() == pytest.approx(1.0, rel=1e-5)
    assert kspace_nmae(torch.zeros_like(target), target).item() == pytest.approx(1.0, rel=1e-5)
    mask = torch.zeros(2, 1, 12, 10, 1, dtype=torch.bool)
    mask[:, :, :, ::2] = True
    pred = target.clone()
    pred[:, :, :, 1::2] += 5.0  # error only outside the mask
    assert kspace_nmse(pred, target, mask).item() == 0.0
    assert kspace_nmae(pred, target, mask.float()).item() == 0.0


def test_log_kernel_is_zero_sum_and_hfen_scale_invariant():
    kernel = laplacian_of_gaussian_kernel()
    assert kernel.shape == (1, 1, 15, 15)
    assert abs(kernel.sum().item()) < 1e-6
    assert kernel[0, 0, 7, 7] < 0  # negative centre: LoG of a bright blob
    x, y = images(0), images(1)
    for p in (1, 2):
        assert hfen_loss(1e-3 * x, 1e-3 * y, p).item() == pytest.approx(hfen_loss(x, y, p).item(), rel=1e-4)
    flat = torch.full((1, 1, 40, 40), 3.0)
    assert hfen_loss(flat, flat + 1.0, 1).item() < 0.5  # an offset is mostly low frequency


def test_all_zero_references_are_finite():
    zeros_img, zeros_k = torch.zeros(2, 1, 24, 20), torch.zeros(2, 3, 12, 10, 2)
    pred_img = images(0).requires_grad_(True)
    pred_k = kspaces(0).requires_grad_(True)
    values = [fn(pred_img, zeros_img) for fn in IMAGE_TERMS.values()]
    values += [fn(pred_k, zeros_k) for fn in KSPACE_TERMS.values()]
    values += [fn(zeros_img.clone().requires_grad_(True), zeros_img) for fn in IMAGE_TERMS.values()]
    values += [fn(zeros_k.clone().requires_grad_(True), zeros_k) for fn in KSPACE_TERMS.values()]
    assert all(torch.isfinite(v) for v in values)
    sum(values).backward()
    assert torch.isfinite(pred_img.grad).all() and torch.isfinite(pred_k.grad).all()


def test_blank_references_contribute_nothing_and_keep_gradients_finite():
    """Normalised terms are masked, not floored: a blank sample adds 0 and a zero gradient."""
    from pipeline.losses import hfen_loss, kspace_nmae, kspace_nmse, ssim_loss

    pred_k = (torch.randn(2, 3, 16, 16, 2) * 1e-3).requires_grad_()
    target_k = torch.randn(2, 3, 16, 16, 2)
    target_k[1] = 0.0  # the second sample is blank
    pred_i = (torch.rand(2, 1, 16, 16) * 1e-3).requires_grad_()
    target_i = torch.rand(2, 1, 16, 16)
    target_i[1] = 0.0
    for value in (
        kspace_nmse(pred_k, target_k),
        kspace_nmae(pred_k, target_k),
        ssim_loss(pred_i, target_i, target_i.flatten(1).amax(1)),
        hfen_loss(pred_i, target_i, p=1),
    ):
        value.backward()
    assert torch.isfinite(pred_k.grad).all() and torch.isfinite(pred_i.grad).all()
    assert pred_k.grad[1].abs().max() == 0 and pred_i.grad[1].abs().max() == 0
    single = kspace_nmse(pred_k[:1].detach(), target_k[:1])
    assert float(kspace_nmse(pred_k.detach(), target_k)) == pytest.approx(float(single) / 2)

"""Tests of pipeline.losses.joint: SL and SSL branches, cascade weighting, validation, gradients."""

import pytest
import torch

from pipeline.losses import REFERENCE_WEIGHTS, TERMS, JointLoss, iterate_weights, kspace_nmae, kspace_nmse
from pipeline.networks import ReconstructionOutput, VarNet
from pipeline.physics import center_crop, ifft2c, rss

B, C, H, W = 2, 3, 24, 20


def kspace(seed):
    return torch.randn(B, C, H, W, 2, generator=torch.Generator().manual_seed(seed))


def output_of(k, cascades=()):
    """A ReconstructionOutput built from k-space alone (maps unused by the losses)."""
    return ReconstructionOutput(k, rss(ifft2c(k)), torch.zeros_like(k), list(cascades))


def lambda_mask(seed=3):
    return torch.rand(B, 1, H, W, 1, generator=torch.Generator().manual_seed(seed)) < 0.3


# --------------------------------------------------------------------------------------------- validation
def test_unknown_term_lists_the_valid_ones():
    with pytest.raises(ValueError, match="kspace_nmse") as error:
        JointLoss({"l2": 1.0})
    assert "l2" in str(error.value)


@pytest.mark.parametrize("weights", [{"l1": -1.0}, {"ssim": float("nan")}, {"l1": 0.0}, {}])
def test_bad_weights(weights):
    with pytest.raises(ValueError, match="weight"):
        JointLoss(weights)


def test_terms_dict_has_only_positive_weights_and_total_is_weighted_sum():
    loss = JointLoss({**REFERENCE_WEIGHTS, "hfen_l2": 0.0})
    ref = kspace(0)
    total, terms = loss(output_of(kspace(1)), ref)
    assert set(terms) == set(TERMS) - {"hfen_l2"}
    assert all(not value.requires_grad for value in terms.values())
    expected = sum(REFERENCE_WEIGHTS[name] * value for name, value in terms.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


# --------------------------------------------------------------------------------------------- SL branch
def test_every_term_zero_for_perfect_prediction_and_positive_otherwise():
    loss = JointLoss(REFERENCE_WEIGHTS)
    ref = kspace(0)
    _, perfect = loss(output_of(ref.clone()), ref)
    _, wrong = loss(output_of(kspace(1)), ref)
    for name in TERMS:
        assert abs(perfect[name].item()) < 1e-5, name
        assert wrong[name].item() > 1e-3, name


def test_sl_image_terms_compare_the_centre_crop_with_ref_image():
    ref = kspace(0)
    ref_image = center_crop(rss(ifft2c(ref)), (16, 12)).unsqueeze(1)  # (B, 1, 16, 12)
    image = rss(ifft2c(ref)).clone()
    image[:, :3] += 10.0  # outside the 16-row centre crop
    output = ReconstructionOutput(ref, image, torch.zeros_like(ref), [])
    total, terms = JointLoss({"l1": 1.0, "ssim": 1.0, "hfen_l1": 1.0})(output, ref, ref_image)
    assert total.item() < 1e-5
    image[:, 10] += 1.0  # inside
    total, _ = JointLoss({"l1": 1.0})(ReconstructionOutput(ref, image, torch.zeros_like(ref), []), ref, ref_image)
    assert total.item() > 1e-3


def test_default_data_range_is_reference_maximum():
    ref, pred = kspace(0), kspace(1)
    ref_image = rss(ifft2c(ref)).unsqueeze(1)
    loss = JointLoss({"ssim": 1.0})
    default, _ = loss(output_of(pred), ref, ref_image)
    explicit, _ = loss(output_of(pred), ref, ref_image, data_range=ref_image.flatten(1).amax(1))
    assert default.item() == pytest.approx(explicit.item())
    other, _ = loss(output_of(pred), ref, ref_image, data_range=torch.full((B,), 10.0))
    assert other.item() != pytest.approx(default.item())


# --------------------------------------------------------------------------------------------- SSL branch
def test_ssl_kspace_loss_depends_only_on_lambda():
    loss = JointLoss({"kspace_nmse": 2.0, "kspace_nmae": 2.0})
    ref, pred, mask = kspace(0), kspace(1), lambda_mask()
    base, _ = loss(output_of(pred), ref, kspace_mask=mask)
    perturbed = pred + kspace(2) * ~mask  # change the prediction outside Lambda only
    same, _ = loss(output_of(perturbed), ref, kspace_mask=mask)
    assert same.item() == pytest.approx(base.item(), rel=1e-6)
    inside = pred + kspace(2) * mask
    changed, _ = loss(output_of(inside), ref, kspace_mask=mask)
    assert changed.item() != pytest.approx(base.item(), rel=1e-3)
    expected = 2 * kspace_nmse(pred, ref, mask) + 2 * kspace_nmae(pred, ref, mask)
    assert base.item() == pytest.approx(expected.item(), rel=1e-6)


def test_ssl_image_terms_use_the_lambda_image_cropped():
    ref, mask = kspace(0), lambda_mask()
    lambda_image = rss(ifft2c(ref * mask))
    output = ReconstructionOutput(ref, lambda_image, torch.zeros_like(ref), [])
    loss = JointLoss({"l1": 1.0, "ssim": 1.0})
    total, _ = loss(output, ref, kspace_mask=mask, crop_size=(16, 12))
    assert total.item() < 1e-5
    total_full, _ = loss(output_of(ref), ref, kspace_mask=mask)  # full-data image is not the Lambda image
    assert total_full.item() > 1e-3
    with pytest.raises(ValueError, match="ref_image"):
        loss(output, ref, ref_image=lambda_image.unsqueeze(1), kspace_mask=mask)


# --------------------------------------------------------------------------------------------- cascades
def test_iterate_weights_are_normalised_logspace():
    weights = iterate_weights(4)
    raw = torch.tensor([10 ** (-1 + i / 3) for i in range(4)])
    torch.testing.assert_close(weights, raw / raw.sum())
    assert weights[-1] / weights[0] == pytest.approx(10.0)
    assert iterate_weights(1).tolist() == [1.0]


def test_cascade_weighting_applies_kspace_terms_to_every_cascade():
    ref = kspace(0)
    cascades = [kspace(1), kspace(2), kspace(3)]
    output = output_of(cascades[-1], cascades)
    total, terms = JointLoss({"kspace_nmse": 1.0, "l1": 1.0}, cascade_weighting=True)(output, ref)
    weights = iterate_weights(3)
    expected = sum(w * kspace_nmse(k, ref) for w, k in zip(weights, cascades))
    assert terms["kspace_nmse"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert total.item() == pytest.approx((terms["kspace_nmse"] + terms["l1"]).item(), rel=1e-6)
    with pytest.raises(ValueError, match="return_iterates"):
        JointLoss({"kspace_nmse": 1.0}, cascade_weighting=True)(output_of(ref), ref)


# --------------------------------------------------------------------------------------------- network
@pytest.mark.parametrize("branch", ["sl", "ssl"])
def test_gradients_reach_every_network_parameter(branch):
    torch.manual_seed(0)
    net = VarNet(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)
    full = kspace(0)
    omega = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    omega[..., ::2, :] = True
    omega[..., 8:12, :] = True
    if branch == "sl":
        output = net(full * omega, omega, return_iterates=True)
        loss = JointLoss(REFERENCE_WEIGHTS, cascade_weighting=True)
        total, _ = loss(output, full, center_crop(rss(ifft2c(full)), (16, 16)).unsqueeze(1))
    else:
        lam = lambda_mask() & omega
        theta = omega & ~lam
        theta[..., 8:12, :] = True
        output = net(full * theta, theta)
        total, _ = JointLoss({"kspace_nmse": 2.0, "kspace_nmae": 2.0})(output, full * omega, kspace_mask=lam)
    total.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def test_all_zero_references_give_finite_loss_and_gradients():
    ref = torch.zeros(B, C, H, W, 2)
    pred = kspace(1).requires_grad_(True)
    for mask in (None, lambda_mask()):
        total, terms = JointLoss(REFERENCE_WEIGHTS)(output_of(pred), ref, None, mask, None)
        assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
        total.backward()
        assert torch.isfinite(pred.grad).all()
    total, _ = JointLoss(REFERENCE_WEIGHTS)(output_of(ref.clone()), ref, torch.zeros(B, 1, H, W))
    assert total.item() == pytest.approx(0.0, abs=1e-6)

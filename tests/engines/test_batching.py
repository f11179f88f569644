"""The batch helpers: one data-range convention and the loss inputs of each branch."""

from __future__ import annotations

import pytest
import torch

from pipeline.engines.batching import constrain_output, data_range, intensity_scale, loss_arguments, network_inputs
from pipeline.keys import Keys
from pipeline.losses import JointLoss
from pipeline.losses.terms import ssim_loss
from pipeline.networks import ReconstructionOutput
from pipeline.physics import ifft2c, rss, rss_image


def _batch(branch: str = "sl") -> dict:
    torch.manual_seed(0)
    kspace = torch.randn(2, 3, 16, 16, 2)
    target = rss_image(kspace, (12, 12)).unsqueeze(1)
    return {
        Keys.BRANCH: branch,
        Keys.KSPACE: kspace,
        Keys.TARGET: target,
        Keys.MAX: torch.tensor([4.0 * float(target[0].max()) * 2.0, 0.0]),
        Keys.SCALE: torch.tensor([2.0, 1.0]),
        Keys.RECON_SIZE: torch.tensor([[12, 12], [12, 12]]),
        Keys.LOSS_MASK: torch.ones(2, 1, 16, 16, 1, dtype=torch.bool),
    }


def test_data_range_is_the_volume_maximum_in_normalised_units():
    batch = _batch()
    dr = data_range(batch, torch.device("cpu"))
    slice_max = batch[Keys.TARGET].flatten(1).amax(1)
    assert dr[0] == pytest.approx(4.0 * float(slice_max[0]))  # volume max 4x the slice max, / scale 2
    assert dr[1] == pytest.approx(float(slice_max[1]))  # no volume max in the file: the slice's own
    assert intensity_scale(batch, torch.device("cpu")).shape == (2, 1, 1, 1)


def test_sl_ssim_term_uses_the_volume_data_range():
    """A volume whose maximum is 4x a slice's maximum: the SSIM term must use the volume maximum."""
    batch = _batch()
    pred_kspace = batch[Keys.KSPACE] + 0.3 * torch.randn_like(batch[Keys.KSPACE])
    output = ReconstructionOutput(pred_kspace, rss_image(pred_kspace), pred_kspace, [])
    kwargs = loss_arguments(batch, torch.device("cpu"))
    _, terms = JointLoss({"ssim": 1.0})(output, **kwargs)
    pred = rss_image(pred_kspace, (12, 12)).unsqueeze(1)
    expected = ssim_loss(pred, batch[Keys.TARGET], data_range(batch, torch.device("cpu")))
    per_slice = ssim_loss(pred, batch[Keys.TARGET], batch[Keys.TARGET].flatten(1).amax(1))
    assert float(terms["ssim"]) == pytest.approx(float(expected), abs=1e-4)
    assert abs(float(terms["ssim"]) - float(per_slice)) > 1e-3  # the per-slice maximum would differ


def test_loss_arguments_per_branch():
    sl = loss_arguments(_batch("sl"), torch.device("cpu"))
    assert sl["kspace_mask"] is None and sl["ref_image"] is not None and sl["crop_size"] == (12, 12)
    ssl = loss_arguments(_batch("ssl"), torch.device("cpu"))
    assert ssl["ref_image"] is None and ssl["data_range"] is None and ssl["kspace_mask"].dtype == torch.bool
    batch = _batch("ssl")
    del batch[Keys.LOSS_MASK]
    with pytest.raises(ValueError, match="LOSS_MASK"):
        loss_arguments(batch, torch.device("cpu"))


def test_constrain_output_uses_the_inputs_it_is_given_instead_of_copying_the_batch_again():
    torch.manual_seed(0)
    mask = torch.zeros(1, 1, 1, 8, 1, dtype=torch.bool)
    mask[..., ::2, :] = True
    batch = {Keys.MASKED_KSPACE: torch.randn(1, 2, 6, 8, 2) * mask, Keys.INPUT_MASK: mask}
    predicted = torch.randn(1, 2, 6, 8, 2)
    output = ReconstructionOutput(predicted, rss(ifft2c(predicted)), predicted, [])
    device = torch.device("cpu")
    from_batch = constrain_output(output, batch, device)
    given = constrain_output(output, batch, device, inputs=network_inputs(batch, device)[:2])
    assert torch.equal(from_batch.kspace, given.kspace)
    other = torch.randn(1, 2, 6, 8, 2) * mask  # what the caller passes is what is used
    used = constrain_output(output, batch, device, inputs=(other, mask))
    assert torch.equal(used.kspace[mask.expand_as(other)], other[mask.expand_as(other)])

"""Output constraints shared by training and evaluation: the acquirable band and hard data consistency."""

import pytest
import torch

from pipeline.engines.batching import constrain_output
from pipeline.keys import Keys
from pipeline.networks import build_network
from pipeline.networks.output import ReconstructionOutput, replace_measured, restrict_to_band
from pipeline.physics import ifft2c, rss


def _output(b=2, c=3, h=16, w=20, iterates=2):
    torch.manual_seed(0)
    kspace = torch.randn(b, c, h, w, 2)
    return ReconstructionOutput(kspace, rss(ifft2c(kspace)), torch.randn(b, c, h, w, 2),
                                [torch.randn(b, c, h, w, 2) for _ in range(iterates)])


def test_restrict_to_band_zeroes_outside_each_samples_band_and_recomputes_the_image():
    out = _output()
    band = torch.tensor([[2, 18], [4, 16]])
    limited = restrict_to_band(out, band)
    for i, (start, stop) in enumerate(band.tolist()):
        for k in [limited.kspace, *limited.kspace_iterates]:
            assert k[i, ..., :start, :].abs().max() == 0 and k[i, ..., stop:, :].abs().max() == 0
        assert torch.equal(limited.kspace[i, ..., start:stop, :], out.kspace[i, ..., start:stop, :])
    assert torch.allclose(limited.image, rss(ifft2c(limited.kspace)))
    assert not torch.allclose(limited.image, out.image)
    assert restrict_to_band(out, torch.tensor([0, 20])) is out  # full width: nothing to do


@pytest.mark.parametrize("band", [[5, 5], [-1, 10], [0, 21]])
def test_restrict_to_band_rejects_bad_bands(band):
    with pytest.raises(ValueError, match="pe_range"):
        restrict_to_band(_output(), torch.tensor(band))


def test_replace_measured_keeps_every_measured_sample():
    out = _output()
    mask = torch.zeros(2, 1, 16, 20, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    measured = torch.randn(2, 3, 16, 20, 2) * mask
    kept = replace_measured(out, measured, mask)
    sel = mask.expand_as(measured)
    assert torch.equal(kept.kspace[sel], measured[sel])
    assert torch.equal(kept.kspace[~sel], out.kspace[~sel])
    assert torch.allclose(kept.image, rss(ifft2c(kept.kspace)))


def test_the_last_iterate_stays_the_final_kspace_under_the_constraints():
    """ReconstructionOutput's rule (the last iterate is ``kspace``) holds after replace_measured and the band."""
    net = build_network("varnet", "tiny", return_iterates=True).eval()
    mask = torch.zeros(1, 1, 1, 24, 1, dtype=torch.bool)
    mask[..., 4:20:2, :] = True
    mask[..., 10:14, :] = True
    kspace = torch.randn(1, 4, 32, 24, 2) * mask
    batch = {Keys.MASKED_KSPACE: kspace, Keys.INPUT_MASK: mask, Keys.PE_RANGE: torch.tensor([[4, 20]])}
    with torch.no_grad():
        out = net(kspace, mask)
        assert len(out.kspace_iterates) > 1 and torch.equal(out.kspace_iterates[-1], out.kspace)
        kept = replace_measured(out, kspace, mask)
        constrained = constrain_output(out, batch, torch.device("cpu"))
    for result in (kept, constrained):
        assert torch.equal(result.kspace_iterates[-1], result.kspace)
        for before, after in zip(out.kspace_iterates[:-2], kept.kspace_iterates[:-2]):
            assert torch.equal(before, after)  # earlier steps as the network gave them
    plain = _output(iterates=0)
    assert replace_measured(plain, torch.zeros_like(plain.kspace), mask[..., :20, :]).kspace_iterates == []


def test_a_band_of_the_wrong_shape_is_named_also_as_a_list():
    with pytest.raises(ValueError, match=r"pe_range must be \(2,\) or \(B, 2\) with B = 2, got \(3, 2\)"):
        restrict_to_band(_output(), [[0, 20], [1, 20], [2, 20]])


def test_a_real_network_output_under_the_constraints_has_no_energy_outside_the_band_and_keeps_the_data():
    net = build_network("varnet", "tiny").eval()
    mask = torch.zeros(1, 1, 1, 24, 1, dtype=torch.bool)
    mask[..., 4:20:2, :] = True
    mask[..., 10:14, :] = True
    kspace = torch.randn(1, 4, 32, 24, 2) * mask
    kspace[..., :4, :] = 0
    kspace[..., 20:, :] = 0
    batch = {Keys.MASKED_KSPACE: kspace, Keys.INPUT_MASK: mask, Keys.PE_RANGE: torch.tensor([[4, 20]])}
    with torch.no_grad():
        raw = net(kspace, mask)
        out = constrain_output(raw, batch, torch.device("cpu"))
    assert raw.kspace[..., :4, :].abs().max() > 0  # the network alone does put energy into the padding band
    assert out.kspace[..., :4, :].abs().max() == 0 and out.kspace[..., 20:, :].abs().max() == 0
    sel = mask.expand_as(kspace)
    assert torch.equal(out.kspace[sel], kspace[sel])
    off = constrain_output(raw, batch, torch.device("cpu"), band_limit=False, data_consistency=False)
    assert off is raw

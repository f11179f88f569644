"""Image formation, cropping and normalisation transforms, with their dictionary twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.keys import Keys
from pipeline.physics import center_crop, ifft2c, rss, sense_reduce, to_tensor
from pipeline.transforms import (
    ApplyMask,
    ApplyMaskd,
    CenterCrop,
    CenterCropd,
    NormalizeKspace,
    NormalizeKspaced,
    ReadoutCrop,
    ReadoutCropd,
    SenseCombine,
    SenseCombined,
    ZeroFilled,
    ZeroFilledd,
    denormalize,
)
from pipeline.transforms.masks import generate_mask


def _mask(h, w, kind="equispaced"):
    return torch.from_numpy(generate_mask(kind, (h, w), 0.1, 3, np.random.default_rng(0))[0])[None, :, :, None]


@pytest.mark.parametrize(("h", "w"), [(32, 27), (33, 40)])
def test_apply_mask_and_twin(h, w):
    kspace, mask = torch.randn(3, h, w, 2), _mask(h, w)
    masked = ApplyMask()(kspace, mask)
    assert torch.equal(masked[:, ~mask[0, :, :, 0]], torch.zeros_like(masked[:, ~mask[0, :, :, 0]]))
    assert torch.equal(masked[:, mask[0, :, :, 0]], kspace[:, mask[0, :, :, 0]])
    out = ApplyMaskd()({Keys.KSPACE: kspace, Keys.MASK: mask})
    assert torch.equal(out[Keys.MASKED_KSPACE], masked) and torch.equal(out[Keys.INPUT_MASK], mask)
    assert out[Keys.INPUT_MASK] is not mask


def test_apply_mask_shape_error_names_mask():
    with pytest.raises(ValueError, match="mask"):
        ApplyMask()(torch.randn(3, 16, 15, 2), torch.ones(1, 16, 14, 1, dtype=torch.bool))


def test_zero_filled_matches_definition_and_twin(simulate):
    data = simulate(5, 48, 41)
    mask = _mask(48, 41)
    masked = data["kspace"] * mask
    zf = ZeroFilled()(masked, torch.tensor([32, 32]))
    expected = center_crop(rss(ifft2c(masked)), (32, 32)).unsqueeze(0)
    assert zf.shape == (1, 32, 32) and torch.allclose(zf, expected)
    assert ZeroFilled()(masked, (64, 64)).shape == (1, 48, 41)  # recon size clipped to the image
    out = ZeroFilledd()({Keys.MASKED_KSPACE: masked, Keys.RECON_SIZE: torch.tensor([32, 32])})
    assert torch.equal(out[Keys.ZERO_FILLED], zf)


def test_sense_combine_recovers_image_with_true_maps(simulate):
    data = simulate(6, 40, 37)
    maps = to_tensor(data["maps"])
    image = SenseCombine(magnitude=False)(data["kspace"], maps)
    assert torch.allclose(image, to_tensor(data["image"]), atol=1e-5)
    magnitude = SenseCombined()({Keys.MASKED_KSPACE: data["kspace"], Keys.SENS_MAPS: maps, Keys.RECON_SIZE: (20, 20)})
    expected = center_crop(torch.from_numpy(np.abs(data["image"])), (20, 20))
    assert torch.allclose(magnitude[Keys.ZERO_FILLED][0], expected, atol=1e-5)
    assert torch.allclose(sense_reduce(ifft2c(data["kspace"]), maps), image)


def test_center_crop_and_twin():
    image = torch.randn(1, 35, 30)
    assert torch.equal(CenterCrop((20, 20))(image), center_crop(image, (20, 20)))
    out = CenterCropd(keys=[Keys.TARGET])({Keys.TARGET: image, Keys.RECON_SIZE: torch.tensor([20, 40])})
    assert out[Keys.TARGET].shape == (1, 20, 30)
    with pytest.raises(ValueError, match="size"):
        CenterCrop()(image)


@pytest.mark.parametrize(("h", "hr"), [(64, 32), (63, 32), (50, 25)])
def test_readout_crop_is_exact_in_image_space(simulate, h, hr):
    data = simulate(4, h, 29)
    mask = _mask(h, 29)
    cropped = ReadoutCrop(hr)(data["kspace"])
    assert cropped.shape == (4, hr, 29, 2)
    assert torch.allclose(ifft2c(cropped), center_crop(ifft2c(data["kspace"]), (hr, 29), (-3, -2)), atol=1e-5)
    d = {Keys.KSPACE: data["kspace"], Keys.MASKED_KSPACE: data["kspace"] * mask, Keys.MASK: mask,
         Keys.SENS_MAPS: to_tensor(data["maps"]), Keys.RECON_SIZE: torch.tensor([hr, 20])}
    out = ReadoutCropd()(d)
    assert out[Keys.MASK].shape == (1, hr, 29, 1) and out[Keys.SENS_MAPS].shape == (4, hr, 29, 2)
    # the column mask commutes with the readout crop
    assert torch.allclose(out[Keys.MASKED_KSPACE], out[Keys.KSPACE] * out[Keys.MASK], atol=1e-5)
    zf_full = ZeroFilled()(d[Keys.MASKED_KSPACE], (hr, 20))
    zf_crop = ZeroFilled()(out[Keys.MASKED_KSPACE], (hr, 20))
    assert torch.allclose(zf_full, zf_crop, atol=1e-5)


def test_readout_crop_rejects_2d_masks():
    mask = _mask(32, 32, "gaussian2d")
    with pytest.raises(ValueError, match="column mask"):
        ReadoutCrop(16).crop_mask(mask)


@pytest.mark.parametrize("statistic", ["percentile", "max"])
def test_normalize_roundtrip_and_twin(simulate, statistic):
    data = simulate(4, 32, 31)
    mask = _mask(32, 31)
    raw = data["kspace"] * 1e-4
    d = {Keys.KSPACE: raw, Keys.MASKED_KSPACE: raw * mask, Keys.TARGET: torch.rand(1, 20, 20)}
    out = NormalizeKspaced(statistic=statistic)(d)
    scale = out[Keys.SCALE]
    zf = rss(ifft2c(raw * mask))
    expected = float(zf.max()) if statistic == "max" else float(torch.quantile(zf.double().reshape(-1), 0.99))
    assert scale == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(out[Keys.KSPACE] * scale, raw, rtol=1e-5, atol=1e-12)
    assert torch.allclose(out[Keys.TARGET] * scale, d[Keys.TARGET], rtol=1e-6)
    assert torch.allclose(denormalize(out[Keys.TARGET], scale), d[Keys.TARGET], rtol=1e-6)
    array_out, array_scale = NormalizeKspace(statistic)(raw * mask)
    assert array_scale == scale and torch.equal(array_out, out[Keys.MASKED_KSPACE])


def test_normalize_all_zero_input_is_finite():
    zeros = torch.zeros(3, 16, 15, 2)
    out = NormalizeKspaced()({Keys.KSPACE: zeros, Keys.MASKED_KSPACE: zeros})
    assert out[Keys.SCALE] == 1.0 and torch.isfinite(out[Keys.KSPACE]).all()


def test_denormalize_batched_scale():
    pred = torch.ones(3, 1, 4, 4)
    out = denormalize(pred, torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(out[:, 0, 0, 0], torch.tensor([1.0, 2.0, 3.0]))


def test_normalize_parameter_errors():
    with pytest.raises(ValueError, match="statistic"):
        NormalizeKspace("mean")
    with pytest.raises(ValueError, match="percentile"):
        NormalizeKspace(percentile=0)

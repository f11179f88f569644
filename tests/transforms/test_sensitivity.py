"""Sensitivity maps against known birdcage maps: ACS (low-resolution) and ESPIRiT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.keys import Keys
from pipeline.physics import acs_block, complex_abs_sq, to_complex_numpy
from pipeline.transforms import EstimateSensitivity, EstimateSensitivityd, acs_sensitivity_maps, espirit_maps
from pipeline.transforms.masks import generate_mask


def abs_cosine(estimate: torch.Tensor, truth: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Per-pixel |<S_est, S_true>| / (|S_est| |S_true|) inside ``support``."""
    est = to_complex_numpy(estimate)
    num = np.abs((est * truth.conj()).sum(axis=0))
    den = np.sqrt((np.abs(est) ** 2).sum(axis=0) * (np.abs(truth) ** 2).sum(axis=0)) + 1e-12
    return (num / den)[support]


def _column_mask(h, w, seed=0):
    mask, n_acs = generate_mask("equispaced", (h, w), 0.16, 4, np.random.default_rng(seed))
    return torch.from_numpy(mask)[None, :, :, None], n_acs


@pytest.mark.parametrize(("coils", "h", "w"), [(6, 64, 57), (4, 49, 64)])
def test_acs_maps_match_known_maps(simulate, coils, h, w):
    data = simulate(coils, h, w)
    mask, n_acs = _column_mask(h, w)
    maps = acs_sensitivity_maps(data["kspace"] * mask, n_acs)
    cosine = abs_cosine(maps, data["maps"], data["support"])
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.95
    norm = complex_abs_sq(maps).sum(0)
    assert torch.allclose(norm[torch.from_numpy(data["support"])], torch.ones(()), atol=1e-4)
    detected = acs_sensitivity_maps(data["kspace"] * mask, 0, mask)  # ACS width from the mask
    assert abs_cosine(detected, data["maps"], data["support"]).mean() >= 0.99


def test_acs_maps_2d_mask_block_detection(simulate):
    data = simulate(6, 48, 45)
    mask2d, _ = generate_mask("gaussian2d", (48, 45), 0.2, 3, np.random.default_rng(0))
    block = acs_block(torch.from_numpy(mask2d))
    assert block[0] >= round(48 * 0.2) and block[1] >= round(45 * 0.2)
    mask = torch.from_numpy(mask2d)[None, :, :, None]
    maps = acs_sensitivity_maps(data["kspace"] * mask, 0, mask)
    assert abs_cosine(maps, data["maps"], data["support"]).mean() >= 0.99


def test_no_acs_lines_raises(simulate):
    data = simulate(4, 32, 31)
    mask = torch.zeros(1, 32, 31, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    mask[..., 15, :] = False  # centre column missing
    with pytest.raises(ValueError, match="ACS"):
        acs_sensitivity_maps(data["kspace"] * mask, 0, mask)
    with pytest.raises(ValueError, match="ACS"):
        EstimateSensitivity("acs")(data["kspace"] * mask, mask)


def test_espirit_full_and_block_match_known_maps(simulate):
    data = simulate(4, 40, 37)
    full = espirit_maps(data["kspace"], calib_width=16)
    block = espirit_maps(data["kspace"], calib_width=16, calib_block=24)
    for maps in (full, block):
        assert maps.shape == (4, 40, 37, 2)
        assert abs_cosine(maps, data["maps"], data["support"]).mean() >= 0.99
        norm = complex_abs_sq(maps).sum(0)
        inside = norm[torch.from_numpy(data["support"])]
        assert torch.allclose(inside, torch.ones_like(inside), atol=1e-3)
        assert bool(((norm < 1e-6) | ((norm - 1).abs() < 1e-3)).all())  # one or zero (outside the object)
    assert (complex_abs_sq(full).sum(0) == 0).any()  # ESPIRiT crops outside the object


def test_espirit_parameter_errors(simulate):
    data = simulate(2, 24, 24)
    with pytest.raises(ValueError, match="calib_block"):
        espirit_maps(data["kspace"], calib_width=24, calib_block=16)
    with pytest.raises(ValueError, match="method"):
        EstimateSensitivity("magic")


def test_dictionary_twin_agrees(simulate):
    data = simulate(4, 32, 29)
    mask, n_acs = _column_mask(32, 29)
    d = {Keys.MASKED_KSPACE: data["kspace"] * mask, Keys.INPUT_MASK: mask, Keys.NUM_LOW_FREQUENCIES: n_acs}
    out = EstimateSensitivityd()(d)
    assert torch.equal(out[Keys.SENS_MAPS], EstimateSensitivity()(d[Keys.MASKED_KSPACE], mask, n_acs))

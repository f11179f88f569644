"""One ACS convention: every consumer places and finds the ACS block the same way (fastMRI's rule)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.networks import acs_column_window
from pipeline.physics import acs_block, acs_columns, acs_slice, acs_start, centre_run
from pipeline.transforms.masks import acs_range, generate_mask
from pipeline.transforms.sensitivity import acs_sensitivity_maps
from pipeline.transforms.ssdu import center_block_mask


@pytest.mark.parametrize(("size", "num", "first"), [(25, 2, 12), (24, 2, 11), (25, 3, 11), (24, 3, 11), (368, 30, 169)])
def test_acs_start_is_fastmri_and_contains_the_centre(size, num, first):
    assert acs_start(size, num) == first
    assert first <= size // 2 < first + num


def test_odd_width_even_block_every_consumer_agrees():
    """W = 25, b = 2: columns 12 and 13 everywhere (the sensitivity estimator used to take 11 and 12)."""
    width, block = 25, 2
    expected = [12, 13]
    assert list(range(width)[acs_slice(width, block)]) == expected
    first, n = acs_range(width, block / width)
    assert list(range(first, first + n)) == expected
    assert np.flatnonzero(center_block_mask((width,), (block,))).tolist() == expected
    mask = torch.ones(1, 1, 1, width, 1)
    window = acs_column_window(mask, torch.tensor([block]), 1)[0, 0, 0, :, 0]
    assert torch.nonzero(window).flatten().tolist() == expected
    # the estimator keeps exactly those columns: k-space only in column 11 gives all-zero maps
    kspace = torch.zeros(2, 8, width, 2)
    kspace[:, :, 11] = 1.0
    assert acs_sensitivity_maps(kspace, block, mask=torch.ones(8, width, dtype=torch.bool)).abs().sum() == 0
    kspace[:, :, 13] = 1.0
    assert acs_sensitivity_maps(kspace, block, mask=torch.ones(8, width, dtype=torch.bool)).abs().sum() > 0


def test_detection_is_one_rule():
    rng = np.random.default_rng(0)
    for width in (24, 25, 31):
        mask, n_acs = generate_mask("random", (16, width), 0.25, 3, rng)
        start, stop = acs_columns(torch.from_numpy(mask)[None, None, :, :, None])
        run_start, run_stop = centre_run(torch.from_numpy(mask[0])[None])
        assert (int(start), int(stop)) == (int(run_start), int(run_stop))
        assert acs_block(torch.from_numpy(mask)) == (16, int(stop - start))
        assert int(stop - start) >= n_acs  # sampled neighbours of the ACS block count as ACS


def test_header_width_wins_and_unsampled_centre_is_empty():
    mask = torch.zeros(2, 1, 1, 20, 1)
    mask[0, ..., 8:13, :] = 1
    start, stop = acs_columns(mask, torch.tensor([2, 0]))
    assert (start.tolist(), stop.tolist()) == ([9, 10], [11, 10])

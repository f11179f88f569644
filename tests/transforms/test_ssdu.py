"""SSDU split: partition properties, ratio, centre block, randomness, speed, dictionary twin."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.keys import Keys
from pipeline.transforms import RandSSDUSplit, RandSSDUSplitd, ssdu_split
from pipeline.transforms.masks import generate_mask
from pipeline.transforms.ssdu import center_block_mask


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(5, 40),
    w=st.integers(5, 40),
    density=st.floats(0.2, 0.9),
    q=st.floats(0.05, 0.95),
    selection=st.sampled_from(["gaussian", "uniform"]),
    seed=st.integers(0, 2**16),
)
def test_split_partition_properties(h, w, density, q, selection, seed):
    rng = np.random.default_rng(seed)
    omega = rng.random((h, w)) < density
    block = center_block_mask((h, w), (4, 4))
    omega |= block
    theta, lam = ssdu_split(omega, q, rng, selection, (4, 4))
    assert not (theta & lam).any()
    assert np.array_equal(theta | lam, omega)
    assert theta[block].all()
    assert lam.sum() == min(round(q * omega.sum()), (omega & ~block).sum())


@pytest.mark.parametrize("width", [31, 64])
def test_split_one_dimensional_columns(width):
    omega = np.zeros(width, dtype=bool)
    omega[::2] = True
    theta, lam = ssdu_split(omega, 0.5, np.random.default_rng(0), "uniform", (4,))
    assert theta.shape == (width,) and not (theta & lam).any() and np.array_equal(theta | lam, omega)
    assert theta[omega & center_block_mask((width,), (4,))].all()


def test_gaussian_selection_prefers_centre():
    omega = np.ones((64, 63), dtype=bool)
    lams = [ssdu_split(omega, 0.3, np.random.default_rng(s), "gaussian")[1] for s in range(5)]
    lam = np.mean(lams, axis=0)
    assert lam[24:40, 24:39].mean() > 2 * lam[:8, :8].mean()


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, 1.5])
def test_q_outside_open_interval_raises(q):
    with pytest.raises(ValueError, match="q"):
        ssdu_split(np.ones((8, 8), dtype=bool), q, np.random.default_rng(0))
    with pytest.raises(ValueError, match="q"):
        RandSSDUSplit(q=q)


def test_split_is_fast_on_fastmri_mask():
    omega, _ = generate_mask("random", (640, 368), 0.08, 4, np.random.default_rng(0))
    start = time.perf_counter()
    for q in (0.2, 0.8):
        ssdu_split(omega, q, np.random.default_rng(0), "gaussian")
    assert (time.perf_counter() - start) / 2 < 0.15  # reference: 32-289 ms per split


def _omega(h=40, w=33, cf=0.1):
    mask, n_acs = generate_mask("equispaced", (h, w), cf, 3, np.random.default_rng(0))
    return torch.from_numpy(mask)[None, :, :, None], n_acs


def test_transform_fresh_split_per_call_and_reproducible():
    omega, _ = _omega()
    a, b = RandSSDUSplit(q=0.4), RandSSDUSplit(q=0.4)
    a.set_random_state(1)
    b.set_random_state(1)
    splits_a = [a(omega) for _ in range(3)]
    splits_b = [b(omega) for _ in range(3)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(splits_a, splits_b))
    assert not torch.equal(splits_a[0][1], splits_a[1][1])
    assert torch.equal(a(omega, randomize=False)[1], splits_a[-1][1])


def test_q_list_and_range_draws():
    omega, _ = _omega(64, 64)
    choices = RandSSDUSplit(q=[0.2, 0.8])
    choices.set_random_state(0)
    seen = set()
    for _ in range(12):
        choices(omega)
        seen.add(choices.last_q)
    assert seen == {0.2, 0.8}
    ranged = RandSSDUSplit(q_range=(0.3, 0.5))
    ranged.set_random_state(0)
    values = []
    for _ in range(10):
        ranged(omega)
        values.append(ranged.last_q)
    assert all(0.3 <= v <= 0.5 for v in values) and len(set(values)) == 10


@pytest.mark.parametrize("split", ["points", "columns"])
def test_acs_center_block_kept(split):
    omega, n_acs = _omega()
    theta, lam = RandSSDUSplit(q=0.6, center_block="acs", split=split)(omega, num_low_frequencies=n_acs)
    first = (33 - n_acs + 1) // 2
    assert theta[0, :, first : first + n_acs, 0].all() and not lam[0, :, first : first + n_acs, 0].any()
    if split == "columns":
        assert (theta == theta[:, :1]).all()  # whole lines


def test_columns_split_rejects_2d_mask():
    mask = torch.from_numpy(generate_mask("gaussian2d", (32, 32), 0.1, 3, np.random.default_rng(0))[0])[None, ..., None]
    with pytest.raises(ValueError, match="columns"):
        RandSSDUSplit(split="columns")(mask)


def test_dictionary_twin_agrees_and_writes_masked_kspace():
    omega, n_acs = _omega()
    kspace = torch.randn(3, 40, 33, 2)
    d = {Keys.KSPACE: kspace, Keys.MASK: omega, Keys.NUM_LOW_FREQUENCIES: n_acs}
    twin = RandSSDUSplitd(q=0.5).set_random_state(4)
    array = RandSSDUSplit(q=0.5)
    array.set_random_state(4)
    out = twin(d)
    theta, lam = array(omega, n_acs)
    assert torch.equal(out[Keys.INPUT_MASK], theta) and torch.equal(out[Keys.LOSS_MASK], lam)
    assert torch.equal(out[Keys.MASKED_KSPACE], kspace * theta)
    assert torch.equal(out[Keys.MASK], omega)

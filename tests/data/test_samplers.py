"""ShapeBatchSampler: one shape per batch, shuffling by epoch, equal DDP steps, explicit source weights;
and the mixed-shape DataLoader case that used to crash in collate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from monai.data import DataLoader

from pipeline.data.datasets import SliceDataset
from pipeline.data.samplers import ShapeBatchSampler, describe_groups
from pipeline.keys import Keys


class Slices:
    """The two per-slice lists a batch sampler reads."""

    def __init__(self, groups: dict[tuple[str, tuple], int]) -> None:
        self.batch_keys = [key for (_, key), n in groups.items() for _ in range(n)]
        self.sources = [source for (source, _), n in groups.items() for _ in range(n)]


MIXED = Slices({("proxy", (4, 64, 48)): 7, ("proxy", (4, 64, 44)): 5, ("proxy", (6, 64, 48)): 4})


def _check_pure(sampler, data) -> list[list[int]]:
    batches = list(sampler)
    for batch in batches:
        assert len({data.batch_keys[i] for i in batch}) == 1 and len({data.sources[i] for i in batch}) == 1
    return batches


def test_batches_hold_one_shape_and_cover_every_slice_once():
    sampler = ShapeBatchSampler(MIXED, batch_size=2, drop_last=False, num_replicas=1, rank=0)
    batches = _check_pure(sampler, MIXED)
    assert sorted(i for b in batches for i in b) == list(range(16)) and len(batches) == len(sampler) == 4 + 3 + 2
    dropped = ShapeBatchSampler(MIXED, batch_size=2, num_replicas=1, rank=0)
    assert len(list(dropped)) == len(dropped) == 3 + 2 + 2


def test_epochs_reshuffle_deterministically():
    sampler = ShapeBatchSampler(MIXED, batch_size=2, seed=3, num_replicas=1, rank=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    again = ShapeBatchSampler(MIXED, batch_size=2, seed=3, num_replicas=1, rank=0)
    again.set_epoch(1)
    assert list(again) == second  # a resumed run (same seed and pass) draws the same batches
    ordered = ShapeBatchSampler(MIXED, batch_size=2, shuffle=False, num_replicas=1, rank=0)
    assert list(ordered)[0] == [0, 1]


@pytest.mark.parametrize("world", [2, 3])
def test_every_rank_gets_the_same_number_of_steps(world):
    ranks = [ShapeBatchSampler(MIXED, batch_size=2, seed=1, num_replicas=world, rank=r) for r in range(world)]
    steps = [len(list(s)) for s in ranks]
    assert len(set(steps)) == 1 and steps[0] == len(ranks[0]) == -(-7 // world)
    seen = [tuple(b) for s in ranks for b in s]
    assert set(seen) == {tuple(b) for b in ShapeBatchSampler(MIXED, batch_size=2, seed=1, num_replicas=1, rank=0)}
    for sampler in ranks:
        _check_pure(sampler, MIXED)


def test_explicit_source_weights():
    data = Slices({("knee", (15, 64, 48)): 40, ("brain", (16, 64, 40)): 10, ("brain", (20, 64, 40)): 10})
    sampler = ShapeBatchSampler(data, batch_size=2, weights={"knee": 1.0, "brain": 4.0}, num_replicas=1, rank=0)
    batches = _check_pure(sampler, data)
    assert len(batches) == 30  # the epoch keeps the number of batches the data gives
    counts = Counter(data.sources[b[0]] for b in batches)
    assert counts == {"brain": 24, "knee": 6}  # 4:1 by weight, not 1:2 by size: brain batches are reused
    odd = ShapeBatchSampler(data, batch_size=2, weights={"knee": 1.0, "brain": 3.0}, num_replicas=1, rank=0)
    assert sorted(Counter(data.sources[b[0]] for b in odd).values()) in ([7, 23], [8, 22])  # 22.5 : 7.5
    zero = ShapeBatchSampler(data, batch_size=2, weights={"knee": 0, "brain": 1}, num_replicas=1, rank=0)
    assert {data.sources[b[0]] for b in zero} == {"brain"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 8}, "no shape group holds a complete batch of 8"),
        ({"batch_size": 2, "weights": {"proxy": 1, "brain": 1}}, r"unknown \['brain'\]"),
        ({"batch_size": 2, "weights": {"proxy": 0}}, "not all zero"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapeBatchSampler(MIXED, num_replicas=1, rank=0, **kwargs)


def test_describe_groups():
    keys = [(4, 64, 48, 32, 32, True, False)] * 2 + [(6, 64, 48, 32, 32, False, False)]
    assert describe_groups(keys, ["knee"] * 3) == [
        "knee (4, 64, 48) recon 32x32: 2 slices",
        "knee (6, 64, 48) recon 32x32 (no reference, no mask): 1 slices",
    ]


def write_proxy(path: Path, coils: int, h: int, w: int, slices: int = 3, seed: int = 0) -> dict:
    """A fully sampled fastMRI-style proxy file with a 32x32 reference."""
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal((slices, coils, h, w)) + 1j * rng.standard_normal((slices, coils, h, w)))
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace.astype(np.complex64)
        f["reconstruction_rss"] = rng.random((slices, 32, 32)).astype(np.float32)
    return {"file": str(path), "domain": "proxy"}


def test_mixed_shapes_collate_with_batch_size_two(tmp_path):
    """k-space shapes (4, 64, 48), (4, 64, 44), (6, 64, 48) with batch size 2: never collated together."""
    shapes = [(4, 48), (4, 44), (6, 48)]
    items = [write_proxy(tmp_path / f"p{i}.h5", c, 64, w, seed=i) for i, (c, w) in enumerate(shapes)]
    dataset = SliceDataset(items)
    sampler = ShapeBatchSampler(dataset, batch_size=2, num_replicas=1, rank=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=1)
    shapes = set()
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for batch in loader:
            assert batch[Keys.KSPACE].shape[0] == 2
            shapes.add(tuple(batch[Keys.KSPACE].shape[1:4]))
    assert shapes == {(4, 64, 48), (4, 64, 44), (6, 64, 48)}
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        for _ in DataLoader(dataset, batch_size=9):  # what happened before: one batch across shapes
            pass
    assert torch.is_tensor(batch[Keys.KSPACE])

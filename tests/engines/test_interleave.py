import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pipeline.engines.interleave import InterleavedLoader, schedule_from_ratio
from pipeline.keys import Keys


def _loader(n: int, value: float) -> DataLoader:
    data = [{"x": torch.full((1,), value)} for _ in range(n)]
    return DataLoader(data, batch_size=1)


@pytest.mark.parametrize(
    "ratio, expected",
    [
        ({"sl": 1, "ssl": 1}, ["sl", "ssl"]),
        ({"sl": 1, "ssl": 2}, ["ssl", "sl", "ssl"]),
        ({"sl": 3, "ssl": 0}, ["sl"] * 3),
    ],
)
def test_schedule_from_ratio(ratio, expected):
    assert schedule_from_ratio(ratio) == expected


@pytest.mark.parametrize("ratio", [{"sl": 0, "ssl": 0}, {"sl": -1, "ssl": 1}, {"sl": 0.5, "ssl": 1}])
def test_schedule_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        schedule_from_ratio(ratio)


def test_batches_are_single_domain_and_follow_the_schedule():
    loaders = {"sl": _loader(3, 0.0), "ssl": _loader(5, 1.0)}
    loader = InterleavedLoader(loaders, mode="jssl", ratio={"sl": 1, "ssl": 2}, epoch_length=12)
    batches = list(loader)
    assert len(batches) == len(loader) == 12
    branches = [b[Keys.BRANCH] for b in batches]
    assert branches == ["ssl", "sl", "ssl"] * 4
    for b in batches:  # the value encodes the domain the batch came from
        assert float(b["x"]) == (0.0 if b[Keys.BRANCH] == "sl" else 1.0)


def test_short_loader_is_restarted():
    loader = InterleavedLoader({"sl": _loader(2, 0.0), "ssl": None}, mode="sl", epoch_length=7)
    assert [b[Keys.BRANCH] for b in loader] == ["sl"] * 7


def test_default_epoch_length_is_the_sum_of_used_loaders():
    assert len(InterleavedLoader({"sl": _loader(3, 0.0), "ssl": _loader(4, 1.0)}, mode="jssl")) == 7
    assert len(InterleavedLoader({"sl": _loader(3, 0.0), "ssl": _loader(4, 1.0)}, mode="ssl")) == 4


@pytest.mark.parametrize(
    "loaders, mode, match",
    [
        ({"sl": None, "ssl": "x"}, "jssl", "needs the 'sl' data"),
        ({"sl": "x", "ssl": None}, "jssl", "needs the 'ssl' data"),
        ({"sl": [], "ssl": [1]}, "jssl", "dataset is empty"),
        ({"sl": [1], "ssl": [1]}, "nonsense", "unknown --mode"),
    ],
)
def test_bad_configuration_fails_at_construction(loaders, mode, match):
    with pytest.raises(ValueError, match=match):
        InterleavedLoader(loaders, mode=mode)


def test_zero_ratio_for_both_branches_fails():
    with pytest.raises(ValueError, match="zero for every branch"):
        InterleavedLoader({"sl": [1], "ssl": [1]}, mode="jssl", ratio={"sl": 0, "ssl": 0})


def test_distributed_sampler_is_reshuffled_on_every_pass():
    from torch.utils.data import DistributedSampler

    data = TensorDataset(torch.arange(4.0))
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=4, sampler=sampler, collate_fn=lambda b: {"x": torch.stack([t[0] for t in b])})
    batches = list(InterleavedLoader({"sl": loader}, mode="sl", epoch_length=3))
    assert sampler.epoch == 3  # three one-batch passes, and the fourth started after the third's last batch
    assert not all(torch.equal(batches[0]["x"], b["x"]) for b in batches[1:])


def test_batch_sampler_gets_a_new_epoch_per_pass():
    """A shape-bucketed batch sampler is reshuffled on every restart, like a distributed sampler."""
    from pipeline.data.samplers import ShapeBatchSampler

    class Data(list):
        batch_keys = [(4, 8, 8)] * 4 + [(6, 8, 8)] * 2
        sources = ["proxy"] * 6

    data = Data({"x": torch.full((1,), float(i))} for i in range(6))
    sampler = ShapeBatchSampler(data, batch_size=2, num_replicas=1, rank=0)
    loader = InterleavedLoader({"sl": DataLoader(data, batch_sampler=sampler), "ssl": None}, mode="sl", epoch_length=7)
    batches = [tuple(b["x"].flatten().tolist()) for b in loader]
    assert sampler.epoch == 2 and len(batches) == 7
    assert all(len({v < 4 for v in batch}) == 1 for batch in batches)  # one shape group per batch


def test_next_pass_starts_when_the_last_batch_is_handed_out():
    """The next pass's iterator (with worker processes: its prefetching) exists before it is needed, and the
    state saved at that point resumes at the first batch of the new pass."""
    sl = _loader(2, 0.0)
    loader = InterleavedLoader({"sl": sl, "ssl": None}, mode="sl", epoch_length=5)
    it = iter(loader)
    next(it)
    assert loader.state_dict()["consumed"] == {"sl": 1} and loader.state_dict()["passes"] == {"sl": 0}
    next(it)  # the pass's last batch: the next pass is already started
    assert loader.state_dict()["consumed"] == {"sl": 0} and loader.state_dict()["passes"] == {"sl": 1}
    assert "sl" in loader._iterators
    assert len(list(it)) == 3


def test_loader_without_length_is_restarted_when_it_runs_out():
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            return iter([{"x": torch.zeros(1)}] * 2)

    loader = InterleavedLoader({"sl": DataLoader(Stream(), batch_size=1), "ssl": None}, mode="sl", epoch_length=5)
    assert len(list(loader)) == 5 and loader.state_dict()["passes"] == {"sl": 2}
    with pytest.raises(ValueError, match=r"\['sl'\] loader\(s\) have no length .*: give epoch_length"):
        InterleavedLoader({"sl": DataLoader(Stream(), batch_size=1), "ssl": None}, mode="sl")

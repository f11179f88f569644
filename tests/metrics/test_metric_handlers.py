"""VolumeMetrics (Ignite): per-volume accumulation, de-duplication, engine use, output transform."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from pipeline.keys import Keys
from pipeline.metrics import VolumeMetrics, aggregate_volumes, volume_metrics, volume_output_transform


def _volumes(make_volume):
    gt_a, pred_a = make_volume(3, 40, 36, seed=1)
    gt_b, pred_b = make_volume(2, 40, 36, seed=2)
    return {"a.h5": (gt_a, pred_a), "b.h5": (gt_b, pred_b)}


def _batches(volumes, batch_size=2, duplicate=False):
    items = [(name, s, gt[s], pred[s], float(gt.max())) for name, (gt, pred) in volumes.items() for s in range(len(gt))]
    if duplicate:
        items = items + items[:3]  # DistributedSampler-style padding repeats samples
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        yield (
            torch.stack([torch.from_numpy(c[3]) for c in chunk])[:, None],
            torch.stack([torch.from_numpy(c[2]) for c in chunk])[:, None],
            [c[0] for c in chunk],
            torch.tensor([c[1] for c in chunk]),
            torch.tensor([c[4] for c in chunk]),
        )


@pytest.mark.parametrize("duplicate", [False, True])
def test_volume_metrics_match_functional(make_volume, duplicate):
    volumes = _volumes(make_volume)
    metric = VolumeMetrics()
    for batch in _batches(volumes, duplicate=duplicate):
        metric.update(batch)
    result = metric.compute()
    expected = {name: volume_metrics(gt, pred) for name, (gt, pred) in volumes.items()}
    per_volume = metric.per_volume()
    assert set(per_volume) == {"a.h5", "b.h5"}
    for name in expected:
        for key in ("nmse", "psnr", "ssim"):
            assert per_volume[name][key] == pytest.approx(expected[name][key], rel=1e-6, abs=1e-9)
    for key in ("nmse", "psnr", "ssim"):
        assert result[key] == pytest.approx(sum(e[key] for e in expected.values()) / 2, rel=1e-6)


def test_unknown_maxval_uses_target_volume_max(make_volume):
    volumes = _volumes(make_volume)
    metric = VolumeMetrics(metric="psnr")
    for pred, target, names, slices, _ in _batches(volumes):
        metric.update((pred, target, names, slices, torch.zeros(len(names))))
    expected = sum(volume_metrics(gt, pred)["psnr"] for gt, pred in volumes.values()) / 2
    assert metric.compute() == pytest.approx(expected, rel=1e-6)


def test_aggregate_volumes_dedupes_records():
    record = ("v", 0, 1.0, 4.0, 10, 0.5, 2.0)
    once, twice = aggregate_volumes([record]), aggregate_volumes([record, record])
    assert once == twice and once["v"]["nmse"] == 0.25


def test_in_ignite_engine_with_decollated_dict_output(make_volume):
    volumes = _volumes(make_volume)
    samples = []
    for pred, target, names, slices, maxvals in _batches(volumes, batch_size=1):
        samples.append({Keys.PRED: pred[0], Keys.TARGET: target[0], Keys.VOLUME: names[0],
                        Keys.SLICE: int(slices[0]), Keys.MAX: float(maxvals[0])})

    def step(engine, batch):
        return [batch]  # MONAI evaluators decollate into a list of per-sample dicts

    engine = Engine(step)
    VolumeMetrics(output_transform=volume_output_transform()).attach(engine, "volume")
    VolumeMetrics(metric="ssim", output_transform=volume_output_transform()).attach(engine, "ssim_only")
    state = engine.run(samples, max_epochs=1)
    expected = sum(volume_metrics(gt, pred)["ssim"] for gt, pred in volumes.values()) / 2
    assert state.metrics["volume"]["ssim"] == pytest.approx(expected, rel=1e-6)
    assert state.metrics["ssim_only"] == pytest.approx(expected, rel=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="metric"):
        VolumeMetrics(metric="mae")
    with pytest.raises(ValueError, match="at least one"):
        VolumeMetrics().compute()
    with pytest.raises(ValueError, match="B, 1, H, W"):
        VolumeMetrics().update((torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), ["a", "a"], [0, 1], [1.0, 1.0]))


def test_same_file_name_in_two_folders_is_two_volumes(make_volume):
    """Volume identity is the path relative to the data root: knee/x.h5 and brain/x.h5 are scored apart."""
    gt_a, pred_a = make_volume(3, 40, 36, seed=1)
    gt_b, pred_b = make_volume(3, 40, 36, seed=2)
    volumes = {"knee/file1.h5": (gt_a, pred_a), "brain/file1.h5": (gt_b, pred_b)}
    metric = VolumeMetrics()
    for batch in _batches(volumes):
        metric.update(batch)
    metric.compute()
    per_volume = metric.per_volume()
    assert set(per_volume) == set(volumes)
    for name, (gt, pred) in volumes.items():
        assert per_volume[name]["ssim"] == pytest.approx(volume_metrics(gt, pred)["ssim"], rel=1e-6)

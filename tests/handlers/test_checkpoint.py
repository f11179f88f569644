import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.handlers import CheckpointSaver

from pipeline.handlers.checkpoint import (
    AtomicCheckpointSaver,
    ResumeFromLatestCheckpoint,
    RNGState,
    latest_checkpoint,
    load_weights,
)


def _engine(max_epochs=1, epoch_length=10) -> Engine:
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = max_epochs
    return engine


def test_monai_checkpoint_saver_is_not_atomic(tmp_path):
    """Why we wrap it: MONAI's CheckpointSaver writes in place (DiskSaver(atomic=False))."""
    net = torch.nn.Linear(2, 2)
    saver = CheckpointSaver(str(tmp_path), {"net": net}, save_interval=1, epoch_level=False)
    assert saver._interval_checkpoint.save_handler._atomic is False


def test_atomic_saver_writes_complete_files_and_keeps_the_newest(tmp_path):
    net = torch.nn.Linear(2, 2)
    engine = Engine(lambda e, b: None)
    saver = AtomicCheckpointSaver(tmp_path, {"network": net}, save_interval=3)
    saver.attach(engine)
    assert saver.checkpoint.save_handler._atomic is True
    engine.run(range(10), max_epochs=1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_iteration=10.pt"]  # n_saved=1; final save at completion
    assert latest_checkpoint(tmp_path).name == "checkpoint_iteration=10.pt"
    state = torch.load(tmp_path / names[0], weights_only=True)
    assert torch.equal(state["network"]["weight"], net.weight)


def test_latest_checkpoint_picks_the_highest_iteration(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    for it in (5, 40, 12):
        torch.save({}, tmp_path / f"checkpoint_iteration={it}.pt")
    (tmp_path / ".checkpoint_iteration=99.pt.tmp").write_bytes(b"partial")  # an interrupted write
    assert latest_checkpoint(tmp_path).name == "checkpoint_iteration=40.pt"


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    rng = RNGState()
    torch.save({"rng": rng.state_dict()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    RNGState().load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_resume_restores_iteration_and_weights(tmp_path):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        opt.zero_grad()
        net(torch.ones(1, 2)).sum().backward()
        opt.step()

    first = Engine(step)
    AtomicCheckpointSaver(tmp_path, {"network": net, "optimizer": opt}, save_interval=4).attach(first)
    first.run(range(6), max_epochs=1, epoch_length=6)
    trained = net.weight.detach().clone()

    fresh = torch.nn.Linear(2, 2)
    second = Engine(lambda e, b: None)
    resume = ResumeFromLatestCheckpoint(tmp_path, {"network": fresh})
    resume.attach(second)
    second.run(range(6), max_epochs=2, epoch_length=6)
    assert resume.resumed_from.name == "checkpoint_iteration=6.pt"
    assert torch.equal(fresh.weight, trained)
    assert second.state.iteration == 12  # continued from 6, not from 0


def test_load_weights_names_mismatching_keys(tmp_path):
    torch.save(torch.nn.Linear(2, 3).state_dict(), tmp_path / "other.pt")
    expected = r"different network architecture.*shape mismatch: bias \(3,\) vs \(2,\), weight"
    with pytest.raises(ValueError, match=expected):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "other.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)).state_dict(), tmp_path / "seq.pt")
    with pytest.raises(ValueError, match=r"missing keys: bias, weight; unexpected keys: 0.bias, 0.weight"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "seq.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "nope.pt")


def test_load_weights_accepts_training_checkpoints(tmp_path):
    src = torch.nn.Linear(2, 2)
    torch.save({"network": src.state_dict(), "optimizer": {}}, tmp_path / "ckpt.pt")
    dst = load_weights(torch.nn.Linear(2, 2), tmp_path / "ckpt.pt")
    assert torch.equal(dst.weight, src.weight)


def test_load_weights_reads_safetensors_and_the_bundle_refuses_two_weights_files(tmp_path):
    from safetensors.torch import save_file

    from pipeline.engines.startup import ConfigError
    from pipeline.handlers.checkpoint import bundle_weights

    src = torch.nn.Linear(2, 2)
    models = tmp_path / "models"
    models.mkdir()
    assert bundle_weights(tmp_path) == models / "model.pt"  # named, not yet there: the start-up check says so
    save_file(src.state_dict(), models / "model.safetensors")
    assert bundle_weights(tmp_path) == models / "model.safetensors"
    dst = load_weights(torch.nn.Linear(2, 2), bundle_weights(tmp_path))
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    torch.save(torch.nn.Linear(2, 2).state_dict(), models / "model.pt")  # e.g. a later training's weights
    with pytest.raises(ConfigError, match="holds both models/model.safetensors and models/model.pt"):
        bundle_weights(tmp_path)
    with pytest.raises(ValueError, match=r"model.safetensors was made for a different network architecture"):
        load_weights(torch.nn.Linear(2, 3), models / "model.safetensors")

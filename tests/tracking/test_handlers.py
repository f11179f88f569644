"""The Ignite handlers on real tiny Ignite engines, with an in-memory backend: MLflow is one backend of many."""

from __future__ import annotations

import json
import math

import pytest
import torch
from ignite.engine import Engine, Events

from pipeline.keys import Keys
from pipeline.tracking import TrackingHandler, ValidationLogger
from pipeline.tracking.handlers import invoked_command
from tests.tracking.test_base import MemoryTracker


def _trainer(iterations: int = 4) -> Engine:
    """An engine shaped like the JSSL trainer: dict output of scalars, an ``optimizer`` attribute."""
    trainer = Engine(lambda engine, batch: {"loss": float(batch), "sl/l1": torch.tensor(0.5), "name": "x"})
    trainer.optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    trainer.data = list(range(1, iterations + 1))
    return trainer


def _evaluator() -> Engine:
    """An engine shaped like the reconstruction evaluator: images in the output, metrics at epoch end."""

    def step(engine, batch):
        image = torch.rand(2, 1, 8, 8)
        return {Keys.PRED: image, Keys.TARGET: image + 0.1, "zero_filled": image * 0.5,
                Keys.VOLUME: ["vol_a.h5", "vol_a.h5"], Keys.SLICE: torch.tensor([2 * batch, 2 * batch + 1])}

    evaluator = Engine(step)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val_ssim=0.75, val_psnr=30))
    return evaluator


def _wire(tmp_path, backend, **kwargs):
    tracking = TrackingHandler(backend, tmp_path / "out", artifacts=[tmp_path / "model.pt"], **kwargs)
    trainer, evaluator = _trainer(), _evaluator()
    tracking.attach(trainer)
    ValidationLogger(tracking, tmp_path / "out" / "validation", num_images=3).attach(evaluator)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=4), lambda _: evaluator.run([0, 1]))
    return tracking, trainer


def test_training_and_validation_reach_any_backend(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"weights")
    backend = MemoryTracker()
    config = {"mode": "jssl", "readout_crop": False, "network": torch.nn.Identity(), "schedule": None}
    tracking, trainer = _wire(tmp_path, backend, config=config, params={"schedule": "sl,ssl"},
                              tags={"mode": "jssl"}, log_every=2)
    trainer.run(trainer.data, max_epochs=1)

    hooks = [name for name, _, _ in backend.calls]
    assert hooks[:4] == ["start", "tags", "params", "artifact"] and hooks[-1] == "end"
    assert {run_id for _, run_id, _ in backend.calls} == {"run0"}
    [run_name] = backend.payloads("start")
    stored = json.loads((tmp_path / "out" / "tracking_run.json").read_text())
    assert run_name.startswith("jssl-") and stored == {"run_id": "run0", "run_name": run_name}
    [tags] = backend.payloads("tags")
    assert tags["mode"] == "jssl" and tags["code_version"]
    assert backend.payloads("params") == [{"mode": "jssl", "readout_crop": "False", "schedule": "sl,ssl"}]
    metrics = backend.payloads("metrics")
    assert [step for step, _ in metrics] == [2, 4, 4]  # every log_every iterations, then the validation
    assert metrics[0][1] == {"loss": 1.5, "sl/l1": 0.5, "lr_group_0": 0.1}  # means over iterations 1 and 2
    assert metrics[2][1] == {"val_ssim": 0.75, "val_psnr": 30.0}
    assert backend.payloads("artifact") == [("command.txt", None), ("iteration_000004.png", "validation"),
                                            ("model.pt", None)]
    assert (tmp_path / "out" / "validation" / "iteration_000004.png").stat().st_size > 1000
    assert backend.payloads("end") == ["FINISHED"]


def test_a_restarted_process_resumes_the_run_of_its_output_folder(tmp_path):
    backend = MemoryTracker()
    first, _ = _wire(tmp_path, backend, run_name="first")
    first.started(_trainer())  # the process dies before COMPLETED
    second, trainer = _wire(tmp_path, backend, run_name="ignored on resume")
    trainer.run(trainer.data, max_epochs=1)
    assert backend.payloads("start") == ["first", "first"]
    assert {run_id for _, run_id, _ in backend.calls} == {"run0"}
    third, trainer = _wire(tmp_path, backend)  # extended after it finished: the same run again
    trainer.run(trainer.data, max_epochs=1)
    assert {run_id for _, run_id, _ in backend.calls} == {"run0"}


def test_a_new_output_folder_always_gets_a_new_run_whatever_its_name(tmp_path):
    backend = MemoryTracker()
    for folder in ("a", "b"):
        tracking, trainer = _wire(tmp_path / folder, backend, run_name="same-name")
        tracking.started(trainer)  # both crash before completing
    assert [run_id for hook, run_id, _ in backend.calls if hook == "start"] == ["run0", "run1"]


def test_the_guard_holds_through_the_handlers(tmp_path):
    backend = MemoryTracker()
    tracking, trainer = _wire(tmp_path, backend, config={"patient_id": "P001"})
    with pytest.raises(ValueError, match="patient identifiers never leave the data"):
        trainer.run(trainer.data, max_epochs=1)
    assert backend.payloads("params") == []


def test_only_rank_0_tracks(tmp_path, monkeypatch):
    monkeypatch.setattr("ignite.distributed.get_rank", lambda: 1)
    backend = MemoryTracker()
    _, trainer = _wire(tmp_path, backend)
    trainer.run(trainer.data, max_epochs=1)
    assert backend.calls == [] and not (tmp_path / "out").exists()


def test_invoked_command_names_the_module_not_its_path(monkeypatch):
    """``python -m monai.bundle`` puts the site's path of ``__main__.py`` in argv[0]; command.txt gets the module."""
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="monai.bundle.__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    argv = ["/home/site/venv/lib/python3.11/site-packages/monai/bundle/__main__.py", "run", "--run_name", "a b"]
    assert invoked_command(argv) == "python -m monai.bundle run --run_name 'a b'"
    main.__spec__ = None  # a script run as a file keeps its path as typed
    assert invoked_command(["train.py", "--x", "1"]) == "python train.py --x 1"


def test_interleaved_branches_are_all_logged_as_window_means(tmp_path):
    """JSSL alternates SL and SSL steps: with log_every = 2 a sampled output would only ever show one branch."""
    backend = MemoryTracker()

    def step(engine, batch):
        branch = "sl" if batch % 2 else "ssl"
        out = {"loss": float(batch), f"loss_{branch}": float(batch), "skipped_steps": float(batch > 4)}
        return {**out, f"{branch}/grad_norm": float("nan")} if batch == 5 else out

    trainer = Engine(step)
    TrackingHandler(backend, tmp_path, log_every=2).attach(trainer)
    trainer.run(list(range(1, 7)), max_epochs=1)
    metrics = dict(backend.payloads("metrics"))
    assert metrics[2] == {"loss": 1.5, "loss_sl": 1.0, "loss_ssl": 2.0, "skipped_steps": 0.0}
    assert metrics[6] == {"loss": 5.5, "loss_sl": 5.0, "loss_ssl": 6.0, "skipped_steps": 1.0,
                          "sl/grad_norm": metrics[6]["sl/grad_norm"]}
    assert math.isnan(metrics[6]["sl/grad_norm"])  # no finite value in the window: the last one

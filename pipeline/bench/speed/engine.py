"""Engine overhead and data wait: the bundle's :class:`~pipeline.engines.JSSLTrainer` against a bare step.

The trainer is built from the bundle's ``train.json`` (its transforms, ``DataLoader`` s with its
``num_workers``, ``InterleavedLoader``, losses, optimiser, LR-schedule handler, optionally its MLflow
tracker; validation and checkpoint handlers left out). The bare step does what one engine iteration does
with nothing around it: :func:`~pipeline.engines.batching.network_inputs`, the forward pass under the same
:func:`~pipeline.engines.batching.autocast_context`, the same loss called with
:func:`~pipeline.engines.batching.loss_arguments`, backward, the same clipping and an optimiser step, on
a copy of the engine's network (same architecture and weights) with a fresh optimiser of the same kind.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.bench.bundle import MODULE_ID, train_parser
from pipeline.bench.common import num_params, sync, timed

__all__ = ["bench_engine"]

#: Plain settings of ``train.json`` recorded with the results (the trainer uses the first three).
_SETTINGS = ("precision", "grad_clip_norm", "branch_weights", "batch_size", "num_workers", "network_size", "mode")


def _data_wait(trainer: Any, warmup: int, device: torch.device) -> dict[str, Any]:
    """Run ``trainer`` undisturbed; time waiting for batches vs everything else after ``warmup`` steps."""
    from ignite.engine import Events

    marks: dict[str, list[float]] = {"get_start": [], "get_done": [], "iter_done": []}
    trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda e: marks["get_start"].append(time.perf_counter()))
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, lambda e: marks["get_done"].append(time.perf_counter()))

    def _iter_done(engine: Any) -> None:
        sync(device)
        marks["iter_done"].append(time.perf_counter())

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _iter_done)
    trainer.run()
    n = min(len(marks["get_start"]), len(marks["get_done"]), len(marks["iter_done"]))
    waits = [marks["get_done"][k] - marks["get_start"][k] for k in range(warmup, n)]
    computes = [marks["iter_done"][k] - marks["get_done"][k] for k in range(warmup, n)]
    wall = marks["iter_done"][n - 1] - marks["get_start"][warmup]
    return {
        "steps": len(waits),
        "wait_fraction": sum(waits) / wall,
        "wait_median_ms": 1000 * statistics.median(waits),
        "wait_max_ms": 1000 * max(waits),
        "step_median_s": statistics.median(computes),
        "wall_s": wall,
    }


def _bare_step(trainer: Any) -> Callable[[dict], None]:
    """One engine iteration without the engine, on a copy of ``trainer``'s network and a fresh optimiser."""
    from pipeline.engines.batching import autocast_context, loss_arguments, network_inputs
    from pipeline.keys import Keys

    device = torch.device(trainer.state.device)
    net = copy.deepcopy(trainer.network)
    optimizer = type(trainer.optimizer)(net.parameters(), **trainer.optimizer.defaults)

    def step(batch: dict) -> None:
        branch = batch[Keys.BRANCH]
        kspace_in, mask_in, nlf = network_inputs(batch, device)
        kwargs = loss_arguments(batch, device)
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, trainer.precision):
            output = net(kspace_in, mask_in, nlf)
        loss, _ = trainer.losses[branch](output, **kwargs)
        (trainer.branch_weights[branch] * loss).backward()
        if trainer.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), trainer.grad_clip_norm)
        optimizer.step()

    return step


def _overhead(trainer: Any, warmup: int) -> dict[str, Any]:
    """Engine step and bare step alternate on the same batch (order swapped every step)."""
    from ignite.engine import Events

    from pipeline.keys import Keys

    device = torch.device(trainer.state.device)
    bare_step = _bare_step(trainer)
    engine_times: list[float] = []
    bare_times: list[float] = []
    branches: list[str] = []
    state: dict[str, float] = {}

    def _bare_before(engine: Any) -> None:  # odd steps: bare step first (first handler of the step)
        state["k"] = state.get("k", 0) + 1
        if state["k"] % 2 == 1:
            bare_times.append(timed(lambda: bare_step(engine.state.batch), device))

    def _engine_start(engine: Any) -> None:
        sync(device)
        state["t0"] = time.perf_counter()

    def _engine_stop(engine: Any) -> None:
        sync(device)
        engine_times.append(time.perf_counter() - state["t0"])
        branches.append(engine.state.batch[Keys.BRANCH])

    def _bare_after(engine: Any) -> None:  # even steps: engine step first
        if state["k"] % 2 == 0:
            bare_times.append(timed(lambda: bare_step(engine.state.batch), device))

    # the engine step is timed from "batch arrived" to "every ITERATION_COMPLETED handler done"
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, _bare_before)
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, _engine_start)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, _engine_stop)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, _bare_after)
    trainer.run()
    pairs = list(zip(engine_times, bare_times))[warmup:]
    ratios = [e / b for e, b in pairs]
    return {
        "steps": len(pairs),
        "branches": branches[warmup:],
        "engine_s": statistics.median(e for e, _ in pairs),
        "bare_s": statistics.median(b for _, b in pairs),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def bench_engine(
    bundle: Path,
    manifest: Path,
    steps: int,
    warmup: int,
    network_size: str | None,
    num_workers: int | None,
    mlflow: bool,
    overhead: bool = True,
    settings_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Engine step vs bare step (interleaved on the same batch) and the data-wait fraction of an undisturbed run.

    Args:
        bundle: the bundle folder (its ``configs/train.json`` is used).
        manifest: the demo manifest; its data are generated when missing.
        steps: measured steps per run.
        warmup: unmeasured steps first.
        network_size: overrides the bundle's ``network_size`` (``None``: keep).
        num_workers: overrides the bundle's DataLoader workers (``None``: keep).
        mlflow: attach the bundle's MLflow tracker (writing to a temporary folder).
        overhead: also time engine vs bare steps; ``False`` measures the data wait only (e.g. at fastMRI size,
            where every step takes a minute on a CPU).
        settings_overrides: further bundle settings (e.g. ``{"gradient_checkpointing": True, "batch_size": 1}``
            at fastMRI size); recorded in the result's ``settings``.

    Returns:
        ``{"settings": ..., "data_wait": {"wait_fraction", ...}, "overhead": {"engine_s", "bare_s", "ratio", ...}}``
        (``"overhead"`` only with ``overhead``); ``settings`` names the manifest.
    """
    from monai.handlers import LrScheduleHandler

    from pipeline.data.simulate import ensure_dataset
    from pipeline.engines import JSSLTrainer, seed_everything

    ensure_dataset(manifest)
    with tempfile.TemporaryDirectory(prefix="jssl_speed_") as tmp:
        overrides: dict[str, Any] = {"output_dir": tmp, "epoch_length": warmup + steps, "max_epochs": 1}
        if network_size is not None:
            overrides["network_size"] = network_size
        if num_workers is not None:
            overrides["num_workers"] = num_workers
        overrides.update(settings_overrides or {})
        parser = train_parser(bundle, manifest, overrides)
        seed_everything(0)
        device = parser.get_parsed_content("device")
        loader = parser.get_parsed_content("train_loader")
        network = parser.get_parsed_content(MODULE_ID)
        optimizer = parser.get_parsed_content("optimizer")
        losses = parser.get_parsed_content("losses")
        scheduler = parser.get_parsed_content("lr_scheduler")
        settings = {key: parser.get_parsed_content(key) for key in _SETTINGS}
        tracker = None
        if mlflow:
            parser["tracker"]["artifacts"] = []
            tracker = parser.get_parsed_content("tracker")

        def make_trainer() -> JSSLTrainer:
            handlers: list[Any] = [LrScheduleHandler(scheduler, epoch_level=False, print_lr=False)]
            if tracker is not None:
                handlers.append(tracker)
            return JSSLTrainer(
                device=device,
                max_epochs=1,
                train_data_loader=loader,
                network=network,
                optimizer=optimizer,
                losses=losses,
                branch_weights=settings["branch_weights"],
                precision=settings["precision"],
                grad_clip_norm=settings["grad_clip_norm"],
                epoch_length=warmup + steps,
                train_handlers=handlers,
            )

        result: dict[str, Any] = {
            "settings": {**settings, "mlflow": mlflow, "params_M": num_params(network), "device": str(device),
                         "manifest": str(manifest), **dict(settings_overrides or {})},
            "data_wait": _data_wait(make_trainer(), warmup, device),
        }
        if overhead:
            result["overhead"] = _overhead(make_trainer(), warmup)
    return result

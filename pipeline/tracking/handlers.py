"""Ignite wiring of any :class:`~pipeline.tracking.Tracker`: the training run and its validations.

What a training run records (one run per output folder, resumed after a crash):

- params: the settings of the resolved config (:func:`~pipeline.tracking.loggable_settings`) and derived
  values given explicitly (parameter count, interleaving schedule);
- tags: the given tags (``mode``, ``manifest_digest`` in the bundle) and ``code_version``;
- metrics: every scalar of the trainer's output (``loss``, ``loss_sl``, ``sl/l1``, ``sl/grad_norm`` ...) as its
  mean over the last ``log_every`` iterations, and ``lr_group_<i>``, every ``log_every`` iterations; the
  evaluator's metrics at every validation (:class:`ValidationLogger`);
- artifacts: ``command.txt`` (the command line, overrides included), PNGs of fixed validation slices
  (``validation/iteration_NNNNNN.png``) and, at completion, the given files and folders;
- a model (optional, at completion): the network as an MLflow model, registered as a version
  (:mod:`pipeline.tracking.registry`).

The run's id is stored in ``<output_dir>/tracking_run.json``: a resumed (after a crash) or extended (more
epochs) training reopens THAT run, and a new output folder always gets a new run, whatever its name.
Runs are never looked up by name, so two folders sharing a store and a ``run_name`` never mix.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from pipeline.keys import Keys
from pipeline.tracking.base import Tracker
from pipeline.tracking.settings import code_version, loggable_settings

if TYPE_CHECKING:
    from pipeline.tracking.registry import RegisterModel

logger = logging.getLogger(__name__)

#: File in the training output folder that holds ``{"run_id", "run_name"}`` of its tracking run.
RUN_FILE = "tracking_run.json"


def _scalars(values: Any) -> dict[str, float]:
    """The numeric entries of a mapping (numbers and one-element tensors); anything else gives ``{}``."""
    if not isinstance(values, Mapping):
        return {}
    out = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out



def invoked_command(argv: Sequence[str] | None = None) -> str:
    """The command line that started this process, as the user typed it.

    A module run with ``python -m`` (``monai.bundle``) has the absolute path of its ``__main__.py`` in
    ``sys.argv[0]``, which names the site's folders (user names, virtual environments) and does not run
    elsewhere; it is written back as ``python -m <module>``. Other arguments are kept as given.

    Args:
        argv: the arguments (default ``sys.argv``).

    Returns:
        A shell-quoted command line, e.g. ``python -m monai.bundle run --config_file configs/train.json``.
    """
    argv = list(sys.argv if argv is None else argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name and argv:
        module = spec.name.removesuffix(".__main__")
        argv = ["-m", module, *argv[1:]]
    return shlex.join(["python", *argv])

class TrackingHandler:
    """Track a trainer's run through ``backend``, on rank 0 only under DDP. Attach it to the trainer.

    Args:
        backend: the tracker, e.g. :class:`~pipeline.tracking.MLflowTracker`.
        output_dir: the training output folder; holds ``tracking_run.json`` and ``command.txt``.
        run_name: name of a NEW run (default ``<tags["mode"]>-<YYYYmmdd-HHMMSS>``); ignored when
            ``output_dir`` already has a run (resume / extension).
        config: the resolved config, id -> value, read when the run starts and filtered by
            :func:`~pipeline.tracking.loggable_settings` (in a bundle: ``"$__local_refs"``).
        params: further params (derived values); they win over settings of the same name.
        tags: tags of the run; ``code_version`` is added.
        artifacts: files or folders (their files) logged when the trainer completes.
        model: logs (and registers) the trained network when the trainer completes, before the run ends
            (:class:`~pipeline.tracking.RegisterModel`); ``None``: no model is logged.
        log_every: log the iteration metrics every this many iterations: each scalar of the trainer's output
            as its mean over the iterations since the last log that reported it (so interleaved branches, e.g.
            ``loss_sl`` on odd and ``loss_ssl`` on even iterations, are both logged whatever ``log_every``);
            counters (``skipped_steps``) and the learning rates as their last value. A resumed run's first
            window starts at the resumed iteration.
    """

    #: Output scalars that count since the start (logged as their last value, not averaged).
    CUMULATIVE = ("skipped_steps",)

    def __init__(
        self,
        backend: Tracker,
        output_dir: str | Path,
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        artifacts: Sequence[str | Path] | None = None,
        log_every: int = 1,
        model: RegisterModel | None = None,
    ) -> None:
        self.backend = backend
        self.output_dir = Path(output_dir)
        self.run_name = run_name
        self.config = config
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.artifacts = [Path(a) for a in artifacts or []]
        self.log_every = max(1, int(log_every))
        self.model = model
        self.enabled = idist.get_rank() == 0  # one writer under DDP: rank 0
        self.trainer: Engine | None = None
        self._window: dict[str, list[float]] = {}  # scalars of the iterations since the last log

    def attach(self, engine: Engine) -> None:
        """Track ``engine`` (the trainer): start/resume at ``STARTED``, end the run at ``COMPLETED``."""
        self.trainer = engine
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.log_every), self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        """Start or resume the run; log tags, params and ``command.txt``."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        run_file = self.output_dir / RUN_FILE
        stored = json.loads(run_file.read_text()) if run_file.is_file() else {}
        default_name = f"{self.tags.get('mode') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_name = stored.get("run_name") or self.run_name or default_name
        run_id = self.backend.start(run_name, run_id=stored.get("run_id"))
        if not stored:
            run_file.write_text(json.dumps({"run_id": run_id, "run_name": run_name}) + "\n")
        self.backend.set_tags({**self.tags, "code_version": code_version()})
        self.backend.log_params({**loggable_settings(self.config or {}), **self.params})
        # the exact command, overrides included: with the config files this reproduces the run
        command = self.output_dir / "command.txt"
        command.write_text(invoked_command() + "\n")
        self.backend.log_artifact(command)
        logger.info(f"tracking run {self.backend.run_id} ({run_name}) with {type(self.backend).__name__}")

    def accumulate(self, engine: Engine) -> None:
        """Keep the scalars of this iteration's ``engine.state.output`` for the next log."""
        for key, value in _scalars(engine.state.output).items():
            self._window.setdefault(key, []).append(value)

    def iteration_completed(self, engine: Engine) -> None:
        """Log the window's scalars (means of their finite values; counters: last value) and the learning rate
        of each optimiser group, then start a new window."""
        metrics = {}
        for key, values in self._window.items():
            finite = [v for v in values if math.isfinite(v)]
            metrics[key] = values[-1] if key in self.CUMULATIVE or not finite else sum(finite) / len(finite)
        self._window = {}
        optimizer = getattr(engine, "optimizer", None)
        if optimizer is not None:
            metrics.update({f"lr_group_{i}": float(group["lr"]) for i, group in enumerate(optimizer.param_groups)})
        self.backend.log_metrics(metrics, step=engine.state.iteration)

    def completed(self, engine: Engine) -> None:
        """Log the artifacts (and the model) and end the run as ``FINISHED``."""
        for path in self.artifacts:
            if path.exists():
                self.backend.log_artifact(path)
            else:
                logger.warning(f"artifact {path} does not exist; not logged")
        if self.model is not None:
            self.model.log(engine, self.backend, self.tags)
        self.backend.end("FINISHED")


class ValidationLogger:
    """Send an evaluator's metrics and a PNG of fixed validation slices to the trainer's run.

    Attach to the validation evaluator. The first ``num_images`` slices of the (unshuffled) validation
    loader are drawn at every validation: zero-filled input, reconstruction, reference and error. The step
    is the trainer's iteration.

    Args:
        tracking: the :class:`TrackingHandler` attached to the trainer.
        image_dir: where the PNGs are written before upload.
        num_images: slices per PNG.
    """

    def __init__(self, tracking: TrackingHandler, image_dir: str | Path, num_images: int = 3) -> None:
        self.tracking = tracking
        self.image_dir = Path(image_dir)
        self.num_images = num_images
        self._rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        """Collect images during ``engine``'s epoch and log them with its metrics at ``EPOCH_COMPLETED``."""
        if not self.tracking.enabled:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._log)

    def _collect(self, engine: Engine) -> None:
        out = engine.state.output
        for i in range(out[Keys.PRED].shape[0]):
            if len(self._rows) >= self.num_images:
                return
            self._rows.append(
                {
                    "title": f"{out[Keys.VOLUME][i]} slice {int(out[Keys.SLICE][i])}",
                    "input": out["zero_filled"][i, 0].cpu() if "zero_filled" in out else None,
                    "recon": out[Keys.PRED][i, 0].cpu(),
                    "reference": out[Keys.TARGET][i, 0].cpu() if Keys.TARGET in out else None,
                    "data_range": float(torch.as_tensor(out[Keys.MAX]).reshape(-1)[i]) if Keys.MAX in out else 0.0,
                }
            )

    def _log(self, engine: Engine) -> None:
        trainer = self.tracking.trainer
        step = trainer.state.iteration if trainer is not None else engine.state.epoch
        backend = self.tracking.backend
        backend.log_metrics(_scalars(engine.state.metrics), step=step)
        if self._rows:
            from pipeline.io.previews import save_comparison_grid

            path = save_comparison_grid(self._rows, self.image_dir / f"iteration_{step:06d}.png")
            backend.log_artifact(path, "validation")

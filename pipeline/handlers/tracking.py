"""MLflow tracking of a JSSL run, on MONAI's :class:`~monai.handlers.MLFlowHandler`.

What a run records (one MLflow run per output folder, reopened after a crash):

- params: the resolved training settings (``params``), the interleaving schedule, dataset sizes;
- tags: ``mode``, ``manifest_digest`` (sha256 of the datalist), ``code_version`` (git commit or package
  version);
- metrics: ``loss``, ``loss_sl``, ``loss_ssl`` and ``<branch>/<term>`` every iteration, ``lr``, and the
  validation metrics (``val_ssim``, ``val_psnr``, ``val_nmse``, baselines) at every validation;
- artifacts: the bundle config files, PNG reconstructions of fixed validation slices
  (``validation/iteration_NNNNNN.png``) and the final bundle weights (``model/model.pt``).

The run name is fixed per output folder (stored in ``<output_dir>/mlflow_run.txt``), which is how a
resumed process finds its unfinished run again (MONAI reuses an unfinished run of the same name).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import mlflow
from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

from pipeline.keys import Keys

logger = logging.getLogger(__name__)

#: Substrings that must never appear in a logged key: identifiers of patients.
FORBIDDEN_KEYS = ("patient_id", "patient")


def code_version() -> str:
    """The git commit of this package's checkout (``-dirty`` if modified), else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode == 0 and sha.stdout.strip():
            return sha.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jssl-pipeline")
    except PackageNotFoundError:
        return "unknown"


def check_tracking_uri(tracking_uri: str) -> str:
    """Open the tracking store once, so that a bad URI stops the run at start-up with a clear message.

    Raises:
        ValueError: if the URI is a plain path/``file://`` URI (MLflow >= 3.13 refuses file stores) or the
            store cannot be opened.
    """
    if "://" not in tracking_uri or tracking_uri.startswith("file://"):
        raise ValueError(
            f"MLflow tracking URI {tracking_uri!r} is a file store, which MLflow refuses: "
            "use sqlite:///<folder>/mlruns.db or an http(s) tracking server"
        )
    try:
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        mlflow.MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - any failure to open the store is reported the same way
        raise ValueError(f"cannot open the MLflow tracking store {tracking_uri!r}: {err}") from err
    return tracking_uri


def _clean(mapping: Mapping[str, Any]) -> dict[str, Any]:
    for key in mapping:
        if any(bad in str(key).lower() for bad in FORBIDDEN_KEYS):
            raise ValueError(f"refusing to log {key!r} to MLflow: patient identifiers never leave the data")
    return dict(mapping)


class MLflowTracker(MLFlowHandler):
    """MONAI's MLflow handler with a persistent run per output folder, tags, params and image artifacts.

    Attach it to the trainer. Validation metrics and images reach the same run through
    :class:`ValidationLogger` attached to the evaluator.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlruns.db`` or ``http(s)://``).
        output_dir: the training output folder; holds ``mlflow_run.txt`` with the run name.
        experiment_name: MLflow experiment.
        run_name: name of a NEW run (default ``<mode>-<timestamp>``); ignored when the folder already
            has one (resume).
        params: settings to log as params (flat mapping; nested values are stringified).
        tags: extra tags; ``mode``, ``manifest_digest`` and ``code_version`` are added here.
        artifacts: files or folders logged when training completes (config files, final weights).
        mode / manifest_digest: the training mode and the sha256 of the datalist.
    """

    def __init__(
        self,
        tracking_uri: str,
        output_dir: str | Path,
        experiment_name: str = "jssl",
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[str | Path] | None = None,
        mode: str = "",
        manifest_digest: str = "",
        log_every: int = 1,
    ) -> None:
        self.enabled = idist.get_rank() == 0  # one writer under DDP: rank 0
        if self.enabled:
            check_tracking_uri(tracking_uri)
        self.output_dir = Path(output_dir)
        name_file = self.output_dir / "mlflow_run.txt"
        if name_file.is_file() and name_file.read_text().strip():
            run_name = name_file.read_text().strip()
        else:
            run_name = run_name or f"{mode or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
            if self.enabled:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                name_file.write_text(run_name + "\n")
        super().__init__(
            tracking_uri=tracking_uri,
            iteration_log=True,
            epoch_log=False,
            output_transform=lambda output: output,
            experiment_name=experiment_name,
            run_name=run_name,
            experiment_param=_clean({k: str(v) for k, v in (params or {}).items()}),
            artifacts=[str(a) for a in (artifacts or [])],
            close_on_complete=True,
        )
        self.extra_tags = _clean({"mode": mode, "manifest_digest": manifest_digest, **(tags or {})})
        self.log_every = max(1, int(log_every))
        self.trainer: Engine | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.cur_run is None else self.cur_run.info.run_id

    def attach(self, engine: Engine) -> None:
        self.trainer = engine
        if self.enabled:
            super().attach(engine)

    def start(self, engine: Engine) -> None:
        super().start(engine)
        assert self.cur_run is not None
        run_id = self.cur_run.info.run_id
        for key, value in {**self.extra_tags, "code_version": code_version()}.items():
            self.client.set_tag(run_id, key, str(value))
        # the exact command, overrides included: with the config files this reproduces the run
        self.client.log_text(run_id, shlex.join([Path(sys.executable).name, *sys.argv]) + "\n", "command.txt")
        logger.info(f"MLflow run {self.run_id} ({self.run_name}) in {self.client.tracking_uri}")

    def iteration_completed(self, engine: Engine) -> None:
        if engine.state.iteration % self.log_every == 0:
            super().iteration_completed(engine)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log scalar metrics at ``step`` (the trainer iteration)."""
        self._log_metrics(_clean({k: float(v) for k, v in metrics.items()}), step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file to the run."""
        if self.cur_run is not None:
            self.client.log_artifact(self.cur_run.info.run_id, str(path), artifact_path)


class ValidationLogger:
    """Send an evaluator's metrics and a PNG of fixed validation slices to the trainer's MLflow run.

    Attach to the validation evaluator. The first ``num_images`` slices of the (unshuffled) validation
    loader are drawn at every validation: zero-filled input, reconstruction, reference and error.

    Args:
        tracker: the :class:`MLflowTracker` attached to the trainer.
        image_dir: where the PNGs are written before upload.
        num_images: slices per PNG.
    """

    def __init__(self, tracker: MLflowTracker, image_dir: str | Path, num_images: int = 3) -> None:
        self.tracker = tracker
        self.image_dir = Path(image_dir)
        self.num_images = num_images
        self._rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        if not self.tracker.enabled:
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
                    "title": f"{out[Keys.FILENAME][i]} slice {int(out[Keys.SLICE][i])}",
                    "input": out["zero_filled"][i, 0].cpu() if "zero_filled" in out else None,
                    "recon": out[Keys.PRED][i, 0].cpu(),
                    "reference": out[Keys.TARGET][i, 0].cpu() if Keys.TARGET in out else None,
                }
            )

    def _log(self, engine: Engine) -> None:
        trainer = self.tracker.trainer
        step = trainer.state.iteration if trainer is not None else engine.state.epoch
        metrics = {k: v for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        self.tracker.log_metrics(metrics, step=step)
        if self._rows:
            from pipeline.io.previews import save_comparison_grid

            path = save_comparison_grid(self._rows, self.image_dir / f"iteration_{step:06d}.png")
            self.tracker.log_artifact(path, "validation")

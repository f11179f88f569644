"""The MLflow backend of :class:`~pipeline.tracking.Tracker`, on ``mlflow.MlflowClient``.

With a SQLite store (``sqlite:///<folder>/mlruns.db``) the artifacts are kept in ``<folder>/mlruns``, and
processes that share the store open it (MLflow creates its tables on first use) and find or create the
experiment one at a time, under the file lock ``<folder>/mlruns.db.lock``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from mlflow.entities import LifecycleStage, Metric, Param, RunTag

from pipeline.tracking.base import Tracker

#: MLflow's limit on params (and tags) per ``log_batch`` call.
_BATCH = 100


def check_tracking_uri(tracking_uri: str) -> str:
    """Check a tracking URI without creating or opening anything, so a bad one stops a run at start-up.

    A ``sqlite:///`` store must be a file (or not exist yet) whose nearest existing parent folder is
    writable; an ``http(s)://`` server is only opened by :meth:`MLflowTracker.start`.

    Returns:
        ``tracking_uri``, unchanged.

    Raises:
        ValueError: if the URI is a plain path/``file://`` URI (MLflow >= 3.13 refuses file stores) or the
            SQLite file cannot be created or opened there.
    """
    if "://" not in tracking_uri or tracking_uri.startswith("file://"):
        raise ValueError(
            f"MLflow tracking URI {tracking_uri!r} is a file store, which MLflow refuses: "
            "use sqlite:///<folder>/mlruns.db or an http(s) tracking server"
        )
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///") :])
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if path.exists() and not path.is_file():
            raise ValueError(f"cannot open the MLflow tracking store {tracking_uri!r}: {path} is not a file")
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"cannot open the MLflow tracking store {tracking_uri!r}: {folder} is not writable")
    return tracking_uri


def _open_store(tracking_uri: str) -> mlflow.MlflowClient:
    """An ``MlflowClient`` on a checked URI; failures become ``ValueError``."""
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - any failure to open the store is reported the same way
        raise ValueError(f"cannot open the MLflow tracking store {tracking_uri!r}: {err}") from err
    return client


def _store_lock(tracking_uri: str) -> contextlib.AbstractContextManager:
    """Check the URI; for a SQLite store create its folder and return the inter-process lock beside it.

    Raises:
        ValueError: as :func:`check_tracking_uri`, or if the folder cannot be created.
    """
    check_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return contextlib.nullcontext()  # a server serialises its own clients
    path = Path(tracking_uri[len("sqlite:///") :])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot open the MLflow tracking store {tracking_uri!r}: {err}") from err
    return FileLock(f"{path}.lock")


class MLflowTracker(Tracker):
    """MLflow runs in one experiment; :meth:`start` resumes the unfinished run of the same name.

    Nothing is opened before :meth:`start`, so building it on every DDP rank is free.

    Args:
        tracking_uri: ``sqlite:///.../mlruns.db`` or ``http(s)://...`` (the ``MLFLOW_TRACKING_URI``
            environment variable is not consulted).
        experiment_name: created on first use.
    """

    def __init__(self, tracking_uri: str, experiment_name: str = "jssl") -> None:
        super().__init__()
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.client: mlflow.MlflowClient | None = None

    def _start(self, run_name: str, run_id: str | None) -> str:
        with _store_lock(self.tracking_uri):  # one process at a time creates the tables or the experiment
            self.client = _open_store(self.tracking_uri)
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                experiment_id = self.client.create_experiment(self.experiment_name, self._artifact_location())
            elif experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise ValueError(
                    f"MLflow experiment {self.experiment_name!r} is deleted: restore it or use another name"
                )
            else:
                experiment_id = experiment.experiment_id
        if run_id is None:
            return self.client.create_run(experiment_id, run_name=run_name).info.run_id
        try:
            run = self.client.get_run(run_id)
        except mlflow.exceptions.MlflowException as err:
            raise ValueError(f"MLflow run {run_id} is not in {self.tracking_uri}: {err.message}") from None
        if run.info.status != "RUNNING":  # an extended run: more epochs into the same run
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _artifact_location(self) -> str | None:
        if self.tracking_uri.startswith("sqlite:///"):
            return (Path(self.tracking_uri[len("sqlite:///") :]).resolve().parent / "mlruns").as_uri()
        return None  # the server decides

    def _log_params(self, params: dict[str, str]) -> None:
        """Log new params; a reopened run's params that changed (e.g. ``max_epochs`` of an extended run) are
        recorded as tags ``param_changed.<key>`` = ``"old -> new"`` (MLflow params cannot change)."""
        logged = self.client.get_run(self.run_id).data.params
        changed = {key: f"{logged[key]} -> {value}" for key, value in params.items() if logged.get(key, value) != value}
        self._batches(
            params=[Param(key, value) for key, value in params.items() if key not in logged],
            tags=[RunTag(f"param_changed.{key}", value) for key, value in changed.items()],
        )

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._batches(metrics=[Metric(key, value, now, step) for key, value in metrics.items()])

    def _set_tags(self, tags: dict[str, str]) -> None:
        self._batches(tags=[RunTag(key, value) for key, value in tags.items()])

    def _batches(
        self, metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
    ) -> None:
        """``log_batch`` in chunks of MLflow's per-call limit."""
        for i in range(0, max(len(metrics), len(params), len(tags)), _BATCH):
            self.client.log_batch(
                self.run_id, metrics=metrics[i : i + _BATCH], params=params[i : i + _BATCH], tags=tags[i : i + _BATCH]
            )

    def _log_artifact(self, path: Path, artifact_path: str | None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def _log_model(
        self, weights: Path, metadata: dict[str, Any], input_example: dict[str, Any], registered_model_name: str | None
    ) -> str | None:
        """Save a ``pyfunc`` model (:func:`pipeline.tracking.pyfunc.save_pyfunc`) into the run's ``model``
        folder and register ``runs:/<run>/model`` as a new version, tagged with the stored metadata's plain
        values and ``bundle.name`` / ``bundle.version`` (never the local path of the bundle's metadata file)."""
        from pipeline.tracking.pyfunc import save_pyfunc
        from pipeline.tracking.registry import MODEL_ARTIFACT

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_ARTIFACT
            stored = save_pyfunc(folder, weights, metadata, input_example)
            self.client.log_artifacts(self.run_id, str(folder), MODEL_ARTIFACT)
        if registered_model_name is None:
            return None
        registry = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            registry.get_registered_model(registered_model_name)
        except mlflow.exceptions.MlflowException:
            registry.create_registered_model(registered_model_name)
        tags = {key: str(value) for key, value in stored.items() if isinstance(value, (str, int, float))}
        bundle = stored.get("bundle") or {}
        tags.update({f"bundle.{key}": str(bundle[key]) for key in ("name", "version") if bundle.get(key) is not None})
        version = registry.create_model_version(
            registered_model_name, f"runs:/{self.run_id}/{MODEL_ARTIFACT}", run_id=self.run_id, tags=tags
        )
        return str(version.version)

    def _end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

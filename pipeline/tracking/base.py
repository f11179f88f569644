"""The tracker interface, and the patient-identifier guard that every backend goes through.

A backend (MLflow, or any other) subclasses :class:`Tracker` and implements only the ``_start``, ``_log_*``,
``_set_tags`` and ``_end`` hooks (``_log_model`` optionally: a backend without a model registry refuses
:meth:`Tracker.log_model`). The public methods, which callers use, check every key first, and a subclass
may not override them, so no backend can log a key that names a patient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Substrings that must never appear in a logged key, tag, nested setting or artifact name: identifiers of patients.
FORBIDDEN_KEYS = ("patient_id", "patient")

#: Final states of a run (MLflow's names).
END_STATUSES = ("FINISHED", "FAILED", "KILLED")


def check_keys(mapping: Mapping[str, Any], what: str = "key") -> dict[str, Any]:
    """Refuse any key, at any nesting depth, that contains one of :data:`FORBIDDEN_KEYS`.

    Args:
        mapping: what is about to be logged; nested mappings (a dict-valued setting) are searched too.
        what: ``"param"``, ``"metric"``, ``"tag"`` ... for the error message.

    Returns:
        A shallow copy of ``mapping``.

    Raises:
        ValueError: naming the offending key path (``outer::inner``).

    >>> check_keys({"val_ssim": 0.9, "sl_loss_weights": {"l1": 1.0}})
    {'val_ssim': 0.9, 'sl_loss_weights': {'l1': 1.0}}
    >>> check_keys({"split": {"patient_id": "P1"}}, "param")
    Traceback (most recent call last):
        ...
    ValueError: refusing to log the param 'split::patient_id': patient identifiers never leave the data
    """
    _check(mapping, what, "")
    return dict(mapping)


def _check(mapping: Mapping[Any, Any], what: str, prefix: str) -> None:
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if any(bad in str(key).lower() for bad in FORBIDDEN_KEYS):
            raise ValueError(f"refusing to log the {what} {path!r}: patient identifiers never leave the data")
        if isinstance(value, Mapping):
            _check(value, what, f"{path}::")


class Tracker(ABC):
    """One experiment-tracking run: params, metrics, tags and artifacts, guarded against patient identifiers.

    Subclasses implement the hooks (``_start``, ``_log_params``, ``_log_metrics``, ``_set_tags``,
    ``_log_artifact``, ``_end``); the public methods validate and convert, then call them. Overriding a
    public method raises ``TypeError`` when the subclass is defined.

    The hooks receive: params and tags as ``{str: str}``, metrics as ``{str: float}`` with an ``int`` step.
    """

    _GUARDED = frozenset({"start", "log_params", "log_metrics", "set_tags", "log_artifact", "log_model", "end"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = sorted(Tracker._GUARDED & set(vars(cls)))
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {overridden}: implement the _start/_log_*/_set_tags/_end hooks "
                "instead, the public methods hold the patient-identifier guard"
            )

    def __init__(self) -> None:
        self._run_id: str | None = None

    @property
    def run_id(self) -> str | None:
        """Id of the active run, ``None`` before :meth:`start` and after :meth:`end`."""
        return self._run_id

    def start(self, run_name: str, run_id: str | None = None) -> str:
        """Start a new run called ``run_name``, or reopen the run ``run_id`` (a resumed or extended training).

        Runs are found by id, never by name: two runs may share a name.

        Returns:
            The run id.

        Raises:
            ValueError: ``run_id`` is not a run of this store.
        """
        check_keys({run_name: None}, "run name")
        self._run_id = self._start(run_name, run_id)
        return self._run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; values are stored as ``str(value)``.

        Raises:
            ValueError: a key (or a key inside a dict value) names a patient.
            RuntimeError: no active run.
        """
        self._active()
        self._log_params({str(key): str(value) for key, value in check_keys(params, "param").items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log scalar metrics at ``step`` (for training: the trainer iteration).

        Raises:
            ValueError: a key names a patient.
            RuntimeError: no active run.
        """
        self._active()
        self._log_metrics({str(key): float(value) for key, value in check_keys(metrics, "metric").items()}, int(step))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; values are stored as ``str(value)``.

        Raises:
            ValueError: a key names a patient.
            RuntimeError: no active run.
        """
        self._active()
        self._set_tags({str(key): str(value) for key, value in check_keys(tags, "tag").items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file, or the files of a folder, under ``artifact_path`` (default: the run's artifact root).

        Raises:
            ValueError: the artifact's name or ``artifact_path`` names a patient.
            RuntimeError: no active run.
        """
        self._active()
        check_keys({part: None for part in (*Path(artifact_path or "").parts, Path(path).name)}, "artifact")
        self._log_artifact(Path(path), artifact_path)

    def log_model(
        self,
        weights: str | Path,
        metadata: Mapping[str, Any],
        input_example: Mapping[str, Any],
        registered_model_name: str | None = None,
    ) -> str | None:
        """Log a network's weights as a model of the active run, and register it as a new version.

        Args:
            weights: a ``state_dict`` file (``torch.save``) of the network.
            metadata: JSON-able facts stored with the model; ``metadata["network"]`` and
                ``metadata["network_size"]`` name the architecture (:func:`pipeline.networks.build_network`).
            input_example: named network inputs, e.g. ``{"kspace": (B, C, H, W, 2), "mask": (B, 1, 1, W, 1)}``
                float32 arrays, from which the backend may infer a signature (never patient data).
            registered_model_name: register the model under this name (``None``: log only).

        Returns:
            The registered version (``"1"``, ``"2"`` ...), or ``None`` when not registered.

        Raises:
            ValueError: a metadata key (at any depth) or the model name names a patient, or the metadata does
                not name the architecture.
            RuntimeError: no active run.
            NotImplementedError: the backend has no model store.
        """
        self._active()
        check_keys(metadata, "model metadata")
        if registered_model_name is not None:
            check_keys({registered_model_name: None}, "registered model name")
        missing = [key for key in ("network", "network_size") if key not in metadata]
        if missing:
            raise ValueError(f"model metadata must name the architecture: missing {missing}")
        return self._log_model(Path(weights), dict(metadata), dict(input_example), registered_model_name)

    def end(self, status: str = "FINISHED") -> None:
        """End the active run with ``status`` (one of :data:`END_STATUSES`)."""
        if status not in END_STATUSES:
            raise ValueError(f"status must be one of {END_STATUSES}, got {status!r}")
        self._end(self._active(), status)
        self._run_id = None

    def _active(self) -> str:
        if self._run_id is None:
            raise RuntimeError(f"{type(self).__name__} has no active run: call start() first")
        return self._run_id

    @abstractmethod
    def _start(self, run_name: str, run_id: str | None) -> str:
        """Create a run named ``run_name`` (``run_id`` is ``None``) or reopen ``run_id``; return the id."""

    @abstractmethod
    def _log_params(self, params: dict[str, str]) -> None:
        """Store params of the active run."""

    @abstractmethod
    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Store metrics of the active run at ``step``."""

    @abstractmethod
    def _set_tags(self, tags: dict[str, str]) -> None:
        """Store tags of the active run."""

    @abstractmethod
    def _log_artifact(self, path: Path, artifact_path: str | None) -> None:
        """Store a file, or a folder's files, of the active run."""

    def _log_model(
        self, weights: Path, metadata: dict[str, Any], input_example: dict[str, Any], registered_model_name: str | None
    ) -> str | None:
        """Store a model of the active run (and register it); backends without a model store keep this default."""
        raise NotImplementedError(f"{type(self).__name__} cannot log models")

    @abstractmethod
    def _end(self, run_id: str, status: str) -> None:
        """Mark the run ended with ``status``."""

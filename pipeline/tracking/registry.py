"""The MLflow model registry: a trained network as an MLflow model, registered as a version, and
``models:/<name>/<version>`` URIs resolved back to a weights file for inference.

What a registered version holds (an MLflow ``pyfunc`` model, folder ``model`` of the training run):

- ``artifacts/<name of the weights file>``: the network's ``state_dict`` (loaded with ``weights_only=True``);
- ``artifacts/metadata.json``: the bundle's ``metadata.json``;
- ``MLmodel``: the architecture (``model_config``: ``network``, ``network_size``), the bundle metadata and the
  training provenance (``metadata``: mode, manifest digest, code version, best validation metric), a
  signature and an input example (synthetic k-space, never patient data).

``mlflow.pyfunc.load_model("models:/<name>/<version>").predict({"kspace": ..., "mask": ...})`` returns the
images; the bundle's inference instead takes ``--model_uri models:/<name>/<version> --registry_uri <uri>``
(:func:`inference_weights`), which downloads the version, checks its architecture against the config and
loads the weights through the same checked loader as a weights file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from ignite.engine import Engine

from pipeline.engines.startup import ConfigError
from pipeline.handlers.checkpoint import BestModelSaver, weights_digest
from pipeline.seeds import stable_seed
from pipeline.tracking.base import Tracker
from pipeline.tracking.mlflow import check_tracking_uri

logger = logging.getLogger(__name__)

#: Artifact folder of the MLflow model inside its training run.
MODEL_ARTIFACT = "model"

#: Run tags naming the weights file the run wrote and its SHA-256 (``python -m pipeline.share export`` ships
#: exactly that file).
WEIGHTS_FILE_TAG, WEIGHTS_SHA256_TAG = "weights_file", "weights_sha256"

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")


def example_input(coils: int = 4, height: int = 128, width: int = 72, acceleration: int = 4,
                  acs: int = 8) -> dict[str, np.ndarray]:
    """A synthetic network input for a model's input example (no patient data).

    Random k-space (seeded by :func:`~pipeline.seeds.stable_seed`, so identical in every run) under an
    equispaced column mask with a centred ACS block (placed by :func:`pipeline.physics.acs.acs_slice`).

    Returns:
        ``{"kspace": (1, coils, height, width, 2) float32, "mask": (1, 1, 1, width, 1) float32}``.
    """
    from pipeline.physics.acs import acs_slice

    columns = np.zeros(width, dtype=bool)
    columns[::acceleration] = True
    columns[acs_slice(width, acs)] = True
    mask = columns.reshape(1, 1, 1, width, 1).astype(np.float32)
    rng = np.random.default_rng(stable_seed("pipeline.tracking.registry:example_input"))
    kspace = rng.standard_normal((1, coils, height, width, 2)).astype(np.float32) * mask
    return {"kspace": kspace, "mask": mask}


class RegisterModel:
    """Record the bundle's weights file in the training run, log it as a model of the run and register it as a
    new version of ``registered_model_name``: the ``model`` of a :class:`~pipeline.tracking.TrackingHandler`,
    which calls :meth:`log` when training completes, after the weights file is written
    (:class:`~pipeline.handlers.ExportBundleWeights` comes first) and before the run ends.

    Args:
        model_path: the bundle's weights file.
        registered_model_name: the registry name; ``None`` (the bundle's default) logs nothing.
        network: network name (:data:`pipeline.networks.NETWORKS`).
        network_size: its size.
        metadata_file: the bundle's ``metadata.json``.
        best_model: the :class:`~pipeline.handlers.BestModelSaver` (its best metric becomes provenance).
    """

    def __init__(
        self,
        model_path: str | Path,
        registered_model_name: str | None,
        network: str,
        network_size: str,
        metadata_file: str | Path | None = None,
        best_model: BestModelSaver | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.registered_model_name = registered_model_name
        self.network = network
        self.network_size = network_size
        self.metadata_file = metadata_file
        self.best_model = best_model
        self.version: str | None = None

    def log(self, engine: Engine, backend: Tracker, tags: Mapping[str, Any]) -> str | None:
        """Tag the run with the weights file (:data:`WEIGHTS_FILE_TAG`, absolute, and :data:`WEIGHTS_SHA256_TAG`),
        then log and register it through ``backend`` (:meth:`Tracker.log_model`); no model without a name.

        Args:
            engine: the trainer (its iteration count becomes provenance).
            backend: the tracker whose run is active.
            tags: the run's tags (``mode``, ``manifest_digest``), stored as provenance.

        Returns:
            The registered version, or ``None``.
        """
        if self.model_path.is_file():
            backend.set_tags({WEIGHTS_FILE_TAG: str(self.model_path.resolve()),
                              WEIGHTS_SHA256_TAG: weights_digest(self.model_path)})
        if self.registered_model_name is None:
            return None
        from pipeline.tracking.settings import code_version

        metadata: dict[str, Any] = {
            "network": self.network,
            "network_size": self.network_size,
            **{key: str(value) for key, value in tags.items()},
            "code_version": code_version(),
            "iterations": int(engine.state.iteration),
        }
        if self.metadata_file is not None:
            metadata["bundle_metadata_file"] = str(self.metadata_file)
        best = getattr(self.best_model, "best", None)
        if best is not None and np.isfinite(best):
            metadata[self.best_model.metric_name] = float(best)
        self.version = backend.log_model(self.model_path, metadata, example_input(), self.registered_model_name)
        logger.info(f"registered model version models:/{self.registered_model_name}/{self.version}")
        return self.version


def parse_model_uri(model_uri: str) -> tuple[str, str]:
    """``models:/<name>/<version>`` -> ``(name, version)``.

    Raises:
        ConfigError: (one line) for any other form.
    """
    match = _MODEL_URI.match(model_uri)
    if match is None:
        raise ConfigError(f"--model_uri {model_uri!r} is not a registry URI: use models:/<name>/<version>")
    return match["name"], match["version"]


def resolve_model_uri(model_uri: str, registry_uri: str, dst_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """Download a registered version and return its weights file and its ``model_config``.

    Args:
        model_uri: ``models:/<name>/<version>``.
        registry_uri: the tracking server or store holding the registry (``http(s)://...`` or
            ``sqlite:///.../mlruns.db``).
        dst_dir: download folder (replaced).

    Returns:
        ``(<dst_dir>/artifacts/<weights file>, {"network": ..., "network_size": ...})``.

    Raises:
        ConfigError: (one line) naming the URI and what is wrong: a bad form, a store that does not open,
            an unknown name or version, or a version that is not a model of this package.
    """
    name, version = parse_model_uri(model_uri)
    try:
        check_tracking_uri(registry_uri)
    except ValueError as err:
        raise ConfigError(f"--registry_uri: {err}") from None
    if registry_uri.startswith("sqlite:///") and not Path(registry_uri[len("sqlite:///") :]).is_file():
        raise ConfigError(f"--model_uri {model_uri} does not resolve: no registry at {registry_uri}")
    client = mlflow.MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    previous = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # an unreachable server fails now, not after minutes
    try:
        try:
            source = client.get_model_version_download_uri(name, version)
        except mlflow.exceptions.MlflowException as err:
            raise ConfigError(f"--model_uri {model_uri} does not resolve in {registry_uri}: "
                              f"{_known_versions(client, name) or _first_line(err)}") from None
        dst = Path(dst_dir)
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            folder = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=registry_uri)
            shutil.copytree(folder, dst, dirs_exist_ok=True)
    except mlflow.exceptions.MlflowException as err:
        raise ConfigError(f"--model_uri {model_uri} does not resolve in {registry_uri}: {_first_line(err)}") from None
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = previous
    from pipeline.tracking.pyfunc import WEIGHTS_ARTIFACT  # imports mlflow.pyfunc: only when resolving

    flavor = {}
    if (dst / "MLmodel").is_file():
        flavor = mlflow.models.Model.load(str(dst / "MLmodel")).flavors.get("python_function", {})
    config = dict(flavor.get("config") or {})
    weights = dst / (flavor.get("artifacts") or {}).get(WEIGHTS_ARTIFACT, {}).get("path", "-")
    if not weights.is_file() or not {"network", "network_size"} <= set(config):
        raise ConfigError(f"--model_uri {model_uri} is not a reconstruction model of this package (no weights "
                          "artifact and network/network_size in its MLmodel)")
    return weights, config


def _known_versions(client: mlflow.MlflowClient, name: str) -> str:
    """``"registered versions of <name>: 1, 2"`` / ``"no registered model <name>"``; ``""`` if unreachable."""
    try:
        quoted = name.replace("'", "''")  # SQL quoting, as MLflow's filter parser reads it
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{quoted}'"))
    except mlflow.exceptions.MlflowException:
        return ""
    if not versions:
        return f"no registered model {name!r}"
    return f"registered versions of {name!r}: {', '.join(map(str, versions))}"


def _first_line(err: Exception) -> str:
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def inference_weights(
    ckpt_path: str | Path | None,
    model_uri: str | None,
    registry_uri: str | None,
    output_dir: str | Path,
    network: str,
    network_size: str,
) -> str | None:
    """The weights file of an inference run: ``ckpt_path``, or the registered version ``model_uri``.

    A bundle step (``initialize`` of ``inference.json``), run before any data or network is touched.

    Args:
        ckpt_path: the weights file (used when ``model_uri`` is ``None``); ``None`` for a run without a
            network (classical baselines only), passed through unchanged.
        model_uri: ``models:/<name>/<version>`` or ``None``.
        registry_uri: where the registry lives; required with ``model_uri``.
        output_dir: the version is downloaded into ``<output_dir>/registry_model``.
        network: the config's network; must match the registered version's.
        network_size: the config's size; must match the registered version's.

    Returns:
        The path of the weights file to load (its existence is checked by the start-up check).

    Raises:
        ConfigError: (one line) when ``model_uri`` does not resolve or was registered for another
            architecture.
    """
    if model_uri is None:
        return None if ckpt_path is None else str(ckpt_path)
    if not registry_uri:
        raise ConfigError(f"--model_uri {model_uri} needs --registry_uri (the tracking server or sqlite store)")
    weights, config = resolve_model_uri(model_uri, registry_uri, Path(output_dir) / "registry_model")
    registered = (config["network"], config["network_size"])
    if registered != (network, network_size):
        raise ConfigError(
            f"--model_uri {model_uri} holds a {registered[0]} network of size {registered[1]!r}, but the config "
            f"builds {network} of size {network_size!r}: set --network {registered[0]} "
            f"--network_size {registered[1]}"
        )
    logger.info(f"weights of {model_uri} ({registry_uri}): {weights}")
    return str(weights)

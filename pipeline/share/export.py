"""Pack a trained bundle into a shareable archive: ``python -m pipeline.share export``.

The archive (a zip of one folder, ``jssl_varnet/``) holds:

- ``configs/``: the bundle's configs, with ``train.json``'s ``network``, ``network_size`` and
  :data:`INFERENCE_SETTINGS` set to the training run's, so the receiving site's commands need no architecture
  settings and reconstruct as the run validated;
- ``configs/metadata.json``: the bundle metadata plus ``provenance``: training mode, network and size,
  the SHA-256 of the training manifest, the code version, the ``val_*`` metrics at the step of the best
  ``val_ssim`` (``validation_step``, the weights training exports), the parent bundle's hash for a fine-tuned
  model, the MLflow run id;
- ``models/model.safetensors``: exactly the weights file the run recorded writing (MLflow tags ``weights_file``
  and ``weights_sha256``, :class:`pipeline.tracking.RegisterModel`), as safetensors (no pickle);
  ``docs/README.md``, ``docs/model_card.md``, ``LICENSE``;
- ``logs/validation.csv``: the validation metrics of every validation (step, metric, value) from MLflow;
- ``checksums.sha256``: the SHA-256 of every other file.

The provenance is read from the training run's MLflow store (the run id is in the training output folder's
``tracking_run.json``). The finished archive goes through :func:`pipeline.share.verify.verify` before it is
written, so an export never produces an archive a receiving site would refuse (for example one whose
docs hold an absolute path).
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.io.atomic import write_atomic
from pipeline.share.archive import CHECKSUMS, ArchiveError, checksums_text, write_zip
from pipeline.share.verify import VerifiedBundle, verify

__all__ = ["INFERENCE_SETTINGS", "MODEL_CARD", "TrainingRun", "export", "training_provenance"]

#: Model-card template (``docs/model_card.md``); filled from the metadata.
MODEL_CARD = """# Model card: {name} {version}

- **Task**: {task}
- **Intended use**: {intended_use}
- **Network**: `{network}`, size `{network_size}` ({num_parameters:,} parameters)
- **Training mode**: `{mode}` (`sl`: supervised on fully sampled proxy data; `ssl`: self-supervised SSDU on
  subsampled target data; `jssl`: both)
- **Training data**: the manifest with SHA-256 `{manifest_digest}` (file names and data stay at the training site)
- **Parent bundle**: {parent}
- **Code version**: `{code_version}`
- **Validation metrics** (on the training site's validation section, at the exported weights' {step}):
{metrics}
- **Weights**: `models/model.safetensors` (safetensors: loading runs no code)

## How to check and use it
Verify the archive before use (hashes, metadata schema, allowed code in the configs, no patient data,
weights): `python -m pipeline.share verify {name}.zip`. Then see `docs/README.md`, section
"At a receiving site".

## Limitations
Trained and validated on the data described above only; performance on another site's scanner, contrast,
coil count or acceleration is unknown until measured there (fine-tuning: `configs/finetune.json`).
Research only, not for clinical use.
"""

#: Settings of the training run copied into the provenance when MLflow has them.
_SETTINGS = ("mode", "network", "network_size", "acceleration", "center_fraction", "mask_type", "ssdu_q")

#: ``train.json`` settings that change what inference computes, set in the exported ``train.json`` to the
#: run's values (besides ``network`` and ``network_size``), so the receiving site reconstructs as validated.
INFERENCE_SETTINGS = ("readout_crop", "band_limit", "data_consistency", "mask_type", "acceleration",
                      "center_fraction", "override_stored_masks")


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`training_provenance` reads from a training run's MLflow store.

    Attributes:
        provenance: the metadata's ``provenance`` entry.
        validation_log: ``logs/validation.csv`` (``step,metric,value`` rows).
        params: the run's params (settings as text, :func:`pipeline.tracking.loggable_settings`).
        weights: the weights file the run wrote and its SHA-256 (run tags
            :data:`~pipeline.tracking.registry.WEIGHTS_FILE_TAG` / ``WEIGHTS_SHA256_TAG``); ``None`` when the
            run did not record them.
        status: the MLflow run status (``FINISHED``, or ``RUNNING`` / ``FAILED`` / ``KILLED`` for a training
            that stopped before it completed and recorded its weights).
    """

    provenance: dict[str, Any]
    validation_log: str
    params: dict[str, str]
    weights: tuple[Path, str] | None
    status: str = "FINISHED"


def _run_id(train_dir: Path) -> str:
    """The run id in ``<train_dir>/tracking_run.json``.

    Raises:
        ArchiveError: no such file, not JSON, or no string ``run_id``.
    """
    from pipeline.tracking.handlers import RUN_FILE

    run_file = train_dir / RUN_FILE
    if not run_file.is_file():
        raise ArchiveError(f"{train_dir}: no {RUN_FILE}; pass the output folder of a training run (--train_dir)")
    try:
        run_id = json.loads(run_file.read_text()).get("run_id")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise ArchiveError(f"{run_file}: not a tracking run file ({type(err).__name__}: {err})") from None
    if not isinstance(run_id, str) or not run_id:
        raise ArchiveError(f"{run_file}: has no run_id")
    return run_id


def _validation(client: Any, run_id: str, keys: list[str]) -> tuple[list[str], dict[str, float], int | None]:
    """Every validation's ``step,metric,value`` rows, the ``val_*`` metrics at the step of the best
    ``val_ssim`` (the weights :class:`~pipeline.handlers.ExportBundleWeights` exports; the first such step, as
    :class:`~pipeline.handlers.BestModelSaver` keeps only a strictly better score), and that step (``None``
    without ``val_ssim``: the metrics are then the last validation's)."""
    rows, histories = [], {}
    for key in keys:
        histories[key] = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        rows += [f"{m.step},{key},{m.value:.6g}" for m in histories[key]]
    ssim = histories.get("val_ssim")
    if not ssim:
        return rows, {key: round(h[-1].value, 6) for key, h in histories.items() if h}, None
    best = max(ssim, key=lambda m: (m.value, -m.step)).step
    at_best = {key: [m.value for m in h if m.step == best] for key, h in histories.items()}
    return rows, {key: round(values[-1], 6) for key, values in at_best.items() if values}, best


def training_provenance(train_dir: str | os.PathLike, tracking_uri: str | None = None) -> TrainingRun:
    """The provenance of the training run whose output folder is ``train_dir``, from its MLflow store.

    Args:
        train_dir: the training output folder (``--output_dir`` of the run); holds ``tracking_run.json``.
        tracking_uri: the run's MLflow store; default the bundle's, ``sqlite:///<train_dir>/mlflow/mlruns.db``.

    Returns:
        The run's provenance, validation log, params and recorded weights (:class:`TrainingRun`).
        ``provenance["validation_metrics"]`` holds the ``val_*`` metrics at ``provenance["validation_step"]``,
        the step of the best ``val_ssim``, whose weights the run exported.

    Raises:
        ArchiveError: (one line; nothing is created) no or a bad ``tracking_run.json``, a store that does not
            exist or does not hold the run, or a run that lacks a setting the provenance needs.
    """
    import mlflow
    from monai.utils import path_to_sqlite_uri

    from pipeline.tracking.registry import WEIGHTS_FILE_TAG, WEIGHTS_SHA256_TAG

    train_dir = Path(train_dir)
    run_id = _run_id(train_dir)
    uri = tracking_uri or path_to_sqlite_uri(str(train_dir / "mlflow" / "mlruns.db"))
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise ArchiveError(f"no MLflow store at {uri} (the run {run_id} of {train_dir}); pass --tracking_uri")
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise ArchiveError(f"MLflow run {run_id} (from {train_dir}) is not in {uri}: "
                           f"{str(err.message).strip().splitlines()[0]}") from None
    params, tags = dict(run.data.params), run.data.tags
    missing = [key for key in ("mode", "network", "network_size") if key not in params]
    if missing or "manifest_digest" not in tags:
        raise ArchiveError(f"MLflow run {run_id} lacks {missing or ['manifest_digest']}: not a bundle training run")
    rows, metrics, step = _validation(client, run_id, sorted(k for k in run.data.metrics if k.startswith("val_")))
    provenance = {
        **{key: params[key] for key in _SETTINGS if key in params},
        "manifest_digest": tags["manifest_digest"],
        "code_version": tags.get("code_version", "unknown"),
        "validation_metrics": metrics,
        "validation_step": step,
        "parent_bundle": tags.get("parent_bundle_hash"),
        "mlflow_run_id": run_id,
    }
    weights = None
    if WEIGHTS_FILE_TAG in tags and WEIGHTS_SHA256_TAG in tags:
        weights = (Path(tags[WEIGHTS_FILE_TAG]), tags[WEIGHTS_SHA256_TAG])
    return TrainingRun(provenance, "\n".join(["step,metric,value", *rows]) + "\n", params, weights, run.info.status)


def _run_weights(run: TrainingRun, weights: str | os.PathLike | None) -> Path:
    """The weights to export: ``weights`` when given, else the file the run recorded; either way its SHA-256
    must be the one the run recorded (when it recorded one).

    Raises:
        ArchiveError: no weights file, or not the bytes the run wrote.
    """
    run_id = run.provenance["mlflow_run_id"]
    if weights is None and run.weights is None:
        if run.status != "FINISHED":
            raise ArchiveError(f"MLflow run {run_id} has not finished (status {run.status}): its weights are "
                               "recorded when training completes; finish (or resume) the training, or pass --weights")
        raise ArchiveError(f"MLflow run {run_id} records no weights file (trained before weights were recorded): "
                           "pass --weights")
    path = Path(weights) if weights is not None else run.weights[0]
    if not path.is_file():
        raise ArchiveError(f"weights {path} do not exist: train the bundle first or pass --weights")
    if run.weights is not None:
        from pipeline.handlers.checkpoint import weights_digest

        if weights_digest(path) != run.weights[1]:
            raise ArchiveError(f"weights {path} are not the ones MLflow run {run_id} wrote (sha256 "
                               f"{run.weights[1][:12]}... of {run.weights[0].name}): another run replaced them, or "
                               "pass the run's own weights with --weights")
    return path


def _inference_settings(train: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """:data:`INFERENCE_SETTINGS` of the run, read back from their MLflow text into ``train.json`` values."""
    settings = {}
    for key in INFERENCE_SETTINGS:
        if key in params and key in train:
            try:
                settings[key] = ast.literal_eval(params[key])
            except (ValueError, SyntaxError, TypeError):
                settings[key] = params[key]  # a plain string (``equispaced``)
    return settings


def _safetensors(weights: Path, network: str, network_size: str) -> bytes:
    """The ``state_dict`` in ``weights`` as safetensors bytes, with the network named in the header."""
    from safetensors.torch import save

    from pipeline.handlers.checkpoint import read_weights

    state = {key: value.detach().cpu().contiguous().clone() for key, value in read_weights(weights).items()}
    return save(state, metadata={"network": network, "network_size": network_size, "format": "pt"})


def export(
    bundle: str | os.PathLike,
    train_dir: str | os.PathLike,
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
) -> VerifiedBundle:
    """Pack ``bundle`` with the weights of the training run in ``train_dir`` into the archive ``out``.

    Args:
        bundle: the bundle folder (``bundles/jssl_varnet``): its ``configs/``, ``docs/README.md``, ``LICENSE``.
        train_dir: the training run's output folder (provenance, see :func:`training_provenance`).
        out: the archive to write (``.zip``).
        weights: the trained weights; default the file the run recorded writing (its ``weights_file`` tag).
            Either must have the SHA-256 the run recorded (``weights_sha256``), so an archive never ships weights
            that another run wrote over the same path (two runs sharing ``models/model.pt``).
        tracking_uri: the run's MLflow store, when not the bundle's default in ``train_dir``.

    Returns:
        The archive as verified (its ``bundle_hash`` is the id a fine-tuned model records as parent).

    Raises:
        ArchiveError: (one line; nothing is written) a missing or bad input, weights other than the run's, or an
            archive that would not pass verification (the reason).
    """
    from pipeline.networks import build_network

    bundle, train_dir = Path(bundle), Path(train_dir)
    for required in ("configs/train.json", "configs/metadata.json", "docs/README.md"):
        if not (bundle / required).is_file():
            raise ArchiveError(f"{bundle}: not a bundle folder (no {required})")
    run = training_provenance(train_dir, tracking_uri)
    weights = _run_weights(run, weights)
    provenance = run.provenance
    network, size = provenance["network"], provenance["network_size"]

    files: dict[str, bytes] = {}
    for path in sorted((bundle / "configs").iterdir()):
        if path.is_file():
            files[f"configs/{path.name}"] = path.read_bytes()
    train = _load_bundle_json(files, bundle, "configs/train.json")
    train.update(network=network, network_size=size, **_inference_settings(train, run.params))
    files["configs/train.json"] = (json.dumps(train, indent=4) + "\n").encode()
    metadata = _load_bundle_json(files, bundle, "configs/metadata.json")
    metadata["provenance"] = provenance
    files["configs/metadata.json"] = (json.dumps(metadata, indent=4) + "\n").encode()
    files["models/model.safetensors"] = _safetensors(weights, network, size)
    files["docs/README.md"] = (bundle / "docs" / "README.md").read_bytes()
    if (bundle / "LICENSE").is_file():
        files["LICENSE"] = (bundle / "LICENSE").read_bytes()
    files["logs/validation.csv"] = run.validation_log.encode()
    metrics = provenance["validation_metrics"]
    files["docs/model_card.md"] = MODEL_CARD.format(
        name=bundle.name, version=metadata.get("version", ""), task=metadata.get("task", ""),
        intended_use=metadata.get("intended_use", ""), network=network, network_size=size,
        num_parameters=sum(p.numel() for p in build_network(network, size).parameters()),
        mode=provenance["mode"], manifest_digest=provenance["manifest_digest"],
        parent=f"`{provenance['parent_bundle']}` (fine-tuned from it)" if provenance["parent_bundle"] else "none",
        code_version=provenance["code_version"],
        step=f"iteration {provenance['validation_step']}, the best `val_ssim`" if provenance["validation_step"]
        is not None else "the last validation",
        metrics="\n".join(f"  - `{k}`: {v}" for k, v in metrics.items()) or "  - none logged",
    ).encode()
    files[CHECKSUMS] = checksums_text(files).encode()

    with tempfile.TemporaryDirectory() as folder:  # verify exactly the bytes that will be shared
        staged = write_zip(bundle.name, files, Path(folder) / f"{bundle.name}.zip")
        try:
            verified = verify(staged)
        except ArchiveError as err:
            raise ArchiveError(f"refusing to export: {str(err).replace(str(staged), str(out))}") from None
        write_atomic(out, staged.read_bytes())
    return verified


def _load_bundle_json(files: dict[str, bytes], bundle: Path, name: str) -> dict[str, Any]:
    """A JSON object of the bundle folder.

    Raises:
        ArchiveError: not valid JSON, or not an object.
    """
    try:
        content = json.loads(files[name])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArchiveError(f"{bundle / name} is not valid JSON ({err})") from None
    if not isinstance(content, dict):
        raise ArchiveError(f"{bundle / name} is not a JSON object")
    return content

"""Pack a trained bundle into a shareable archive: ``python -m pipeline.share export``.

The archive (a zip of one folder, ``jssl_varnet/``) holds:

- ``configs/``: the bundle's configs, with ``train.json``'s ``network`` and ``network_size`` set to the
  trained network's, so the receiving site's commands need no architecture settings;
- ``configs/metadata.json``: the bundle metadata plus ``provenance``: training mode, network and size,
  the SHA-256 of the training manifest, the code version, the validation metrics (last and best
  ``val_ssim``), the parent bundle's hash for a fine-tuned model, the MLflow run id;
- ``models/model.safetensors``: the weights (no pickle); ``docs/README.md``, ``docs/model_card.md``, ``LICENSE``;
- ``logs/validation.csv``: the validation metrics of every validation (step, metric, value) from MLflow;
- ``checksums.sha256``: the SHA-256 of every other file.

The provenance is read from the training run's MLflow store (the run id is in the training output folder's
``tracking_run.json``). The finished archive goes through :func:`pipeline.share.verify.verify` before it is
written, so an export never produces an archive a receiving site would refuse (for example one whose
docs hold an absolute path).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.share.archive import CHECKSUMS, ArchiveError, checksums_text, write_zip
from pipeline.share.verify import VerifiedBundle, verify

__all__ = ["MODEL_CARD", "export", "training_provenance"]

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
- **Validation metrics** (on the training site's validation section, at the exported weights' iteration):
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


def training_provenance(train_dir: str | os.PathLike, tracking_uri: str | None = None) -> tuple[dict[str, Any], str]:
    """The provenance of the training run whose output folder is ``train_dir``, from its MLflow store.

    Args:
        train_dir: the training output folder (``--output_dir`` of the run); holds ``tracking_run.json``.
        tracking_uri: the run's MLflow store; default the bundle's, ``sqlite:///<train_dir>/mlflow/mlruns.db``.

    Returns:
        ``(provenance, validation_log)``: the metadata's ``provenance`` entry and ``logs/validation.csv``.

    Raises:
        ArchiveError: no tracking run in ``train_dir``, or the run lacks a setting the provenance needs.
    """
    import mlflow
    from monai.utils import path_to_sqlite_uri

    from pipeline.tracking.handlers import RUN_FILE

    train_dir = Path(train_dir)
    run_file = train_dir / RUN_FILE
    if not run_file.is_file():
        raise ArchiveError(f"{train_dir}: no {RUN_FILE}; pass the output folder of a training run (--train_dir)")
    run_id = json.loads(run_file.read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri or path_to_sqlite_uri(str(train_dir / "mlflow" / "mlruns.db")))
    run = client.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    missing = [key for key in ("mode", "network", "network_size") if key not in params]
    if missing or "manifest_digest" not in tags:
        raise ArchiveError(f"MLflow run {run_id} lacks {missing or ['manifest_digest']}: not a bundle training run")
    rows, metrics = ["step,metric,value"], {}
    for key in sorted(k for k in run.data.metrics if k.startswith("val_")):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        rows += [f"{m.step},{key},{m.value:.6g}" for m in history]
        metrics[key] = round(history[-1].value, 6)
        if key == "val_ssim":
            metrics["best_val_ssim"] = round(max(m.value for m in history), 6)
    provenance = {
        **{key: params[key] for key in _SETTINGS if key in params},
        "manifest_digest": tags["manifest_digest"],
        "code_version": tags.get("code_version", "unknown"),
        "validation_metrics": metrics,
        "parent_bundle": tags.get("parent_bundle_hash"),
        "mlflow_run_id": run_id,
    }
    return provenance, "\n".join(rows) + "\n"


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
        weights: the trained weights; default ``<train_dir>/model.pt`` if present, else the bundle's
            ``models/model.pt`` (where training writes them by default).
        tracking_uri: the run's MLflow store, when not the bundle's default in ``train_dir``.

    Returns:
        The archive as verified (its ``bundle_hash`` is the id a fine-tuned model records as parent).

    Raises:
        ArchiveError: a missing input, or an archive that would not pass verification (the reason).
    """
    from pipeline.handlers.checkpoint import bundle_weights
    from pipeline.networks import build_network

    bundle, train_dir = Path(bundle), Path(train_dir)
    if not (bundle / "configs" / "train.json").is_file():
        raise ArchiveError(f"{bundle}: not a bundle folder (no configs/train.json)")
    if weights is None:
        weights = train_dir / "model.pt" if (train_dir / "model.pt").is_file() else bundle_weights(bundle)
    weights = Path(weights)
    if not weights.is_file():
        raise ArchiveError(f"weights {weights} do not exist: train the bundle first or pass --weights")
    provenance, validation_log = training_provenance(train_dir, tracking_uri)
    network, size = provenance["network"], provenance["network_size"]

    files: dict[str, bytes] = {}
    for path in sorted((bundle / "configs").iterdir()):
        if path.is_file():
            files[f"configs/{path.name}"] = path.read_bytes()
    train = json.loads(files["configs/train.json"])
    train.update(network=network, network_size=size)
    files["configs/train.json"] = (json.dumps(train, indent=4) + "\n").encode()
    metadata = json.loads(files["configs/metadata.json"])
    metadata["provenance"] = provenance
    files["configs/metadata.json"] = (json.dumps(metadata, indent=4) + "\n").encode()
    files["models/model.safetensors"] = _safetensors(weights, network, size)
    files["docs/README.md"] = (bundle / "docs" / "README.md").read_bytes()
    if (bundle / "LICENSE").is_file():
        files["LICENSE"] = (bundle / "LICENSE").read_bytes()
    files["logs/validation.csv"] = validation_log.encode()
    metrics = provenance["validation_metrics"]
    files["docs/model_card.md"] = MODEL_CARD.format(
        name=bundle.name, version=metadata.get("version", ""), task=metadata.get("task", ""),
        intended_use=metadata.get("intended_use", ""), network=network, network_size=size,
        num_parameters=sum(p.numel() for p in build_network(network, size).parameters()),
        mode=provenance["mode"], manifest_digest=provenance["manifest_digest"],
        parent=f"`{provenance['parent_bundle']}` (fine-tuned from it)" if provenance["parent_bundle"] else "none",
        code_version=provenance["code_version"],
        metrics="\n".join(f"  - `{k}`: {v}" for k, v in metrics.items()) or "  - none logged",
    ).encode()
    files[CHECKSUMS] = checksums_text(files).encode()

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:  # verify exactly the bytes that will be shared
        staged = write_zip(bundle.name, files, Path(folder) / f"{bundle.name}.zip")
        try:
            verified = verify(staged)
        except ArchiveError as err:
            raise ArchiveError(f"refusing to export: {str(err).replace(str(staged), str(out))}") from None
        buffer.write(staged.read_bytes())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    return verified

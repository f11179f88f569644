"""Train and score through the bundle configs, in-process, and reuse runs that already finished.

Every run goes through ``monai.bundle.ConfigWorkflow`` (the code path of ``python -m monai.bundle run``)
with its own output folder and ``model_path`` under the work directory (never the bundle's
``models/model.pt``). A run's ``result.json`` carries a digest of its settings; a later start with the
same settings reuses it instead of running again.

``settings`` (built by :mod:`pipeline.bench.quality.cli`) holds ``bundle``, ``manifest``, ``iterations``,
``val_interval``, ``network_size``, ``batch_size``, ``readout_crop``, ``num_workers`` and ``overrides``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.bench.bundle import META, MODULE_ID, evaluation_configs, train_config
from pipeline.bench.quality.methods import CENTER_FRACTIONS

__all__ = ["eval_overrides", "run_classical", "run_learned", "train_overrides"]

logger = logging.getLogger("pipeline.bench.quality")

#: ``--set`` overrides that the evaluation must share with training (how the network output is constrained).
EVAL_SHARED = ("band_limit", "data_consistency", "network", "network_size")


#: Settings that name a file or folder: the digest hashes what they hold, not where they are, so a finished run
#: is reused from another checkout or a moved work folder.
CONTENT_SETTINGS = ("bundle", "manifest")
#: Settings that change no result (where the tracking store lives): left out of the digest.
UNSCORED_SETTINGS = ("tracking_dir",)


def _content_hash(path: str | Path) -> str:
    """sha256 of a manifest file, or of a bundle's training and evaluation configs (names and bytes)."""
    path = Path(path)
    files = [train_config(path), *evaluation_configs(path)] if path.is_dir() else [path]
    sha = hashlib.sha256()
    for file in files:
        sha.update(Path(file).name.encode() + b"\0" + Path(file).read_bytes())
    return sha.hexdigest()


def _digest(settings: Mapping[str, Any]) -> str:
    """Digest of the settings that decide a run's result: file contents instead of paths, no tracking folder."""
    portable = {k: _content_hash(v) if k in CONTENT_SETTINGS else v
                for k, v in settings.items() if k not in UNSCORED_SETTINGS}
    return hashlib.sha256(json.dumps(portable, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_workflow(config_files: Sequence[str | Path], bundle: Path, overrides: Mapping[str, Any]) -> None:
    """``initialize``, ``run`` and ``finalize`` of the bundle workflow of ``config_files`` with ``overrides``."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=[str(f) for f in config_files],
        meta_file=str(Path(bundle) / META),
        logging_file=False,
        workflow_type=None,
        **overrides,
    )
    try:
        workflow.initialize()
        workflow.run()
    finally:
        workflow.finalize()
        del workflow
        gc.collect()


def eval_overrides(settings: Mapping[str, Any], output_dir: Path, acc: int, baselines: Sequence[str]) -> dict[str, Any]:
    """Evaluation overrides: the ``test`` section at ``acc`` with one fixed equispaced mask per slice.

    Args:
        settings: the run settings (``bundle``, ``manifest``, ``network_size``, ``readout_crop``).
        output_dir: where the evaluation writes ``metrics.json``.
        acc: acceleration, a key of :data:`~pipeline.bench.quality.methods.CENTER_FRACTIONS`.
        baselines: classical methods scored next to the network.
    """
    return {
        "bundle_root": str(settings["bundle"]),
        "manifest": str(settings["manifest"]),
        "section": "test",
        "generate_demo_data": False,
        "output_dir": str(output_dir),
        "network_size": settings["network_size"],
        "readout_crop": settings["readout_crop"],
        "acceleration": acc,
        "center_fraction": CENTER_FRACTIONS[acc],
        "mask_type": settings["mask_type"],
        "override_stored_masks": True,
        "baselines": list(baselines),
        **{k: v for k, v in settings["overrides"].items() if k in EVAL_SHARED},
    }


def tracking_db(settings: Mapping[str, Any], seed: int, run_dir: Path) -> Path:
    """The MLflow SQLite file of a run: one per tracking folder and seed, shared by the runs of that seed.

    Creating an MLflow store runs its schema migrations (about 20 s on a loaded 2-core CPU), so the runs of
    one process share a store; processes that split the work by seed never write the same file. The folder
    is ``settings["tracking_dir"]`` when set, else the run's parent folder.
    """
    folder = Path(settings.get("tracking_dir") or run_dir.parent)
    return folder / "mlflow" / f"seed{seed}" / "mlruns.db"


def train_overrides(settings: Mapping[str, Any], method: str, acc: int, seed: int, run_dir: Path) -> dict[str, Any]:
    """``train.json`` overrides of one learned run (``settings["overrides"]`` last, so they win)."""
    from monai.utils import path_to_sqlite_uri

    iterations = settings["iterations"]
    overrides = {
        "bundle_root": str(settings["bundle"]),
        "manifest": str(settings["manifest"]),
        "generate_demo_data": False,
        "output_dir": str(run_dir),
        "model_path": str(run_dir / "model.pt"),
        "run_name": f"{run_dir.parent.name}/{run_dir.name}",
        "tracking_uri": path_to_sqlite_uri(str(tracking_db(settings, seed, run_dir))),
        "mode": settings.get("mode") or method,
        "seed": seed,
        "acceleration": acc,
        "center_fraction": CENTER_FRACTIONS[acc],
        "mask_type": settings["mask_type"],
        "target_section": "target_reference",
        "override_stored_masks": True,
        "readout_crop": settings["readout_crop"],
        "network_size": settings["network_size"],
        "batch_size": settings["batch_size"],
        "num_workers": settings["num_workers"],
        "max_epochs": 1,
        "epoch_length": iterations,
        "val_interval": settings["val_interval"] or iterations,
        "checkpoint_interval": iterations,
        "log_every": 10,
    }
    overrides.update(settings["overrides"])
    return overrides


def finished_result(result_file: Path, digest: str) -> dict[str, Any] | None:
    """The finished result in ``result_file`` if it was made with the settings of ``digest``, else ``None``."""
    if result_file.is_file():
        cached = json.loads(result_file.read_text())
        if cached.get("digest") == digest:
            if "model_path" in cached:  # the run folder may have moved since (another checkout)
                cached.update(run_dir=str(result_file.parent), model_path=str(result_file.parent / "model.pt"))
            return cached
    return None


def _reuse_or_reset(run_dir: Path, result_file: Path, digest: str, fresh: bool) -> dict[str, Any] | None:
    """The finished result of ``run_dir`` if its settings digest matches (and not ``fresh``); otherwise
    ``None`` after emptying ``run_dir`` for a new run."""
    cached = None if fresh else finished_result(result_file, digest)
    if cached is not None:
        logger.info(f"{run_dir.name}: reusing the finished run in {run_dir}")
        return cached
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return None


def _read_report(eval_dir: Path) -> dict[str, Any]:
    return json.loads((eval_dir / "metrics.json").read_text())


#: Convergence rule of the benchmark: validation SSIM gains less than this over the last 20 % of the budget.
CONVERGENCE_SSIM_GAIN = 0.005


def learning_curve(run_dir: Path, database: Path, metric: str = "val_ssim") -> list[list[float]]:
    """``[[iteration, value], ...]`` of a validation metric of a finished run, from its MLflow store.

    Args:
        run_dir: the run's output folder (``tracking_run.json`` inside).
        database: the MLflow SQLite file of the run (:func:`tracking_db`).
        metric: MLflow metric key.

    Returns:
        The history sorted by iteration; empty when the run logged none.
    """
    from mlflow.tracking import MlflowClient
    from monai.utils import path_to_sqlite_uri

    from pipeline.tracking.handlers import RUN_FILE

    run_id = json.loads((run_dir / RUN_FILE).read_text())["run_id"]
    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(database)))
    return sorted([int(m.step), float(m.value)] for m in client.get_metric_history(run_id, metric))


def late_gain(curve: Sequence[Sequence[float]], iterations: int) -> float | None:
    """Validation SSIM gained over the last 20 % of the budget: the best value after 80 % of ``iterations``
    minus the last value at or before it (``None`` without a point on both sides)."""
    mark = 0.8 * iterations
    before = [v for it, v in curve if it <= mark]
    after = [v for it, v in curve if it > mark]
    if not before or not after:
        return None
    return float(max(after) - before[-1])


def run_learned(
    settings: Mapping[str, Any], method: str, acc: int, seed: int, work_dir: Path, fresh: bool,
    reuse_only: bool = False,
) -> dict[str, Any] | None:
    """Train one learned method through ``train.json`` and score it through the evaluation configs.

    ``method`` is a training mode (``settings["mode"]``, when given, trains instead, e.g. ``ssl`` for an
    ablation row labelled ``jssl``).

    Returns:
        ``method``, ``acceleration``, ``seed``, ``run_dir``, ``model_path``, ``train_seconds``, ``eval_seconds``,
        ``seconds_per_iteration``, ``summary`` (``{metric: mean over test volumes}``), ``per_volume``, ``curve``
        (validation SSIM per iteration), ``late_gain`` (:func:`late_gain`), ``converged`` and ``digest``;
        ``None`` with ``reuse_only`` when the run has not finished.
    """
    run_dir = work_dir / f"{method}_{acc}x_seed{seed}"
    digest = _digest({"kind": "learned", "method": method, "acceleration": acc, "seed": seed, **settings})
    result_file = run_dir / "result.json"
    if reuse_only:
        return finished_result(result_file, digest)
    cached = _reuse_or_reset(run_dir, result_file, digest, fresh)
    if cached is not None:
        return cached
    bundle = Path(settings["bundle"])
    start = time.perf_counter()
    _run_workflow([train_config(bundle)], bundle, train_overrides(settings, method, acc, seed, run_dir))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    eval_dir = run_dir / "evaluation"
    overrides = eval_overrides(settings, eval_dir, acc, [])
    overrides["ckpt_path"] = str(run_dir / "model.pt")
    _run_workflow(evaluation_configs(bundle), bundle, overrides)
    eval_s = time.perf_counter() - start
    report = _read_report(eval_dir)
    curve = learning_curve(run_dir, tracking_db(settings, seed, run_dir))
    gain = late_gain(curve, settings["iterations"])
    result = {
        "digest": digest,
        "method": method,
        "acceleration": acc,
        "seed": seed,
        "run_dir": str(run_dir),
        "model_path": str(run_dir / "model.pt"),
        "train_seconds": round(train_s, 2),
        "eval_seconds": round(eval_s, 2),
        "seconds_per_iteration": round(train_s / settings["iterations"], 4),
        "summary": report["summary"]["network"],
        "per_volume": report["per_volume"]["network"],
        "curve": curve,
        "late_gain": gain,
        "converged": gain is not None and gain < CONVERGENCE_SSIM_GAIN,
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_classical(
    settings: Mapping[str, Any], methods: Sequence[str], acc: int, work_dir: Path, fresh: bool,
    reuse_only: bool = False,
) -> dict[str, Any] | None:
    """Score the classical baselines through the evaluation configs with the network switched off.

    Returns:
        ``acceleration``, ``eval_seconds``, ``summary`` and ``per_volume`` (``{method: ...}``) and ``digest``;
        ``None`` with ``reuse_only`` when the run has not finished.
    """
    run_dir = work_dir / f"classical_{acc}x"
    digest = _digest({
        "kind": "classical", "methods": list(methods), "acceleration": acc,
        **{k: settings[k] for k in ("bundle", "manifest", "readout_crop")},
    })
    result_file = run_dir / "result.json"
    if reuse_only:
        return finished_result(result_file, digest)
    cached = _reuse_or_reset(run_dir, result_file, digest, fresh)
    if cached is not None:
        return cached
    bundle = Path(settings["bundle"])
    configs = evaluation_configs(bundle)
    overrides = eval_overrides(settings, run_dir, acc, methods)
    # baselines only: no network, no checkpoint, one metric per baseline
    overrides.update({MODULE_ID: None, "ckpt_path": None,
                      "metrics": "$pipeline.metrics.method_metrics(@baselines)"})
    start = time.perf_counter()
    _run_workflow(configs, bundle, overrides)
    seconds = time.perf_counter() - start
    report = _read_report(run_dir)
    result = {
        "digest": digest,
        "acceleration": acc,
        "eval_seconds": round(seconds, 2),
        "summary": {m: report["summary"][m] for m in methods},
        "per_volume": {m: report["per_volume"][m] for m in methods},
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result

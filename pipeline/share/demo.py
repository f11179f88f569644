"""Fine-tuning a shared model at a receiving site, on the demo data: ``python -m pipeline.share.demo``.

Every step is the real command a site would type (subprocesses, in this order):

1. the training site trains a tiny VarNet with ``--mode sl`` on the fully sampled *proxy* section only
   (axial T1-like, 8 coils) and exports it (``python -m pipeline.share export``);
2. the receiving site has only subsampled *target* data (coronal FLAIR-like, 6 coils): it fine-tunes the
   shared model with ``--mode ssl`` (SSDU on the target section) through
   ``python -m pipeline.share run <archive> finetune`` (which verifies the archive first);
   and, as a site that also holds the public proxy data would, with ``--mode jssl`` (target + proxy);
3. a control spends the same number of iterations continuing supervised training on the proxy data from
   the same shared weights (``finetune --mode sl``), so more iterations alone are not mistaken for the gain;
4. each model is evaluated on the held-out target test section (``run <archive> evaluate``).

A step whose result exists in ``--work`` (a ``model.pt``, the archive, an evaluation's ``metrics.json``) is
not run again, so an interrupted demo continues where it stopped (training steps also resume from their
checkpoints); delete ``--work`` for a fresh run.

Writes ``finetune.json`` (settings, the parent bundle hash, per-model summary and per-volume metrics, the
machine, the date), ``finetune.md`` (the table) and ``finetune.png`` (per-volume target SSIM and the
fine-tuning validation curve) into ``--out`` (default ``bench_results/share``); the runs go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

#: The fine-tuning runs from the shared weights: folder in --work -> --mode.
FINETUNES = {"finetune_ssl": "ssl", "finetune_jssl": "jssl", "continue_sl": "sl"}

#: The models compared, in table order: name -> (description, weights relative to --work or None = shared).
MODELS = {
    "shared (sl, proxy)": ("shared model, as received", None),
    "continued sl on proxy": ("control: same extra iterations, supervised on the proxy data", "continue_sl/model.pt"),
    "fine-tuned ssl on target": ("fine-tuned at the receiving site on subsampled target data",
                                 "finetune_ssl/model.pt"),
    "fine-tuned jssl (target + proxy)": ("fine-tuned on the target data and the public proxy data, interleaved",
                                         "finetune_jssl/model.pt"),
}


def _run(args: list[str], log: Path, result: Path) -> None:
    """Run ``python <args>`` unless ``result`` exists; on failure stop with the command's last error line."""
    if result.exists():
        print(f"{result} exists: skipping {' '.join(args[:4])}", flush=True)
        return
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        lines = log.read_text().strip().splitlines() or ["(no output)"]
        raise SystemExit(f"error: {' '.join(args[:4])} failed ({proc.returncode}): {lines[-1]} (log: {log})")


def _flags(**values: Any) -> list[str]:
    return [token for key, value in values.items() for token in (f"--{key}", str(value))]


def _val_curve(train_dir: Path) -> list[tuple[int, float]]:
    """``(iteration, val_ssim)`` of a bundle training run, from its MLflow store."""
    import mlflow

    run_id = json.loads((train_dir / "tracking_run.json").read_text())["run_id"]
    client = mlflow.MlflowClient(f"sqlite:///{train_dir / 'mlflow' / 'mlruns.db'}")
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val_ssim"))


def _figure(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results["models"])
    volumes = sorted(results["models"][names[0]]["per_volume"])
    zero = results["zero_filled"]["per_volume"]
    for i, name in enumerate(["zero-filled", *names]):
        rows = zero if name == "zero-filled" else results["models"][name]["per_volume"]
        values = [rows[v]["ssim"] for v in volumes]
        left.bar(i, sum(values) / len(values), color=f"C{i}", alpha=0.6)
        left.plot([i] * len(values), values, "k.", ms=6)
    left.set_xticks(range(len(names) + 1), ["zero-filled", *names], rotation=15, fontsize=8)
    left.set_ylabel("SSIM on the target test volumes")
    left.set_ylim(min(0.9 * min(zero[v]["ssim"] for v in volumes), 0.5), None)
    left.set_title("target SSIM (bars: mean, dots: volumes)")
    for key, curve in results["validation_curves"].items():
        right.plot([s for s, _ in curve], [v for _, v in curve], "o-", label=f"{key} (--mode {FINETUNES[key]})")
    right.set_xlabel("fine-tuning iteration")
    right.set_ylabel("validation SSIM (target)")
    right.legend(fontsize=8)
    right.set_title("fine-tuning from the shared weights (iteration 0: shared)")
    fig.suptitle(f"shared model fine-tuned at a receiving site (demo data, {results['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo (module docstring) and write the JSON, table and figure; returns the results."""
    from pipeline.bench.bundle import require_path
    from pipeline.bench.common import machine_info
    from pipeline.handlers.report import markdown_table
    from pipeline.share.archive import bundle_hash

    parser = argparse.ArgumentParser(prog="python -m pipeline.share.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("bundles/jssl_varnet"), help="bundle folder")
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests/demo.json"), help="demo manifest")
    parser.add_argument("--work", type=Path, default=Path("runs/share_demo"), help="folder of the runs")
    parser.add_argument("--out", type=Path, default=Path("bench_results/share"), help="folder of the results")
    parser.add_argument("--network_size", default="tiny", help="network size of the shared model")
    parser.add_argument("--shared_iterations", type=int, default=40, help="sl iterations of the shared model")
    parser.add_argument("--finetune_iterations", type=int, default=40, help="iterations of each fine-tuning")
    args = parser.parse_args(argv)
    require_path(args.bundle, "bundle", "--bundle")
    require_path(args.manifest, "manifest", "--manifest")
    work, manifest = args.work.resolve(), args.manifest.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    common = dict(manifest=manifest, num_workers=1, batch_size=2, generate_demo_data=True)

    shared_dir = work / "shared_train"
    n = args.shared_iterations
    _run(["-m", "monai.bundle", "run", "--config_file", str(args.bundle / "configs" / "train.json"),
          *_flags(bundle_root=args.bundle, output_dir=shared_dir, model_path=shared_dir / "model.pt", mode="sl",
                  network_size=args.network_size, max_epochs=1, epoch_length=n, val_interval=n,
                  checkpoint_interval=n, warmup_iterations=5, **common)], work / "shared_train.log",
         shared_dir / "model.pt")
    archive = work / "jssl_varnet.zip"
    _run(["-m", "pipeline.share", "export", "--bundle", str(args.bundle), "--train_dir", str(shared_dir),
          "--out", str(archive)], work / "export.log", archive)
    m = args.finetune_iterations
    budget = dict(max_epochs=1, epoch_length=m, val_interval=max(1, m // 2), checkpoint_interval=max(1, m // 2),
                  warmup_iterations=5)
    for key, mode in FINETUNES.items():
        _run(["-m", "pipeline.share", "run", str(archive), "finetune",
              *_flags(output_dir=work / key, mode=mode, **budget, **common)], work / f"{key}.log",
             work / key / "model.pt")

    models, zero_filled = {}, None
    for name, (description, weights) in MODELS.items():
        folder = work / f"eval_{'shared' if weights is None else Path(weights).parent.name}"
        ckpt = {} if weights is None else {"ckpt_path": work / weights}
        _run(["-m", "pipeline.share", "run", str(archive), "evaluate",
              *_flags(output_dir=folder, baselines="['zero_filled']", **ckpt, **common)], folder.with_suffix(".log"),
             folder / "metrics.json")
        report = json.loads((folder / "metrics.json").read_text())
        models[name] = {"description": description, "summary": report["summary"]["network"],
                        "per_volume": report["per_volume"]["network"]}
        zero_filled = {"summary": report["summary"]["zero_filled"], "per_volume": report["per_volume"]["zero_filled"]}

    shared_val = _val_curve(shared_dir)[-1][1]
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "wall_seconds": round(time.time() - started, 1),
        "settings": {"network": "varnet", "network_size": args.network_size, "batch_size": 2,
                     "shared": {"mode": "sl", "section": "proxy", "iterations": n},
                     "shared_learning_rate": 0.001, "warmup_iterations": 5,
                     "finetune": {"iterations": m, "learning_rate": 0.0005}},
        "parent_bundle_hash": bundle_hash(archive),
        "models": models,
        "zero_filled": zero_filled,
        # iteration 0 of each curve: the shared model's last validation (same validation section)
        "validation_curves": {key: [(0, shared_val), *_val_curve(work / key)] for key in FINETUNES},
    }
    (args.out / "finetune.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table({**{k: v["summary"] for k, v in models.items()}, "zero-filled": zero_filled["summary"]})
    (args.out / "finetune.md").write_text(table)
    _figure(results, args.out / "finetune.png")
    print(table, end="")
    print(f"wrote {args.out / 'finetune.json'}, finetune.md, finetune.png ({results['wall_seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()

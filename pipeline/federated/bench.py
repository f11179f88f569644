"""``python -m pipeline.federated.bench``: federated JSSL against site-local SSL and centralised JSSL on the demo
data, at an equal budget of optimiser steps. Prints a table and writes ``results.json`` and ``results.md``.

The three methods start from the same seeded network and take the same number of optimiser steps,
``steps = sites x rounds x iterations`` (batch size equal):

- ``federated JSSL``: NVFlare FedAvg (:func:`pipeline.federated.job.simulate`) over the demo split, ``proxy``
  (SL) + ``target-1`` and ``target-2`` (SSL, half of the target volumes each), ``iterations`` steps per site
  and round;
- ``site-local SSL``: site ``target-1`` alone, SSL on its own half of the target data, ``steps`` steps;
- ``centralised JSSL``: all the data in one place, JSSL with SL:SSL steps 1:2 (the federation's mix),
  ``steps`` steps.

Every model (the final weights; no validation-based selection) is scored on the manifest's ``test`` section by
the bundle's evaluation configs at 4x (fixed equispaced masks), with the zero-filled input as a floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.bench.bundle import evaluation_configs, require_path, train_config
from pipeline.bench.common import machine_info
from pipeline.bench.quality.runs import _run_workflow, eval_overrides

ACCELERATION = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.federated.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests/demo.json"),
                        help="datalist split into a proxy site and target sites (default: the demo)")
    parser.add_argument("--bundle", type=Path, default=Path("bundles/jssl_varnet"), help="bundle folder")
    parser.add_argument("--rounds", type=int, default=4, help="FedAvg rounds")
    parser.add_argument("--iterations", type=int, default=10, help="steps per site and round")
    parser.add_argument("--network_size", default="tiny", help="network size preset of every method")
    parser.add_argument("--batch_size", type=int, default=2, help="training batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial network and the data draws")
    parser.add_argument("--work_dir", type=Path, default=Path("runs/bench_federated"), help="folder of the runs")
    parser.add_argument("--output", type=Path, default=Path("bench_results/federated"),
                        help="folder of results.{json,md}")
    return parser


def _local_manifest(site_manifest: str, manifest: Path, path: Path) -> Path:
    """The site's datalist plus the full datalist's ``validation`` section (``train.json`` checks it at start)."""
    from pipeline.data.manifests import load_manifest, manifest_data_root

    content = json.loads(Path(site_manifest).read_text())
    root = manifest_data_root(manifest)
    content["validation"] = [{"file": str(Path(item["file"]).relative_to(root))}
                             for item in load_manifest(manifest, "validation")]
    content["data_root"] = str(root)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def _train(bundle: Path, run_dir: Path, overrides: Mapping[str, Any]) -> Path:
    """One bundle training (no validation: the final weights, as in the federation); returns the weights."""
    model = run_dir / "model.pt"
    steps = int(overrides["epoch_length"])
    _run_workflow([train_config(bundle)], bundle, {
        "bundle_root": str(bundle), "output_dir": str(run_dir), "model_path": str(model), "run_name": run_dir.name,
        "generate_demo_data": False, "max_epochs": 1, "val_interval": steps + 1, "checkpoint_interval": steps,
        "num_workers": 0, "log_every": 10, **overrides,
    })
    return model


def score_overrides(bundle: Path, manifest: Path, network_size: str, model: Path, out: Path) -> dict[str, Any]:
    """Bundle overrides that score ``model`` on the test section with the quality benchmark's evaluation rule.

    Fixed equispaced masks at :data:`ACCELERATION` (the demo's), the zero-filled baseline alongside.
    """
    settings = {"bundle": bundle, "manifest": manifest, "network_size": network_size, "readout_crop": False,
                "mask_type": "equispaced", "overrides": {}}
    return {**eval_overrides(settings, out, ACCELERATION, ["zero_filled"]), "ckpt_path": str(model)}


def _score(bundle: Path, manifest: Path, network_size: str, model: Path, out: Path) -> dict[str, Any]:
    _run_workflow(evaluation_configs(bundle), bundle, score_overrides(bundle, manifest, network_size, model, out))
    return json.loads((out / "metrics.json").read_text())["summary"]


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results table (SSIM, PSNR in dB, NMSE: means over the test volumes)."""
    lines = ["| method | data used | optimiser steps | SSIM | PSNR (dB) | NMSE | train s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['data']} | {row['steps']} | {row['ssim']:.4f} | {row['psnr']:.2f} | "
                     f"{row['nmse']:.4f} | {row['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three methods, score them, print the table and write ``results.json`` / ``results.md``."""
    args = _parser().parse_args(argv)
    from pipeline.federated.job import demo_sites, simulate

    bundle = require_path(args.bundle, "bundle", "--bundle").resolve()
    manifest = require_path(args.manifest, "manifest", "--manifest").resolve()
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    sites = demo_sites(manifest, work / "federated", target_sites=2)
    steps = len(sites) * args.rounds * args.iterations
    common = {"network_size": args.network_size, "batch_size": args.batch_size, "seed": args.seed,
              "warmup_iterations": max(1, steps // 10)}
    rows = []

    start = time.perf_counter()
    fed = simulate(sites, work / "federated", args.rounds, args.iterations, bundle,
                   {**common, "warmup_iterations": max(1, args.rounds * args.iterations // 10), "num_workers": 0},
                   seed=args.seed)
    if fed["global_model"] is None:
        print(f"error: the federation failed: {fed['failed']}", file=sys.stderr)
        return 1
    rows.append({"method": "federated JSSL (NVFlare FedAvg, 3 sites)", "model": fed["global_model"],
                 "data": "proxy site SL + 2 target sites SSL, data stay at the sites",
                 "steps": steps, "train_seconds": round(time.perf_counter() - start, 1)})

    start = time.perf_counter()
    local = _local_manifest(sites["target-1"]["manifest"], manifest, work / "target-1_local.json")
    model = _train(bundle, work / "local_ssl", {**common, "mode": "ssl", "manifest": str(local), "epoch_length": steps})
    rows.append({"method": "site-local SSL (target-1 alone)", "model": model, "data": "half of the target data",
                 "steps": steps, "train_seconds": round(time.perf_counter() - start, 1)})

    start = time.perf_counter()
    model = _train(bundle, work / "central_jssl", {**common, "mode": "jssl", "manifest": str(manifest),
                                                   "epoch_length": steps, "sl_ssl_ratio": {"sl": 1, "ssl": 2}})
    rows.append({"method": "centralised JSSL (SL:SSL 1:2)", "model": model, "data": "all proxy + all target, pooled",
                 "steps": steps, "train_seconds": round(time.perf_counter() - start, 1)})

    zero_filled = None
    for row in rows:
        model = Path(row["model"])
        summary = _score(bundle, manifest, args.network_size, model, work / "eval" / model.parent.name)
        row.update({metric: summary["network"][metric] for metric in ("ssim", "psnr", "nmse")})
        zero_filled = summary["zero_filled"]
        row["model"] = str(row["model"])
    rows.append({"method": "zero-filled input", "data": "-", "steps": 0, "train_seconds": 0, "model": None,
                 **{metric: zero_filled[metric] for metric in ("ssim", "psnr", "nmse")}})
    table = markdown(rows)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine,
               "settings": {**settings, "steps_per_method": steps, "acceleration": ACCELERATION,
                            "evaluated_on": "test section, fixed equispaced 4x masks"},
               "rows": rows, "sites": {name: spec["mode"] for name, spec in sites.items()},
               "federated_rounds": fed["rounds"]}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    header = (f"Federated vs site-local vs centralised JSSL, {results['date']}, {machine['cpu']} "
              f"({machine['cpus_usable']} CPUs), network {args.network_size}, {steps} steps each\n\n")
    (args.output / "results.md").write_text(header + table)
    print(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

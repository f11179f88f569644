"""CLI benchmark of reconstruction QUALITY: classical baselines vs SL / SSL / JSSL / oracle on the demo data.

Usage::

    python -m pipeline.bench.quality                      # full run (~1 h on 2 CPU cores)
    python -m pipeline.bench.quality --quick              # smoke run on the tiny preset (< 1 min)
    python -m pipeline.bench.quality --help

On the demo domain-shift data (``data_manifests/demo.json``: proxy = fully sampled axial T1-like,
target = coronal FLAIR-like), at every requested acceleration (equispaced 1-D masks, centre fraction
0.08 at 4x, 0.04 at 8x), it trains the learned methods with the SAME iteration budget and scores every
method on the held-out ``test`` section:

=====================  ==========================================================================
zero-filled, SENSE     ``evaluate.json``'s ``baselines`` (:mod:`pipeline.baselines`), computed once
(CG), compressed       per acceleration (deterministic: no std)
sensing (L1-wavelet)
SL on proxy only       ``train.json --mode sl``
SSL on target only     ``train.json --mode ssl``
JSSL                   ``train.json --mode jssl``
SL on target (oracle)  ``train.json --mode sl_target`` (the target training slices fully sampled)
=====================  ==========================================================================

Every learned run goes through the bundle configs in-process (``monai.bundle.ConfigWorkflow``; the same
code path as ``python -m monai.bundle run``), with its own output folder and ``model_path`` under
``--work-dir`` (never the bundle's ``models/model.pt``). The target domain uses the section
``target_reference`` with ``override_stored_masks=True``: every target training / validation / test
slice gets ONE fixed mask of the requested acceleration (seeded from file name and slice), and the SSL
branch sees only that subsampled k-space. Scores are fastMRI per-volume NMSE / PSNR / SSIM
(:class:`pipeline.metrics.VolumeMetrics` through ``evaluate.json``); a learned method's row is the mean
and the sample standard deviation over seeds of the per-seed means over test volumes.

Outputs in ``--out``: ``quality.json`` (settings, machine, every per-seed and per-volume number, wall
times), ``quality.md`` (the table) and ``quality.png`` (metric bars with error bars, and one test slice
reconstructed by every method at the highest acceleration, with error maps). Completed runs are kept in
``--work-dir`` and reused when the benchmark is started again with the same settings (``--fresh`` to
retrain), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import pipeline.metrics  # noqa: F401  (the baselines-only ``metrics`` override below names pipeline.metrics)

logger = logging.getLogger("pipeline.bench.quality")

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"
TRAIN_CONFIG = BUNDLE / "configs" / "train.json"
EVAL_CONFIG = BUNDLE / "configs" / "evaluate.json"
META_FILE = BUNDLE / "configs" / "metadata.json"

#: Classical baselines (names of :data:`pipeline.baselines.BASELINES`), deterministic.
CLASSICAL = ("zero_filled", "sense", "compressed_sensing")
#: Learned methods = the bundle's training modes.
LEARNED = ("sl", "ssl", "jssl", "sl_target")
METHODS = CLASSICAL + LEARNED
LABELS = {
    "zero_filled": "zero-filled",
    "sense": "SENSE (CG)",
    "compressed_sensing": "compressed sensing (L1-wavelet)",
    "sl": "SL on proxy only",
    "ssl": "SSL on target only",
    "jssl": "JSSL (proxy SL + target SSL)",
    "sl_target": "SL on target (oracle)",
}
SHORT_LABELS = {
    "zero_filled": "zero-filled",
    "sense": "SENSE",
    "compressed_sensing": "CS",
    "sl": "SL proxy",
    "ssl": "SSL",
    "jssl": "JSSL",
    "sl_target": "SL target\n(oracle)",
}
#: Centre fraction per acceleration (fastMRI / JSSL convention).
CENTER_FRACTIONS = {2: 0.16, 4: 0.08, 8: 0.04, 16: 0.02}
METRICS = ("nmse", "psnr", "ssim")
METRIC_LABELS = {"nmse": "NMSE", "psnr": "PSNR (dB)", "ssim": "SSIM"}

# Defaults of the full run, chosen from a timing measurement on the 2-core CPU (see --help epilog).
DEFAULT_ITERATIONS = 150
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ACCELERATIONS = (4, 8)


# ----------------------------------------------------------------------------------------------
# settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench.quality",
        description=(
            "Reconstruction-quality benchmark on the demo domain-shift data: zero-filled, SENSE, compressed "
            "sensing, SL on proxy, SSL on target, JSSL and the SL-on-target oracle, trained through the "
            "jssl_varnet bundle with the same iteration budget, scored with fastMRI volume NMSE/PSNR/SSIM "
            "on the held-out test section."
        ),
        epilog=(
            "Default budget: 150 iterations of batch 2 per learned run, 'demo' network (1.15 M parameters), "
            "readout crop on, 1 torch thread: measured 0.6 s/iteration on a free core of a 2-core CPU (1.4 s "
            "with the cores shared by other jobs) plus ~15 s set-up and scoring per run, so the 24 learned "
            "runs take about 45 minutes in one process, or about 25 minutes as two processes (one per "
            "acceleration, e.g. '--accelerations 4' and '--accelerations 8' with the same --work-dir, then "
            "the plain command, which reuses finished runs, to write the combined report); the classical "
            "baselines take ~30 s. "
            "Examples: '--quick' (tiny smoke run); '--accelerations 8 --methods ssl jssl --seeds 0' "
            "(one comparison); '--set sl_ssl_ratio={\"sl\":1,\"ssl\":2}' (any train.json setting for "
            "every learned run)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "quality",
                        help="folder for quality.json / quality.md / quality.png")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for the per-run bundle outputs (checkpoints, MLflow, weights); default "
                             "runs/bench_quality, or a temporary folder with --quick")
    parser.add_argument("--manifest", type=Path, default=REPO / "data_manifests" / "demo.json",
                        help="MONAI datalist; its data are generated (demo preset) when missing")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny preset generated into a temporary folder, 1 seed, 4x only, "
                             "a handful of iterations, 'tiny' network (ignores --manifest)")
    parser.add_argument("--accelerations", type=int, nargs="+", default=None,
                        help=f"accelerations (centre fractions {CENTER_FRACTIONS}); default "
                             f"{' '.join(map(str, DEFAULT_ACCELERATIONS))}")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"training seeds of every learned method; default {' '.join(map(str, DEFAULT_SEEDS))}")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to run")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"training iterations (optimiser steps) of every learned run; default "
                             f"{DEFAULT_ITERATIONS} (--quick: 4)")
    parser.add_argument("--val-interval", type=int, default=None,
                        help="validate (and keep the best checkpoint by val SSIM) every this many iterations; "
                             "default: once, at the end (the exported weights are the final ones)")
    parser.add_argument("--network-size", default=None, help="network preset (default demo; --quick: tiny)")
    parser.add_argument("--batch-size", type=int, default=2, help="training batch size")
    parser.add_argument("--readout-crop", type=_bool, default=True,
                        help="halve the 2x-oversampled readout (2x faster, same metrics region)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per training loader")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON",
                        help="extra train.json override for every learned run, value parsed as JSON when it "
                             "parses (repeatable), e.g. --set ssdu_q=0.5 --set sl_ssl_ratio='{\"sl\":1,\"ssl\":2}'")
    parser.add_argument("--figure-slice", type=int, default=None,
                        help="slice of the first test volume shown in the figure (default: its middle slice)")
    parser.add_argument("--fresh", action="store_true", help="retrain and re-score runs that already exist")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; 0 = torch's default (one per core). 1 is the default because "
                             "on a shared 2-core machine 2 threads were 4-30x slower per step (oversubscription)")
    args = parser.parse_args(argv)
    if args.quick:
        args.accelerations = args.accelerations or [4]
        args.seeds = args.seeds or [0]
        args.iterations = args.iterations or 4
        args.network_size = args.network_size or "tiny"
    args.accelerations = args.accelerations or list(DEFAULT_ACCELERATIONS)
    args.seeds = args.seeds or list(DEFAULT_SEEDS)
    args.iterations = args.iterations or DEFAULT_ITERATIONS
    args.network_size = args.network_size or "demo"
    for acc in args.accelerations:
        if acc not in CENTER_FRACTIONS:
            parser.error(f"--accelerations: {acc} not supported; choose from {sorted(CENTER_FRACTIONS)}")
    if args.iterations < 1:
        parser.error("--iterations must be >= 1")
    try:
        args.overrides = dict(_parse_override(item) for item in args.overrides)
    except ValueError as err:
        parser.error(f"--set: {err}")
    return args


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ValueError(f"expected KEY=VALUE, got {item!r}")
    key, value = item.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    """CPU, thread and library facts recorded next to the numbers."""
    import ignite
    import monai

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "ignite": ignite.__version__,
        "numpy": np.__version__,
        "cuda": torch.cuda.is_available(),
    }
    try:
        import sigpy

        info["sigpy"] = sigpy.__version__
    except ImportError:  # pragma: no cover
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


# ----------------------------------------------------------------------------------------------
# bundle runs


def _workflow(config: Path, overrides: Mapping[str, Any]):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(
        config_file=str(config),
        meta_file=str(META_FILE),
        logging_file=False,
        workflow_type=None,
        **{k: v for k, v in overrides.items()},
    )


def _run_workflow(config: Path, overrides: Mapping[str, Any]) -> None:
    workflow = _workflow(config, overrides)
    try:
        workflow.initialize()
        workflow.run()
    finally:
        workflow.finalize()
        del workflow
        gc.collect()


def eval_overrides(
    manifest: Path, output_dir: Path, acc: int, network_size: str, readout_crop: bool, baselines: Sequence[str]
) -> dict[str, Any]:
    """``evaluate.json`` overrides: the test section at ``acc`` with one fixed mask per slice."""
    return {
        "bundle_root": str(BUNDLE),
        "manifest": str(manifest),
        "section": "test",
        "generate_demo_data": False,
        "output_dir": str(output_dir),
        "network_size": network_size,
        "readout_crop": readout_crop,
        "acceleration": acc,
        "center_fraction": CENTER_FRACTIONS[acc],
        "mask_type": "equispaced",
        "override_stored_masks": True,
        "baselines": list(baselines),
    }


def train_overrides(settings: Mapping[str, Any], method: str, acc: int, seed: int, run_dir: Path) -> dict[str, Any]:
    """``train.json`` overrides of one learned run."""
    iterations = settings["iterations"]
    val_interval = settings["val_interval"] or iterations
    overrides = {
        "bundle_root": str(BUNDLE),
        "manifest": str(settings["manifest"]),
        "generate_demo_data": False,
        "output_dir": str(run_dir),
        "model_path": str(run_dir / "model.pt"),
        "run_name": run_dir.name,
        "mode": method,
        "seed": seed,
        "acceleration": acc,
        "center_fraction": CENTER_FRACTIONS[acc],
        "mask_type": "equispaced",
        "target_section": "target_reference",
        "override_stored_masks": True,
        "readout_crop": settings["readout_crop"],
        "network_size": settings["network_size"],
        "batch_size": settings["batch_size"],
        "num_workers": settings["num_workers"],
        "max_epochs": 1,
        "epoch_length": iterations,
        "val_interval": val_interval,
        "checkpoint_interval": iterations,
        "log_every": 10,
    }
    overrides.update(settings["overrides"])
    return overrides


def _read_report(eval_dir: Path) -> dict[str, Any]:
    return json.loads((eval_dir / "metrics.json").read_text())


def _reuse_or_reset(run_dir: Path, result_file: Path, digest: str, fresh: bool) -> dict | None:
    """The finished result of ``run_dir`` if its settings digest matches (and not ``fresh``); otherwise
    ``None`` after emptying ``run_dir`` for a new run."""
    if not fresh and result_file.is_file():
        cached = json.loads(result_file.read_text())
        if cached.get("digest") == digest:
            logger.info(f"{run_dir.name}: reusing the finished run in {run_dir}")
            return cached
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return None


def run_learned(settings: Mapping[str, Any], method: str, acc: int, seed: int, work_dir: Path, fresh: bool) -> dict:
    """Train one learned method through ``train.json`` and score it through ``evaluate.json``."""
    run_dir = work_dir / f"{method}_{acc}x_seed{seed}"
    run_settings = {"kind": "learned", "method": method, "acceleration": acc, "seed": seed, **settings}
    digest = _digest(run_settings)
    result_file = run_dir / "result.json"
    cached = _reuse_or_reset(run_dir, result_file, digest, fresh)
    if cached is not None:
        return cached
    start = time.perf_counter()
    _run_workflow(TRAIN_CONFIG, train_overrides(settings, method, acc, seed, run_dir))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    eval_dir = run_dir / "evaluation"
    overrides = eval_overrides(
        Path(settings["manifest"]), eval_dir, acc, settings["network_size"], settings["readout_crop"], []
    )
    overrides["ckpt_path"] = str(run_dir / "model.pt")
    _run_workflow(EVAL_CONFIG, overrides)
    eval_s = time.perf_counter() - start
    report = _read_report(eval_dir)
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
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_classical(settings: Mapping[str, Any], methods: Sequence[str], acc: int, work_dir: Path, fresh: bool) -> dict:
    """Score the classical baselines through ``evaluate.json`` with the network switched off."""
    run_dir = work_dir / f"classical_{acc}x"
    run_settings = {
        "kind": "classical", "methods": list(methods), "acceleration": acc,
        **{k: settings[k] for k in ("manifest", "readout_crop")},
    }
    digest = _digest(run_settings)
    result_file = run_dir / "result.json"
    cached = _reuse_or_reset(run_dir, result_file, digest, fresh)
    if cached is not None:
        return cached
    overrides = eval_overrides(
        Path(settings["manifest"]), run_dir, acc, settings["network_size"], settings["readout_crop"], methods
    )
    # baselines only: no network, no checkpoint, one metric per baseline
    overrides.update({"network": None, "ckpt_path": None,
                      "metrics": "$pipeline.metrics.method_metrics(@baselines)"})
    start = time.perf_counter()
    _run_workflow(EVAL_CONFIG, overrides)
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


# ----------------------------------------------------------------------------------------------
# aggregation and reporting


def aggregate(classical: Mapping[int, dict], learned: Sequence[dict], methods: Sequence[str],
              accelerations: Sequence[int]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {"<acc>x": {metric, metric_std, n}}}``; std over seeds (ddof=1), 0 for classical / 1 seed."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        table[method] = {}
        for acc in accelerations:
            if method in CLASSICAL:
                if acc not in classical:
                    continue
                summary = classical[acc]["summary"][method]
                row = {m: summary[m] for m in METRICS} | {f"{m}_std": 0.0 for m in METRICS} | {"n": 1}
            else:
                runs = [r for r in learned if r["method"] == method and r["acceleration"] == acc]
                if not runs:
                    continue
                row = {"n": len(runs)}
                for m in METRICS:
                    values = np.array([r["summary"][m] for r in runs], dtype=np.float64)
                    row[m] = float(values.mean())
                    row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            table[method][f"{acc}x"] = row
    return table


def _cell(row: Mapping[str, float] | None, metric: str, deterministic: bool) -> str:
    if row is None:
        return "–"
    fmt = {"nmse": "{:.4f}", "psnr": "{:.2f}", "ssim": "{:.4f}"}[metric]
    value = fmt.format(row[metric])
    std = "—" if deterministic else fmt.format(row[f"{metric}_std"])
    return f"{value} ± {std}"


def comparisons(table: Mapping[str, Mapping[str, Mapping[str, float]]], accelerations: Sequence[int]) -> list[dict]:
    """JSSL minus SSL per acceleration (positive PSNR/SSIM and negative NMSE differences favour JSSL)."""
    out = []
    for acc in accelerations:
        jssl, ssl = table.get("jssl", {}).get(f"{acc}x"), table.get("ssl", {}).get(f"{acc}x")
        if jssl is None or ssl is None:
            continue
        diff = {m: jssl[m] - ssl[m] for m in METRICS}
        out.append({
            "acceleration": acc,
            "ssim_diff": diff["ssim"], "psnr_diff_db": diff["psnr"], "nmse_diff": diff["nmse"],
            "jssl_beats_ssl": bool(diff["ssim"] > 0 and diff["psnr"] > 0),
        })
    return out


def comparison_lines(comps: Sequence[dict]) -> list[str]:
    lines = []
    for c in comps:
        verdict = "JSSL beats SSL" if c["jssl_beats_ssl"] else "JSSL does NOT beat SSL (on both SSIM and PSNR)"
        lines.append(
            f"{c['acceleration']}x: {verdict}: SSIM {c['ssim_diff']:+.4f}, PSNR {c['psnr_diff_db']:+.2f} dB, "
            f"NMSE {c['nmse_diff']:+.4f} (JSSL minus SSL, means over seeds)"
        )
    return lines


def markdown(table: Mapping[str, Mapping[str, Mapping[str, float]]], accelerations: Sequence[int],
             settings: Mapping[str, Any], comps: Sequence[dict], wall_s: float, machine: Mapping[str, Any],
             run_s: float | None = None) -> str:
    header = "| method | " + " | ".join(
        f"{METRIC_LABELS[m]} {acc}x" for acc in accelerations for m in METRICS) + " |"
    lines = [
        "# Reconstruction quality on the demo domain-shift data",
        "",
        f"Test section of `{Path(settings['manifest']).name}`, fastMRI per-volume NMSE / PSNR / SSIM, equispaced "
        "1-D masks (one fixed mask per test slice), centre fraction "
        + ", ".join(f"{CENTER_FRACTIONS[a]} at {a}x" for a in accelerations) + ". "
        f"Learned methods: `{settings['network_size']}` VarNet, {settings['iterations']} iterations of batch "
        f"{settings['batch_size']} each, readout crop {'on' if settings['readout_crop'] else 'off'}, "
        f"mean ± std (ddof 1) over seeds {settings['seeds']} of the per-seed means over test volumes. "
        "Classical methods are deterministic (—).",
        "",
        header,
        "|---|" + "---|" * (len(accelerations) * len(METRICS)),
    ]
    for method, rows in table.items():
        cells = [_cell(rows.get(f"{acc}x"), m, method in CLASSICAL) for acc in accelerations for m in METRICS]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    if comps:
        lines += ["", "JSSL vs SSL:", ""] + [f"- {line}" for line in comparison_lines(comps)]
    if settings["overrides"]:
        lines += ["", f"Extra train.json overrides: `{json.dumps(settings['overrides'])}`"]
    lines += [
        "",
        f"Wall time {wall_s / 60:.1f} min"
        + (f" (runs alone {run_s / 60:.1f} min, counting runs reused from an earlier start)" if run_s else "")
        + f" on {machine['cpus_available']} CPU core(s), {settings.get('torch_threads', machine['torch_threads'])} "
        f"torch thread(s) (torch {machine['torch']}, MONAI {machine['monai']}). Raw numbers: `quality.json`. "
        "Reproduce: `python -m pipeline.bench.quality`.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# figure


def reconstruct_slice(settings: Mapping[str, Any], acc: int, models: Mapping[str, str],
                      classical: Sequence[str], slice_index: int | None) -> dict[str, Any]:
    """One test slice at ``acc`` reconstructed by every method, through ``evaluate.json``'s dataset, network
    and :class:`~pipeline.engines.ReconstructionEvaluator` (exactly what the scores used).

    Returns:
        ``{"target": (Hr, Wr), "<method>": (Hr, Wr), "filename": str, "slice": int, "maxval": float}``.
    """
    from monai.bundle import ConfigParser
    from torch.utils.data import DataLoader, Subset

    from pipeline.engines import ReconstructionEvaluator
    from pipeline.keys import Keys

    def parser_for(baselines: Sequence[str], ckpt: str | None) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config(str(EVAL_CONFIG))
        parser.read_meta(str(META_FILE))
        overrides = eval_overrides(Path(settings["manifest"]), Path(tempfile.gettempdir()), acc,
                                   settings["network_size"], settings["readout_crop"], baselines)
        overrides["ckpt_path"] = ckpt
        parser.update(overrides)
        return parser

    first = parser_for(classical, None)
    dataset = first.get_parsed_content("dataset")
    items = dataset.data
    volume = items[0]["file"]
    volume_slices = [i for i, item in enumerate(items) if item["file"] == volume]
    index = volume_slices[len(volume_slices) // 2 if slice_index is None else slice_index]
    loader = DataLoader(Subset(dataset, [index]), batch_size=1)

    def run(network, baselines):
        evaluator = ReconstructionEvaluator("cpu", loader, network, baselines=baselines)
        evaluator.run()
        return evaluator.state.output

    out: dict[str, Any] = {}
    if classical:
        output = run(None, list(classical))
        out.update({name: output[name][0, 0].cpu().numpy() for name in classical})
    for method, ckpt in models.items():
        network = parser_for([], ckpt).get_parsed_content("network")
        output = run(network, [])
        out[method] = output[Keys.PRED][0, 0].cpu().numpy()
    out["target"] = output[Keys.TARGET][0, 0].cpu().numpy()
    out["filename"] = str(output[Keys.FILENAME][0])
    out["slice"] = int(torch.as_tensor(output[Keys.SLICE]).reshape(-1)[0])
    out["maxval"] = float(torch.as_tensor(output[Keys.MAX]).reshape(-1)[0]) if Keys.MAX in output else float(
        out["target"].max())
    return out


def figure(path: Path, table: Mapping[str, Mapping[str, Mapping[str, float]]], accelerations: Sequence[int],
           recon: Mapping[str, Any] | None, recon_acc: int, settings: Mapping[str, Any]) -> None:
    """Metric bars (mean ± std per method and acceleration) over a row of reconstructions and error maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.metrics import psnr, ssim

    methods = list(table)
    shown = [m for m in methods if recon is not None and m in recon]
    ncols = max(len(shown) + 1, 3)
    fig = plt.figure(figsize=(2.1 * ncols, 3.2 + (4.4 if recon is not None else 0)), constrained_layout=True)
    grid = fig.add_gridspec(3 if recon is not None else 1, 1, height_ratios=[1.25, 1, 1] if recon is not None else [1])
    top = grid[0].subgridspec(1, len(METRICS))
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(len(accelerations), 1)
    x = np.arange(len(methods))
    for j, metric in enumerate(METRICS):
        ax = fig.add_subplot(top[0, j])
        for k, acc in enumerate(accelerations):
            means = [table[m].get(f"{acc}x", {}).get(metric, np.nan) for m in methods]
            stds = [table[m].get(f"{acc}x", {}).get(f"{metric}_std", 0.0) for m in methods]
            ax.bar(x + (k - (len(accelerations) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   color=colors(k), label=f"{acc}x")
        ax.set_xticks(x)
        ax.set_xticklabels([SHORT_LABELS[m] for m in methods], rotation=60, ha="right", fontsize=7)
        ax.set_title(METRIC_LABELS[metric] + (" (lower is better)" if metric == "nmse" else ""), fontsize=9)
        values = [table[m].get(f"{a}x", {}).get(metric) for m in methods for a in accelerations]
        values = [v for v in values if v is not None and np.isfinite(v)]
        if metric != "nmse" and values:
            lo, hi = min(values), max(values)
            ax.set_ylim(lo - 0.15 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        if j == 0:
            ax.legend(fontsize=7)
    fig.suptitle(
        f"{Path(settings['manifest']).stem} test set; learned: {settings['network_size']} VarNet, "
        f"{settings['iterations']} it., seeds {settings['seeds']}", fontsize=10)
    if recon is not None:
        target = recon["target"]
        vmax = float(np.percentile(target, 99.5))
        row_img = grid[1].subgridspec(1, ncols)
        row_err = grid[2].subgridspec(1, ncols)
        errors = {m: np.abs(recon[m] - target) for m in shown}
        emax = float(max(np.percentile(e, 99.5) for e in errors.values())) if errors else 1.0
        ax = fig.add_subplot(row_img[0, 0])
        ax.imshow(target, cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(f"reference\n{recon['filename']} s{recon['slice']}", fontsize=7)
        ax.axis("off")
        fig.add_subplot(row_err[0, 0]).axis("off")
        for i, method in enumerate(shown, start=1):
            pred = recon[method]
            score_ssim = ssim(target[None], pred[None], recon["maxval"])
            score_psnr = psnr(target, pred, recon["maxval"])
            ax = fig.add_subplot(row_img[0, i])
            ax.imshow(pred, cmap="gray", vmin=0, vmax=vmax)
            ax.set_title(f"{SHORT_LABELS[method].replace(chr(10), ' ')} {recon_acc}x\n"
                         f"SSIM {score_ssim:.3f} PSNR {score_psnr:.1f}", fontsize=7)
            ax.axis("off")
            ax = fig.add_subplot(row_err[0, i])
            ax.imshow(errors[method], cmap="magma", vmin=0, vmax=emax)
            ax.set_title(f"|error| (0–{emax:.2g})", fontsize=7)
            ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        stream=sys.stdout, force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    wall_start = time.perf_counter()
    temp_dir = None
    if args.quick:
        from pipeline.data.simulate import generate

        if args.work_dir is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="bench_quality_quick_"))
        # with --work-dir the tiny data live there too, so a second start finds (and reuses) the same runs
        base = temp_dir if temp_dir is not None else args.work_dir.resolve()
        manifest = base / "tiny_data" / "tiny.json"
        if not manifest.is_file():
            generate("tiny", base / "tiny_data" / "data", seed=0, manifest_path=manifest)
        work_dir = args.work_dir or temp_dir / "runs"
    else:
        from pipeline.data.simulate import ensure_dataset

        manifest = args.manifest.resolve()
        ensure_dataset(manifest)
        work_dir = args.work_dir or REPO / "runs" / "bench_quality"
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "manifest": str(manifest),
        "iterations": args.iterations,
        "val_interval": args.val_interval,
        "network_size": args.network_size,
        "batch_size": args.batch_size,
        "readout_crop": args.readout_crop,
        "num_workers": args.num_workers,
        "overrides": args.overrides,
    }
    report_settings = {**settings, "accelerations": args.accelerations, "seeds": args.seeds,
                       "methods": args.methods, "quick": args.quick, "mask_type": "equispaced",
                       "center_fractions": {f"{a}x": CENTER_FRACTIONS[a] for a in args.accelerations},
                       "target_section": "target_reference", "override_stored_masks": True,
                       "work_dir": str(work_dir), "torch_threads": torch.get_num_threads()}
    machine = machine_info()
    logger.info(f"machine: {machine}")
    logger.info(f"settings: {report_settings}")

    classical_methods = [m for m in args.methods if m in CLASSICAL]
    learned_methods = [m for m in args.methods if m in LEARNED]
    jobs: list[tuple] = [("classical", acc) for acc in args.accelerations if classical_methods]
    # seed-major order: a partial run already has every method at every acceleration for seed 0
    jobs += [("learned", m, acc, seed) for seed in args.seeds for acc in args.accelerations for m in learned_methods]
    classical: dict[int, dict] = {}
    learned: list[dict] = []
    runs_log: list[dict] = []
    bar = tqdm(jobs, desc="quality benchmark", unit="run", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        name = f"classical {job[1]}x" if job[0] == "classical" else f"{job[1]} {job[2]}x seed {job[3]}"
        bar.set_postfix_str(name)
        logger.info(f"=== {name}")
        start = time.perf_counter()
        if job[0] == "classical":
            result = run_classical(settings, classical_methods, job[1], work_dir, args.fresh)
            classical[job[1]] = result
            scores = ", ".join(f"{m} SSIM {result['summary'][m]['ssim']:.4f}" for m in classical_methods)
        else:
            result = run_learned(settings, job[1], job[2], job[3], work_dir, args.fresh)
            learned.append(result)
            scores = (f"train {result['train_seconds']:.0f} s ({result['seconds_per_iteration']:.3f} s/it), "
                      f"eval {result['eval_seconds']:.0f} s; SSIM {result['summary']['ssim']:.4f} "
                      f"PSNR {result['summary']['psnr']:.2f} NMSE {result['summary']['nmse']:.4f}")
        elapsed = time.perf_counter() - start
        run_seconds = result.get("train_seconds", 0.0) + result.get("eval_seconds", 0.0)
        reused = elapsed < 0.5 * run_seconds
        runs_log.append({"run": name, "wall_seconds": round(run_seconds if reused else elapsed, 2),
                         "reused_from_earlier_start": reused})
        logger.info(f"=== {name} done in {elapsed:.1f} s: {scores}")

    table = aggregate(classical, learned, args.methods, args.accelerations)
    comps = comparisons(table, args.accelerations)

    # one test slice by every method at the highest acceleration (first seed's models)
    recon_acc = max(args.accelerations)
    models = {r["method"]: r["model_path"] for r in learned
              if r["acceleration"] == recon_acc and r["seed"] == args.seeds[0]}
    logger.info(f"reconstructing one test slice at {recon_acc}x for the figure")
    recon = reconstruct_slice(settings, recon_acc, models, classical_methods, args.figure_slice)
    wall_s = time.perf_counter() - wall_start

    args.out.mkdir(parents=True, exist_ok=True)
    figure(args.out / "quality.png", table, args.accelerations, recon, recon_acc, report_settings)
    text = markdown(table, args.accelerations, report_settings, comps, wall_s, machine,
                    sum(r["wall_seconds"] for r in runs_log))
    (args.out / "quality.md").write_text(text)
    payload = {
        "settings": report_settings,
        "machine": machine,
        "total_wall_seconds": round(wall_s, 1),
        "sum_of_run_seconds": round(sum(r["wall_seconds"] for r in runs_log), 1),
        "table": table,
        "jssl_vs_ssl": comps,
        "classical": {f"{acc}x": r for acc, r in classical.items()},
        "learned": learned,
        "runs": runs_log,
        "figure": {"acceleration": recon_acc, "filename": recon["filename"], "slice": recon["slice"],
                   "seed": args.seeds[0]},
    }
    (args.out / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("\n" + text)
    for line in comparison_lines(comps):
        print(line)
    print(f"\nwrote {args.out / 'quality.json'}, {args.out / 'quality.md'}, {args.out / 'quality.png'} "
          f"({wall_s / 60:.1f} min)")
    if temp_dir is not None and args.work_dir is None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line of the quality benchmark: options, the data, the job loop and the three output files."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.bench.bundle import require_path
from pipeline.bench.common import machine_info
from pipeline.bench.quality.figure import figure, reconstruct_slice
from pipeline.bench.quality.methods import (
    CENTER_FRACTIONS,
    CLASSICAL,
    DEFAULT_ACCELERATIONS,
    DEFAULT_ITERATIONS,
    DEFAULT_SEEDS,
    LEARNED,
    METHODS,
)
from pipeline.bench.quality.profiles import ABLATIONS, PROFILES, SCENARIOS, ablation_manifest, scenario_manifest
from pipeline.bench.quality.report import profile_markdown
from pipeline.bench.quality.runs import run_classical, run_learned
from pipeline.bench.quality.tables import aggregate, comparison_lines, comparisons, markdown, targets

__all__ = ["main", "parse_args", "process_commands", "reproduce_command"]

logger = logging.getLogger("pipeline.bench.quality")

_EPILOG = (
    "Default budget: 150 iterations of batch 2 per learned run, 'demo' network (1.15 M parameters), "
    "readout crop on, 1 torch thread: measured 0.6 s/iteration on a free core of a 2-core CPU (1.4 s "
    "with the cores shared by other jobs) plus ~15 s set-up and scoring per run, so the 24 learned "
    "runs take about 45 minutes in one process, or about 25 minutes as two processes (one per "
    "acceleration, e.g. '--accelerations 4' and '--accelerations 8' with the same --work-dir, then "
    "the plain command, which reuses finished runs, to write the combined report); the classical "
    "baselines take ~30 s. "
    "Examples: '--quick' (tiny smoke run); '--accelerations 8 --methods ssl jssl --seeds 0' "
    "(one comparison); '--set sl_ssl_ratio={\"sl\":1,\"ssl\":2}' (any train.json setting for "
    "every learned run). Paths are relative to the current directory."
)


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


def _override_text(key: str, value: Any) -> str:
    """``KEY=VALUE`` that :func:`_parse_override` reads back as ``value`` (a plain string stays unquoted)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return f"{key}={value}"
    return f"{key}={json.dumps(value)}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench.quality",
        description=(
            "Reconstruction-quality benchmark on the demo domain-shift data: zero-filled, SENSE, compressed "
            "sensing, SL on proxy, SSL on target, JSSL and the SL-on-target oracle, trained through the "
            "jssl_varnet bundle with the same iteration budget, scored with fastMRI volume NMSE/PSNR/SSIM "
            "on the held-out test section."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results") / "quality",
                        help="folder for quality.json / quality.md / quality.png")
    parser.add_argument("--bundle", type=Path, default=Path("bundles") / "jssl_varnet",
                        help="the MONAI bundle folder whose configs train and score every method")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for the per-run bundle outputs (checkpoints, MLflow, weights); default "
                             "runs/bench_quality (runs/bench_quality_<profile> with --profile), or a temporary folder "
                             "with --quick")
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests") / "demo.json",
                        help="MONAI datalist; its data are generated (demo preset) when missing")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny preset generated into a temporary folder, 1 seed, 4x only, "
                             "a handful of iterations, 'tiny' network (ignores --manifest)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="full benchmark at a profile's sizes and budget: both scenarios (brain -> abdomen "
                             "anatomy shift, brain -> brain), 4x/8x/16x, 3 seeds, learning curves, and the "
                             "ablation rows; ignores --manifest; " + "; ".join(
                                 # argparse %-formats help texts
                                 f"{p.name}: {p.description}, {p.iterations} it.".replace("%", "%%")
                                 for p in PROFILES.values()))
    parser.add_argument("--scenarios", nargs="+", default=None, choices=[*SCENARIOS, "none"],
                        help="with --profile: scenarios (row groups) to run; default all; 'none' for ablation rows "
                             "only (the default JSSL row they compare with is then read from finished runs, not "
                             "trained)")
    parser.add_argument("--ablation", nargs="+", default=None, choices=[*ABLATIONS, "all", "none"],
                        help="with --profile: ablation rows (JSSL on the anatomy-shift scenario at 8x) to run; "
                             "naming rows runs only them (and the default JSSL row they compare with); default "
                             "all; 'none' skips them")
    parser.add_argument("--data-dir", type=Path, default=Path("data") / "quality",
                        help="with --profile: where the scenarios' data are simulated on first use")
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
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch size (default: the profile's, else 2)")
    parser.add_argument("--readout-crop", type=_bool, default=True,
                        help="halve the 2x-oversampled readout (2x faster, same metrics region)")
    parser.add_argument("--mask-type", default="equispaced",
                        help="1-D mask of the target slices (one fixed mask per slice) and of proxy training, "
                             "a name of pipeline.transforms.masks.MASK_TYPES")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per training loader")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON",
                        help="extra train.json override for every learned run, value parsed as JSON when it "
                             "parses (repeatable), e.g. --set ssdu_q=0.5 --set sl_ssl_ratio='{\"sl\":1,\"ssl\":2}'")
    parser.add_argument("--figure-slice", type=int, default=None,
                        help="slice of the first test volume shown in the figure (default: its middle slice)")
    parser.add_argument("--fresh", action="store_true", help="retrain and re-score runs that already exist")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from the runs that finished in --work-dir (others are "
                             "left out and listed as missing)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --profile: run the work as this many parallel processes (one per scenario and "
                             "seed, one per seed for the ablation rows; each with --threads torch threads, its own "
                             "MLflow stores and a log in <work-dir>/logs/), then write the report from their runs; "
                             "2 on a 2-core machine")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; 0 = torch's default (one per core). 1 is the default because "
                             "on a shared 2-core machine 2 threads were 4-30x slower per step (oversubscription)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's options with the defaults of a full or (``--quick``) smoke run filled in.

    Raises:
        SystemExit: for ``--help`` or bad arguments (an unsupported acceleration, ``--iterations < 1``, a
            malformed ``--set``).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile is not None:
        if args.quick:
            parser.error("--profile and --quick exclude each other")
        profile = PROFILES[args.profile]
        args.accelerations = args.accelerations or list(profile.accelerations)
        args.seeds = args.seeds or list(profile.seeds)
        args.iterations = args.iterations or profile.iterations
        args.network_size = args.network_size or profile.network_size
        args.work_dir = args.work_dir or Path("runs") / f"bench_quality_{profile.name}"
        args.batch_size = profile.batch_size if args.batch_size is None else args.batch_size
        args.val_interval = args.val_interval or max(1, args.iterations // profile.val_points)
        named_rows = args.ablation is not None and args.ablation not in (["all"], ["none"])
        # naming ablation rows runs only them; otherwise every scenario's table
        scenarios = args.scenarios or ([] if named_rows else list(SCENARIOS))
        args.scenarios = [] if scenarios == ["none"] else scenarios
        args.scenarios_none = scenarios == ["none"]
        rows = args.ablation or ["all"]
        args.ablation = list(ABLATIONS) if rows == ["all"] else [] if rows == ["none"] else rows
    if args.quick:
        args.accelerations = args.accelerations or [4]
        args.seeds = args.seeds or [0]
        args.iterations = args.iterations or 4
        args.network_size = args.network_size or "tiny"
    args.accelerations = args.accelerations or list(DEFAULT_ACCELERATIONS)
    args.seeds = args.seeds or list(DEFAULT_SEEDS)
    args.iterations = args.iterations or DEFAULT_ITERATIONS
    args.network_size = args.network_size or "demo"
    args.batch_size = 2 if args.batch_size is None else args.batch_size
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    for acc in args.accelerations:
        if acc not in CENTER_FRACTIONS:
            parser.error(f"--accelerations: {acc} not supported; choose from {sorted(CENTER_FRACTIONS)}")
    if args.iterations < 1:
        parser.error("--iterations must be >= 1")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.jobs > 1 and (args.profile is None or args.report_only):
        parser.error("--jobs needs --profile (and trains: not with --report-only)")
    try:
        args.overrides = dict(_parse_override(item) for item in args.overrides)
    except ValueError as err:
        parser.error(f"--set: {err}")
    if args.profile is not None:  # the profile's learning-rate schedule for this budget; --set wins
        args.overrides = {**PROFILES[args.profile].schedule_overrides(args.iterations), **args.overrides}
    return args


def _prepare(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    """The manifest (its data generated when missing), the work directory and a temporary folder to remove.

    ``--quick`` generates the tiny preset under the work directory (or a temporary folder), so a second
    start with the same ``--work-dir`` finds and reuses the same runs.
    """
    temp_dir = None
    if args.quick:
        from pipeline.data.simulate import generate

        if args.work_dir is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="bench_quality_quick_"))
        base = temp_dir if temp_dir is not None else args.work_dir.resolve()
        manifest = base / "tiny_data" / "tiny.json"
        if not manifest.is_file():
            generate("tiny", base / "tiny_data" / "data", seed=0, manifest_path=manifest)
        work_dir = args.work_dir or temp_dir / "runs"
    else:
        from pipeline.data.simulate import ensure_dataset

        manifest = require_path(args.manifest, "manifest", "--manifest").resolve()
        ensure_dataset(manifest)
        work_dir = args.work_dir or Path("runs") / "bench_quality"
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    return manifest, work_dir, temp_dir


def _job_name(job: tuple) -> str:
    return f"classical {job[1]}x" if job[0] == "classical" else f"{job[1]} {job[2]}x seed {job[3]}"


def _run_jobs(
    args: argparse.Namespace, settings: dict[str, Any], work_dir: Path, methods: Sequence[str] | None = None,
    accelerations: Sequence[int] | None = None, label: str = "quality benchmark",
) -> tuple[dict[int, dict], list[dict], list[dict]]:
    """Every classical and learned run (reused when finished earlier), with a progress bar.

    Args:
        args: the options (``methods``, ``accelerations``, ``seeds``, ``fresh``).
        settings: the run settings.
        work_dir: folder of the runs.
        methods: methods to run instead of ``args.methods``.
        accelerations: accelerations instead of ``args.accelerations``.
        label: progress-bar title.

    Returns:
        ``(classical, learned, runs_log)``: acceleration -> classical result, the learned results, and one
        ``{"run", "wall_seconds", "reused_from_earlier_start"}`` per run.
    """
    from tqdm import tqdm

    methods = list(args.methods if methods is None else methods)
    accelerations = list(args.accelerations if accelerations is None else accelerations)
    classical_methods = [m for m in methods if m in CLASSICAL]
    learned_methods = [m for m in methods if m in LEARNED]
    jobs: list[tuple] = [("classical", acc) for acc in accelerations if classical_methods]
    # seed-major order: a partial run already has every method at every acceleration for seed 0
    jobs += [("learned", m, acc, seed) for seed in args.seeds for acc in accelerations for m in learned_methods]
    classical: dict[int, dict] = {}
    learned: list[dict] = []
    runs_log: list[dict] = []
    bar = tqdm(jobs, desc=label, unit="run", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        name = _job_name(job)
        bar.set_postfix_str(name)
        logger.info(f"=== {name}")
        start = time.perf_counter()
        if job[0] == "classical":
            result = run_classical(settings, classical_methods, job[1], work_dir, args.fresh, args.report_only)
            if result is None:
                logger.info(f"=== {name}: not finished, left out (--report-only)")
                continue
            classical[job[1]] = result
            scores = ", ".join(f"{m} SSIM {result['summary'][m]['ssim']:.4f}" for m in classical_methods)
        else:
            result = run_learned(settings, job[1], job[2], job[3], work_dir, args.fresh, args.report_only)
            if result is None:
                logger.info(f"=== {name}: not finished, left out (--report-only)")
                continue
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
    return classical, learned, runs_log


def reproduce_command(args: argparse.Namespace) -> str:
    """The shortest ``--profile`` command line that trains the same runs as ``args`` (the options that differ
    from the profile's defaults; ``--set`` only for overrides the profile's schedule does not give)."""
    profile = PROFILES[args.profile]
    parts = ["python -m pipeline.bench.quality", "--profile", profile.name]
    lists = [("--scenarios", args.scenarios, list(SCENARIOS)), ("--ablation", args.ablation, list(ABLATIONS)),
             ("--accelerations", args.accelerations, list(profile.accelerations)),
             ("--seeds", args.seeds, list(profile.seeds)), ("--methods", args.methods, list(METHODS))]
    for option, value, default in lists:
        if list(value) != default:
            parts += [option, *(map(str, value) if value else ["none"])]
    if args.iterations != profile.iterations:
        parts += ["--iterations", str(args.iterations)]
    defaults = parse_args(["--profile", profile.name, "--iterations", str(args.iterations)])
    for option in ("val_interval", "network_size", "batch_size", "readout_crop", "mask_type", "num_workers"):
        value = getattr(args, option)
        if value != getattr(defaults, option):
            parts += ["--" + option.replace("_", "-"), str(value).lower() if isinstance(value, bool) else str(value)]
    for key, value in args.overrides.items():
        if defaults.overrides.get(key, ...) != value:
            parts += ["--set", shlex.quote(_override_text(key, value))]
    return " ".join(parts)


def process_commands(args: argparse.Namespace, bundle: Path) -> list[tuple[str, list[str]]]:
    """``(name, arguments)`` of every process of a ``--jobs`` run of a profile.

    One process per scenario and seed (``--scenarios S --ablation none --seeds K``) and, when ablation rows are
    asked for, one per seed for all of them (``--scenarios none --ablation ... --seeds K``): the work splits by
    seed, so no two processes write the same MLflow store (:func:`pipeline.bench.quality.runs.tracking_db`).
    The classical baselines (deterministic) run only in the first seed's processes, so no two processes write
    the same run folder. Every process gets the parent's settings explicitly (the same run digests) and its
    own ``--out`` under ``<work-dir>/reports/``.
    """
    work_root = Path(args.work_dir).resolve()
    common = [
        "--profile", args.profile, "--bundle", str(bundle), "--work-dir", str(work_root),
        "--data-dir", str(Path(args.data_dir).resolve()), "--accelerations", *map(str, args.accelerations),
        "--iterations", str(args.iterations), "--val-interval", str(args.val_interval),
        "--network-size", args.network_size, "--batch-size", str(args.batch_size),
        "--readout-crop", str(args.readout_crop).lower(), "--mask-type", args.mask_type,
        "--num-workers", str(args.num_workers), "--threads", str(args.threads),
        *[item for key, value in args.overrides.items() for item in ("--set", _override_text(key, value))],
        *(["--fresh"] if args.fresh else []),
    ]
    learned = [m for m in args.methods if m in LEARNED]
    groups = []
    for scenario in args.scenarios:
        for seed in args.seeds:
            # the deterministic classical baselines run once, in the first seed's process
            group_methods = args.methods if seed == args.seeds[0] else learned
            if group_methods:
                groups.append((f"{scenario}_seed{seed}",
                               ["--scenarios", scenario, "--ablation", "none", "--methods", *group_methods], seed))
    if args.ablation:
        groups += [(f"ablations_seed{seed}", ["--scenarios", "none", "--ablation", *args.ablation], seed)
                   for seed in args.seeds]
    return [(name, [*common, *rows, "--seeds", str(seed), "--out", str(work_root / "reports" / name)])
            for name, rows, seed in groups]


def _run_processes(commands: Sequence[tuple[str, list[str]]], jobs: int, log_dir: Path) -> list[str]:
    """Run ``python -m pipeline.bench.quality ARGS`` for every command, ``jobs`` at a time, with a progress bar.

    Returns:
        ``"name (exit code N, log PATH)"`` of every process that failed.
    """
    from tqdm import tqdm

    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(commands), {}, []
    bar = tqdm(total=len(commands), desc=f"quality, {jobs} processes", unit="process", file=sys.stderr,
               dynamic_ncols=True)
    while pending or running:
        while pending and len(running) < jobs:
            name, argv = pending.pop(0)
            log_path = log_dir / f"{name}.log"
            with log_path.open("w") as log:  # the child keeps its own descriptor
                process = subprocess.Popen([sys.executable, "-m", "pipeline.bench.quality", *argv], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            running[name] = (process, log_path)
            logger.info(f"=== started {name} (log {log_path})")
        time.sleep(1.0)
        for name, (process, log_path) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            bar.update(1)
            if process.returncode:
                failed.append(f"{name} (exit code {process.returncode}, log {log_path})")
            logger.info(f"=== {name} finished with exit code {process.returncode}")
    bar.close()
    return failed


def _jobs_main(args: argparse.Namespace, bundle: Path) -> int:
    """``--profile --jobs N``: the scenarios' data simulated once, the processes of :func:`process_commands` run
    ``N`` at a time, then the combined report from their runs; 1 when a process failed, else 0."""
    wall_start = time.perf_counter()
    profile = PROFILES[args.profile]
    for name in dict.fromkeys([*args.scenarios, *(["abdomen"] if args.ablation else [])]):
        scenario_manifest(args.data_dir, profile.presets[name])
    failed = _run_processes(process_commands(args, bundle), args.jobs, Path(args.work_dir).resolve() / "logs")
    for line in failed:
        logger.error(f"process failed: {line}; its runs are left out of the report")
    args.report_only, args.fresh = True, False
    _profile_main(args, bundle, wall_start)
    return 1 if failed else 0


def _profile_main(args: argparse.Namespace, bundle: Path, wall_start: float | None = None) -> int:
    """``--profile``: every scenario's table, the ablation rows, learning curves and one figure per scenario.

    ``wall_start`` (``time.perf_counter()``) is when the work began, for the wall time in the report (default:
    now). Runs live in ``<work-dir>/<scenario>/`` (ablations in ``<work-dir>/abdomen/ablation_<name>/``) and are reused
    by later starts with the same settings, so scenarios and ablation rows can run as separate processes with
    the same ``--work-dir`` and a final plain ``--profile`` start writes the combined report.
    """
    profile = PROFILES[args.profile]
    wall_start = time.perf_counter() if wall_start is None else wall_start
    work_root = Path(args.work_dir).resolve()
    base: dict[str, Any] = {
        "bundle": str(bundle), "iterations": args.iterations, "val_interval": args.val_interval,
        "network_size": args.network_size, "batch_size": args.batch_size, "readout_crop": args.readout_crop,
        "num_workers": args.num_workers, "mask_type": args.mask_type, "overrides": args.overrides,
    }
    report_settings = {
        **base, "profile": profile.name, "profile_description": profile.description,
        "profile_iterations": profile.iterations,
        "accelerations": args.accelerations, "seeds": args.seeds, "methods": args.methods,
        "center_fractions": {f"{a}x": CENTER_FRACTIONS[a] for a in args.accelerations},
        "target_section": "target_reference", "override_stored_masks": True, "work_dir": str(work_root),
        "torch_threads": torch.get_num_threads(), "scenarios": args.scenarios, "ablations": args.ablation,
        "reproduce": reproduce_command(args),
    }
    machine = machine_info()
    logger.info(f"machine: {machine}")
    logger.info(f"settings: {report_settings}")
    runs_log: list[dict] = []
    scenarios: dict[str, dict[str, Any]] = {}
    for name in args.scenarios:
        manifest = scenario_manifest(args.data_dir, profile.presets[name])
        settings = {**base, "manifest": str(manifest)}
        classical, learned, log = _run_jobs(args, settings, work_root / name, label=f"quality {name}")
        runs_log += log
        if not classical and not learned:  # --report-only before any run of the scenario finished
            logger.info(f"scenario {name}: no finished run, left out of the report")
            continue
        table = aggregate(classical, learned, args.methods, args.accelerations)
        recon_acc = 8 if 8 in args.accelerations else max(args.accelerations)
        models = {r["method"]: r["model_path"] for r in learned
                  if r["acceleration"] == recon_acc and r["seed"] == args.seeds[0]}
        logger.info(f"reconstructing one {name} test slice at {recon_acc}x for the figure")
        recon = reconstruct_slice(settings, recon_acc, models, [m for m in args.methods if m in CLASSICAL],
                                  args.figure_slice) if models else None
        args.out.mkdir(parents=True, exist_ok=True)
        figure(args.out / f"quality_{name}.png", table, args.accelerations, recon, recon_acc,
               {**report_settings, "manifest": str(manifest)}, curves=learned)
        scenarios[name] = {
            "manifest": str(manifest), "table": table, "targets": targets(table, args.accelerations),
            "classical": {f"{acc}x": r for acc, r in classical.items()}, "learned": learned,
            "expected_runs": len([m for m in args.methods if m in LEARNED]) * len(args.accelerations) * len(args.seeds),
            "figure": {"file": f"quality_{name}.png", "acceleration": recon_acc, "seed": args.seeds[0],
                       **({"filename": recon["filename"], "slice": recon["slice"]} if recon else {})},
        }
    ablation_rows: dict[str, Any] = {}
    if args.ablation:
        manifest = scenario_manifest(args.data_dir, profile.presets["abdomen"])
        settings = {**base, "manifest": str(manifest)}
        for name in args.ablation:
            ablation = ABLATIONS[name]
            folder = work_root / "abdomen" / f"ablation_{name}"
            overrides = {**args.overrides, **ablation.overrides}
            if "network" in ablation.overrides:  # another network: the profile's size of it
                overrides["network_size"] = profile.other_networks[ablation.overrides["network"]]
            row_settings = {**settings, "manifest": str(ablation_manifest(manifest, ablation, folder)),
                            "overrides": overrides, "mode": ablation.mode,
                            "tracking_dir": str(work_root / "abdomen" / "ablations")}
            _, learned, log = _run_jobs(args, row_settings, folder, methods=["jssl"], accelerations=[8],
                                        label=f"ablation {name}")
            runs_log += log
            ablation_rows[name] = learned
        # last: the default row is the scenario table's JSSL at 8x, usually finished (and reused) by then; with
        # '--scenarios none' it is only read, so a parallel scenario process that trains it never races this one
        _, default, log = _run_jobs(argparse.Namespace(**{**vars(args), "report_only": args.report_only or
                                                          args.scenarios_none}),
                                    settings, work_root / "abdomen", methods=["jssl"], accelerations=[8],
                                    label="ablation default")
        runs_log += log
        ablation_rows = {"default": default, **ablation_rows}
    wall_s = time.perf_counter() - wall_start
    run_s = sum(r["wall_seconds"] for r in runs_log)
    text = profile_markdown(scenarios, ablation_rows, report_settings, machine, wall_s, run_s)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.md").write_text(text)
    payload = {"settings": report_settings, "machine": machine, "total_wall_seconds": round(wall_s, 1),
               "sum_of_run_seconds": round(run_s, 1), "scenarios": scenarios, "ablations": ablation_rows,
               "runs": runs_log}
    (args.out / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("\n" + text)
    print(f"wrote {args.out / 'quality.json'}, {args.out / 'quality.md'} and the figures ({wall_s / 60:.1f} min)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``quality.json``, ``quality.md`` and ``quality.png`` to ``--out``.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status 0; 1 when a process of ``--jobs`` failed (the report is still written from the runs that
        finished).

    Raises:
        SystemExit: for ``--help``, bad arguments, or (one line) a missing bundle or manifest.
    """
    args = parse_args(argv)
    bundle = require_path(args.bundle, "bundle", "--bundle").resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        stream=sys.stdout, force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.profile is not None and args.jobs > 1:
        return _jobs_main(args, bundle)
    if args.profile is not None:
        return _profile_main(args, bundle)

    wall_start = time.perf_counter()
    manifest, work_dir, temp_dir = _prepare(args)
    settings: dict[str, Any] = {
        "bundle": str(bundle),
        "manifest": str(manifest),
        "iterations": args.iterations,
        "val_interval": args.val_interval,
        "network_size": args.network_size,
        "batch_size": args.batch_size,
        "readout_crop": args.readout_crop,
        "num_workers": args.num_workers,
        "mask_type": args.mask_type,
        "overrides": args.overrides,
    }
    report_settings = {**settings, "accelerations": args.accelerations, "seeds": args.seeds,
                       "methods": args.methods, "quick": args.quick,
                       "center_fractions": {f"{a}x": CENTER_FRACTIONS[a] for a in args.accelerations},
                       "target_section": "target_reference", "override_stored_masks": True,
                       "work_dir": str(work_dir), "torch_threads": torch.get_num_threads()}
    machine = machine_info()
    logger.info(f"machine: {machine}")
    logger.info(f"settings: {report_settings}")

    classical, learned, runs_log = _run_jobs(args, settings, work_dir)

    table = aggregate(classical, learned, args.methods, args.accelerations)
    comps = comparisons(table, args.accelerations)

    # one test slice by every method at the highest acceleration (first seed's models)
    recon_acc = max(args.accelerations)
    models = {r["method"]: r["model_path"] for r in learned
              if r["acceleration"] == recon_acc and r["seed"] == args.seeds[0]}
    logger.info(f"reconstructing one test slice at {recon_acc}x for the figure")
    classical_methods = [m for m in args.methods if m in CLASSICAL]
    recon = reconstruct_slice(settings, recon_acc, models, classical_methods, args.figure_slice)
    wall_s = time.perf_counter() - wall_start

    args.out.mkdir(parents=True, exist_ok=True)
    figure(args.out / "quality.png", table, args.accelerations, recon, recon_acc, report_settings)
    run_s = sum(r["wall_seconds"] for r in runs_log)
    text = markdown(table, args.accelerations, report_settings, comps, wall_s, machine, run_s)
    (args.out / "quality.md").write_text(text)
    payload = {
        "settings": report_settings,
        "machine": machine,
        "total_wall_seconds": round(wall_s, 1),
        "sum_of_run_seconds": round(run_s, 1),
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
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0

"""Command line of the speed benchmark: run the selected parts, write ``speed.json``, ``speed.md``, ``speed.png``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.bench.bundle import require_path
from pipeline.bench.common import machine_info
from pipeline.bench.speed.compiled import bench_compiled
from pipeline.bench.speed.engine import bench_engine
from pipeline.bench.speed.gpu import bench_gpu
from pipeline.bench.speed.inference import bench_inference
from pipeline.bench.speed.memory import bench_memory, memory_worker
from pipeline.bench.speed.peers import PEER_SIZES, QUICK_SIZE, bench_peers, peer_worker
from pipeline.bench.speed.profile import PROFILE_CASES, profile_step
from pipeline.bench.speed.report import TARGETS, plot, summarise, to_markdown
from pipeline.bench.speed.synthetic import FASTMRI_SHAPE

__all__ = ["main", "parse_args", "run"]

PARTS = ("engine", "profile", "peers", "inference", "memory", "compiled", "gpu")
#: Parts run without ``--parts``: ``compiled`` is opt-in (inductor compiles for minutes on a CPU).
DEFAULT_PARTS = tuple(p for p in PARTS if p != "compiled")
#: Parts that read the bundle and the demo manifest.
_BUNDLE_PARTS = {"engine", "inference"}


def _setting(text: str) -> tuple[str, Any]:
    """``NAME=JSON`` -> ``(name, value)`` (a value that is not JSON stays a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``--help`` lists them).

    Raises:
        SystemExit: for ``--help`` or bad arguments (argparse).
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench.speed",
        description="CLI benchmark: speed and memory of JSSL training and inference, side by side with references.",
        epilog="Targets: " + "; ".join(f"{k} {v}" for k, v in TARGETS.items()),
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results") / "speed", help="output folder")
    parser.add_argument("--bundle", type=Path, default=Path("bundles") / "jssl_varnet",
                        help="the MONAI bundle folder (engine and inference parts; default: %(default)s)")
    parser.add_argument("--manifest", type=Path, default=Path("data_manifests") / "demo.json",
                        help="demo datalist; its data are generated when missing (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, 2 repeats, no fastMRI-size runs")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 7; 2 with --quick)")
    parser.add_argument("--engine-steps", type=int, default=None, help="measured trainer steps (default 16)")
    parser.add_argument("--engine-network-size", default=None,
                        help="network_size of the engine part (default: the bundle's; tiny with --quick)")
    parser.add_argument("--data-wait-only", action="store_true",
                        help="engine part: measure the data wait only, not engine vs bare steps (for large sizes)")
    parser.add_argument("--num-workers", type=int, default=None, help="override the bundle's DataLoader workers")
    parser.add_argument("--engine-setting", action="append", default=[], type=_setting, metavar="NAME=JSON",
                        help="engine part: a further bundle setting, e.g. gradient_checkpointing=true or "
                             "batch_size=1 (repeatable)")
    parser.add_argument("--mlflow", action="store_true", help="attach the bundle's MLflow tracker (temp folder)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier on a CPU shared with other jobs")
    parser.add_argument("--parts", nargs="+", default=list(DEFAULT_PARTS), choices=PARTS,
                        help="what to run (default: all but 'compiled', which compiles for minutes)")
    parser.add_argument("--peer-sizes", nargs="+", default=list(PEER_SIZES), choices=list(PEER_SIZES),
                        help="input sizes of the peers part, one fresh process each (default: all)")
    parser.add_argument("--memory-cascades", type=int, default=None,
                        help="cascades of the memory part's fastmri network (default: its 12); fewer where the "
                             "no-checkpointing run does not fit in memory")
    parser.add_argument("--fastmri-weights", type=Path, default=None,
                        help="inference part: weights trained at fastMRI size (a bundle run's model.pt), timed and "
                             "scored against CS on a test slice of --fastmri-manifest")
    parser.add_argument("--fastmri-manifest", type=Path, default=Path("data") / "fastmri" / "fastmri.json",
                        help="inference part: the manifest those weights were trained on (default: %(default)s, "
                             "the simulator's fastmri preset)")
    parser.add_argument("--fastmri-network-size", default="demo",
                        help="inference part: network_size of --fastmri-weights (default: %(default)s)")
    parser.add_argument("--render", type=Path, default=None,
                        help="re-write speed.md/speed.png from an existing speed.json (no measuring)")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peer-worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the selected parts; one failing part is recorded under ``"errors"`` and the others still run.

    Args:
        args: from :func:`parse_args`.
        command: the command line recorded in the report.

    Returns:
        The report: ``meta``, one key per part that ran (``engine``, ``peers``, ``inference``, ``memory``,
        ``gpu``), ``summary`` and, when a part failed, ``errors``.
    """
    quick = args.quick
    repeats = args.repeats if args.repeats is not None else (2 if quick else 7)
    meta = machine_info()
    meta.update({"command": command, "quick": quick, "repeats": repeats,
                 "statistic": "median of per-repetition ratios, interleaved"})
    report: dict[str, Any] = {"meta": meta}
    parts = set(args.parts)
    t0 = time.perf_counter()

    def part(key: str, label: str, fn: Callable[[], Any]) -> None:
        if key not in parts:
            return
        print(f"{label} ...", flush=True)
        try:
            report[key] = fn()
        except Exception as err:  # one broken part must not lose the others
            report.setdefault("errors", {})[key] = f"{type(err).__name__}: {err}"
            print(f"  {key} FAILED: {type(err).__name__}: {err}", flush=True)

    engine_steps = args.engine_steps if args.engine_steps is not None else (3 if quick else 16)
    part("engine", "engine overhead and data wait", lambda: bench_engine(
        args.bundle, args.manifest, engine_steps, warmup=1 if quick else 2,
        network_size="tiny" if quick else args.engine_network_size, num_workers=args.num_workers,
        mlflow=args.mlflow, overhead=not args.data_wait_only, settings_overrides=dict(args.engine_setting),
    ))
    part("profile", "where a training step's time goes (torch.profiler)", lambda: [
        profile_step(name) for name in PROFILE_CASES if name.startswith("quick") == quick
    ])
    part("peers", "ours vs DIRECT and MONAI (one fresh process per size)", lambda: bench_peers(
        list(QUICK_SIZE) if quick else args.peer_sizes, repeats, quick, timeout=3600
    ))
    part("inference", "inference vs compressed sensing", lambda: bench_inference(
        args.bundle, args.manifest, 1 if quick else min(repeats, 3), fastmri=not quick,
        trained_fastmri=None if args.fastmri_weights is None else (
            args.fastmri_manifest, args.fastmri_weights, args.fastmri_network_size),
    ))
    part("memory", "peak memory with / without checkpointing (fresh subprocesses)", lambda: (
        bench_memory("demo", (4, 128, 96), timeout=300) if quick else bench_memory(
            "fastmri", FASTMRI_SHAPE, 1800, num_cascades=args.memory_cascades)
    ))
    part("compiled", "torch.compile vs eager (compile time apart)", lambda: (
        bench_compiled("tiny", (4, 32, 32), 2) if quick else bench_compiled("demo", (8, 256, 136), repeats)
    ))
    report["gpu"] = {"available": False, "note": "not run"}
    part("gpu", "GPU", lambda: bench_gpu(quick, repeats))
    meta["total_s"] = time.perf_counter() - t0
    report["summary"] = summarise(report)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, print the table and write ``speed.json``, ``speed.md`` and ``speed.png`` to ``--out``.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Raises:
        SystemExit: for ``--help``, bad arguments, or (one line) a missing bundle or manifest.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker is not None:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))), flush=True)
        return
    if args.peer_worker is not None:
        print(json.dumps(peer_worker(json.loads(args.peer_worker))), flush=True)
        return
    if args.render is not None:
        report = json.loads(args.render.read_text())
        report["summary"] = summarise(report)
    else:
        if _BUNDLE_PARTS & set(args.parts):
            require_path(args.bundle, "bundle", "--bundle")
            require_path(args.manifest, "manifest", "--manifest")
        if args.fastmri_weights is not None and "inference" in args.parts:
            require_path(args.fastmri_weights, "weights", "--fastmri-weights")
            require_path(args.fastmri_manifest, "manifest", "--fastmri-manifest")
        report = run(args, "python -m pipeline.bench.speed " + " ".join(argv))
    table = to_markdown(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "speed.md").write_text("# Speed and memory benchmark\n\n" + table + "\n")
    plot(report, args.out / "speed.png")

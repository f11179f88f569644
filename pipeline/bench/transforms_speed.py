"""CLI micro-benchmark: per-slice time of each k-space transform at demo and fastMRI sizes.

Usage: ``python -m pipeline.bench.transforms_speed [--json out.json] [--repeats 5]``

Prints a markdown table (median milliseconds per slice over ``repeats`` runs after one warm-up) and
optionally writes the same numbers as JSON. Synthetic k-space; CPU; single process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.bench.common import machine_info, median_seconds
from pipeline.transforms import (
    ApplyMask,
    EstimateSensitivity,
    FixedKspaceMask,
    NormalizeKspace,
    RandKspaceMask,
    RandSSDUSplit,
    ReadoutCrop,
    SenseCombine,
    ZeroFilled,
)

SIZES = {"demo (8 coils, 256x136)": (8, 256, 136), "fastMRI (15 coils, 640x368)": (15, 640, 368)}
SLOW = {"EstimateSensitivity espirit (64x64 block)", "RandKspaceMask poisson"}


def _cases(coils: int, h: int, w: int) -> dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(0)
    kspace = torch.randn(coils, h, w, 2, generator=g)
    masker = RandKspaceMask("equispaced", [0.08], [4])
    masker.set_random_state(0)
    mask, n_acs = masker(kspace)
    masked = kspace * mask
    maps = EstimateSensitivity("acs")(masked, mask, n_acs)
    cases: dict[str, Callable[[], object]] = {}
    for kind in ("random", "equispaced", "gaussian2d", "radial", "spiral", "poisson"):
        transform = RandKspaceMask(kind, [0.08 if kind in ("random", "equispaced") else 0.04], [4])
        transform.set_random_state(0)
        cases[f"RandKspaceMask {kind}"] = lambda t=transform: t(kspace)
    fixed = FixedKspaceMask("equispaced", [0.08], [4])
    cases["FixedKspaceMask equispaced"] = lambda: fixed(kspace, "file1000.h5:17")
    cases["ApplyMask"] = lambda: ApplyMask()(kspace, mask)
    for selection in ("gaussian", "uniform"):
        for q in (0.2, 0.8):
            split = RandSSDUSplit(q=q, selection=selection)
            split.set_random_state(0)
            cases[f"RandSSDUSplit {selection} q={q}"] = lambda s=split: s(mask)
    cases["EstimateSensitivity acs"] = lambda: EstimateSensitivity("acs")(masked, mask, n_acs)
    espirit = EstimateSensitivity("espirit", calib_width=24, calib_block=64)
    cases["EstimateSensitivity espirit (64x64 block)"] = lambda: espirit(kspace)
    cases["ZeroFilled (RSS + crop)"] = lambda: ZeroFilled()(masked, (h // 2, w // 2))
    cases["SenseCombine"] = lambda: SenseCombine()(masked, maps, (h // 2, w // 2))
    cases["ReadoutCrop (H -> H/2)"] = lambda: ReadoutCrop(h // 2)(kspace)
    cases["NormalizeKspace (99th percentile)"] = lambda: NormalizeKspace()(masked)
    return cases


def run(repeats: int = 5) -> dict:
    """Time every transform at every size; returns ``{"meta": ..., "results": {size: {transform: ms}}}``."""
    torch.set_grad_enabled(False)
    results: dict[str, dict[str, float]] = {}
    for label, (coils, h, w) in SIZES.items():
        cases = _cases(coils, h, w).items()
        results[label] = {name: 1000.0 * median_seconds(fn, 1 if name in SLOW else repeats) for name, fn in cases}
    meta = {
        **machine_info(),
        "repeats": repeats,
        "statistic": "median ms per slice after one warm-up (1 repeat for ESPIRiT and Poisson)",
    }
    return {"meta": meta, "results": results}


def to_markdown(report: dict) -> str:
    """Markdown table: one row per transform, one column per size."""
    labels = list(report["results"])
    names = list(report["results"][labels[0]])
    header = "| transform | " + " | ".join(f"{label} ms" for label in labels) + " |"
    lines = [header, "|---" + "|---:" * len(labels) + "|"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{report['results'][label][name]:.2f}" for label in labels) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and write JSON if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write results to this JSON file")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = run(args.repeats)
    print(to_markdown(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

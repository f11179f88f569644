"""From run results to the quality table: mean and std over seeds, JSSL vs SSL, and the markdown report.

A table is ``{method: {"<acc>x": {metric, metric_std, n}}}`` over the metrics of
:data:`pipeline.metrics.handlers.METRIC_NAMES`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.quality.methods import CENTER_FRACTIONS, CLASSICAL, LABELS, METRIC_LABELS
from pipeline.metrics.handlers import METRIC_NAMES

__all__ = ["Table", "aggregate", "comparison_lines", "comparisons", "markdown"]

Table = dict[str, dict[str, dict[str, float]]]


def aggregate(
    classical: Mapping[int, dict[str, Any]],
    learned: Sequence[dict[str, Any]],
    methods: Sequence[str],
    accelerations: Sequence[int],
) -> Table:
    """The table of ``methods`` at ``accelerations``.

    Args:
        classical: acceleration -> result of :func:`~pipeline.bench.quality.runs.run_classical`.
        learned: results of :func:`~pipeline.bench.quality.runs.run_learned` (any methods, seeds, accelerations).
        methods: rows, in order.
        accelerations: columns.

    Returns:
        ``{method: {"<acc>x": {metric, metric_std, n}}}``: the mean over seeds of each learned method with the
        sample std (ddof 1; 0 for one seed), classical methods with std 0 and ``n = 1``. Missing runs are left out.
    """
    table: Table = {}
    for method in methods:
        table[method] = {}
        for acc in accelerations:
            if method in CLASSICAL:
                if acc not in classical:
                    continue
                summary = classical[acc]["summary"][method]
                row = {m: summary[m] for m in METRIC_NAMES} | {f"{m}_std": 0.0 for m in METRIC_NAMES} | {"n": 1}
            else:
                runs = [r for r in learned if r["method"] == method and r["acceleration"] == acc]
                if not runs:
                    continue
                row = {"n": len(runs)}
                for m in METRIC_NAMES:
                    values = np.array([r["summary"][m] for r in runs], dtype=np.float64)
                    row[m] = float(values.mean())
                    row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            table[method][f"{acc}x"] = row
    return table


def comparisons(table: Table, accelerations: Sequence[int]) -> list[dict[str, Any]]:
    """JSSL minus SSL per acceleration where both ran.

    Returns:
        ``{"acceleration", "ssim_diff", "psnr_diff_db", "nmse_diff", "jssl_beats_ssl"}`` per acceleration;
        positive SSIM/PSNR and negative NMSE differences favour JSSL, which "beats" SSL on both SSIM and PSNR.
    """
    out = []
    for acc in accelerations:
        jssl, ssl = table.get("jssl", {}).get(f"{acc}x"), table.get("ssl", {}).get(f"{acc}x")
        if jssl is None or ssl is None:
            continue
        diff = {m: jssl[m] - ssl[m] for m in METRIC_NAMES}
        out.append({
            "acceleration": acc,
            "ssim_diff": diff["ssim"], "psnr_diff_db": diff["psnr"], "nmse_diff": diff["nmse"],
            "jssl_beats_ssl": bool(diff["ssim"] > 0 and diff["psnr"] > 0),
        })
    return out


def comparison_lines(comps: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per :func:`comparisons` entry."""
    lines = []
    for c in comps:
        verdict = "JSSL beats SSL" if c["jssl_beats_ssl"] else "JSSL does NOT beat SSL (on both SSIM and PSNR)"
        lines.append(
            f"{c['acceleration']}x: {verdict}: SSIM {c['ssim_diff']:+.4f}, PSNR {c['psnr_diff_db']:+.2f} dB, "
            f"NMSE {c['nmse_diff']:+.4f} (JSSL minus SSL, means over seeds)"
        )
    return lines


def _cell(row: Mapping[str, float] | None, metric: str, deterministic: bool) -> str:
    if row is None:
        return "–"
    fmt = {"nmse": "{:.4f}", "psnr": "{:.2f}", "ssim": "{:.4f}"}[metric]
    value = fmt.format(row[metric])
    std = "—" if deterministic else fmt.format(row[f"{metric}_std"])
    return f"{value} ± {std}"


def markdown(
    table: Table,
    accelerations: Sequence[int],
    settings: Mapping[str, Any],
    comps: Sequence[dict[str, Any]],
    wall_s: float,
    machine: Mapping[str, Any],
    run_s: float | None = None,
) -> str:
    """``quality.md``: the settings in words, the table, JSSL vs SSL and the wall time.

    Args:
        table: from :func:`aggregate`.
        accelerations: the table's columns.
        settings: the report settings (``manifest``, ``network_size``, ``iterations``, ``batch_size``,
            ``readout_crop``, ``seeds``, ``overrides``, ``torch_threads``).
        comps: from :func:`comparisons`.
        wall_s: wall time of this start, seconds.
        machine: :func:`pipeline.bench.common.machine_info`.
        run_s: summed wall time of all runs, counting those reused from an earlier start, seconds.
    """
    header = "| method | " + " | ".join(
        f"{METRIC_LABELS[m]} {acc}x" for acc in accelerations for m in METRIC_NAMES) + " |"
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
        "|---|" + "---|" * (len(accelerations) * len(METRIC_NAMES)),
    ]
    for method, rows in table.items():
        cells = [_cell(rows.get(f"{acc}x"), m, method in CLASSICAL) for acc in accelerations for m in METRIC_NAMES]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    if comps:
        lines += ["", "JSSL vs SSL:", ""] + [f"- {line}" for line in comparison_lines(comps)]
    if settings["overrides"]:
        lines += ["", f"Extra train.json overrides: `{json.dumps(settings['overrides'])}`"]
    lines += [
        "",
        f"Wall time {wall_s / 60:.1f} min"
        + (f" (runs alone {run_s / 60:.1f} min, counting runs reused from an earlier start)" if run_s else "")
        + f" on {machine['cpus_usable']} CPU core(s), {settings.get('torch_threads', machine['torch_threads'])} "
        f"torch thread(s) (torch {machine['torch']}, MONAI {machine['monai']}). Raw numbers: `quality.json`. "
        "Reproduce: `python -m pipeline.bench.quality`.",
    ]
    return "\n".join(lines) + "\n"

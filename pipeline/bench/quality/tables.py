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

from pipeline.bench.quality.methods import CENTER_FRACTIONS, CLASSICAL, LABELS, METRIC_LABELS, network_label
from pipeline.metrics.handlers import METRIC_NAMES

__all__ = [
    "Table", "aggregate", "beyond_std", "comparison_lines", "comparisons", "markdown", "table_lines", "target_lines",
    "targets",
]

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
    lines = [
        "# Reconstruction quality on the demo domain-shift data",
        "",
        f"Test section of `{Path(settings['manifest']).name}`, fastMRI per-volume NMSE / PSNR / SSIM, "
        f"{settings['mask_type']} 1-D masks (one fixed mask per test slice), centre fraction "
        + ", ".join(f"{CENTER_FRACTIONS[a]} at {a}x" for a in accelerations) + ". "
        f"Learned methods: {network_label(settings)}, {settings['iterations']} iterations of batch "
        f"{settings['batch_size']} each, readout crop {'on' if settings['readout_crop'] else 'off'}, "
        f"mean ± std (ddof 1) over seeds {settings['seeds']} of the per-seed means over test volumes. "
        "Classical methods are deterministic (—).",
        "",
        *table_lines(table, accelerations),
    ]
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


def beyond_std(a: Mapping[str, float], b: Mapping[str, float], metric: str) -> bool:
    """Whether ``a`` is better than ``b`` on ``metric`` with non-overlapping mean ± 1 std intervals."""
    if metric == "nmse":
        return a[metric] + a[f"{metric}_std"] < b[metric] - b[f"{metric}_std"]
    return a[metric] - a[f"{metric}_std"] > b[metric] + b[f"{metric}_std"]


def targets(table: Table, accelerations: Sequence[int]) -> list[dict[str, Any]]:
    """The benchmark's targets per acceleration, from a scenario's table.

    Returns:
        One dict per acceleration with ``acceleration`` and, where the rows exist:
        ``jssl_vs_ssl`` / ``jssl_vs_sl`` (``{metric: JSSL minus other}``, ``seeds``: the fewer seeds of the two
        rows, ``beyond_std``: better on SSIM and PSNR with non-overlapping ±1 std over at least 2 seeds,
        ``better``: better means on SSIM and PSNR), ``gap_closed`` (SSIM gap from
        SSL to the oracle closed by JSSL, a fraction; ``None`` when the oracle is not above SSL) and
        ``ssl_above_zero_filled`` (SSL mean better than zero-filled on every metric).
    """
    out = []
    for acc in accelerations:
        key = f"{acc}x"
        rows = {m: table.get(m, {}).get(key) for m in ("zero_filled", "sl", "ssl", "jssl", "sl_target")}
        entry: dict[str, Any] = {"acceleration": acc}
        jssl = rows["jssl"]
        for other in ("ssl", "sl"):
            if jssl is not None and rows[other] is not None:
                diff = {m: jssl[m] - rows[other][m] for m in METRIC_NAMES}
                seeds = int(min(jssl["n"], rows[other]["n"]))
                entry[f"jssl_vs_{other}"] = {
                    **diff,
                    "seeds": seeds,
                    "better": bool(diff["ssim"] > 0 and diff["psnr"] > 0),
                    "beyond_std": bool(seeds >= 2 and beyond_std(jssl, rows[other], "ssim")
                                       and beyond_std(jssl, rows[other], "psnr")),
                }
        if jssl is not None and rows["ssl"] is not None and rows["sl_target"] is not None:
            gap = rows["sl_target"]["ssim"] - rows["ssl"]["ssim"]
            entry["gap_closed"] = float((jssl["ssim"] - rows["ssl"]["ssim"]) / gap) if gap > 0 else None
        if rows["ssl"] is not None and rows["zero_filled"] is not None:
            ssl, zf = rows["ssl"], rows["zero_filled"]
            entry["ssl_above_zero_filled"] = bool(
                ssl["ssim"] > zf["ssim"] and ssl["psnr"] > zf["psnr"] and ssl["nmse"] < zf["nmse"])
        out.append(entry)
    return out


def target_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per acceleration of :func:`targets`."""
    lines = []
    names = {"ssl": "SSL", "sl": "SL-proxy"}
    for e in entries:
        parts = []
        for other in ("ssl", "sl"):
            c = e.get(f"jssl_vs_{other}")
            if c is None:
                continue
            spread = "within ±1 std" if c.get("seeds", 2) >= 2 else "one seed, no ±1 std verdict"
            verdict = ("better beyond ±1 std" if c["beyond_std"] else
                       f"better in the mean, {spread}" if c["better"] else "NOT better")
            parts.append(f"JSSL vs {names[other]}: {verdict} (SSIM {c['ssim']:+.4f}, PSNR {c['psnr']:+.2f} dB, "
                         f"NMSE {c['nmse']:+.4f})")
        if e.get("gap_closed") is not None:
            parts.append(f"JSSL closes {100 * e['gap_closed']:.0f} % of the SSL->oracle SSIM gap")
        if "ssl_above_zero_filled" in e:
            parts.append("SSL above zero-filled on every metric: " + ("yes" if e["ssl_above_zero_filled"] else "NO"))
        if parts:
            lines.append(f"{e['acceleration']}x: " + "; ".join(parts))
    return lines


def table_lines(table: Table, accelerations: Sequence[int], labels: Mapping[str, str] | None = None) -> list[str]:
    """Markdown lines of ``table``: one row per method, NMSE / PSNR / SSIM (mean ± std) per acceleration.

    Args:
        table: from :func:`aggregate` (or any ``{row: {"<acc>x": {...}}}``).
        accelerations: columns.
        labels: row key -> label (default :data:`~pipeline.bench.quality.methods.LABELS`).
    """
    labels = labels or LABELS
    header = "| method | " + " | ".join(
        f"{METRIC_LABELS[m]} {acc}x" for acc in accelerations for m in METRIC_NAMES) + " |"
    lines = [header, "|---|" + "---|" * (len(accelerations) * len(METRIC_NAMES))]
    for method, rows in table.items():
        cells = [_cell(rows.get(f"{acc}x"), m, method in CLASSICAL) for acc in accelerations for m in METRIC_NAMES]
        lines.append(f"| {labels[method]} | " + " | ".join(cells) + " |")
    return lines

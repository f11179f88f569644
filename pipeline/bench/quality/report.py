"""``quality.md`` of a ``--profile`` run: one table per scenario with its targets, convergence, and the ablations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.bench.quality.methods import CENTER_FRACTIONS, network_label
from pipeline.bench.quality.profiles import ABLATIONS, DEFAULT_ABLATION_LABEL, SCENARIOS
from pipeline.bench.quality.runs import CONVERGENCE_SSIM_GAIN
from pipeline.bench.quality.tables import Table, aggregate, beyond_std, table_lines, target_lines

__all__ = ["convergence_lines", "profile_markdown"]


def convergence_lines(learned: Sequence[Mapping[str, Any]], iterations: int) -> list[str]:
    """How many learned runs met the convergence rule, and which did not (with their late SSIM gain)."""
    done = [r for r in learned if r.get("converged")]
    lines = [f"Convergence (validation SSIM gains < {CONVERGENCE_SSIM_GAIN} over the last 20 % of the "
             f"{iterations} iterations): {len(done)} of {len(learned)} learned runs."]
    missing = [r for r in learned if not r.get("converged")]
    if missing:
        gains = ["no curve" if r.get("late_gain") is None else f"+{r['late_gain']:.4f}" for r in missing]
        lines.append("Not converged: " + ", ".join(
            f"{r['method']} {r['acceleration']}x seed {r['seed']} ({gain})" for r, gain in zip(missing, gains)) + ".")
    return lines


def _ablation_table(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[str], list[str]]:
    """Markdown lines of the ablation table and one verdict line per ablation (against the default row)."""
    table: Table = {}
    for name, learned in rows.items():
        agg = aggregate({}, [{**r, "method": "jssl"} for r in learned], ["jssl"], [8])["jssl"]
        if agg:
            table[name] = agg
    labels = {"default": DEFAULT_ABLATION_LABEL, **{n: a.label for n, a in ABLATIONS.items()}}
    labels = {name: f"{labels[name]} [{row['8x']['n']} seed(s)]" for name, row in table.items()}
    lines = table_lines(table, [8], labels)
    verdicts = []
    base = table.get("default", {}).get("8x")
    for name, row in table.items():
        if name == "default" or base is None:
            continue
        r = row["8x"]
        better = beyond_std(r, base, "ssim") and beyond_std(r, base, "psnr")
        worse = beyond_std(base, r, "ssim") and beyond_std(base, r, "psnr")
        verdict = ("no verdict: fewer than 2 seeds finished" if min(r["n"], base["n"]) < 2 else
                   "better than the default beyond ±1 std" if better else
                   "worse than the default beyond ±1 std" if worse else "no difference beyond ±1 std")
        verdicts.append(f"{ABLATIONS[name].label}: SSIM {r['ssim'] - base['ssim']:+.4f}, PSNR "
                        f"{r['psnr'] - base['psnr']:+.2f} dB vs default: {verdict}. Guideline tested: "
                        f"{ABLATIONS[name].guideline}.")
    return lines, verdicts


def profile_markdown(
    scenarios: Mapping[str, Mapping[str, Any]],
    ablations: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Mapping[str, Any],
    machine: Mapping[str, Any],
    wall_s: float,
    run_s: float,
) -> str:
    """The report of a ``--profile`` run.

    Args:
        scenarios: scenario name -> ``{"table", "targets", "learned", "figure", "manifest"}``.
        ablations: ``"default"`` and ablation name -> learned results (JSSL on the anatomy shift at 8x).
        settings: the report settings (profile, sizes, budget, seeds, accelerations).
        machine: :func:`pipeline.bench.common.machine_info`.
        wall_s: wall time of this start, seconds.
        run_s: summed wall time of all runs, counting those reused from an earlier start, seconds.
    """
    accs = settings["accelerations"]
    lines = [
        f"# Reconstruction quality, profile `{settings['profile']}`",
        "",
        f"Profile: {settings['profile_description']}. Every learned run: {network_label(settings)}, "
        f"{settings['iterations']} iterations of batch {settings['batch_size']}, validated every "
        f"{settings['val_interval']} iterations (the best validated weights are scored). Test sections, fastMRI "
        f"per-volume NMSE / PSNR / SSIM, {settings['mask_type']} 1-D masks, one fixed mask per target slice, centre "
        "fraction " + ", ".join(f"{CENTER_FRACTIONS[a]} at {a}x" for a in accs) + f"; mean ± std (ddof 1) over seeds "
        f"{settings['seeds']} of the per-seed means over test volumes; classical methods are deterministic (—).",
    ]
    for name, data in scenarios.items():
        finished = (f"Learned runs finished: {len(data['learned'])} of {data['expected_runs']} (a row's std is over "
                    "the seeds that finished)." if len(data["learned"]) < data["expected_runs"] else "")
        lines += ["", f"## {SCENARIOS[name]}", "", *table_lines(data["table"], accs), "",
                  *([finished, ""] if finished else []),
                  "Targets:", "", *[f"- {t}" for t in target_lines(data["targets"])], "",
                  *convergence_lines(data["learned"], settings["iterations"]), "",
                  f"Figure: `{data['figure']['file']}` (test slice {data['figure'].get('filename', '-')} "
                  f"s{data['figure'].get('slice', '-')} at {data['figure']['acceleration']}x, seed "
                  f"{data['figure']['seed']}; learning curves of every run)."]
    for name in settings.get("scenarios", []):
        if name not in scenarios:
            lines += ["", f"## {SCENARIOS[name]}", "",
                      "No run of this scenario had finished when this report was written."]
    if ablations:
        table, verdicts = _ablation_table(ablations)
        learned = [{**r, "method": f"{name} ({r['method']})"} for name, rows in ablations.items() for r in rows]
        lines += ["", "## Ablations: JSSL on the anatomy shift at 8x", "", *table, "",
                  *[f"- {v}" for v in verdicts], "", *convergence_lines(learned, settings["iterations"])]
    seconds = [r["seconds_per_iteration"] for data in scenarios.values() for r in data["learned"]]
    lines += [
        "",
        f"Wall time {wall_s / 60:.1f} min (runs alone {run_s / 60:.1f} min, counting runs reused from earlier "
        f"starts; median {float(np.median(seconds)) if seconds else float('nan'):.3f} s per training iteration "
        "including validation) on "
        f"{machine['cpus_usable']} CPU core(s) ({machine.get('cpu', '?')}), {settings['torch_threads']} torch "
        f"thread(s) per process (torch {machine['torch']}, MONAI {machine['monai']}). Raw numbers: `quality.json`. "
        f"Reproduce: `{settings['reproduce']}` (add `--jobs 2` for two processes at a time).",
    ]
    return "\n".join(lines) + "\n"

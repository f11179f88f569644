"""The speed report: headline rows against their targets, the markdown table and the bar chart of ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.speed.peers import PHASES

__all__ = ["NOTES", "TARGETS", "peer_table", "plot", "summarise", "to_markdown"]

NOTES = [
    "Engine: engine step = from the batch's arrival (Ignite GET_BATCH_COMPLETED) to the end of every "
    "ITERATION_COMPLETED handler of a JSSLTrainer built from the bundle's train.json (transforms, DataLoaders, "
    "InterleavedLoader jssl, JointLoss, grad clipping, LR-schedule handler; MLflow only with --mlflow; "
    "validation and checkpoint handlers left out). Bare step = forward + the same JointLoss + backward + the "
    "same clipping + Adam on a copy of the network, on the same batch, alternately before/after the engine step.",
    "Data wait: a separate, undisturbed engine run; sum of GET_BATCH_STARTED -> GET_BATCH_COMPLETED over wall "
    "time, after 2 warm-up steps (1 with --quick).",
    "Peers: one fresh process per input size; every contender timed round-robin, the order rotated every "
    "repetition; ratio = median of the per-repetition ours / peer (< 1 = ours faster; 0.667 = 1.5x faster). "
    "Identical maths per pair: ours vs DIRECT 2.2 E2E-VarNet (NormUnet regularisers, sign-matched) with a "
    "16-channel NormUnet sensitivity model applied per coil as in DIRECT's engine; ours vs MONAI "
    "VariationalNetworkModel with 8-channel sensitivity U-Nets; ours vs DIRECT vSHARP at the same configuration "
    "(parity.TIMING_CASES). E2E-VarNets: 6 cascades of 16-channel 4-pool U-Nets; synthetic k-space with a "
    "fastMRI 4x equispaced mask, batch 1; train = L1 on the RSS image + backward + Adam. The default "
    "configuration is ours with the 16-channel sensitivity U-Net.",
    "Inference: eval-mode forward per slice (batch 1, torch.inference_mode) vs pipeline.baselines.l1_wavelet "
    "(sigpy, 100 iterations, ACS maps) on the same slice; fastMRI size: synthetic k-space, random weights, 1 "
    "repeat each, and with --fastmri-weights a test slice of --fastmri-manifest with those trained weights. On "
    "test slices the network is timed in float32 and in bf16 autocast (the bundle's precision bf16: U-Nets in "
    "bfloat16, k-space and data consistency in float32) round-robin with CS; bf16 is fast only on CPUs with "
    "bf16 matrix units (the machine line's cpu_bf16).",
    "Memory (CPU): one fresh subprocess per configuration; gradients and Adam state are allocated before the "
    "baseline, so the peak resident memory above it (Linux VmHWM) is activations + temporaries. 'Returns "
    "freed memory at once' = pipeline.engines.return_freed_memory (glibc mmap threshold 1 MiB), which the "
    "bundle turns on with gradient_checkpointing. Step times there are single runs, not a side-by-side comparison.",
    "On a CPU shared with other jobs, 1 torch thread (--threads 1) gives steadier numbers: with 2 threads "
    "OpenMP waits on descheduled peers (3-4x slower forwards were seen on this machine).",
]
TARGETS = {
    "engine_overhead": "<= 1.10 (overhead <= 10%)",
    "data_wait_fraction": "<= 0.02",
    "peer_train": "<= 0.667 (>= 1.5x faster)",
    "default_train": "< 1.00 (faster than the fastest peer)",
    "default_fastmri_forward": "<= 0.667 (>= 1.5x faster than the fastest peer)",
    "inference_vs_cs": "< 1.00 (network faster than CS)",
    "inference_fastmri_vs_cs": "<= 0.05 (>= 20x faster than CS) at SSIM >= CS",
    "checkpoint_memory": ">= 3.0x less peak activation memory",
}


def _met(value: float | None, ok: bool) -> str:
    return "n/a" if value is None else ("yes" if ok else "**no**")


def _row(measurement: str, ours: str, reference: str, ratio: float | None, target: str, met: str) -> dict[str, Any]:
    return {"measurement": measurement, "ours": ours, "reference": reference, "ratio": ratio, "target": target,
            "met": met}


def _engine_rows(eng: dict[str, Any]) -> list[dict[str, Any]]:
    d, s = eng["data_wait"], eng["settings"]
    rows = []
    if "overhead" in eng:
        o = eng["overhead"]
        rows.append(_row(f"JSSLTrainer step vs bare step ({s['network_size']} net, batch {s['batch_size']}, "
                         f"{s['num_workers']} workers, {o['steps']} steps)",
                         f"{o['engine_s']:.3f} s", f"{o['bare_s']:.3f} s", o["ratio"],
                         TARGETS["engine_overhead"], _met(o["ratio"], o["ratio"] <= 1.10)))
    return rows + [
        _row(f"time waiting for data / wall time (undisturbed run, {d['steps']} steps, {s['network_size']} net, "
             f"batch {s['batch_size']}, {s['num_workers']} workers, {s.get('manifest', 'demo data')})",
             f"{1000 * d['wall_s'] * d['wait_fraction'] / max(d['steps'], 1):.0f} ms/step waiting",
             f"{d['step_median_s']:.3f} s/step compute", d["wait_fraction"],
             TARGETS["data_wait_fraction"], _met(d["wait_fraction"], d["wait_fraction"] <= 0.02)),
    ]


def _peer_rows(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the peers part: every matched pair, and the default configuration against the fastest peer."""
    rows = []
    for size in sizes:
        if "error" in size:
            rows.append(_row(f"peers at {size['label']}", "FAILED", size["error"], None, "-", "**no**"))
            continue
        params = size["params_M"]
        fastmri = size["label"].startswith("fastMRI")
        for phase, phase_name in PHASES.items():
            if phase not in size:
                continue
            for pair in size[phase]["pairs"]:
                gated = phase == "train" and not fastmri
                rows.append(_row(
                    f"{phase_name}: {pair['ours']} vs {pair['peer']}, {size['input']} "
                    f"({params[pair['ours']]:.2f} M vs {params[pair['peer']]:.2f} M params)",
                    f"{pair['a_s']:.3f} s", f"{pair['b_s']:.3f} s", pair["ratio"],
                    TARGETS["peer_train"] if gated else "informative",
                    _met(pair["ratio"], pair["ratio"] <= 1 / 1.5) if gated else "n/a"))
            best = size[phase]["default_vs_fastest_peer"]
            key = "default_fastmri_forward" if fastmri and phase == "forward" else (
                "default_train" if phase == "train" else None)
            if key is None:
                continue
            met = best["ratio"] <= 1 / 1.5 if key == "default_fastmri_forward" else best["ratio"] < 1.0
            rows.append(_row(
                f"{phase}: default ({best['ours']}) vs the fastest peer ({best['peer']}), {size['input']}",
                f"{best['a_s']:.3f} s", f"{best['b_s']:.3f} s", best["ratio"], TARGETS[key],
                _met(best["ratio"], met)))
        for name, reason in size.get("skipped", {}).items():
            rows.append(_row(f"{name} at {size['label']}", "skipped", reason, None, "-", "n/a"))
    return rows


def peer_table(sizes: list[dict[str, Any]]) -> str:
    """Markdown table of every contender's median time per size and phase, the fastest in bold.

    The last column names the fastest contender and its lead over the runner-up (runner-up / fastest).
    """
    names: list[str] = []
    for size in sizes:
        names += [n for n in size.get("params_M", {}) if n not in names]
    lines = ["| size | phase | " + " | ".join(f"{n} ({_params(sizes, n)})" for n in names) + " | fastest |",
             "|---|---|" + "---:|" * len(names) + "---|"]
    for size in sizes:
        for phase, phase_name in PHASES.items():
            if phase not in size:
                continue
            med = size[phase]["median_s"]
            order = sorted(med, key=med.__getitem__)
            cells = [("-" if n not in med else (f"**{med[n]:.3f}**" if n == order[0] else f"{med[n]:.3f}"))
                     for n in names]
            lead = order[0]
            if len(order) > 1:
                lead += f", {med[order[1]] / med[order[0]]:.2f}x ahead of {order[1]}"
            lines.append(f"| {size['input']} | {phase_name} | " + " | ".join(cells) + f" | {lead} |")
    return "\n".join(lines)


def _params(sizes: list[dict[str, Any]], name: str) -> str:
    """``"12.34 M"`` (or several values joined by "/" when the size changes them)."""
    values = sorted({round(s["params_M"][name], 2) for s in sizes if name in s.get("params_M", {})})
    return "/".join(f"{v:.2f}" for v in values) + " M"


def _inference_rows(inf: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key in ("demo", "fastmri", "fastmri_trained"):
        if key not in inf:
            continue
        r = inf[key]
        trained = r.get("ssim_net") is not None
        variants = [("", r)] + ([(" in bf16 autocast", {**r, **r["bf16"]})] if "bf16" in r else [])
        for precision, v in variants:
            if key == "fastmri_trained":  # issue 15's target: >= 20x faster than CS at SSIM >= CS
                target, met = TARGETS["inference_fastmri_vs_cs"], _met(
                    v["ratio"], v["ratio"] <= 0.05 and trained and v["ssim_net"] >= v["ssim_cs"])
            else:
                target, met = TARGETS["inference_vs_cs"], _met(v["ratio"], v["ratio"] < 1.0)
            rows.append(_row(f"inference per slice{precision} vs L1-wavelet CS (100 it.), {v['input']}",
                             f"{v['net_s']:.3f} s", f"{v['cs_s']:.2f} s", v["ratio"], target, met))
            if v.get("ssim_cs") is not None:
                rows.append(_row(
                    f"SSIM on that test slice{precision} (zero-filled {v['ssim_zero_filled']:.4f})",
                    f"{v['ssim_net']:.4f}" if trained else "n/a (no trained weights)", f"{v['ssim_cs']:.4f}",
                    v["ssim_net"] / v["ssim_cs"] if trained else None,
                    ">= CS", _met(1, v["ssim_net"] >= v["ssim_cs"]) if trained else "n/a",
                ))
    return rows


def _memory_rows(mem: dict[str, Any]) -> list[dict[str, Any]]:
    def fmt(label: str) -> str:
        x = mem.get(label, {})
        return f"{x['activation_GiB']:.2f} GiB ({x['step_s']:.0f} s)" if "activation_GiB" in x else x.get("error", "?")

    cascades = f", {mem['num_cascades']} cascades" if mem.get("num_cascades") else ""
    what = f"peak activation memory of a training step, {mem['size']} net{cascades}, {mem['input']}"
    rows = []
    for key, numerator, denominator, compared in (
        ("ratio", "no_checkpoint", "checkpoint",
         "the bundle without vs with gradient_checkpointing (which returns freed memory at once)"),
        ("ratio_same_allocator", "no_checkpoint_returned", "checkpoint",
         "no checkpointing vs checkpointing, both returning freed memory at once"),
        ("ratio_checkpoint_heap", "no_checkpoint", "checkpoint_heap",
         "no checkpointing vs checkpointing, glibc's default heap for both (before the allocator setting)"),
    ):
        if numerator in mem and denominator in mem:
            ratio = mem.get(key)
            rows.append(_row(f"{what}: {compared} (ratio = reduction)", fmt(numerator), fmt(denominator), ratio,
                             TARGETS["checkpoint_memory"], _met(ratio, ratio is not None and ratio >= 3.0)))
    return rows


def _compiled_rows(comp: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _row(f"{phase}: torch.compile (inductor, every U-Net) vs eager, {comp['size']} net, {comp['input']} "
             f"(compiling took {comp['compile_s'][phase]:.0f} s, left out)",
             f"{comp[phase]['a_s']:.3f} s", f"{comp[phase]['b_s']:.3f} s", comp[phase]["ratio"], "informative", "n/a")
        for phase in ("forward", "train")
    ]


def _gpu_rows(gpu: dict[str, Any]) -> list[dict[str, Any]]:
    if not gpu.get("available"):
        return [_row("GPU step time, memory, bf16 AMP speed-up", "no GPU in this run", "-", None, "-", "n/a")]
    return [
        _row(f"GPU ({gpu['device']}) train step, {r['size']} net, {r['input']}: fp32 vs bf16 AMP "
             f"(peak fp32 {r['plain_fp32_peak_GiB']:.2f} GiB, bf16 {r['plain_bf16_peak_GiB']:.2f} GiB, "
             f"fp32+checkpoint {r['checkpoint_fp32_peak_GiB']:.2f} GiB)",
             f"{1000 * r['fp32_step_s']:.1f} ms", f"{1000 * r['bf16_step_s']:.1f} ms", r["bf16_speedup"],
             "bf16 speed-up (informative)", "n/a")
        for r in gpu["rows"]
    ]


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per headline figure of ``report`` (the parts that ran).

    Returns:
        Rows ``{"measurement", "ours", "reference", "ratio", "target", "met"}``; ``ratio`` is ``None`` where
        there is none, ``met`` is ``"yes"``, ``"**no**"`` or ``"n/a"``.
    """
    rows: list[dict[str, Any]] = []
    if report.get("engine"):
        rows += _engine_rows(report["engine"])
    rows += _peer_rows(report.get("peers", []))
    rows += _inference_rows(report.get("inference", {}))
    if report.get("memory"):
        rows += _memory_rows(report["memory"])
    if report.get("compiled"):
        rows += _compiled_rows(report["compiled"])
    rows += _gpu_rows(report.get("gpu", {}))
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    """The summary table plus the machine it ran on and the notes."""
    m = report["meta"]
    lines = [
        f"Machine: {m['cpu']} (bf16 units: {', '.join(m.get('cpu_bf16') or []) or 'none'}), {m['cpus_usable']} "
        f"usable CPUs, {m['torch_threads']} torch threads; "
        f"torch {m['torch']}, MONAI {m['monai']}, sigpy {m.get('sigpy')}; GPU: {m['gpu'] or 'none'}; "
        f"load average at start {m.get('load_average_at_start')}; {m['date']}"
        + ("; **--quick smoke run (tiny sizes, not representative)**" if m.get("quick") else ""),
        "",
        f"Command: `{m.get('command', '')}`",
        "",
        "Ratios are medians of per-repetition ratios of the things timed alternately in one process "
        "(order swapped, or for more than two rotated, every repetition). For the engine: ratio = engine step / "
        "bare step; for peers: ours / peer.",
        "",
        "| measurement | ours | reference | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in report["summary"]:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(
            f"| {row['measurement']} | {row['ours']} | {row['reference']} | {ratio} | {row['target']} | {row['met']} |"
        )
    for key, error in report.get("errors", {}).items():
        lines.append(f"| {key} | FAILED: {error} | | | | **no** |")
    for prof in report.get("profile", []):
        shares = ", ".join(f"{kind} {100 * share:.0f} %" for kind, share in
                           sorted(prof["shares"].items(), key=lambda kv: -kv[1]) if share >= 0.005)
        lines += ["", f"Where the time of one training step goes ({prof['case']}, {prof['total_s']:.2f} s profiled, "
                  f"torch.profiler self CPU time): {shares}. The sensitivity model's forward + backward alone: "
                  f"{100 * prof['sensitivity_share']:.0f} % of the step."]
    if report.get("peers"):
        lines += ["", "Median seconds per contender (all timed round-robin in one process per size; "
                  "parameters in millions in the header):", "", peer_table(report["peers"])]
    lines += ["", "Notes:", ""] + [f"- {note}" for note in NOTES]
    return "\n".join(lines)


def _bars(report: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """``(label, ratio, target)`` of every bar."""
    bars: list[tuple[str, float, float | None]] = []
    eng = report.get("engine")
    if eng:
        if "overhead" in eng:
            bars.append(("engine / bare step", eng["overhead"]["ratio"], 1.10))
        bars.append(("data-wait fraction", eng["data_wait"]["wait_fraction"], 0.02))
    for size in report.get("peers", []):
        for phase, phase_name in PHASES.items():
            for pair in size.get(phase, {}).get("pairs", []):
                gated = phase == "train" and not size["label"].startswith("fastMRI")
                bars.append((f"{pair['ours']} / {pair['peer']}\n{phase_name}, {size['label']}", pair["ratio"],
                             1 / 1.5 if gated else None))
    for key, target in (("demo", 1.0), ("fastmri", 1.0), ("fastmri_trained", 0.05)):
        inference = report.get("inference", {}).get(key)
        if inference:
            bars.append((f"net / CS time, {key}", inference["ratio"], target))
            if "bf16" in inference:
                bars.append((f"net (bf16 autocast) / CS time, {key}", inference["bf16"]["ratio"], target))
    mem = report.get("memory")
    if mem and mem.get("ratio"):
        bars.append(("checkpoint memory reduction (x)", mem["ratio"], 3.0))
    return bars


def plot(report: dict[str, Any], path: Path) -> bool:
    """Horizontal bar chart of the ratios (log scale) with their targets as red ticks.

    Returns:
        ``False`` when matplotlib is missing or there is no ratio to draw (nothing written), else ``True``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return False
    bars = _bars(report)
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(bars) + 1.2))
    y = np.arange(len(bars))
    values = [b[1] for b in bars]
    ax.barh(y, values, color=["tab:blue" if "memory" not in b[0] else "tab:green" for b in bars])
    for i, (_, value, target) in enumerate(bars):
        if target is not None:
            ax.plot([target, target], [i - 0.4, i + 0.4], color="red", lw=2)
        ax.text(value, i, f" {value:.3g}", va="center", fontsize=8)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ratio (log scale); red tick = target")
    ax.set_title("JSSL speed benchmark: ratios (" + report["meta"]["cpu"] + ")", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

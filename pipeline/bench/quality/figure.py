"""``quality.png``: metric bars with error bars over one test slice reconstructed by every method, with error maps."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.bench.bundle import META, MODULE_ID, evaluation_configs
from pipeline.bench.quality.methods import METRIC_LABELS, SHORT_LABELS, network_label
from pipeline.bench.quality.runs import eval_overrides
from pipeline.bench.quality.tables import Table
from pipeline.metrics.handlers import METRIC_NAMES

__all__ = ["figure", "reconstruct_slice"]


def reconstruct_slice(
    settings: Mapping[str, Any],
    acc: int,
    models: Mapping[str, str],
    classical: Sequence[str],
    slice_index: int | None,
) -> dict[str, Any]:
    """One test slice at ``acc`` reconstructed by every method, through the evaluation configs' dataset and
    network and :class:`~pipeline.engines.ReconstructionEvaluator` (exactly what the scores used).

    Args:
        settings: the run settings (``bundle``, ``manifest``, ``network_size``, ``readout_crop``).
        acc: acceleration.
        models: learned method -> checkpoint path.
        classical: classical methods.
        slice_index: slice of the first test volume (``None``: its middle slice).

    Returns:
        ``{"target": (Hr, Wr), "<method>": (Hr, Wr), "filename": str, "slice": int, "maxval": float}``
        (images as float32 numpy arrays in the dataset's normalised units).
    """
    from monai.bundle import ConfigParser
    from torch.utils.data import DataLoader, Subset

    from pipeline.engines import ReconstructionEvaluator
    from pipeline.keys import Keys

    configs = evaluation_configs(Path(settings["bundle"]))

    def parser_for(baselines: Sequence[str], ckpt: str | None) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config(configs)
        parser.read_meta(str(Path(settings["bundle"]) / META))
        parser.update({**eval_overrides(settings, Path(tempfile.gettempdir()), acc, baselines), "ckpt_path": ckpt})
        return parser

    dataset = parser_for(classical, None).get_parsed_content("dataset")
    items = dataset.data
    volume_slices = [i for i, item in enumerate(items) if item["file"] == items[0]["file"]]
    index = volume_slices[len(volume_slices) // 2 if slice_index is None else slice_index]
    loader = DataLoader(Subset(dataset, [index]), batch_size=1)

    def run(network: torch.nn.Module | None, baselines: Sequence[str]) -> dict[str, Any]:
        evaluator = ReconstructionEvaluator("cpu", loader, network, baselines=list(baselines))
        evaluator.run()
        return evaluator.state.output

    out: dict[str, Any] = {}
    if classical:
        output = run(None, classical)
        out.update({name: output[name][0, 0].cpu().numpy() for name in classical})
    for method, ckpt in models.items():
        output = run(parser_for([], ckpt).get_parsed_content(MODULE_ID), [])
        out[method] = output[Keys.PRED][0, 0].cpu().numpy()
    out["target"] = output[Keys.TARGET][0, 0].cpu().numpy()
    out["filename"] = str(output[Keys.FILENAME][0])
    out["slice"] = int(torch.as_tensor(output[Keys.SLICE]).reshape(-1)[0])
    out["maxval"] = (
        float(torch.as_tensor(output[Keys.MAX]).reshape(-1)[0]) if Keys.MAX in output else float(out["target"].max())
    )
    return out


def _metric_bars(fig: Any, cell: Any, table: Table, accelerations: Sequence[int]) -> None:
    """One bar chart per metric: mean ± std per method, one colour per acceleration."""
    import matplotlib.pyplot as plt

    methods = list(table)
    top = cell.subgridspec(1, len(METRIC_NAMES))
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(len(accelerations), 1)
    x = np.arange(len(methods))
    for j, metric in enumerate(METRIC_NAMES):
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


def _reconstructions(fig: Any, grid: Any, ncols: int, recon: Mapping[str, Any], shown: Sequence[str],
                     recon_acc: int) -> None:
    """The reference and every shown method's reconstruction (SSIM, PSNR in the title), error maps below."""
    from pipeline.metrics import psnr, ssim

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


def _learning_curves(fig: Any, cell: Any, curves: Sequence[Mapping[str, Any]], accelerations: Sequence[int]) -> None:
    """Validation SSIM against iterations, one panel per acceleration, one colour per method, a line per seed."""
    import matplotlib.pyplot as plt

    row = cell.subgridspec(1, len(accelerations))
    methods = list(dict.fromkeys(r["method"] for r in curves))
    colors = plt.get_cmap("tab10")
    for j, acc in enumerate(accelerations):
        ax = fig.add_subplot(row[0, j])
        for k, method in enumerate(methods):
            for n, run in enumerate(r for r in curves if r["method"] == method and r["acceleration"] == acc):
                points = np.asarray(run.get("curve") or [], dtype=np.float64).reshape(-1, 2)
                if len(points):
                    ax.plot(points[:, 0], points[:, 1], color=colors(k), lw=1, alpha=0.8,
                            label=SHORT_LABELS[method].replace("\n", " ") if n == 0 else None)
        ax.set_title(f"validation SSIM, {acc}x", fontsize=8)
        ax.set_xlabel("iteration", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(fontsize=6)


def figure(path: Path, table: Table, accelerations: Sequence[int], recon: Mapping[str, Any] | None,
           recon_acc: int, settings: Mapping[str, Any], curves: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Write ``path`` (PNG): metric bars (mean ± std per method and acceleration) over a row of reconstructions
    and a row of error maps (both left out when ``recon`` is ``None``), and the learning curves when given.

    Args:
        path: output file; its folder is created.
        table: from :func:`pipeline.bench.quality.tables.aggregate`.
        accelerations: bar groups.
        recon: from :func:`reconstruct_slice`, or ``None``.
        recon_acc: the acceleration of ``recon``.
        settings: the report settings (``manifest``, ``network_size``, ``iterations``, ``seeds``).
        curves: learned results with ``method``, ``acceleration`` and ``curve`` (``[[iteration, val SSIM], ...]``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in table if recon is not None and m in recon]
    ncols = max(len(shown) + 1, 3)
    heights = [1.25] + ([1, 1] if recon is not None else []) + ([1.1] if curves else [])
    fig = plt.figure(figsize=(2.1 * ncols, 3.2 + 2.2 * (len(heights) - 1)), constrained_layout=True)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    _metric_bars(fig, grid[0], table, accelerations)
    fig.suptitle(
        f"{Path(settings['manifest']).stem} test set; learned: {network_label(settings)}, "
        f"{settings['iterations']} it., seeds {settings['seeds']}", fontsize=10)
    if recon is not None:
        _reconstructions(fig, grid, ncols, recon, shown, recon_acc)
    if curves:
        _learning_curves(fig, grid[len(heights) - 1], curves, accelerations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

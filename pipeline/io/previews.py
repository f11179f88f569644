"""PNG pictures of reconstructions (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, write (creating folders) and close a matplotlib figure; returns the path."""
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _as_numpy(image: Any) -> np.ndarray:
    return image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)


def save_comparison_grid(rows: Sequence[Mapping[str, Any]], path: str | Path, error_gain: float = 5.0) -> Path:
    """One row per slice: input, reconstruction, reference and ``error_gain`` x |error|, on shared scales.

    Each row is displayed on ``[0, data_range]``: the reference volume's maximum (the package's one
    data-range convention, as in the metrics), else the slice's reference (or reconstruction) maximum.

    Args:
        rows: dicts with ``"title"`` and ``(H, W)`` images ``"recon"`` and optionally ``"input"``,
            ``"reference"`` (missing panels are left blank) and ``"data_range"`` (``<= 0``: unknown).
        path: PNG file to write (folders are created).
        error_gain: magnification of the error map.

    Returns:
        The written path.
    """
    plt = _pyplot()
    columns = ("input", "recon", "reference", "error")
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        recon = _as_numpy(row["recon"])
        ref = None if row.get("reference") is None else _as_numpy(row["reference"])
        vmax = float(row.get("data_range") or 0.0)
        if vmax <= 0:
            vmax = float((ref if ref is not None else recon).max()) or 1.0
        panels = {
            "input": None if row.get("input") is None else _as_numpy(row["input"]),
            "recon": recon,
            "reference": ref,
            "error": None if ref is None else np.abs(recon - ref) * error_gain,
        }
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.axis("off")
            if panels[name] is not None:
                ax.imshow(panels[name], cmap="gray", vmin=0, vmax=vmax)
            if r == 0:
                ax.set_title(name if name != "error" else f"|error| x{error_gain:g}", fontsize=9)
        axes[r, 0].text(0, -0.08, row.get("title", ""), transform=axes[r, 0].transAxes, fontsize=7, va="top")
    return save_figure(fig, path)


def save_volume_preview(volume: np.ndarray, path: str | Path, title: str = "", max_slices: int = 8) -> Path:
    """A row of up to ``max_slices`` evenly spaced slices of a ``(slices, H, W)`` magnitude volume."""
    plt = _pyplot()
    n = volume.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int))
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.5), squeeze=False)
    vmax = float(np.percentile(volume, 99.5)) or 1.0
    for ax, s in zip(axes[0], picks):
        ax.imshow(volume[s], cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(f"slice {s}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)

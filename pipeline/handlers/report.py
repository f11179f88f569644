"""Evaluation report: per-volume and mean NMSE / PSNR / SSIM of every method, as CSV, JSON and markdown."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from pipeline.metrics import METRIC_NAMES, VolumeMetrics

logger = logging.getLogger(__name__)



def summarise(per_volume: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """``{method: {volume: {metric: v}}}`` -> ``{method: {metric, metric_std, volumes}}`` (over volumes)."""
    summary = {}
    for method, volumes in per_volume.items():
        row: dict[str, float] = {"volumes": len(volumes)}
        for m in METRIC_NAMES:
            values = np.array([v[m] for v in volumes.values()], dtype=np.float64)
            row[m], row[f"{m}_std"] = float(values.mean()), float(values.std())
        summary[method] = row
    return summary


def markdown_table(summary: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table of :func:`summarise` output, one row per method."""
    lines = ["| method | NMSE | PSNR (dB) | SSIM | volumes |", "|---|---|---|---|---|"]
    for method, row in summary.items():
        lines.append(
            f"| {method} | {row['nmse']:.4f} ± {row['nmse_std']:.4f} | {row['psnr']:.2f} ± {row['psnr_std']:.2f} "
            f"| {row['ssim']:.4f} ± {row['ssim_std']:.4f} | {int(row['volumes'])} |"
        )
    return "\n".join(lines) + "\n"


class MetricsReport:
    """After an evaluation, write ``metrics_per_volume.csv``, ``metrics.json`` and ``metrics.md``.

    Args:
        metrics: method name -> the :class:`~pipeline.metrics.VolumeMetrics` attached to the evaluator for it.
        output_dir: folder for the report files.
    """

    def __init__(self, metrics: Mapping[str, VolumeMetrics], output_dir: str | Path) -> None:
        self.metrics = dict(metrics)
        self.output_dir = Path(output_dir)
        self.summary: dict[str, dict[str, float]] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        per_volume = {method: metric.per_volume() for method, metric in self.metrics.items()}
        self.summary = summarise(per_volume)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "metrics_per_volume.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["method", "volume", *METRIC_NAMES])
            for method, volumes in per_volume.items():
                for volume, values in sorted(volumes.items()):
                    writer.writerow([method, volume, *(f"{values[m]:.6g}" for m in METRIC_NAMES)])
        (self.output_dir / "metrics.json").write_text(
            json.dumps({"summary": self.summary, "per_volume": per_volume}, indent=2) + "\n"
        )
        table = markdown_table(self.summary)
        (self.output_dir / "metrics.md").write_text(table)
        logger.info("evaluation results:\n" + table)

"""Profiles (sizes and budgets), scenarios (which simulated data) and ablations of the quality benchmark.

A **profile** fixes everything that sets the cost of a full run: the scenarios' presets
(:data:`pipeline.data.simulate.PRESETS`), the network size, the iteration budget, the accelerations and
seeds. A **scenario** is one row group of the report: a proxy domain and a target domain. An **ablation**
is one extra JSSL row on the anatomy-shift scenario at 8x (the paper's rules of thumb): one setting
changed against the default JSSL run, the same seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.losses.joint import REFERENCE_WEIGHTS

__all__ = ["ABLATIONS", "PROFILES", "SCENARIOS", "Ablation", "Profile", "ablation_manifest", "scenario_manifest"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """The sizes and budget of a full run.

    Attributes:
        name: ``--profile`` value.
        presets: scenario name -> simulator preset.
        network_size: network preset of every learned run.
        iterations: optimiser steps of every learned run.
        val_points: validations per run (every ``iterations / val_points`` steps); the learning curves and the
            convergence check read them, and the best validated weights are scored.
        batch_size: training batch size.
        accelerations: table columns.
        seeds: training seeds of every learned run.
        description: one line for the report.
        other_networks: network preset of each other network an ablation row trains (e.g. ``vsharp``).
        lr_schedule: ``(warmup, decay, gamma)``: linear warm-up over the first ``warmup`` fraction of the
            budget, then the learning rate times ``gamma`` from the ``decay`` fraction on (one step, as
            fastMRI's VarNet recipe), so every run ends on a flat learning curve; ``None`` keeps
            ``train.json``'s schedule. See :meth:`schedule_overrides`.
    """

    name: str
    presets: Mapping[str, str]
    network_size: str
    iterations: int
    val_points: int
    batch_size: int
    accelerations: tuple[int, ...]
    seeds: tuple[int, ...]
    description: str
    other_networks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    lr_schedule: tuple[float, float, float] | None = None

    def schedule_overrides(self, iterations: int) -> dict[str, Any]:
        """``train.json`` overrides of :attr:`lr_schedule` for a budget of ``iterations`` (``{}`` without one).

        Example:
            >>> PROFILES["cpu"].schedule_overrides(400)
            {'warmup_iterations': 50, 'lr_step_iterations': 200, 'lr_gamma': 0.1}
        """
        if self.lr_schedule is None:
            return {}
        warmup, decay, gamma = self.lr_schedule
        warmup_iterations = round(warmup * iterations)
        # StepLR counts from the end of the warm-up (SequentialLR milestone)
        return {"warmup_iterations": warmup_iterations,
                "lr_step_iterations": max(1, round(decay * iterations) - warmup_iterations), "lr_gamma": gamma}


#: Scenario name -> report heading (row group).
SCENARIOS = {
    "abdomen": "Anatomy shift: brain proxy (MNI152, axial T1-like) -> real abdomen target (mdreg VFA series, coronal)",
    "brain": "Brain to brain: brain proxy (axial T1-like) -> brain target (coronal FLAIR-like)",
}

PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        presets={"abdomen": "cpu128_abdomen", "brain": "cpu128_brain"},
        network_size="tiny",
        iterations=400,
        val_points=10,
        batch_size=2,
        accelerations=(4, 8, 16),
        seeds=(0, 1, 2),
        description="128x128 recon, 4 coils, abdomen target at 5 flip angles (60 training slices), "
                    "'tiny' VarNet (2 cascades), learning rate x0.1 after 62.5 % of the budget, CPU",
        other_networks={"vsharp": "tiny"},
        lr_schedule=(0.125, 0.625, 0.1),
    ),
    "gpu": Profile(
        name="gpu",
        presets={"abdomen": "gpu_abdomen", "brain": "gpu_brain"},
        network_size="fastmri",
        iterations=5000,
        val_points=10,
        batch_size=2,
        accelerations=(4, 8, 16),
        seeds=(0, 1, 2),
        description="128x128 recon, 8/6 coils, 'fastmri' VarNet (12 cascades, 30 M parameters), GPU",
        other_networks={"vsharp": "paper"},
        lr_schedule=(0.125, 0.625, 0.1),
    ),
}
# the cpu profile before 2026-12-01 (the README's 64 px tables), with train.json's learning-rate schedule
PROFILES["cpu64"] = dataclasses.replace(
    PROFILES["cpu"], name="cpu64", presets={"abdomen": "cpu_abdomen", "brain": "cpu_brain"}, iterations=200,
    val_points=5, lr_schedule=None,
    description="64x64 recon, 4 coils, 12 target training slices, 'tiny' VarNet (2 cascades), CPU")


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One ablation row: the default JSSL run with one thing changed.

    Attributes:
        name: ``--ablation`` value.
        label: table label.
        guideline: the paper's rule of thumb this row tests.
        mode: training mode of the row.
        overrides: ``train.json`` overrides on top of the run's.
        proxy_fraction: fraction of the proxy volumes kept (at least one).
        proxies_as_target: list the proxy volumes in the target section too (they are then subsampled with
            one fixed mask per slice and used only through the SSDU loss).
    """

    name: str
    label: str
    guideline: str
    mode: str = "jssl"
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    proxy_fraction: float = 1.0
    proxies_as_target: bool = False


_RATIO = "the SL:SSL balance matters; more SSL steps help the target when proxies dominate"
_Q = "a moderate SSDU split ratio (q = 0.4-0.5) is best"
ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation("vsharp", "vSHARP instead of VarNet (same budget)", "the paper's main network, vSHARP, is at "
                 "least as good as E2E-VarNet", overrides={"network": "vsharp"}),
        Ablation("ratio_1_3", "SL:SSL steps 1:3", _RATIO, overrides={"sl_ssl_ratio": {"sl": 1, "ssl": 3}}),
        Ablation("ratio_3_1", "SL:SSL steps 3:1", _RATIO, overrides={"sl_ssl_ratio": {"sl": 3, "ssl": 1}}),
        Ablation("proxy_25", "25 % of the proxy volumes", "more proxy data helps JSSL", proxy_fraction=0.25),
        Ablation("q_0.2", "SSDU q = 0.2", _Q, overrides={"ssdu_q": 0.2}),
        Ablation("q_0.6", "SSDU q = 0.6", _Q, overrides={"ssdu_q": 0.6}),
        Ablation("q_variable", "SSDU q drawn per sample from {0.2, ..., 0.8}", "a variable split ratio (the "
                 "reference's default) is at least as good as a fixed one",
                 overrides={"ssdu_q": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}),
        Ablation("reference_losses", "the reference's loss mix in both branches (image terms in SSL too)",
                 "diagnostic, not one of the paper's rules: the reference's SSL branch also compares the image "
                 "with the image of the Lambda k-space (L1 2, SSIM 2, HFEN 1 + 1, k-space NMAE 2, NMSE 2)",
                 overrides={"sl_loss_weights": dict(REFERENCE_WEIGHTS), "ssl_loss_weights": dict(REFERENCE_WEIGHTS)}),
        Ablation("ssl_weight_0.25", "SSL loss weight 0.25 (SL 1.0)", "diagnostic, not one of the paper's rules: "
                 "a lighter SSL branch lets the proxy supervision lead the shared network",
                 overrides={"branch_weights": {"sl": 1.0, "ssl": 0.25}}),
        Ablation("ssl_all", "SSL on everything (proxies subsampled, SSDU only)",
                 "supervision on the proxies is what helps, not their extra data", mode="ssl",
                 proxies_as_target=True),
    )
}
#: What the default JSSL row (1:1 steps, all proxies, q = 0.4, VarNet) is called in the ablation table.
DEFAULT_ABLATION_LABEL = "JSSL default (SL:SSL 1:1, 100 % proxies, q = 0.4, VarNet)"


def scenario_manifest(data_dir: Path, preset: str, seed: int = 0) -> Path:
    """The manifest of ``preset`` under ``data_dir``, its data simulated on first use.

    Args:
        data_dir: folder of the benchmark's data; the preset goes to ``<data_dir>/<preset>/`` and its manifest
            to ``<data_dir>/<preset>.json``.
        preset: a simulator preset.
        seed: generation seed.

    Returns:
        The manifest path (absolute).
    """
    from pipeline.data.simulate import ensure_dataset, generate

    manifest = (Path(data_dir) / f"{preset}.json").resolve()
    if manifest.is_file():
        ensure_dataset(manifest, preset=preset, seed=seed)  # regenerates missing files of the same manifest
    else:
        generate(preset, manifest.parent / preset, seed=seed, manifest_path=manifest)
    return manifest


def ablation_manifest(manifest: Path, ablation: Ablation, out_dir: Path) -> Path:
    """The manifest of an ablation: ``manifest`` itself, or a derived copy in ``out_dir`` (same data files).

    Args:
        manifest: the scenario's manifest.
        ablation: the row.
        out_dir: where a derived manifest is written (``manifest_<ablation>.json``).

    Returns:
        The manifest path the row trains with.
    """
    if ablation.proxy_fraction >= 1.0 and not ablation.proxies_as_target:
        return manifest
    data = json.loads(Path(manifest).read_text())
    root = (Path(manifest).parent / data.get("data_root", ".")).resolve()
    data["data_root"] = os.path.relpath(root, Path(out_dir).resolve())
    proxies = data["proxy"]
    data["proxy"] = proxies[: max(1, math.ceil(ablation.proxy_fraction * len(proxies)))]
    if ablation.proxies_as_target:
        data["target_reference"] = data["target_reference"] + data["proxy"]
    data["description"] = f"{data.get('description', '')} Ablation {ablation.name}: {ablation.label}."
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"manifest_{ablation.name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path

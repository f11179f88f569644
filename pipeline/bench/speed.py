"""CLI benchmark: speed and memory of JSSL training and inference, side by side with references.

Usage: ``python -m pipeline.bench.speed [--quick] [--out bench_results/speed] [--repeats 7]``

What it measures (every comparison is a RATIO of two things timed alternately in the same process,
A-B / B-A order swapped every repetition, median of the per-repetition ratios, so that load from other
processes on a shared machine cancels out as far as possible):

1. **Engine overhead**: one step of the :class:`~pipeline.engines.JSSLTrainer` built from the bundle's
   ``train.json`` (its default transforms, ``DataLoader`` s with its ``num_workers``, ``InterleavedLoader``
   in mode ``jssl``, LR-schedule handler, optionally MLflow) against the bare step on the same batch
   (network forward, the same :class:`~pipeline.losses.JointLoss`, backward, the same gradient clipping,
   Adam step) on a copy of the network. A second, undisturbed engine run measures the fraction of wall
   time the trainer waits for data (Ignite ``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED``).
2. **Ours vs MONAI**: forward and training step of :class:`~pipeline.networks.JSSLVarNet` against MONAI's
   ``VariationalNetworkModel`` (``CoilSensitivityModel`` + ``ComplexUnet``) at matched sizes.
3. **Inference vs compressed sensing**: network forward per slice against
   :func:`pipeline.baselines.l1_wavelet` on the same slice (a real demo test slice; a synthetic
   fastMRI-size slice), with SSIM on the demo slice when trained weights exist.
4. **Peak memory** of a training step with and without gradient checkpointing, one fresh subprocess per
   configuration (peak resident set size above the pre-step baseline, Linux ``VmHWM``).
5. **GPU** (only when CUDA is present): step time, ``torch.cuda.max_memory_allocated`` and the bf16 AMP
   speed-up.

Writes ``speed.json``, ``speed.md`` and ``speed.png`` (bar chart of the ratios) to ``--out`` and prints
the markdown. ``--quick`` is a smoke test (tiny network, few repetitions, no fastMRI-size runs).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"
MANIFEST = REPO / "data_manifests" / "demo.json"

#: ``(num_cascades, chans, sens_chans)`` of the matched ours-vs-MONAI networks (4 poolings in both).
MONAI_NETS = [(4, 8, 8), (6, 16, 8)]
#: ``(coils, H, W)`` of the ours-vs-MONAI inputs.
MONAI_INPUTS = [(4, 64, 64), (8, 128, 128)]
FASTMRI_SHAPE = (15, 640, 368)
NOTES = [
    "Engine: engine step = from the batch's arrival (Ignite GET_BATCH_COMPLETED) to the end of every "
    "ITERATION_COMPLETED handler of a JSSLTrainer built from the bundle's train.json (transforms, DataLoaders, "
    "InterleavedLoader jssl, JointLoss, grad clipping, LR-schedule handler; MLflow only with --mlflow; "
    "validation and checkpoint handlers left out). Bare step = forward + the same JointLoss + backward + the "
    "same clipping + Adam on a copy of the network, on the same batch, alternately before/after the engine step.",
    "Data wait: a separate, undisturbed engine run; sum of GET_BATCH_STARTED -> GET_BATCH_COMPLETED over wall "
    "time, after 2 warm-up steps (1 with --quick).",
    "Ours vs MONAI: JSSLVarNet(pools=4) vs VariationalNetworkModel(CoilSensitivityModel, ComplexUnet) with "
    "features (c, 2c, 4c, 8c, 16c, c); synthetic 4x equispaced k-space, batch 1; train = L1 on the RSS image "
    "+ backward + Adam.",
    "Inference: eval-mode forward per slice (batch 1, no grad) vs pipeline.baselines.l1_wavelet (sigpy, 100 "
    "iterations, ACS maps) on the same slice; fastMRI size: synthetic k-space, random weights, 1 repeat each.",
    "Memory (CPU): one fresh subprocess per configuration; gradients and Adam state are allocated before the "
    "baseline, so the peak resident memory above it (Linux VmHWM) is activations + temporaries. Step times "
    "there are single runs, not a side-by-side comparison.",
    "On a CPU shared with other jobs, 1 torch thread (--threads 1) gives steadier numbers: with 2 threads "
    "OpenMP waits on descheduled peers (3-4x slower forwards were seen on this machine).",
]
TARGETS = {
    "engine_overhead": "<= 1.10 (overhead <= 10%)",
    "data_wait_fraction": "<= 0.05",
    "vs_monai": "<= 1.00 (ours no slower)",
    "inference_vs_cs": "< 1.00 (network faster than CS)",
    "checkpoint_memory": ">= 2.0x less peak activation memory",
}


# ----------------------------------------------------------------------------------------- helpers
def _sync(device: torch.device | None = None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device | None = None) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def paired(
    fn_a: Callable[[], object],
    fn_b: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Time ``fn_a`` and ``fn_b`` alternately (order swapped every repetition) after ``warmup`` rounds.

    Returns:
        ``{"a_s", "b_s"}`` medians in seconds, ``"ratio"`` = median of the per-repetition ``a / b``,
        ``"ratio_min"`` / ``"ratio_max"`` and the raw lists ``"a_all"`` / ``"b_all"``.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = [], []
    for i in range(repeats):
        if i % 2 == 0:
            a.append(_timed(fn_a, device))
            b.append(_timed(fn_b, device))
        else:
            b.append(_timed(fn_b, device))
            a.append(_timed(fn_a, device))
    ratios = [x / y for x, y in zip(a, b)]
    return {
        "a_s": statistics.median(a),
        "b_s": statistics.median(b),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "a_all": a,
        "b_all": b,
    }


def _equispaced_mask(width: int, acceleration: int = 4, center_fraction: float = 0.08) -> torch.Tensor:
    """Column mask ``(1, 1, 1, W, 1)`` bool: every ``acceleration``-th column plus a centred ACS block."""
    mask = torch.zeros(1, 1, 1, width, 1, dtype=torch.bool)
    mask[..., ::acceleration, :] = True
    acs = max(4, round(width * center_fraction))
    start = (width - acs + 1) // 2
    mask[..., start : start + acs, :] = True
    return mask


def synthetic_slice(coils: int, h: int, w: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random masked k-space ``(B, C, H, W, 2)`` and its 4x equispaced mask ``(1, 1, 1, W, 1)`` (timing only)."""
    g = torch.Generator().manual_seed(seed)
    mask = _equispaced_mask(w)
    return torch.randn(batch, coils, h, w, 2, generator=g) * mask, mask


def machine_info() -> dict[str, Any]:
    """CPU model and count, library versions, threads and GPU of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import monai

    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import sigpy

        info["sigpy"] = sigpy.__version__
    except ImportError:  # pragma: no cover
        info["sigpy"] = None
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _num_params(net: torch.nn.Module) -> float:
    return sum(p.numel() for p in net.parameters()) / 1e6


# ---------------------------------------------------------------------------------- 1. the engine
def _bundle_parser(overrides: dict[str, Any]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser["bundle_root"] = str(BUNDLE)
    parser["manifest"] = str(MANIFEST)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def bench_engine(steps: int, warmup: int, network_size: str | None, num_workers: int | None, mlflow: bool) -> dict:
    """Engine step vs bare step (interleaved on the same batch) and the data-wait fraction of an undisturbed run."""
    from ignite.engine import Events
    from monai.handlers import LrScheduleHandler

    from pipeline.data.simulate import ensure_dataset
    from pipeline.engines import JSSLTrainer, seed_everything
    from pipeline.engines.trainer import batch_recon_size, network_inputs
    from pipeline.keys import Keys

    ensure_dataset(MANIFEST)
    tmp = tempfile.TemporaryDirectory(prefix="jssl_speed_")
    overrides: dict[str, Any] = {"output_dir": tmp.name, "epoch_length": warmup + steps, "max_epochs": 1}
    if network_size is not None:
        overrides["network_size"] = network_size
    if num_workers is not None:
        overrides["num_workers"] = num_workers
    parser = _bundle_parser(overrides)
    seed_everything(0)
    device = parser.get_parsed_content("device")
    loader = parser.get_parsed_content("train_loader")
    network = parser.get_parsed_content("network")
    optimizer = parser.get_parsed_content("optimizer")
    losses = parser.get_parsed_content("losses")
    scheduler = parser.get_parsed_content("lr_scheduler")
    settings = {
        key: parser.get_parsed_content(key)
        for key in ("precision", "grad_clip_norm", "branch_weights", "batch_size", "num_workers", "network_size", "mode")
    }
    tracker = None
    if mlflow:
        parser["tracker"]["artifacts"] = []
        tracker = parser.get_parsed_content("tracker")

    def make_trainer() -> JSSLTrainer:
        handlers: list[Any] = [LrScheduleHandler(scheduler, epoch_level=False, print_lr=False)]
        if tracker is not None:
            handlers.append(tracker)
        return JSSLTrainer(
            device=device,
            max_epochs=1,
            train_data_loader=loader,
            network=network,
            optimizer=optimizer,
            losses=losses,
            branch_weights=settings["branch_weights"],
            precision=settings["precision"],
            grad_clip_norm=settings["grad_clip_norm"],
            epoch_length=warmup + steps,
            train_handlers=handlers,
        )

    # --- run A: undisturbed training loop, time waiting for batches vs everything else
    marks: dict[str, list[float]] = {"get_start": [], "get_done": [], "iter_done": []}
    trainer = make_trainer()
    trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda e: marks["get_start"].append(time.perf_counter()))
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, lambda e: marks["get_done"].append(time.perf_counter()))

    def _iter_done(engine: Any) -> None:
        _sync(device)
        marks["iter_done"].append(time.perf_counter())

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _iter_done)
    trainer.run()
    n = min(len(marks["get_start"]), len(marks["get_done"]), len(marks["iter_done"]))
    waits = [marks["get_done"][k] - marks["get_start"][k] for k in range(warmup, n)]
    computes = [marks["iter_done"][k] - marks["get_done"][k] for k in range(warmup, n)]
    wall = marks["iter_done"][n - 1] - marks["get_start"][warmup]
    data = {
        "steps": len(waits),
        "wait_fraction": sum(waits) / wall,
        "wait_median_ms": 1000 * statistics.median(waits),
        "wait_max_ms": 1000 * max(waits),
        "step_median_s": statistics.median(computes),
        "wall_s": wall,
    }

    # --- run B: engine step and bare step alternate on the same batch (order swapped every step)
    bare_net = copy.deepcopy(network)
    bare_opt = type(optimizer)(bare_net.parameters(), **{k: v for k, v in optimizer.defaults.items()})
    clip = settings["grad_clip_norm"]

    def bare_step(batch: dict) -> None:
        branch = batch[Keys.BRANCH]
        kspace_in, mask_in, nlf = network_inputs(batch, device)
        ref_kspace = batch[Keys.KSPACE].to(device)
        loss_mask = batch[Keys.LOSS_MASK].to(device) if branch == "ssl" else None
        ref_image = None if branch == "ssl" else batch[Keys.TARGET].to(device)
        data_range = None if ref_image is None else ref_image.flatten(1).amax(dim=1)
        bare_net.train()
        bare_opt.zero_grad(set_to_none=True)
        output = bare_net(kspace_in, mask_in, nlf)
        loss, _ = losses[branch](output, ref_kspace, ref_image, loss_mask, data_range, crop_size=batch_recon_size(batch))
        (settings["branch_weights"].get(branch, 1.0) * loss).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(bare_net.parameters(), clip)
        bare_opt.step()

    engine_times: list[float] = []
    bare_times: list[float] = []
    branches: list[str] = []
    state: dict[str, float] = {}
    trainer = make_trainer()

    def _bare_before(engine: Any) -> None:  # odd steps: bare step first (first handler of the step)
        state["k"] = state.get("k", 0) + 1
        if state["k"] % 2 == 1:
            bare_times.append(_timed(lambda: bare_step(engine.state.batch), device))

    def _engine_start(engine: Any) -> None:
        _sync(device)
        state["t0"] = time.perf_counter()

    def _engine_stop(engine: Any) -> None:
        _sync(device)
        engine_times.append(time.perf_counter() - state["t0"])
        branches.append(engine.state.batch[Keys.BRANCH])

    def _bare_after(engine: Any) -> None:  # even steps: engine step first
        if state["k"] % 2 == 0:
            bare_times.append(_timed(lambda: bare_step(engine.state.batch), device))

    # the engine step is timed from "batch arrived" to "every ITERATION_COMPLETED handler done"
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, _bare_before)
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, _engine_start)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, _engine_stop)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, _bare_after)
    trainer.run()
    pairs = list(zip(engine_times, bare_times))[warmup:]
    ratios = [e / b for e, b in pairs]
    overhead = {
        "steps": len(pairs),
        "branches": branches[warmup:],
        "engine_s": statistics.median(e for e, _ in pairs),
        "bare_s": statistics.median(b for _, b in pairs),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }
    tmp.cleanup()
    return {
        "settings": {**settings, "mlflow": mlflow, "params_M": _num_params(network), "device": str(device)},
        "data_wait": data,
        "overhead": overhead,
    }


# ------------------------------------------------------------------------------- 2. ours vs MONAI
def _monai_varnet(num_cascades: int, chans: int, sens_chans: int) -> torch.nn.Module:
    from monai.apps.reconstruction.networks.nets.coil_sensitivity_model import CoilSensitivityModel
    from monai.apps.reconstruction.networks.nets.complex_unet import ComplexUnet
    from monai.apps.reconstruction.networks.nets.varnet import VariationalNetworkModel

    def features(c: int) -> tuple[int, ...]:
        return (c, 2 * c, 4 * c, 8 * c, 16 * c, c)

    return VariationalNetworkModel(
        CoilSensitivityModel(spatial_dims=2, features=features(sens_chans)),
        ComplexUnet(spatial_dims=2, features=features(chans)),
        num_cascades=num_cascades,
    )


def _step_fns(net: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, image_of: Callable) -> dict:
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    target = torch.rand(kspace.shape[0], kspace.shape[2], kspace.shape[3])

    def forward() -> None:
        net.eval()
        with torch.no_grad():
            net(kspace, mask)

    def train() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        (image_of(net(kspace, mask)) - target).abs().mean().backward()
        opt.step()

    return {"forward": forward, "train": train}


def bench_vs_monai(nets: list, inputs: list, repeats: int) -> list[dict]:
    """Forward and train step (L1 on the RSS image + Adam) of JSSLVarNet vs MONAI at matched sizes."""
    from pipeline.networks import JSSLVarNet

    rows = []
    for num_cascades, chans, sens_chans in nets:
        for coils, h, w in inputs:
            torch.manual_seed(0)
            kspace, mask = synthetic_slice(coils, h, w)
            ours = JSSLVarNet(num_cascades=num_cascades, chans=chans, pools=4, sens_chans=sens_chans, sens_pools=4)
            theirs = _monai_varnet(num_cascades, chans, sens_chans)
            fa = _step_fns(ours, kspace, mask, lambda out: out.image)
            fb = _step_fns(theirs, kspace, mask, lambda out: out)
            row: dict[str, Any] = {
                "network": f"{num_cascades} cascades, {chans} chans (sens {sens_chans})",
                "input": f"{coils} coils {h}x{w}",
                "params_M_ours": _num_params(ours),
                "params_M_monai": _num_params(theirs),
            }
            for kind in ("forward", "train"):
                row[kind] = paired(fa[kind], fb[kind], repeats)
            rows.append(row)
            print(
                f"  vs MONAI {row['network']}, {row['input']}: forward ratio {row['forward']['ratio']:.2f}, "
                f"train ratio {row['train']['ratio']:.2f}",
                flush=True,
            )
    return rows


# ------------------------------------------------------------------- 3. inference vs compressed sensing
def _demo_test_slice() -> dict:
    """Middle slice of the first demo test volume through the bundle's validation transforms, batched (B=1)."""
    from monai.data import list_data_collate

    from pipeline.data import manifest_dataset
    from pipeline.data.simulate import ensure_dataset

    ensure_dataset(MANIFEST)
    parser = _bundle_parser({})
    dataset = manifest_dataset(MANIFEST, "test", transform=parser.get_parsed_content("val_transforms"))
    first_volume = [i for i, item in enumerate(dataset.data) if item["file"] == dataset.data[0]["file"]]
    index = first_volume[len(first_volume) // 2]
    return list_data_collate([dataset[index]])


def bench_inference(repeats: int, fastmri: bool) -> dict:
    """Per-slice network forward vs L1-wavelet CS at demo size (real test slice) and fastMRI size (synthetic)."""
    from pipeline.baselines import l1_wavelet, zero_filled
    from pipeline.engines.trainer import batch_recon_size, network_inputs
    from pipeline.handlers.checkpoint import load_weights
    from pipeline.keys import Keys
    from pipeline.metrics import ssim
    from pipeline.networks import build_varnet
    from pipeline.physics import center_crop

    results: dict[str, Any] = {}
    cpu = torch.device("cpu")
    batch = _demo_test_slice()
    kspace, mask, nlf = network_inputs(batch, cpu)
    recon = batch_recon_size(batch)
    net = build_varnet("demo").eval()
    weights = BUNDLE / "models" / "model.pt"
    trained = weights.is_file()
    if trained:
        load_weights(net, weights)
    out: dict[str, torch.Tensor] = {}

    def run_net() -> None:
        with torch.no_grad():
            out["net"] = center_crop(net(kspace, mask, nlf).image, recon)[0]

    def run_cs() -> None:
        out["cs"] = l1_wavelet(kspace[0], mask[0], recon)

    timing = paired(run_net, run_cs, repeats)
    coils, h, w = kspace.shape[1:4]
    demo: dict[str, Any] = {
        "input": f"demo test slice, {coils} coils {h}x{w} (recon {recon[0]}x{recon[1]})",
        "weights": "trained (bundles/jssl_varnet/models/model.pt)" if trained else "random (no trained weights)",
        "net_s": timing["a_s"],
        "cs_s": timing["b_s"],
        "ratio": timing["ratio"],
        "timing": timing,
    }
    scale = float(torch.as_tensor(batch[Keys.SCALE]).reshape(-1)[0]) if Keys.SCALE in batch else 1.0
    if Keys.TARGET in batch:
        gt = batch[Keys.TARGET][0, 0] * scale
        vmax = float(torch.as_tensor(batch.get(Keys.MAX, 0.0)).reshape(-1)[0]) or None
        demo["ssim_cs"] = ssim(gt[None], (out["cs"] * scale)[None], vmax)
        demo["ssim_zero_filled"] = ssim(gt[None], (zero_filled(kspace[0], mask[0], recon) * scale)[None], vmax)
        demo["ssim_net"] = ssim(gt[None], (out["net"] * scale)[None], vmax) if trained else None
    results["demo"] = demo
    print(f"  inference demo: net {demo['net_s']:.3f} s, CS {demo['cs_s']:.2f} s, ratio {demo['ratio']:.3f}", flush=True)

    if fastmri:
        coils, h, w = FASTMRI_SHAPE
        kspace, mask = synthetic_slice(coils, h, w)
        mask = mask.expand(1, 1, h, w, 1)  # the baselines take a per-slice (1, H, W, 1) mask
        net = build_varnet("fastmri").eval()
        recon = (320, 320)
        net_s = _timed(lambda: _forward_no_grad(net, kspace, mask))
        cs_s = _timed(lambda: l1_wavelet(kspace[0], mask[0], recon))
        results["fastmri"] = {
            "input": f"synthetic {coils} coils {h}x{w}, fastmri network (random weights), 1 repeat",
            "params_M": _num_params(net),
            "net_s": net_s,
            "cs_s": cs_s,
            "ratio": net_s / cs_s,
        }
        print(f"  inference fastMRI: net {net_s:.1f} s, CS {cs_s:.1f} s", flush=True)
    return results


def _forward_no_grad(net: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor) -> None:
    with torch.no_grad():
        net(kspace, mask)


# ------------------------------------------------------------------------------------ 4. memory
def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_worker(spec: dict) -> dict:
    """One training step in THIS process; peak resident memory above the pre-step baseline (run in a fresh process)."""
    from pipeline.networks import build_varnet

    size_kib, available = _rss_kib("VmSize"), _available_kib()
    if size_kib and available:  # fail with a MemoryError here rather than wake the OOM killer for others
        limit = (size_kib + int(0.9 * available)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.manual_seed(0)
    coils, h, w = spec["shape"]
    net = build_varnet(spec["size"], use_checkpoint=spec["checkpoint"]).train()
    kspace, mask = synthetic_slice(coils, h, w, batch=spec.get("batch", 1))
    target = torch.rand(kspace.shape[0], h, w)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    # gradients and Adam state exist before the baseline, so the peak above it is activations + temporaries
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=False)
    gc.collect()
    reset = False
    try:  # Linux >= 4.0: "5" resets the peak resident set size (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        pass
    base_kib = _rss_kib("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    (net(kspace, mask).image - target).abs().mean().backward()
    opt.step()
    seconds = time.perf_counter() - start
    hwm_kib = _rss_kib("VmHWM") if reset else None
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kib = hwm_kib if hwm_kib is not None else maxrss_after
    return {
        "baseline_GiB": (base_kib or maxrss_before) / 2**20,
        "peak_GiB": peak_kib / 2**20,
        "activation_GiB": (peak_kib - (base_kib or maxrss_before)) / 2**20,
        "step_s": seconds,
        "method": "VmHWM reset via /proc/self/clear_refs" if hwm_kib is not None else "ru_maxrss",
        "params_M": _num_params(net),
    }


def _available_kib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_memory(size: str, shape: tuple[int, int, int], timeout: int) -> dict:
    """Training-step peak memory without / with gradient checkpointing, each in a fresh subprocess."""
    rows: dict[str, Any] = {"size": size, "input": f"{shape[0]} coils {shape[1]}x{shape[2]}, batch 1"}
    for label, checkpoint in (("no_checkpoint", False), ("checkpoint", True)):
        spec = {"size": size, "shape": list(shape), "checkpoint": checkpoint}
        available = _available_kib()
        cmd = [sys.executable, "-m", "pipeline.bench.speed", "--memory-worker", json.dumps(spec)]
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            rows[label] = {"error": f"timed out after {timeout} s"}
            continue
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            rows[label] = {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
        else:
            rows[label] = json.loads(lines[-1])
        rows[label]["mem_available_before_GiB"] = (available or 0) / 2**20
        print(f"  memory {size} {label}: {rows[label]}", flush=True)
    a = rows["no_checkpoint"].get("activation_GiB")
    b = rows["checkpoint"].get("activation_GiB")
    rows["ratio"] = a / b if a and b else None
    return rows


# ------------------------------------------------------------------------------------------ 5. GPU
def bench_gpu(quick: bool, repeats: int) -> dict:
    """GPU step time, peak allocated memory and bf16 AMP speed-up; ``{"available": False}`` without CUDA."""
    if not torch.cuda.is_available():
        return {"available": False, "note": "no GPU in this run"}
    from pipeline.engines.trainer import autocast_context
    from pipeline.networks import build_varnet

    device = torch.device("cuda")
    cases = [("tiny", 2, (4, 64, 64))] if quick else [("demo", 2, (8, 256, 136)), ("fastmri", 1, FASTMRI_SHAPE)]
    rows = []
    for size, batch, (coils, h, w) in cases:
        kspace, mask = synthetic_slice(coils, h, w, batch=batch)
        kspace, mask = kspace.to(device), mask.to(device)
        target = torch.rand(batch, h, w, device=device)
        row: dict[str, Any] = {"size": size, "input": f"{coils} coils {h}x{w}, batch {batch}"}
        for checkpoint in (False, True):
            net = build_varnet(size, use_checkpoint=checkpoint).to(device).train()
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)

            def step(precision: str) -> None:
                opt.zero_grad(set_to_none=True)
                with autocast_context(device, precision):
                    image = net(kspace, mask).image
                (image.float() - target).abs().mean().backward()
                opt.step()

            tag = "checkpoint" if checkpoint else "plain"
            if not checkpoint:
                timing = paired(lambda: step("fp32"), lambda: step("bf16"), repeats, warmup=2, device=device)
                row["fp32_step_s"] = timing["a_s"]
                row["bf16_step_s"] = timing["b_s"]
                row["bf16_speedup"] = 1.0 / timing["ratio"]
            for precision in ("fp32", "bf16"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step(precision)
                torch.cuda.synchronize()
                row[f"{tag}_{precision}_peak_GiB"] = (torch.cuda.max_memory_allocated() - base) / 2**30
            del net, opt
            torch.cuda.empty_cache()
        rows.append(row)
    return {"available": True, "device": torch.cuda.get_device_name(0), "rows": rows}


# --------------------------------------------------------------------------------------- report
def _met(value: float | None, ok: bool) -> str:
    return "n/a" if value is None else ("yes" if ok else "**no**")


def summarise(report: dict) -> list[dict]:
    """One row per headline figure: ``{"measurement", "ours", "reference", "ratio", "target", "met"}``."""
    rows: list[dict] = []
    eng = report.get("engine")
    if eng:
        o, d = eng["overhead"], eng["data_wait"]
        rows.append({
            "measurement": f"JSSLTrainer step vs bare step ({eng['settings']['network_size']} net, batch "
                           f"{eng['settings']['batch_size']}, {eng['settings']['num_workers']} workers, {o['steps']} steps)",
            "ours": f"{o['engine_s']:.3f} s", "reference": f"{o['bare_s']:.3f} s", "ratio": o["ratio"],
            "target": TARGETS["engine_overhead"], "met": _met(o["ratio"], o["ratio"] <= 1.10),
        })
        rows.append({
            "measurement": f"time waiting for data / wall time (undisturbed run, {d['steps']} steps)",
            "ours": f"{1000 * d['wall_s'] * d['wait_fraction'] / max(d['steps'], 1):.0f} ms/step waiting",
            "reference": f"{d['step_median_s']:.3f} s/step compute", "ratio": d["wait_fraction"],
            "target": TARGETS["data_wait_fraction"], "met": _met(d["wait_fraction"], d["wait_fraction"] <= 0.05),
        })
    for row in report.get("vs_monai", []):
        for kind in ("forward", "train"):
            r = row[kind]
            rows.append({
                "measurement": f"{kind}: ours vs MONAI VarNet, {row['network']}, {row['input']} "
                               f"({row['params_M_ours']:.2f} M vs {row['params_M_monai']:.2f} M params)",
                "ours": f"{1000 * r['a_s']:.0f} ms", "reference": f"{1000 * r['b_s']:.0f} ms", "ratio": r["ratio"],
                "target": TARGETS["vs_monai"], "met": _met(r["ratio"], r["ratio"] <= 1.0),
            })
    inf = report.get("inference", {})
    for key in ("demo", "fastmri"):
        if key in inf:
            r = inf[key]
            rows.append({
                "measurement": f"inference per slice vs L1-wavelet CS (100 it.), {r['input']}",
                "ours": f"{r['net_s']:.3f} s", "reference": f"{r['cs_s']:.2f} s", "ratio": r["ratio"],
                "target": TARGETS["inference_vs_cs"], "met": _met(r["ratio"], r["ratio"] < 1.0),
            })
    if "demo" in inf and inf["demo"].get("ssim_cs") is not None:
        r = inf["demo"]
        net_ssim = "n/a (no trained weights)" if r.get("ssim_net") is None else f"{r['ssim_net']:.4f}"
        rows.append({
            "measurement": "SSIM on that demo test slice (zero-filled " + f"{r['ssim_zero_filled']:.4f})",
            "ours": net_ssim, "reference": f"{r['ssim_cs']:.4f}",
            "ratio": None if r.get("ssim_net") is None else r["ssim_net"] / r["ssim_cs"],
            "target": ">= CS", "met": "n/a" if r.get("ssim_net") is None else _met(1, r["ssim_net"] >= r["ssim_cs"]),
        })
    mem = report.get("memory")
    if mem:
        a, b = mem["no_checkpoint"], mem["checkpoint"]
        ratio = mem.get("ratio")
        fmt = lambda x: f"{x['activation_GiB']:.2f} GiB ({x['step_s']:.0f} s)" if "activation_GiB" in x else x.get("error", "?")
        rows.append({
            "measurement": f"peak activation memory of a training step, {mem['size']} net, {mem['input']}: "
                           "no checkpointing vs checkpointing (ratio = reduction)",
            "ours": fmt(a), "reference": fmt(b), "ratio": ratio,
            "target": TARGETS["checkpoint_memory"], "met": _met(ratio, ratio is not None and ratio >= 2.0),
        })
    gpu = report.get("gpu", {})
    if not gpu.get("available"):
        rows.append({"measurement": "GPU step time, memory, bf16 AMP speed-up", "ours": "no GPU in this run",
                     "reference": "-", "ratio": None, "target": "-", "met": "n/a"})
    else:
        for r in gpu["rows"]:
            rows.append({
                "measurement": f"GPU ({gpu['device']}) train step, {r['size']} net, {r['input']}: fp32 vs bf16 AMP "
                               f"(peak fp32 {r['plain_fp32_peak_GiB']:.2f} GiB, bf16 {r['plain_bf16_peak_GiB']:.2f} GiB, "
                               f"fp32+checkpoint {r['checkpoint_fp32_peak_GiB']:.2f} GiB)",
                "ours": f"{1000 * r['fp32_step_s']:.1f} ms", "reference": f"{1000 * r['bf16_step_s']:.1f} ms",
                "ratio": r["bf16_speedup"], "target": "bf16 speed-up (informative)", "met": "n/a",
            })
    return rows


def to_markdown(report: dict) -> str:
    """The summary table plus the machine it ran on."""
    m = report["meta"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpus_usable']} usable CPUs, {m['torch_threads']} torch threads; "
        f"torch {m['torch']}, MONAI {m['monai']}, sigpy {m.get('sigpy')}; GPU: {m['gpu'] or 'none'}; "
        f"load average at start {m.get('load_average_at_start')}; {m['date']}"
        + ("; **--quick smoke run (tiny sizes, not representative)**" if m.get("quick") else ""),
        "",
        f"Command: `{m.get('command', '')}`",
        "",
        "Ratios are medians of per-repetition ratios of the two things timed alternately in one process "
        "(order swapped every repetition). For the engine: ratio = engine step / bare step.",
        "",
        "| measurement | ours | reference | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in report["summary"]:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(f"| {row['measurement']} | {row['ours']} | {row['reference']} | {ratio} | {row['target']} | {row['met']} |")
    for key, error in report.get("errors", {}).items():
        lines.append(f"| {key} | FAILED: {error} | | | | **no** |")
    lines += ["", "Notes:", ""] + [f"- {note}" for note in NOTES]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> bool:
    """Horizontal bar chart of the ratios with their targets; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return False
    bars: list[tuple[str, float, float | None]] = []
    eng = report.get("engine")
    if eng:
        bars.append(("engine / bare step", eng["overhead"]["ratio"], 1.10))
        bars.append(("data-wait fraction", eng["data_wait"]["wait_fraction"], 0.05))
    for row in report.get("vs_monai", []):
        short = row["network"].split(" (")[0].replace(" cascades, ", "c/").replace(" chans", "ch")
        for kind in ("forward", "train"):
            bars.append((f"ours/MONAI {kind} {short} {row['input'].replace(' coils ', 'c ')}", row[kind]["ratio"], 1.0))
    for key in ("demo", "fastmri"):
        if key in report.get("inference", {}):
            bars.append((f"net / CS time, {key}", report["inference"][key]["ratio"], 1.0))
    mem = report.get("memory")
    if mem and mem.get("ratio"):
        bars.append(("checkpoint memory reduction (x)", mem["ratio"], 2.0))
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(bars) + 1.2))
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


# -------------------------------------------------------------------------------------------- CLI
def run(args: argparse.Namespace) -> dict:
    """Run the selected parts and return the report."""
    quick = args.quick
    repeats = args.repeats if args.repeats is not None else (2 if quick else 7)
    meta = machine_info()
    meta.update({"command": "python -m pipeline.bench.speed " + " ".join(sys.argv[1:]), "quick": quick, "repeats": repeats, "statistic": "median of per-repetition ratios, interleaved"})
    report: dict[str, Any] = {"meta": meta}
    parts = set(args.parts)
    t0 = time.perf_counter()

    def part(key: str, label: str, fn: Callable[[], Any]) -> None:
        if key not in parts:
            return
        print(f"{label} ...", flush=True)
        try:
            report[key if key != "monai" else "vs_monai"] = fn()
        except Exception as err:  # one broken part must not lose the others
            report.setdefault("errors", {})[key] = f"{type(err).__name__}: {err}"
            print(f"  {key} FAILED: {type(err).__name__}: {err}", flush=True)

    engine_steps = args.engine_steps if args.engine_steps is not None else (3 if quick else 16)
    part("engine", "engine overhead and data wait", lambda: bench_engine(
        engine_steps, warmup=1 if quick else 2, network_size="tiny" if quick else None,
        num_workers=args.num_workers, mlflow=args.mlflow,
    ))
    part("monai", "ours vs MONAI", lambda: bench_vs_monai(
        MONAI_NETS[:1] if quick else MONAI_NETS, MONAI_INPUTS[:1] if quick else MONAI_INPUTS, repeats
    ))
    part("inference", "inference vs compressed sensing",
         lambda: bench_inference(1 if quick else min(repeats, 3), fastmri=not quick))
    part("memory", "peak memory with / without checkpointing (fresh subprocesses)", lambda: (
        bench_memory("demo", (4, 128, 96), timeout=300) if quick else bench_memory("fastmri", FASTMRI_SHAPE, 1200)
    ))
    report["gpu"] = {"available": False, "note": "not run"}
    part("gpu", "GPU", lambda: bench_gpu(quick, repeats))
    meta["total_s"] = time.perf_counter() - t0
    report["summary"] = summarise(report)
    return report


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and write ``speed.json``, ``speed.md`` and ``speed.png``."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Targets: " + "; ".join(f"{k} {v}" for k, v in TARGETS.items()),
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "speed", help="output folder")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, 2 repeats, no fastMRI-size runs")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 7; 2 with --quick)")
    parser.add_argument("--engine-steps", type=int, default=None, help="measured trainer steps (default 16)")
    parser.add_argument("--num-workers", type=int, default=None, help="override the bundle's DataLoader workers")
    parser.add_argument("--mlflow", action="store_true", help="attach the bundle's MLflow tracker (temp folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's); 1 is steadier on a CPU shared with other jobs")
    parser.add_argument(
        "--parts", nargs="+", default=["engine", "monai", "inference", "memory", "gpu"],
        choices=["engine", "monai", "inference", "memory", "gpu"], help="what to run",
    )
    parser.add_argument("--render", type=Path, default=None,
                        help="re-write speed.md/speed.png from an existing speed.json (no measuring)")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker is not None:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))), flush=True)
        return
    if args.render is not None:
        report = json.loads(args.render.read_text())
        report["summary"] = summarise(report)
    else:
        report = run(args)
    table = to_markdown(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "speed.md").write_text("# Speed and memory benchmark\n\n" + table + "\n")
    plot(report, args.out / "speed.png")


if __name__ == "__main__":
    main()

"""GPU step time, peak allocated memory and the bf16 AMP speed-up (only when CUDA is present)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from pipeline.bench.common import paired
from pipeline.bench.speed.synthetic import FASTMRI_SHAPE, synthetic_slice

__all__ = ["bench_gpu"]


def _train_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, kspace: torch.Tensor, mask: torch.Tensor,
    target: torch.Tensor, precision: str,
) -> None:
    """One L1-on-the-image training step under :func:`~pipeline.engines.batching.autocast_context`."""
    from pipeline.engines.batching import autocast_context

    opt.zero_grad(set_to_none=True)
    with autocast_context(kspace.device, precision):
        image = net(kspace, mask).image
    (image.float() - target).abs().mean().backward()
    opt.step()


def _row(size: str, batch: int, shape: tuple[int, int, int], repeats: int, device: torch.device) -> dict[str, Any]:
    """fp32 vs bf16 step time of one network size, and peak memory of fp32/bf16 with/without checkpointing."""
    from pipeline.networks import build_network

    coils, h, w = shape
    kspace, mask = synthetic_slice(coils, h, w, batch=batch)
    kspace, mask = kspace.to(device), mask.to(device)
    target = torch.rand(batch, h, w, device=device)
    row: dict[str, Any] = {"size": size, "input": f"{coils} coils {h}x{w}, batch {batch}"}
    for checkpoint in (False, True):
        net = build_network("varnet", size, use_checkpoint=checkpoint).to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        step = functools.partial(_train_step, net, opt, kspace, mask, target)
        tag = "checkpoint" if checkpoint else "plain"
        if not checkpoint:
            timing = paired(lambda s=step: s("fp32"), lambda s=step: s("bf16"), repeats, warmup=2, device=device)
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
        del net, opt, step
        torch.cuda.empty_cache()
    return row


def bench_gpu(quick: bool, repeats: int) -> dict[str, Any]:
    """GPU step time, peak allocated memory and bf16 AMP speed-up.

    Args:
        quick: only the tiny network on a small input.
        repeats: interleaved fp32/bf16 repetitions.

    Returns:
        ``{"available": True, "device": name, "rows": [...]}``; ``{"available": False, "note": ...}`` without CUDA.
    """
    if not torch.cuda.is_available():
        return {"available": False, "note": "no GPU in this run"}
    device = torch.device("cuda")
    cases = [("tiny", 2, (4, 64, 64))] if quick else [("demo", 2, (8, 256, 136)), ("fastmri", 1, FASTMRI_SHAPE)]
    rows = [_row(size, batch, shape, repeats, device) for size, batch, shape in cases]
    return {"available": True, "device": torch.cuda.get_device_name(0), "rows": rows}

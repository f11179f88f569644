"""Where a training step's time goes: ``torch.profiler`` self time of one step, grouped into kinds of work."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.bench.speed.synthetic import synthetic_slice

__all__ = ["CATEGORIES", "OTHER", "PROFILE_CASES", "profile_step"]

#: Kind of work -> substrings of the ATen operator names counted in it (first match wins; the rest is "other").
CATEGORIES: dict[str, tuple[str, ...]] = {
    "convolutions (forward + backward)": ("convolution", "conv2d", "conv_transpose", "mkldnn"),
    "instance norm (forward + backward)": ("group_norm", "instance_norm", "batch_norm"),
    "LeakyReLU / ReLU / PReLU": ("relu", "prelu"),
    "FFTs": ("_fft",),
    "pooling, padding, concatenation": ("pool", "pad", "cat", "replication"),
    "optimiser (Adam)": ("addcdiv", "lerp", "_foreach", "addcmul"),
    "complex arithmetic, data consistency, copies": ("mul", "add", "sub", "div", "stack", "copy", "select", "sum",
                                                      "neg", "where", "roll", "sqrt", "norm", "pow", "var_mean",
                                                      "mean", "clamp", "abs", "fill", "zero", "index", "slice"),
}
#: Everything else: allocations, views, autograd and profiler bookkeeping.
OTHER = "other (allocation, views, autograd bookkeeping)"
#: Name -> (network, size, overrides, (coils, H, W)) of the profiled steps.
PROFILE_CASES: dict[str, tuple[str, str, dict[str, Any], tuple[int, int, int]]] = {
    "VarNet 6 cascades 16 ch, sens 16, 8 coils 128x128": (
        "varnet", "fastmri", {"num_cascades": 6, "chans": 16, "pools": 4, "sens_chans": 16, "sens_pools": 4},
        (8, 128, 128)),
    "vSHARP demo, 8 coils 256x136": ("vsharp", "demo", {}, (8, 256, 136)),
    "quick: VarNet tiny, 4 coils 64x64": ("varnet", "tiny", {}, (4, 64, 64)),
}


def profile_step(name: str) -> dict[str, Any]:
    """Profile one training step (forward + L1 on the image + backward + Adam) of a :data:`PROFILE_CASES` entry.

    Two unprofiled steps run first (allocator and oneDNN warm-up). The sensitivity model's share is its own
    forward + backward on the same input, profiled right after the step, over the step's total.

    Returns:
        ``{"case", "total_s", "shares": {kind: fraction of the step's self CPU time}, "sensitivity_share",
        "top_ops": [(op, seconds), ...]}``.
    """
    from torch.profiler import ProfilerActivity, profile

    from pipeline.networks import build_network
    from pipeline.networks.sensitivity import measured_input

    network, size, overrides, (coils, h, w) = PROFILE_CASES[name]
    torch.manual_seed(0)
    net = build_network(network, size, **overrides).train()
    kspace, mask = synthetic_slice(coils, h, w)
    target = torch.rand(1, h, w)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (net(kspace, mask).image - target).abs().mean().backward()
        opt.step()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    totals = {op.key: op.self_cpu_time_total / 1e6 for op in events if op.key.startswith("aten::")}
    total = sum(op.self_cpu_time_total for op in events) / 1e6
    shares = dict.fromkeys([*CATEGORIES, OTHER], 0.0)
    for op, seconds in totals.items():
        kind = next((k for k, keys in CATEGORIES.items() if any(key in op for key in keys)), OTHER)
        shares[kind] += seconds / total
    shares[OTHER] += 1.0 - sum(shares.values())
    # the sensitivity model alone: its forward + backward, same input, same process
    mask_f, ref = measured_input(kspace, mask)
    with profile(activities=[ProfilerActivity.CPU]) as sens_prof:
        net.sens_net(ref, mask_f).square().mean().backward()
    sens_total = sum(op.self_cpu_time_total for op in sens_prof.key_averages()) / 1e6
    return {
        "case": name, "total_s": total, "shares": shares, "sensitivity_share": sens_total / total,
        "top_ops": sorted(totals.items(), key=lambda kv: -kv[1])[:8],
    }

"""``torch.compile`` (inductor, CPU) vs eager: forward and train step side by side, compile time apart."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from pipeline.bench.common import interleaved, ratio_stats
from pipeline.bench.speed.peers import Contender, _steps
from pipeline.bench.speed.synthetic import synthetic_slice
from pipeline.networks import build_network, compile_unets

__all__ = ["bench_compiled"]


def bench_compiled(size: str, shape: tuple[int, int, int], repeats: int) -> dict[str, Any]:
    """Time the VarNet of ``size`` eager and with :func:`pipeline.networks.compile_unets`, round-robin in this process.

    Both copies hold the same weights. The first forward and the first train step of the compiled copy
    (where inductor compiles) are timed apart and left out of the comparison.

    Args:
        size: VarNet size (``"tiny"``, ``"demo"``, ``"fastmri"``).
        shape: ``(coils, H, W)`` of the synthetic slice (batch 1).
        repeats: timed repetitions of each phase.

    Returns:
        ``{"size", "input", "compile_s": {"forward", "train"}, "forward": ratio_stats, "train": ratio_stats}``
        with ``a`` = compiled and ``b`` = eager (ratio < 1 = compiled faster).
    """
    torch.manual_seed(0)
    eager = build_network("varnet", size)
    compiled = compile_unets(copy.deepcopy(eager))
    kspace, mask = synthetic_slice(*shape)
    target = torch.rand(1, shape[1], shape[2])
    steps = {name: _steps(Contender([net], lambda net=net: net(kspace, mask).image), target)
             for name, net in (("compiled", compiled), ("eager", eager))}
    result: dict[str, Any] = {"size": size, "input": f"{shape[0]} coils {shape[1]}x{shape[2]}, batch 1",
                              "compile_s": {}}
    for phase in ("forward", "train"):
        start = time.perf_counter()
        steps["compiled"][phase]()  # compiles this phase's graphs
        result["compile_s"][phase] = time.perf_counter() - start
        print(f"  compiled {size} {phase}: first call (compiling) {result['compile_s'][phase]:.1f} s", flush=True)
    for phase in ("forward", "train"):
        times = interleaved({name: fns[phase] for name, fns in steps.items()}, repeats, warmup=1)
        result[phase] = ratio_stats(times["compiled"], times["eager"])
        print(f"  compiled / eager {phase}: {result[phase]['ratio']:.3f}", flush=True)
    return result

"""Peak memory of a training step with and without gradient checkpointing, one fresh subprocess each.

Gradients and Adam state are allocated before the baseline, so the peak resident set size above it
(Linux ``VmHWM``, reset through ``/proc/self/clear_refs``; ``ru_maxrss`` elsewhere) is activations and
temporaries. The worker runs as ``python -m pipeline.bench.speed --memory-worker SPEC`` with the parent's
``sys.path`` and current directory, so it imports the same ``pipeline`` package as the parent.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pipeline.bench.common import num_params
from pipeline.bench.speed.synthetic import synthetic_slice

__all__ = ["MEMORY_CONFIGS", "bench_memory", "memory_worker", "run_worker"]


def _proc_kib(path: str, field: str) -> int | None:
    """A ``kB`` field of a ``/proc`` status file (``None`` where there is none)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One training step in THIS process (run it in a fresh one); peak resident memory above the pre-step baseline.

    Args:
        spec: ``{"network": registry name (default "varnet"), "size": network size, "shape": [coils, H, W],
            "checkpoint": bool, "batch": int (default 1), "overrides": builder arguments, "return_freed": bool
            (default: "checkpoint", as the bundle does; :func:`pipeline.engines.memory.return_freed_memory`)}``.

    Returns:
        ``baseline_GiB``, ``peak_GiB``, ``activation_GiB`` (peak minus baseline), ``step_s``, ``method``,
        ``params_M`` and ``return_freed`` (whether the allocator setting took effect).

    Raises:
        MemoryError: when the step would need more than 90% of the memory available at the start (the
            address-space limit set here fails the step instead of waking the OOM killer for others).
    """
    from pipeline.engines.memory import return_freed_memory
    from pipeline.networks import build_network

    returned = return_freed_memory(spec.get("return_freed", spec["checkpoint"]))
    size_kib, available = _proc_kib("/proc/self/status", "VmSize"), _proc_kib("/proc/meminfo", "MemAvailable")
    if size_kib and available:
        limit = (size_kib + int(0.9 * available)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.manual_seed(0)
    coils, h, w = spec["shape"]
    net = build_network(spec.get("network", "varnet"), spec["size"], use_checkpoint=spec["checkpoint"],
                        **spec.get("overrides", {})).train()
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
    base_kib = _proc_kib("/proc/self/status", "VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    (net(kspace, mask).image - target).abs().mean().backward()
    opt.step()
    seconds = time.perf_counter() - start
    hwm_kib = _proc_kib("/proc/self/status", "VmHWM") if reset else None
    peak_kib = hwm_kib if hwm_kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    baseline_kib = base_kib or maxrss_before
    return {
        "baseline_GiB": baseline_kib / 2**20,
        "peak_GiB": peak_kib / 2**20,
        "activation_GiB": (peak_kib - baseline_kib) / 2**20,
        "step_s": seconds,
        "method": "VmHWM reset via /proc/self/clear_refs" if hwm_kib is not None else "ru_maxrss",
        "params_M": num_params(net),
        "return_freed": returned,
    }


def run_worker(flag: str, spec: dict[str, Any], timeout: int) -> dict[str, Any]:
    """A benchmark worker in a fresh interpreter: ``python -m pipeline.bench.speed <flag> <spec as JSON>``.

    Args:
        flag: ``--memory-worker`` (:func:`memory_worker`) or ``--peer-worker``
            (:func:`pipeline.bench.speed.peers.peer_worker`).
        spec: the worker's settings.
        timeout: seconds before the worker is stopped.

    Returns:
        The worker's JSON result (its last stdout line starting with ``{``), or ``{"error": ...}``.
    """
    cmd = [sys.executable, "-m", "pipeline.bench.speed", flag, json.dumps(spec)]
    # the parent's import path, so that the worker imports the same ``pipeline`` package
    path = [p for p in sys.path if p] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": os.pathsep.join(path)}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


#: label -> (gradient checkpointing, freed memory returned at once): the bundle's default, the bundle with
#: ``gradient_checkpointing`` (which turns on :func:`pipeline.engines.memory.return_freed_memory`), and each
#: half of that alone.
MEMORY_CONFIGS: dict[str, tuple[bool, bool]] = {
    "no_checkpoint": (False, False),
    "checkpoint": (True, True),
    "checkpoint_heap": (True, False),
    "no_checkpoint_returned": (False, True),
}


def bench_memory(
    size: str, shape: tuple[int, int, int], timeout: int, num_cascades: int | None = None
) -> dict[str, Any]:
    """Training-step peak memory of each of :data:`MEMORY_CONFIGS`, each in a fresh subprocess.

    Args:
        size: network size (``"demo"``, ``"fastmri"``, ...).
        shape: ``(coils, H, W)`` of the synthetic slice (batch 1).
        timeout: seconds per subprocess.
        num_cascades: overrides the size's number of cascades (``None`` = the size's own).

    Returns:
        ``{"size", "input", "num_cascades", <one entry per configuration>, "ratio", "ratio_same_allocator",
        "ratio_checkpoint_heap"}``: ``ratio`` = activation memory of ``no_checkpoint`` / ``checkpoint`` (the
        bundle's two settings), ``ratio_same_allocator`` = ``no_checkpoint_returned`` / ``checkpoint``
        (checkpointing alone), ``ratio_checkpoint_heap`` = ``no_checkpoint`` / ``checkpoint_heap`` (before the
        allocator setting); each ``None`` when either run failed.
    """
    rows: dict[str, Any] = {"size": size, "input": f"{shape[0]} coils {shape[1]}x{shape[2]}, batch 1",
                            "num_cascades": num_cascades}
    for label, (checkpoint, returned) in MEMORY_CONFIGS.items():
        available = _proc_kib("/proc/meminfo", "MemAvailable")
        spec = {"size": size, "shape": list(shape), "checkpoint": checkpoint, "return_freed": returned,
                "overrides": {} if num_cascades is None else {"num_cascades": num_cascades}}
        rows[label] = run_worker("--memory-worker", spec, timeout)
        rows[label]["mem_available_before_GiB"] = (available or 0) / 2**20
        print(f"  memory {size} {label}: {rows[label]}", flush=True)

    def ratio(numerator: str, denominator: str) -> float | None:
        a, b = rows[numerator].get("activation_GiB"), rows[denominator].get("activation_GiB")
        return a / b if a and b else None

    rows["ratio"] = ratio("no_checkpoint", "checkpoint")
    rows["ratio_same_allocator"] = ratio("no_checkpoint_returned", "checkpoint")
    rows["ratio_checkpoint_heap"] = ratio("no_checkpoint", "checkpoint_heap")
    return rows

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

__all__ = ["bench_memory", "memory_worker", "run_worker"]


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
            "checkpoint": bool, "batch": int (default 1)}``.

    Returns:
        ``baseline_GiB``, ``peak_GiB``, ``activation_GiB`` (peak minus baseline), ``step_s``, ``method`` and
        ``params_M``.

    Raises:
        MemoryError: when the step would need more than 90% of the memory available at the start (the
            address-space limit set here fails the step instead of waking the OOM killer for others).
    """
    from pipeline.networks import build_network

    size_kib, available = _proc_kib("/proc/self/status", "VmSize"), _proc_kib("/proc/meminfo", "MemAvailable")
    if size_kib and available:
        limit = (size_kib + int(0.9 * available)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.manual_seed(0)
    coils, h, w = spec["shape"]
    net = build_network(spec.get("network", "varnet"), spec["size"], use_checkpoint=spec["checkpoint"]).train()
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


def bench_memory(size: str, shape: tuple[int, int, int], timeout: int) -> dict[str, Any]:
    """Training-step peak memory without / with gradient checkpointing, each in a fresh subprocess.

    Args:
        size: network size (``"demo"``, ``"fastmri"``, ...).
        shape: ``(coils, H, W)`` of the synthetic slice (batch 1).
        timeout: seconds per subprocess.

    Returns:
        ``{"size", "input", "no_checkpoint": {...}, "checkpoint": {...}, "ratio"}`` with ``ratio`` = activation
        memory without / with checkpointing (``None`` when either failed).
    """
    rows: dict[str, Any] = {"size": size, "input": f"{shape[0]} coils {shape[1]}x{shape[2]}, batch 1"}
    for label, checkpoint in (("no_checkpoint", False), ("checkpoint", True)):
        available = _proc_kib("/proc/meminfo", "MemAvailable")
        spec = {"size": size, "shape": list(shape), "checkpoint": checkpoint}
        rows[label] = run_worker("--memory-worker", spec, timeout)
        rows[label]["mem_available_before_GiB"] = (available or 0) / 2**20
        print(f"  memory {size} {label}: {rows[label]}", flush=True)
    a = rows["no_checkpoint"].get("activation_GiB")
    b = rows["checkpoint"].get("activation_GiB")
    rows["ratio"] = a / b if a and b else None
    return rows

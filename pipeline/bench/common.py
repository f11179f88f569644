"""What every benchmark shares: wall-clock timing (alone or interleaved) and the facts of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["interleaved", "machine_info", "median_seconds", "num_params", "paired", "ratio_stats", "sync", "timed"]


def sync(device: torch.device | None = None) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on a CPU or for ``None``)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | None = None) -> float:
    """Seconds of wall time of one call of ``fn`` (CUDA work on ``device`` included)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (JIT, caches, lazy imports).

    Example:
        >>> median_seconds(lambda: None, repeats=3) < 0.1
        True
    """
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, list[float]]:
    """Time several callables round-robin, the order rotated by one every repetition, after ``warmup`` rounds.

    With two callables the order alternates ``a b``, ``b a``, ...; with ``n`` each one takes every position
    once in ``n`` repetitions, so load from other processes and cache effects hit all of them alike.

    Args:
        fns: name -> callable, timed in the dict's order first.
        repeats: timed repetitions of each, ``>= 1``.
        warmup: untimed rounds of all first (JIT, caches, lazy imports).
        device: CUDA device to synchronise around every call (``None`` on a CPU).

    Returns:
        name -> the ``repeats`` wall times in seconds, repetition by repetition.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(fns[name], device))
    return times


def ratio_stats(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Medians and per-repetition ratios of two time series measured by :func:`interleaved`.

    Returns:
        ``{"a_s", "b_s"}`` medians in seconds, ``"ratio"`` = median of the per-repetition ``a / b``,
        ``"ratio_min"`` / ``"ratio_max"`` and the raw lists ``"a_all"`` / ``"b_all"`` (seconds).
    """
    ratios = [x / y for x, y in zip(a, b)]
    return {
        "a_s": statistics.median(a),
        "b_s": statistics.median(b),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "a_all": list(a),
        "b_all": list(b),
    }


def paired(
    fn_a: Callable[[], object],
    fn_b: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Time ``fn_a`` and ``fn_b`` alternately (order swapped every repetition) after ``warmup`` rounds.

    Load from other processes hits both sides alike, so the per-repetition ratio is steadier than the
    ratio of separately measured times.

    Args:
        fn_a: the measured thing.
        fn_b: the reference.
        repeats: timed repetitions of each, ``>= 1``.
        warmup: untimed rounds of both first.
        device: CUDA device to synchronise around every call (``None`` on a CPU).

    Returns:
        :func:`ratio_stats` of ``a`` against ``b``.
    """
    times = interleaved({"a": fn_a, "b": fn_b}, repeats, warmup, device)
    return ratio_stats(times["a"], times["b"])


def num_params(net: torch.nn.Module) -> float:
    """Parameters of ``net`` in millions."""
    return sum(p.numel() for p in net.parameters()) / 1e6


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of Linux's ``/proc/cpuinfo`` (``None`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_bf16() -> list[str] | None:
    """The CPU's bfloat16 hardware among Intel AMX tiles (``amx_bf16``) and AVX-512 BF16 (Linux only)."""
    flags = _cpuinfo("flags")
    return None if flags is None else sorted({"amx_bf16", "avx512_bf16"} & set(flags.split()))


def machine_info() -> dict[str, Any]:
    """The facts recorded next to every benchmark's numbers.

    Returns:
        ``cpu`` (model name), ``cpu_bf16`` (its bfloat16 units: ``amx_bf16``, ``avx512_bf16``; ``None`` off
        Linux), ``cpu_count``, ``cpus_usable`` (this process's affinity), ``torch_threads``, ``python``,
        ``platform``, library versions (``torch``, ``monai``, ``ignite``, ``numpy``, ``sigpy``, ``None`` when
        not installed), ``gpu`` (CUDA device name or ``None``), ``date`` and, where the OS
        has it, ``load_average_at_start`` (1, 5, 15 min).
    """
    import ignite
    import monai

    info: dict[str, Any] = {
        "cpu": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "cpu_bf16": _cpu_bf16(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "ignite": ignite.__version__,
        "numpy": np.__version__,
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

"""CLI benchmark: start-up check time over many small files, first run and from the header cache.

Usage: ``python -m pipeline.bench.startup [--files 1000] [--out bench_results/startup]``

Writes ``--files`` small fastMRI-layout volumes (2 slices, 2 coils, 16 x 12, with reference and ISMRMRD
header) and a manifest into a temporary folder, then times what a training start-up does with them
(:func:`pipeline.data.manifests.load_manifest` + :func:`pipeline.data.datasets.scan_items`):

- header check, first run (empty cache) and second run (every record from the cache);
- header + data check (what ``--on_bad_file skip`` does: every slice read once), first run and cached.

The files were just written, so the first run reads them from the OS page cache: on a cold disk or a
network file system the first run is slower, the cached run is not (it only stats the files). Prints a
markdown table and writes ``startup.json`` and ``startup.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.data.cache import HeaderCache
from pipeline.data.datasets import scan_items
from pipeline.data.ismrmrd import write_ismrmrd_header
from pipeline.data.manifests import load_manifest

__all__ = ["main", "run_benchmark", "write_collection"]


def write_collection(folder: Path, num_files: int, seed: int = 0) -> Path:
    """Write ``num_files`` small fastMRI-layout volumes under ``folder`` and their manifest; return it."""
    rng = np.random.default_rng(seed)
    header = np.bytes_(write_ismrmrd_header((16, 12), (8, 8), (1, 11)))
    items = []
    for i in range(num_files):
        rel = f"vol/{i // 100:03d}/file{i:05d}.h5"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        kspace = np.zeros((2, 2, 16, 12), np.complex64)
        kspace[..., 1:11] = rng.standard_normal((2, 2, 16, 10)) + 1j * rng.standard_normal((2, 2, 16, 10))
        with h5py.File(path, "w") as f:
            f["kspace"] = kspace
            f["reconstruction_rss"] = rng.random((2, 8, 8)).astype(np.float32)
            f["ismrmrd_header"] = header
            f.attrs["max"] = 1.0
        items.append({"file": rel})
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"data_root": ".", "proxy": items}))
    return manifest


def _timed(manifest: Path, cache_file: Path, check_data: bool) -> tuple[float, int]:
    start = time.perf_counter()
    cache = HeaderCache(cache_file)
    items = load_manifest(manifest, "proxy")
    scan = scan_items(items, on_error="skip" if check_data else "raise", cache=cache, check_data=check_data)
    seconds = time.perf_counter() - start
    assert len(scan.volumes) == len(items) and not scan.skipped
    return seconds, cache.hits


def run_benchmark(num_files: int, folder: Path) -> dict:
    """Time the four start-up variants over ``num_files`` files written under ``folder``."""
    manifest = write_collection(folder, num_files)
    rows = []
    for label, check_data in (("header check", False), ("header + data check (skip mode)", True)):
        cache_file = folder / f"cache-{int(check_data)}.json"
        for run in ("first run", "cached"):
            seconds, hits = _timed(manifest, cache_file, check_data)
            rows.append({"check": label, "run": run, "files": num_files, "seconds": seconds,
                         "ms_per_file": 1000 * seconds / num_files, "cache_hits": hits})
    return {
        "files": num_files,
        "file": "2 slices x 2 coils x 16 x 12 complex64, reference, ISMRMRD header",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "rows": rows,
    }


def _markdown(result: dict) -> str:
    lines = [f"Start-up check over {result['files']} files ({result['file']}); {result['machine']}.", "",
             "| check | run | files | time (s) | ms / file | cache hits |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['check']} | {row['run']} | {row['files']} | {row['seconds']:.2f} | "
                     f"{row['ms_per_file']:.2f} | {row['cache_hits']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="number of small files")
    parser.add_argument("--out", type=Path, default=Path("bench_results/startup"), help="output folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="startup_bench_") as tmp:
        result = run_benchmark(args.files, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(result, indent=2))
    markdown = _markdown(result)
    (args.out / "startup.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

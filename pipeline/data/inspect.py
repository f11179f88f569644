"""``python -m pipeline.data.inspect --manifest M``: what a manifest's data are, section by section.

Per section: files, slices, formats, coil counts, k-space shapes, recon sizes, the acquired fraction of
phase-encode columns, stored masks, the shape groups batches are drawn from, and every problem found (one
line per bad file, naming the file, the slice and what is wrong). Headers only by default (seconds for
thousands of files); ``--data`` also reads every slice once (NaN/Inf, truncated blocks, volumes that are
zero everywhere), as ``--on_bad_file skip`` training does at start-up. Results are cached per file
(:mod:`pipeline.data.cache`), shared with the training start-up check, so a second run, or the start-up
after an inspection, reads nothing. Exits 1 when a problem was found.

Example::

    python -m pipeline.data.inspect --manifest data_manifests/demo.json --json inspect.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.data.cache import HeaderCache, default_cache_path
from pipeline.data.datasets import Scan, scan_items
from pipeline.data.errors import DataError
from pipeline.data.manifests import load_manifest, manifest_sections
from pipeline.data.samplers import describe_groups

__all__ = ["inspect_manifest", "main", "section_summary"]


def _counts(values: list[Any]) -> str:
    return ", ".join(f"{value}: {n}" for value, n in Counter(values).most_common())


def section_summary(section: str, scan: Scan) -> dict[str, Any]:
    """The numbers of one section, JSON-ready.

    Args:
        section: the section's name.
        scan: what :func:`pipeline.data.datasets.scan_items` found for it.

    Returns:
        ``{"section", "files", "bad_files", "slices", "formats", "coils", "kspace", "recon", "masks",
        "acquired_fraction" (mean, min, max or ``None``), "groups", "problems"}``; the per-value entries map
        a value to its number of files.
    """
    infos = [info for _, info, _ in scan.volumes]
    fractions = [info.acquired_fraction for info in infos if info.acquired_fraction is not None]
    keys = [info.batch_key for _, info, slices in scan.volumes for _ in slices]
    sources = [str(item.get("source") or section) for item, _, slices in scan.volumes for _ in slices]
    return {
        "section": section,
        "files": len(scan.volumes) + len(scan.skipped),
        "bad_files": len(scan.skipped),
        "slices": len(keys),
        "formats": dict(Counter(info.format for info in infos)),
        "coils": dict(Counter(info.num_coils for info in infos)),
        "kspace": dict(Counter(f"{h}x{w}" for info in infos for h, w in [info.kspace_size])),
        "recon": dict(Counter(f"{h}x{w}" for info in infos for h, w in [info.recon_size])),
        "masks": dict(Counter(info.mask_layout or "none" for info in infos)),
        "acquired_fraction": (
            {"mean": sum(fractions) / len(fractions), "min": min(fractions), "max": max(fractions)}
            if fractions
            else None
        ),
        "groups": describe_groups(keys, sources),
        "problems": [str(err) for err in scan.skipped],
    }


def _print(summary: dict[str, Any]) -> None:
    print(f"section {summary['section']}: {summary['files']} files, {summary['slices']} slices, "
          f"{summary['bad_files']} bad")
    rows = [("formats", "formats"), ("coils", "coils"), ("k-space (H x W)", "kspace"), ("recon size", "recon"),
            ("stored masks", "masks")]
    for label, key in rows:
        print(f"  {label:<16}{_counts([v for v, n in summary[key].items() for _ in range(n)]) or '-'}")
    fraction = summary["acquired_fraction"]
    if fraction is not None:
        layouts = set(summary["masks"])
        if "none" not in layouts:
            source = "the stored masks"
        elif layouts == {"none"}:
            source = "the acquirable band"
        else:
            source = "the stored masks, or the acquirable band without one"
        print(f"  {'acquired':<16}{fraction['mean']:.3f} of phase-encode columns, by {source} "
              f"(min {fraction['min']:.3f}, max {fraction['max']:.3f})")
    for i, group in enumerate(summary["groups"]):
        print(f"  {'shape groups' if i == 0 else '':<16}{group}")
    for i, problem in enumerate(summary["problems"]):
        print(f"  {'problems' if i == 0 else '':<16}{problem}")
    if not summary["problems"]:
        print(f"  {'problems':<16}none")


def inspect_manifest(
    manifest: str | os.PathLike,
    sections: Sequence[str] | None = None,
    data_root: str | os.PathLike | None = None,
    check_data: bool = False,
    cache: HeaderCache | None = None,
) -> list[dict[str, Any]]:
    """Inspect the sections of a manifest (see the module docstring).

    Args:
        manifest: the datalist JSON.
        sections: sections to inspect (default: every non-empty one).
        data_root: overrides the manifest's data root.
        check_data: also read every slice once.
        cache: header cache (default: the manifest's, :func:`pipeline.data.cache.default_cache_path`).

    Returns:
        One :func:`section_summary` per section.

    Raises:
        DataError: the manifest or a section cannot be loaded.
    """
    cache = HeaderCache(default_cache_path(manifest)) if cache is None else cache
    out = []
    for section in sections or manifest_sections(manifest):
        items = load_manifest(manifest, section, data_root, check_files=False)
        out.append(section_summary(section, scan_items(items, on_error="skip", cache=cache, check_data=check_data)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 when no problem was found, 1 otherwise (2: the manifest cannot be read)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.data.inspect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, type=Path, help="MONAI datalist JSON")
    parser.add_argument("--sections", nargs="*", help="sections to inspect (default: all)")
    parser.add_argument("--data_root", type=Path, help="override the manifest's data root")
    parser.add_argument("--data", action="store_true", help="also read every slice once (NaN/Inf, truncation)")
    parser.add_argument("--cache", type=Path, help="header cache file (default: the manifest's in the user cache)")
    parser.add_argument("--json", type=Path, help="also write the summaries to this JSON file")
    args = parser.parse_args(argv)
    cache = HeaderCache(args.cache or default_cache_path(args.manifest))
    start = time.perf_counter()
    try:
        summaries = inspect_manifest(args.manifest, args.sections, args.data_root, args.data, cache)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    for summary in summaries:
        _print(summary)
    print(f"checked {sum(s['files'] for s in summaries)} files in {seconds:.2f} s "
          f"({cache.hits} from the cache {cache.path})")
    if args.json is not None:
        args.json.write_text(json.dumps({"seconds": seconds, "sections": summaries}, indent=2))
    return 1 if any(s["problems"] for s in summaries) else 0


if __name__ == "__main__":
    raise SystemExit(main())

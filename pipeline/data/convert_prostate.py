"""``python -m pipeline.data.convert_prostate IN... --out DIR``: fastMRI prostate T2 raw files to the JSSL
paper's preprocessed layout, once.

Each raw file (:mod:`pipeline.data.formats.prostate`) becomes a fastMRI multi-coil file of the same name in
``--out``: GRAPPA-filled, average-combined k-space ``(slices, coils, H, W)`` in the orientation of the
published reconstruction, its ``reconstruction_rss`` and a consistent ``ismrmrd_header``
(:func:`pipeline.data.formats.prostate.convert_file`). Existing outputs are kept unless ``--overwrite``.
Bad files are reported one line each (``error: <file>, slice <i>: <problem>``) and the others converted;
the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.errors import DataError
from pipeline.data.formats.prostate import convert_file

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: convert raw prostate T2 files to the paper's preprocessed layout (see :func:`convert_file`)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data.convert_prostate",
        description="Convert fastMRI prostate T2 raw files (GRAPPA fill, averages combined) to fastMRI "
        "multi-coil files (slices, coils, H, W), once.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="raw .h5 files or folders of them")
    parser.add_argument("--out", required=True, type=Path, help="output folder (same file names)")
    parser.add_argument("--overwrite", action="store_true", help="convert files whose output already exists")
    args = parser.parse_args(argv)
    files = [p for item in args.inputs for p in (sorted(item.glob("*.h5")) if item.is_dir() else [item])]
    failed = 0
    for i, path in enumerate(files, 1):
        target = args.out / path.name
        if target.exists() and not args.overwrite:
            print(f"[{i}/{len(files)}] {target} exists, kept")
            continue
        try:
            convert_file(path, target)
            print(f"[{i}/{len(files)}] {path} -> {target}")
        except DataError as err:
            failed += 1
            print(f"error: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())


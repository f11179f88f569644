"""Command line of the simulator: ``python -m pipeline.data.simulate --help``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.simulate.files import generate
from pipeline.data.simulate.presets import PRESETS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, simulate the preset and write its manifest.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status 0.

    Raises:
        SystemExit: for ``--help`` or bad arguments (argparse).
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data.simulate",
        description=(
            "Simulate fastMRI-layout multi-coil brain k-space from the MNI152 template shipped with nilearn "
            "(no network): a fully sampled proxy domain (axial T1-like) and a subsampled target domain "
            "(coronal FLAIR-like, other coils and SNR), plus a MONAI datalist manifest."
        ),
        epilog=(
            "Presets: "
            + "; ".join(
                f"{p.name}: recon {p.recon_size}x{p.recon_size}, k-space {p.kspace_size[0]}x{p.kspace_size[1]}, "
                + ", ".join(f"{s} {n}x{k}" for s, (n, k) in p.volumes.items())
                + " (volumes x slices)"
                for p in PRESETS.values()
            )
            + ". Example: python -m pipeline.data.simulate --preset demo --out data/demo "
            "--manifest data_manifests/demo.json"
        ),
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="dataset size (default: demo)")
    parser.add_argument("--out", type=Path, default=None, help="data root to write (default: data/<preset>)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed; same seed -> same data (default: 0)")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="manifest JSON to write, data_root stored relative to it (default: <out>/<preset>.json)",
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path("data") / args.preset
    start = time.perf_counter()
    manifest = generate(args.preset, out, seed=args.seed, manifest_path=args.manifest)
    size = sum(f.stat().st_size for f in out.rglob("*.h5")) / 2**20
    print(f"wrote {out} ({size:.1f} MiB) and {manifest} in {time.perf_counter() - start:.1f} s")
    return 0

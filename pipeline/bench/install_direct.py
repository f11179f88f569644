"""Benchmark-only install of the reference implementation, DIRECT (``direct-recon`` on PyPI), for the parity check.

Usage::

    python -m pipeline.bench.install_direct                 # download direct-recon 2.2.0 and unpack it
    python -m pipeline.bench.install_direct --wheel PATH    # unpack a wheel downloaded before (offline)

PyPI publishes ``direct-recon`` only as a CPython >= 3.12 wheel, but its models are pure Python and run on
the Python of this package. The wheel is therefore downloaded for Python 3.12 without its dependencies
(``pip download --no-deps --python-version 3.12 --only-binary=:all: direct-recon==2.2.0``), and its
``direct/`` package is unpacked into ``<dest>/direct/``. The few extra packages its model modules import
(``requirements-bench.txt``: omegaconf, einops) are installed with ``pip install --target <dest>/site``, so
the core environment is left untouched. :mod:`pipeline.bench.parity` puts both folders on ``sys.path``.
``<dest>`` defaults to ``.bench/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The reference release the parity check was written against.
DIRECT_VERSION = "2.2.0"
#: Default install folder, relative to the working directory (the repository root, like every benchmark's
#: paths); :func:`bench_paths` lists what goes on ``sys.path``.
DEFAULT_DEST = Path(".bench")


def bench_paths(dest: str | Path = DEFAULT_DEST) -> list[Path]:
    """The ``sys.path`` entries of an install in ``dest``: the unpacked wheel and the benchmark packages."""
    dest = Path(dest)
    return [dest / "direct", dest / "site"]


def download_wheel(folder: Path, version: str = DIRECT_VERSION) -> Path:
    """Download the ``direct-recon`` wheel (Python 3.12, no dependencies) into ``folder``; returns its path.

    Raises:
        RuntimeError: when ``pip download`` fails (no network, unknown version).
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--python-version", "3.12", "--only-binary=:all:",
        f"direct-recon=={version}", "-d", str(folder),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("direct_recon-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download of direct-recon=={version} failed:\n{proc.stderr[-2000:]}")
    return wheels[0]


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """Unpack the ``direct/`` package of ``wheel`` into ``dest/direct/`` (replacing an earlier copy).

    Returns:
        The folder to put on ``sys.path`` (``dest/direct``).
    """
    target = dest / "direct"
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith("direct/")]
        if not members:
            raise RuntimeError(f"{wheel} holds no 'direct/' package")
        archive.extractall(target, members)
    return target


def install_requirements(dest: Path, requirements: Path = Path("requirements-bench.txt")) -> None:
    """``pip install --target dest/site -r requirements-bench.txt`` (benchmark-only packages).

    Raises:
        RuntimeError: when pip fails.
    """
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(dest / "site"), "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install -r {requirements} failed:\n{proc.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="install folder (default: .bench/)")
    parser.add_argument("--version", default=DIRECT_VERSION, help="direct-recon release to download")
    parser.add_argument("--wheel", type=Path, default=None, help="a downloaded wheel to unpack instead")
    parser.add_argument("--no-deps", action="store_true", help="skip installing requirements-bench.txt")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.wheel is None:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download_wheel(Path(tmp), args.version)
            unpack_wheel(wheel, args.dest)
    else:
        unpack_wheel(args.wheel, args.dest)
    if not args.no_deps:
        install_requirements(args.dest)
    print(f"DIRECT unpacked into {args.dest / 'direct'}; run: python -m pipeline.bench.parity")
    return 0


if __name__ == "__main__":
    sys.exit(main())

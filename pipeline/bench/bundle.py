"""Where the benchmarks meet the MONAI bundle: finding its files and the ids they read.

The benchmarks take the bundle folder (``--bundle``, default ``bundles/jssl_varnet``) and the demo
manifest (``--manifest``, default ``data_manifests/demo.json``) as paths relative to the current
directory; nothing is looked up through the package's own location.

Evaluation reads ``train.json``, its ``inference.json`` overlay and the ``evaluate.json`` overlay on top
(MONAI merges top-level ids, the later file winning), exactly as the README's evaluation command.

The device-placed network is the id :data:`MODULE_ID`; every other id the benchmarks use is listed in the
docstrings of :mod:`pipeline.bench.speed` and :mod:`pipeline.bench.quality`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["META", "MODULE_ID", "evaluation_configs", "require_path", "train_config", "train_parser"]

#: The bundle's metadata file, relative to the bundle folder.
META = Path("configs") / "metadata.json"


def require_path(path: Path, what: str, option: str) -> Path:
    """``path`` if it exists.

    Args:
        path: the bundle folder or a manifest, relative to the current directory or absolute.
        what: ``"bundle"`` or ``"manifest"``, for the message.
        option: the command-line option that sets it, e.g. ``"--bundle"``.

    Raises:
        SystemExit: with one line naming the path and how to fix it, when it does not exist.
    """
    if not Path(path).exists():
        raise SystemExit(
            f"error: {what} {path} not found (in {Path.cwd()}): run from the repository root or pass {option} PATH"
        )
    return Path(path)


def train_config(bundle: Path) -> Path:
    """``configs/train.json`` of ``bundle``."""
    return Path(bundle) / "configs" / "train.json"


def evaluation_configs(bundle: Path) -> list[str]:
    """The config files of an evaluation run: ``train.json``, its ``inference.json`` overlay, then ``evaluate.json``."""
    return [str(Path(bundle) / "configs" / name) for name in ("train.json", "inference.json", "evaluate.json")]


#: Config id of the device-placed network module (``network`` is the network's registry name).
MODULE_ID = "model"


def train_parser(bundle: Path, manifest: Path, overrides: Mapping[str, Any]):
    """A ``monai.bundle.ConfigParser`` of the bundle's ``train.json`` with ``bundle_root``, ``manifest`` and
    ``overrides`` set (nothing instantiated yet)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(train_config(bundle)))
    parser.update({"bundle_root": str(bundle), "manifest": str(manifest), **overrides})
    return parser

"""Where the benchmarks meet the MONAI bundle: finding its files, and the one id read defensively.

The benchmarks take the bundle folder (``--bundle``, default ``bundles/jssl_varnet``) and the demo
manifest (``--manifest``, default ``data_manifests/demo.json``) as paths relative to the current
directory; nothing is looked up through the package's own location.

Evaluation always reads ``inference.json`` with ``evaluate.json`` on top (MONAI merges top-level ids,
the later file winning), which is right both for a stand-alone ``evaluate.json`` and for one written as
an overlay of ``inference.json``.

The device-placed network is the id ``model`` in bundles that have it and ``network`` in older ones
(:func:`module_id`); every other id the benchmarks use is listed in the docstrings of
:mod:`pipeline.bench.speed` and :mod:`pipeline.bench.quality`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["META", "evaluation_configs", "module_id", "require_path", "train_config", "train_parser"]

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
    """The config files of an evaluation run: ``inference.json`` then ``evaluate.json`` (the overlay)."""
    return [str(Path(bundle) / "configs" / name) for name in ("inference.json", "evaluate.json")]


def module_id(config_files: Sequence[str | Path]) -> str:
    """The id of the device-placed network module in these config files: ``model``, else ``network``."""
    from monai.bundle import ConfigParser

    return "model" if "model" in ConfigParser.load_config_files([str(f) for f in config_files]) else "network"


def train_parser(bundle: Path, manifest: Path, overrides: Mapping[str, Any]):
    """A ``monai.bundle.ConfigParser`` of the bundle's ``train.json`` with ``bundle_root``, ``manifest`` and
    ``overrides`` set (nothing instantiated yet)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(train_config(bundle)))
    parser.update({"bundle_root": str(bundle), "manifest": str(manifest), **overrides})
    return parser

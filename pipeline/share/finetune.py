"""Fine-tuning at a receiving site: start from a shared bundle's weights and remember which bundle.

``configs/finetune.json`` (an overlay of ``train.json``) calls these from its settings, so a bundle folder
that is not an exported, intact shared bundle stops the run at start-up with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.engines.startup import ConfigError
from pipeline.handlers.checkpoint import weights_digest
from pipeline.share.archive import CHECKSUMS, ArchiveError, bundle_hash, parse_checksums

__all__ = ["parent_bundle_hash", "parent_weights"]


def parent_bundle_hash(bundle_root: str | os.PathLike) -> str:
    """The shared bundle's hash (SHA-256 of its ``checksums.sha256``), recorded as the fine-tuned run's parent.

    Raises:
        ConfigError: the folder has no ``checksums.sha256`` (it is not an unpacked shared bundle).
    """
    try:
        return bundle_hash(Path(bundle_root))
    except ArchiveError as err:
        raise ConfigError(f"--bundle_root {err}") from None


def parent_weights(bundle_root: str | os.PathLike) -> Path:
    """The shared bundle's ``models/model.safetensors``, after checking its SHA-256 against the manifest.

    Raises:
        ConfigError: no weights file, or weights that differ from the ones the bundle was exported with.
    """
    root = Path(bundle_root)
    parent_bundle_hash(root)
    weights = root / "models" / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"shared weights {weights} do not exist: unpack a shared bundle (python -m pipeline.share)")
    try:
        listed = parse_checksums((root / CHECKSUMS).read_bytes())
    except ArchiveError as err:
        raise ConfigError(f"--bundle_root {root}: {err}") from None
    if listed.get("models/model.safetensors") != weights_digest(weights):
        raise ConfigError(f"shared weights {weights} differ from the bundle's {CHECKSUMS}: verify the bundle again")
    return weights

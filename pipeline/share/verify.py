"""Verify a shared bundle before any of its configs is parsed: ``python -m pipeline.share verify ARCHIVE``.

The checks, in order; the first failure refuses the bundle with one line saying what failed:

1. the files: a zip of one bundle folder (no absolute or ``..`` member names, no links), or a folder; no two
   names that differ only in case (one would overwrite the other on a case-insensitive disk), and under
   ``configs/`` only lowercase names of JSON files and ``logging.conf`` (:data:`CONFIG_NAME`: what is not
   checked must not be there; ``configs/evaluate.JSON`` would open as ``evaluate.json`` there);
2. the hashes: every file is listed in ``checksums.sha256`` with its SHA-256, and every listed file exists;
3. the required files (:data:`REQUIRED_FILES`), and no pickle-based weights (``.pt``, ``.pth``, ``.ckpt``,
   ``.pkl``, TorchScript): loading those can run code; no file of any name that is a pickle
   (:func:`pipeline.share.policy.check_not_pickle`);
4. the metadata against MONAI's metadata schema, offline (the schema file ships with this package; MONAI's
   own :func:`monai.bundle.verify_metadata` does the check), and its training provenance
   (:data:`PROVENANCE_FIELDS`);
5. every ``_target_`` and ``$`` expression of every config, and ``logging.conf``
   (:mod:`pipeline.share.policy`);
6. no patient identifier or absolute path in any file (:func:`pipeline.share.policy.check_privacy`);
7. the weights: read with ``safetensors`` (no code runs), finite, and exactly the names and shapes of the
   network and size the metadata and ``train.json`` name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.share.archive import _HEX64, CHECKSUMS, ArchiveError, bundle_hash, parse_checksums, read_bundle
from pipeline.share.policy import check_config, check_logging_conf, check_not_pickle, check_privacy

__all__ = [
    "CONFIG_NAME", "PROVENANCE_FIELDS", "REQUIRED_FILES", "SCHEMA", "VerifiedBundle", "verify",
    "verify_metadata_offline",
]

#: MONAI's bundle metadata schema (``meta_schema_20240725.json``), shipped so verification needs no network.
SCHEMA = Path(__file__).with_name("meta_schema_20240725.json")

#: Files every shared bundle has.
REQUIRED_FILES = (
    "configs/metadata.json", "configs/train.json", "configs/inference.json", "models/model.safetensors",
    "docs/README.md", "docs/model_card.md",
)

#: The training provenance in the metadata's ``provenance`` entry: field -> accepted types.
PROVENANCE_FIELDS: dict[str, tuple[type, ...]] = {
    "mode": (str,),
    "network": (str,),
    "network_size": (str,),
    "manifest_digest": (str,),
    "code_version": (str,),
    "validation_metrics": (dict,),
    "parent_bundle": (str, type(None)),
}

#: The names a file under ``configs/`` may have: lowercase JSON, or the logging configuration.
CONFIG_NAME = re.compile(r"^configs/(?:[a-z0-9_\-]+\.json|logging\.conf)$")

_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".ts", ".bin", ".npy", ".npz")


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed :func:`verify`.

    Attributes:
        name: the bundle folder's name (``jssl_varnet``).
        files: relative path -> bytes, as verified (unpack these, not the source again).
        bundle_hash: SHA-256 of ``checksums.sha256``, the id a fine-tuned model records as its parent.
        metadata: the parsed ``configs/metadata.json``.
    """

    name: str
    files: dict[str, bytes]
    bundle_hash: str
    metadata: dict[str, Any]


def _check_names(files: dict[str, bytes]) -> None:
    """Refuse names that collide when case is ignored, and config files other than :data:`CONFIG_NAME`."""
    seen: dict[str, str] = {}
    for name in sorted(files):
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise ArchiveError(f"{other} and {name} differ only in case: one would replace the other on "
                               "a case-insensitive disk")
        if name.casefold().startswith("configs/") and not CONFIG_NAME.match(name):
            raise ArchiveError(f"{name}: a config file must be a lowercase .json name or logging.conf "
                               "(only those are checked)")


def _check_hashes(files: dict[str, bytes]) -> None:
    if CHECKSUMS not in files:
        raise ArchiveError(f"no {CHECKSUMS}: the bundle was not exported with `python -m pipeline.share export`")
    listed = parse_checksums(files[CHECKSUMS])
    for name in sorted(listed):
        if name not in files:
            raise ArchiveError(f"{name} is listed in {CHECKSUMS} but missing from the bundle")
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise ArchiveError(f"sha256 mismatch for {name}: the file was changed after export")
    extra = sorted(set(files) - set(listed) - {CHECKSUMS})
    if extra:
        raise ArchiveError(f"{extra[0]} is not listed in {CHECKSUMS}: the file was added after export")


def verify_metadata_offline(metadata: dict[str, Any]) -> None:
    """Check ``metadata`` against MONAI's schema (:data:`SCHEMA`) with :func:`monai.bundle.verify_metadata`.

    Raises:
        ArchiveError: ``configs/metadata.json fails the schema: <first line of the reason>``.
    """
    import logging
    import warnings

    from monai.bundle import verify_metadata

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no hash value for the schema": it ships with the package
        meta_file = Path(folder) / "metadata.json"
        meta_file.write_text(json.dumps(metadata))
        logging.disable(logging.INFO)  # MONAI's input summary and "skipped downloading" are noise here
        try:
            verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA), create_dir=False)
        except ValueError as err:
            reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "invalid")
            raise ArchiveError(f"configs/metadata.json fails the MONAI metadata schema: {reason}") from None
        finally:
            logging.disable(logging.NOTSET)


def _check_provenance(metadata: dict[str, Any]) -> dict[str, Any]:
    provenance = metadata.get("provenance")
    if not isinstance(provenance, dict):
        raise ArchiveError("configs/metadata.json has no 'provenance' entry (training mode, data digest, ...)")
    for field, types in PROVENANCE_FIELDS.items():
        if field not in provenance:
            raise ArchiveError(f"configs/metadata.json: provenance has no {field!r}")
        if not isinstance(provenance[field], types):
            raise ArchiveError(f"configs/metadata.json: provenance {field!r} has the wrong type")
    for field in ("manifest_digest", "parent_bundle"):
        value = provenance[field]
        if value is not None and not _HEX64.match(value):
            raise ArchiveError(f"configs/metadata.json: provenance {field!r} is not a sha256 hex digest")
    return provenance


def _load_json(files: dict[str, bytes], name: str) -> Any:
    try:
        return json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArchiveError(f"{name} is not valid JSON ({err})") from None


def _check_weights(files: dict[str, bytes], provenance: dict[str, Any], train: dict[str, Any]) -> None:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    from pipeline.handlers.checkpoint import check_weights
    from pipeline.networks import build_network

    name = "models/model.safetensors"
    for key in ("network", "network_size"):
        if train.get(key) != provenance[key]:
            raise ArchiveError(
                f"configs/train.json: {key} {train.get(key)!r} differs from the metadata's {provenance[key]!r}"
            )
    data = files[name]
    try:
        state = load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ArchiveError(f"{name} cannot be read as safetensors: {str(err).splitlines()[0]}") from None
    check_privacy(f"{name} (header).json", json.dumps(header.get("__metadata__") or {}).encode())
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ArchiveError(f"{name}: {key} holds NaN or Inf values")
    try:
        own = build_network(provenance["network"], provenance["network_size"]).state_dict()
    except ValueError as err:
        raise ArchiveError(f"configs/metadata.json: provenance names an unknown network: {err}") from None
    try:
        check_weights(own, {k: tuple(v.shape) for k, v in state.items()},
                      f"{name} (metadata: {provenance['network']} {provenance['network_size']})")
    except ValueError as err:
        raise ArchiveError(str(err)) from None


def verify(source: str | os.PathLike) -> VerifiedBundle:
    """Run every check of this module's docstring on a shared bundle, without parsing any config with MONAI.

    Args:
        source: the archive (zip) or an unpacked bundle folder.

    Returns:
        The verified bundle.

    Raises:
        ArchiveError: the first check that failed, as ``<source>: <what failed>`` (one line).
    """
    try:
        name, files = read_bundle(source)
        _check_names(files)
        _check_hashes(files)
        for required in REQUIRED_FILES:
            if required not in files:
                raise ArchiveError(f"{required} is missing: every shared bundle carries it")
        pickled = sorted(f for f in files if f.lower().endswith(_PICKLE_SUFFIXES))
        if pickled:
            raise ArchiveError(f"{pickled[0]}: pickle-based files can run code when loaded; share safetensors weights")
        metadata = _load_json(files, "configs/metadata.json")
        verify_metadata_offline(metadata)
        provenance = _check_provenance(metadata)
        for config in sorted(f for f in files if f.startswith("configs/") and f.endswith(".json")):
            check_config(_load_json(files, config), config)
        if "configs/logging.conf" in files:
            check_logging_conf(files["configs/logging.conf"].decode("utf-8", "replace"), "configs/logging.conf")
        for member in sorted(files):
            check_not_pickle(member, files[member])
            check_privacy(member, files[member])
        _check_weights(files, provenance, _load_json(files, "configs/train.json"))
    except ArchiveError as err:
        message = str(err)
        raise ArchiveError(message if message.startswith(str(source)) else f"{source}: {message}") from None
    return VerifiedBundle(name, files, bundle_hash(files), metadata)

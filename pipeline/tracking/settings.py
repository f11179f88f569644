"""What of a resolved bundle config is logged as params, and which code produced a run.

In a MONAI bundle the whole resolved config is reachable from an expression as ``__local_refs``: the
dict in which MONAI's ``ReferenceResolver`` keeps every item it has resolved, id -> value
(``ReferenceResolver._vars``). It holds the values after the command-line overrides, and it keeps
filling while the config is instantiated, so it is read when the run starts, not when the tracker is built.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from monai.bundle.utils import ID_SEP_KEY


def loggable_settings(config: Mapping[str, Any]) -> dict[str, str]:
    """The user-facing settings of a resolved config, as ``{id: str(value)}`` sorted by id.

    Kept: every top-level id (no ``::``, not starting with ``_``) whose resolved value is plain data: a
    ``bool``/``int``/``float``/``str``, or lists, tuples and string-keyed dicts of those, nested. An ``@ref`` or
    ``$expression`` setting counts by what it resolved to. Left out: objects (components, networks, loaders,
    devices, dicts of components) and ``None`` (an unset setting, or a disabled component).

    Args:
        config: id -> resolved value, e.g. a bundle's ``__local_refs``; items not resolved (yet) are absent.

    >>> loggable_settings({"mode": "jssl", "readout_crop": False, "sl_ssl_ratio": {"sl": 1, "ssl": 1},
    ...                    "network": object(), "losses": {"sl": object()}, "data_root": None,
    ...                    "_meta_": {}, "tracker::params": {}})
    {'mode': 'jssl', 'readout_crop': 'False', 'sl_ssl_ratio': "{'sl': 1, 'ssl': 1}"}
    """
    return {
        key: str(value)
        for key, value in sorted(dict(config).items())
        if ID_SEP_KEY not in key and not key.startswith("_") and value is not None and _is_plain(value)
    }


def _is_plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def code_version(distribution: str = "jssl-pipeline") -> str:
    """The installed version of the package, plus ``git describe`` when it is imported from a git checkout.

    The checkout is the folder that contains the imported ``pipeline`` package, and only if that folder is
    a git work tree's root (so a package installed inside some other repository is not misattributed).

    Returns:
        e.g. ``"0.1.0+3e7cfe3-dirty"`` (``-dirty``: uncommitted changes), ``"0.1.0"`` outside a checkout,
        ``"unknown"`` when neither is known.
    """
    import pipeline

    parts = []
    try:
        parts.append(version(distribution))
    except PackageNotFoundError:
        pass
    root = Path(pipeline.__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            described = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
            )
            if described.returncode == 0 and described.stdout.strip():
                parts.append(described.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return "+".join(parts) or "unknown"

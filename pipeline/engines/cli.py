"""Command-line settings of ``python -m monai.bundle run`` keep the type their config gives them.

MONAI's bundle CLI (``fire``) types every ``--name value`` by what the value looks like, so a run name
``1e5`` arrives as the float ``100000.0`` and an experiment ``2024`` as an int, and they break late or are
stored altered. :func:`keep_text_settings` runs first in a bundle's ``initialize`` list and puts back, as
typed, every override of a setting whose default in the config files is text (a name, path or identifier:
a string, an expression or ``null``) that ``fire`` turned into a number or a boolean.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

#: Arguments of ``monai.bundle run`` itself, not config settings.
RUN_ARGUMENTS = frozenset({"config_file", "meta_file", "logging_file", "run_id", "init_id", "final_id", "tracking"})


def _overrides(tokens: Sequence[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` pairs of a command line, values as typed."""
    pairs: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--") and "=" in token:
            name, value = token[2:].split("=", 1)
            pairs[name] = value
        elif token.startswith("--") and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            pairs[token[2:]] = tokens[i + 1]
            i += 1
        i += 1
    return pairs


def _typed_by_fire(text: str) -> bool:
    """Whether ``fire`` turns ``text`` into a number or a boolean (``None``, lists and strings are kept)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, (bool, int, float, complex))


def keep_text_settings(resolved: MutableMapping[str, Any], argv: Sequence[str] | None = None) -> dict[str, str]:
    """Put back the command-line text of text settings that ``fire`` typed as numbers or booleans.

    Args:
        resolved: the bundle's resolved-content mapping (``"$__local_refs"`` in a config expression); the
            text is written there before anything reads the setting.
        argv: the command line (default ``sys.argv``); only a ``monai.bundle run`` command line is read.

    Returns:
        The settings put back, name -> text (empty for other command lines).
    """
    from monai.bundle import ConfigParser

    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] != "run" or Path(argv[0]).parent.name != "bundle":
        return {}
    overrides = _overrides(argv[2:])
    config_file = overrides.get("config_file")
    if config_file is None:
        return {}
    try:
        files = ast.literal_eval(config_file) if config_file.lstrip().startswith("[") else config_file
        defaults = ConfigParser.load_config_files(files)
    except (ValueError, SyntaxError, OSError):
        return {}
    restored = {
        name: text
        for name, text in overrides.items()
        if name not in RUN_ARGUMENTS
        and (defaults.get(name) is None or isinstance(defaults.get(name), str))
        and name in defaults
        and _typed_by_fire(text)
    }
    resolved.update(restored)
    return restored

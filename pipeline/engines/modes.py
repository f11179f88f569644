"""The training-mode table: which branches a mode trains and which manifest section feeds each branch.

=============  ====================  ==========================================================
mode           branches              data
=============  ====================  ==========================================================
``jssl``       ``sl`` + ``ssl``      proxy (fully sampled) + target (subsampled, SSDU)
``ssl``        ``ssl``               target only (SSDU)
``sl``         ``sl``                proxy only (the domain-shift baseline)
``sl_target``  ``sl``                ``target_reference``: the retrospective oracle
=============  ====================  ==========================================================

Everything that depends on the mode (the start-up check, the bundle configs, the interleaved loader, the
benchmarks) asks this table.
"""

from __future__ import annotations

import dataclasses

BRANCHES = ("sl", "ssl")


@dataclasses.dataclass(frozen=True)
class TrainingMode:
    """One training mode.

    Attributes:
        name: the ``--mode`` value.
        branches: branches that train, among :data:`BRANCHES`.
        sl_section: manifest section of the supervised branch (``None`` without one).
        description: one line for ``--help`` and logs.
    """

    name: str
    branches: tuple[str, ...]
    sl_section: str | None
    description: str


MODES: dict[str, TrainingMode] = {
    m.name: m
    for m in (
        TrainingMode("jssl", ("sl", "ssl"), "proxy", "joint supervised (proxy) and self-supervised (target) learning"),
        TrainingMode("ssl", ("ssl",), None, "self-supervised SSDU on the target domain alone"),
        TrainingMode("sl", ("sl",), "proxy", "supervised on the proxy domain alone"),
        TrainingMode("sl_target", ("sl",), "target_reference", "supervised on target references (oracle)"),
    )
}


def training_mode(name: str) -> TrainingMode:
    """The :class:`TrainingMode` called ``name``.

    Raises:
        ValueError: for an unknown mode (the message lists the valid ones).
    """
    if name not in MODES:
        choices = "; ".join(f"{m.name} ({m.description})" for m in MODES.values())
        raise ValueError(f"unknown --mode {name!r}; choose one of {sorted(MODES)}: {choices}")
    return MODES[name]


def uses_branch(mode: str, branch: str) -> bool:
    """Whether ``mode`` trains ``branch`` (what bundle configs use to build or skip a branch's loader).

    Raises:
        ValueError: for an unknown mode or a branch not in :data:`BRANCHES`.
    """
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; choose one of {BRANCHES}")
    return branch in training_mode(mode).branches


def branch_sections(mode: str, target_section: str = "target") -> dict[str, str]:
    """Branch -> manifest section for ``mode``, e.g. ``{"sl": "proxy", "ssl": "target"}`` for ``jssl``."""
    spec = training_mode(mode)
    sections = {"sl": spec.sl_section, "ssl": target_section}
    return {branch: sections[branch] for branch in spec.branches}  # type: ignore[misc]

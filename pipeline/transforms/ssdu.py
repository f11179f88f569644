"""SSDU split of an acquired set Omega into a network-input set Theta and a loss set Lambda.

Follows the JSSL reference (Yiasemis et al., MIDL 2025) and SSDU (Yaman et al., 2020):
``Theta ∪ Lambda = Omega``, ``Theta ∩ Lambda = ∅``,
``|Lambda| = round(q |Omega|)`` (capped by the points outside the centre block), selection uniform or
Gaussian (centred, ``std = (N - 1) / 3.5`` per axis), and a centre block that always stays in Theta.
1-D masks ``(W,)`` are split by column, 2-D masks ``(H, W)`` point by point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.physics.acs import acs_slice
from pipeline.transforms.masks import Rng, gaussian_weights, weighted_choice

SELECTIONS = ("gaussian", "uniform")


def check_q(q: float) -> float:
    """Validate a split ratio ``q = |Lambda| / |Omega|`` in the open interval ``(0, 1)``."""
    if not 0.0 < float(q) < 1.0:
        raise ValueError(f"q (split ratio |Lambda|/|Omega|) must lie in (0, 1), got {q}")
    return float(q)


def center_block_mask(shape: Sequence[int], block: Sequence[int]) -> np.ndarray:
    """Bool array of ``shape`` (``(W,)`` or ``(H, W)``) that is True on a centred block.

    Args:
        shape: ``(W,)`` or ``(H, W)``.
        block: block size per axis (same length as ``shape``); each entry is clipped to the axis size.
            The block is placed as the ACS block (:func:`pipeline.physics.acs.acs_start`).

    Returns:
        bool array of ``shape``.
    """
    if len(block) != len(shape):
        raise ValueError(f"center_block must have {len(shape)} entries for a mask of shape {tuple(shape)}, got {block}")
    out = np.zeros(tuple(shape), dtype=bool)
    index = []
    for n, b in zip(shape, block):
        if int(b) < 0:
            raise ValueError(f"center_block sizes must be >= 0, got {block}")
        index.append(acs_slice(n, b))
    out[tuple(index)] = True
    return out


def ssdu_split(
    omega: np.ndarray,
    q: float,
    rng: Rng,
    selection: str = "gaussian",
    center_block: Sequence[int] = (4, 4),
    std_scale: float = 3.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Split an acquisition mask into disjoint ``(theta, lam)`` with ``theta | lam == omega``.

    Args:
        omega: acquired set, bool ``(W,)`` (split by column) or ``(H, W)`` (split point by point).
        q: fraction of ``omega`` moved to Lambda, in ``(0, 1)``.
        rng: random generator.
        selection: ``"gaussian"`` (variable density, centred, ``std = (N - 1) / std_scale`` per axis) or
            ``"uniform"``.
        center_block: block kept in Theta; one size per axis of ``omega`` (for a 1-D mask pass ``(w,)``;
            a 2-entry block on a 1-D mask uses its last entry).
        std_scale: divisor of ``N - 1`` giving the Gaussian standard deviation (3.5 in the reference).

    Returns:
        ``(theta, lam)``: bool arrays of ``omega``'s shape; ``|lam| = min(round(q |omega|), |omega \\ centre|)``.

    Raises:
        ValueError: for ``q`` outside ``(0, 1)``, an unknown ``selection`` or a mask that is not 1-D/2-D.
    """
    q = check_q(q)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    omega = np.asarray(omega, dtype=bool)
    if omega.ndim not in (1, 2):
        raise ValueError(f"omega must be a (W,) or (H, W) mask, got shape {omega.shape}")
    block = tuple(center_block)[-omega.ndim :] if omega.ndim == 1 else tuple(center_block)
    keep = center_block_mask(omega.shape, block)
    candidates = omega & ~keep
    n_lambda = min(int(round(q * int(omega.sum()))), int(candidates.sum()))
    if selection == "uniform":
        weights = candidates.astype(np.float64)
    else:
        weights = np.ones(omega.shape, dtype=np.float64)
        for axis, n in enumerate(omega.shape):
            shape = [1] * omega.ndim
            shape[axis] = n
            weights = weights * gaussian_weights(n, std_scale=std_scale).reshape(shape)
        weights = np.where(candidates, np.maximum(weights, np.finfo(np.float64).tiny), 0.0)
    lam = np.zeros(omega.shape, dtype=bool)
    lam.flat[weighted_choice(weights.ravel(), n_lambda, rng)] = True
    return omega & ~lam, lam

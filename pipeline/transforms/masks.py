"""Pure numpy generators of k-space undersampling masks.

Every generator takes an explicit ``numpy.random.Generator`` (or ``RandomState``) and never touches
global RNG state. Column (1-D) generators return a bool vector ``(W,)`` over the phase-encode axis;
2-D generators return a bool array ``(H, W)``. :func:`generate_mask` dispatches on a mask-type name and
always returns ``(H, W)`` plus the number of ACS (auto-calibration) columns.

Conventions shared by all generators:

- ``W`` is the phase-encode axis, ``H`` the readout axis; the k-space centre sits at index ``N // 2``.
- ``pe_range = (start, stop)`` marks the acquired phase-encode columns; columns outside it form the
  never-acquired padding band and are never sampled. The acceleration ``R`` is counted on acquired
  columns (1-D) or acquired points (2-D) only: a mask keeps about ``n_acquired / R`` of them.
- ``center_fraction`` is a fraction in ``[0, 1]`` of the acquired width ``n = stop - start``; the ACS
  block has exactly ``round(n * center_fraction)`` columns, centred on the k-space centre as in fastMRI
  (:func:`pipeline.physics.acs.acs_start`). 2-D masks get a fully sampled centre block of
  ``round(H * cf) x round(n * cf)`` points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.physics.acs import acs_start

Rng = np.random.Generator | np.random.RandomState

COLUMN_MASK_TYPES = ("random", "equispaced", "gaussian1d")
MASK_TYPES = COLUMN_MASK_TYPES + ("gaussian2d", "poisson", "radial", "spiral")


def resolve_pe_range(width: int, pe_range: Sequence[int] | None) -> tuple[int, int]:
    """Validate the acquired phase-encode range ``[start, stop)`` (``None`` -> all ``width`` columns).

    Raises:
        ValueError: if ``pe_range`` is not a non-empty sub-range of ``[0, width)``.
    """
    if pe_range is None:
        return 0, int(width)
    start, stop = int(pe_range[0]), int(pe_range[1])
    if not 0 <= start < stop <= width:
        raise ValueError(f"pe_range must satisfy 0 <= start < stop <= width={width}, got {(start, stop)}")
    return start, stop


def _check_acceleration(acceleration: float) -> float:
    if not np.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"acceleration must be a finite number >= 1, got {acceleration}")
    return float(acceleration)


def _check_center_fraction(center_fraction: float) -> float:
    if not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"center_fraction must lie in [0, 1], got {center_fraction}")
    return float(center_fraction)


def acs_range(width: int, center_fraction: float, pe_range: Sequence[int] | None = None) -> tuple[int, int]:
    """ACS block ``[first, first + n_acs)`` for a centre fraction of the acquired width.

    Args:
        width: phase-encode size ``W`` of the k-space grid.
        center_fraction: fraction in ``[0, 1]`` of the acquired columns that are fully sampled.
        pe_range: acquired columns ``(start, stop)``; ``None`` = all.

    Returns:
        ``(first, n_acs)`` with ``n_acs = round((stop - start) * center_fraction)``.

    Raises:
        ValueError: if ``center_fraction`` is outside ``[0, 1]`` or the block leaves ``pe_range``.
    """
    start, stop = resolve_pe_range(width, pe_range)
    n_acs = int(round((stop - start) * _check_center_fraction(center_fraction)))
    first = acs_start(width, n_acs)
    if n_acs and (first < start or first + n_acs > stop):
        raise ValueError(
            f"center_fraction={center_fraction}: ACS columns [{first}, {first + n_acs}) fall outside the "
            f"acquired pe_range [{start}, {stop})"
        )
    return first, n_acs


def _lines_budget(n_acquired: int, n_acs: int, acceleration: float, what: str = "columns") -> int:
    """Number of non-ACS lines/points to add so that the total is ``round(n_acquired / R)``."""
    total = int(round(n_acquired / _check_acceleration(acceleration)))
    if n_acs > total:
        raise ValueError(
            f"center_fraction leaves no room: {n_acs} ACS {what} exceed the {total} {what} that "
            f"acceleration={acceleration} allows out of {n_acquired} acquired"
        )
    return total - n_acs


def weighted_choice(weights: np.ndarray, k: int, rng: Rng) -> np.ndarray:
    """Draw ``k`` distinct flat indices with probability proportional to ``weights`` (Gumbel top-k).

    Equivalent to sequential weighted sampling without replacement, in one vectorised pass.

    Args:
        weights: non-negative weights ``(N,)``; zero-weight entries are never drawn.
        k: number of indices, ``0 <= k <= count_nonzero(weights)``.
        rng: random generator.

    Returns:
        int64 indices ``(k,)`` in no particular order.
    """
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.flatnonzero(weights > 0)
    if k > candidates.size:
        raise ValueError(f"cannot draw {k} distinct indices from {candidates.size} non-zero weights")
    uniform = np.clip(_uniform(rng, candidates.size), 1e-300, 1.0 - 1e-16)
    keys = np.log(weights[candidates]) - np.log(-np.log(uniform))  # log-weight + Gumbel noise
    if k == candidates.size:
        return candidates
    top = np.argpartition(-keys, k - 1)[:k]
    return candidates[top]


def _uniform(rng: Rng, size: int | None = None):
    """Uniform draws in ``[0, 1)`` from either generator flavour (``Generator`` or ``RandomState``)."""
    return rng.random(size) if isinstance(rng, np.random.Generator) else rng.random_sample(size)


def _randint(rng: Rng, high: int) -> int:
    """Integer in ``[0, high)`` from either generator flavour."""
    return int(rng.integers(0, high)) if isinstance(rng, np.random.Generator) else int(rng.randint(0, high))


def _acs_column_start(
    width: int, center_fraction: float, acceleration: float, pe_range: Sequence[int] | None
) -> tuple[np.ndarray, tuple[int, int], int, int]:
    """Common start of the 1-D masks: the ACS block alone ``(W,)``, the acquired range, the ACS column
    count and how many more columns the acceleration allows."""
    start, stop = resolve_pe_range(width, pe_range)
    first, n_acs = acs_range(width, center_fraction, (start, stop))
    mask = np.zeros(width, dtype=bool)
    mask[first : first + n_acs] = True
    return mask, (start, stop), n_acs, _lines_budget(stop - start, n_acs, acceleration)


def random_column_mask(
    width: int, center_fraction: float, acceleration: float, rng: Rng, pe_range: Sequence[int] | None = None
) -> np.ndarray:
    """fastMRI ``RandomMaskFunc``: ACS block plus columns kept independently with a fixed probability.

    The probability ``(n / R - n_acs) / (n - n_acs)`` makes the expected number of columns ``n / R``.

    Args:
        width: phase-encode size ``W``.
        center_fraction: ACS fraction of the acquired width, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired columns.
        rng: random generator.
        pe_range: acquired columns ``(start, stop)``.

    Returns:
        bool ``(W,)``.
    """
    mask, (start, stop), n_acs, budget = _acs_column_start(width, center_fraction, acceleration, pe_range)
    free = np.arange(start, stop)
    free = free[~mask[free]]
    if free.size:
        prob = budget / free.size
        mask[free[_uniform(rng, free.size) < prob]] = True
    return mask


def equispaced_column_mask(
    width: int, center_fraction: float, acceleration: float, rng: Rng, pe_range: Sequence[int] | None = None
) -> np.ndarray:
    """fastMRI ``EquispacedMaskFractionFunc``: ACS block plus columns on a regular grid with random offset.

    The spacing ``R (n - n_acs) / (n - R n_acs)`` accounts for grid lines that fall inside the ACS
    block, so the total is about ``n / R``. When the ACS block alone reaches ``n / R`` only the ACS block
    is kept (MONAI divides by zero there).

    Args:
        width: phase-encode size ``W``.
        center_fraction: ACS fraction of the acquired width, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired columns.
        rng: random generator (draws the grid offset).
        pe_range: acquired columns ``(start, stop)``.

    Returns:
        bool ``(W,)``.
    """
    mask, (start, stop), n_acs, budget = _acs_column_start(width, center_fraction, acceleration, pe_range)
    n = stop - start
    if budget > 0:  # fastMRI's grid, up to n rather than n - 1 (fastMRI and MONAI drop a column at R = 1)
        if acceleration * n_acs >= n:  # grid spacing undefined: fall back to the plain spacing
            spacing = (n - n_acs) / budget
        else:
            spacing = acceleration * (n - n_acs) / (n - acceleration * n_acs)
        offset = _randint(rng, max(1, int(round(spacing))))
        cols = np.around(np.arange(offset, n, spacing)).astype(np.int64)
        mask[start + cols[cols < n]] = True
    return mask


def gaussian_weights(size: int, std: float | None = None, std_scale: float = 3.5) -> np.ndarray:
    """Centred Gaussian selection weights ``(size,)``, peak 1 at the k-space centre ``size // 2``.

    Used by the variable-density masks and the Gaussian SSDU split (JSSL reference, ``jssl_method.md``).

    Args:
        size: samples on the axis.
        std: standard deviation in samples; default ``(size - 1) / std_scale``.
        std_scale: divisor of ``size - 1`` for the default ``std`` (3.5 in the reference).
    """
    std = (size - 1) / std_scale if std is None else std
    x = np.arange(size) - size // 2
    return np.exp(-0.5 * (x / max(std, 1e-6)) ** 2)


def gaussian_column_mask(
    width: int,
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
    std: float | None = None,
) -> np.ndarray:
    """Variable-density 1-D mask: ACS block plus exactly ``round(n / R) - n_acs`` Gaussian-weighted columns.

    Args:
        width: phase-encode size ``W``.
        center_fraction: ACS fraction of the acquired width, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired columns.
        rng: random generator.
        pe_range: acquired columns ``(start, stop)``.
        std: Gaussian standard deviation in columns (default ``(W - 1) / 3.5``, centred at ``W // 2``).

    Returns:
        bool ``(W,)`` with exactly ``round(n / R)`` columns (or ``n_acs`` if larger).
    """
    mask, (start, stop), _, budget = _acs_column_start(width, center_fraction, acceleration, pe_range)
    weights = gaussian_weights(width, std)
    weights[:start] = 0
    weights[stop:] = 0
    weights[mask] = 0
    mask[weighted_choice(weights, budget, rng)] = True
    return mask


def _acs_block(shape: tuple[int, int], center_fraction: float, pe_range: tuple[int, int]) -> np.ndarray:
    """Fully sampled centre block ``round(H cf) x round(n cf)`` as a bool ``(H, W)`` array."""
    h, w = shape
    first, n_acs = acs_range(w, center_fraction, pe_range)
    n_rows = int(round(h * center_fraction))
    block = np.zeros(shape, dtype=bool)
    if n_acs and n_rows:
        top = acs_start(h, n_rows)
        block[top : top + n_rows, first : first + n_acs] = True
    return block


def _acquired_region(shape: tuple[int, int], pe_range: tuple[int, int]) -> np.ndarray:
    region = np.zeros(shape, dtype=bool)
    region[:, pe_range[0] : pe_range[1]] = True
    return region


def gaussian_2d_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Variable-density 2-D mask: centre block plus individually drawn Gaussian-weighted points.

    Args:
        shape: ``(H, W)``.
        center_fraction: centre-block fraction per axis, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired points.
        rng: random generator.
        pe_range: acquired columns ``(start, stop)``.
        std: ``(std_H, std_W)`` in samples (default ``(N - 1) / 3.5`` per axis).

    Returns:
        bool ``(H, W)`` with exactly ``round(H n / R)`` points (or the centre block if larger).
    """
    h, w = int(shape[0]), int(shape[1])
    rng_pe = resolve_pe_range(w, pe_range)
    mask = _acs_block((h, w), center_fraction, rng_pe)
    region = _acquired_region((h, w), rng_pe)
    budget = _lines_budget(int(region.sum()), int(mask.sum()), acceleration, what="points")
    std_h, std_w = (None, None) if std is None else (std[0], std[1])
    weights = np.outer(gaussian_weights(h, std_h), gaussian_weights(w, std_w))
    weights[~region | mask] = 0
    mask.flat[weighted_choice(weights, budget, rng)] = True
    return mask


def poisson_disc_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
) -> np.ndarray:
    """Variable-density 2-D Poisson-disc mask (CC-359 style) via ``sigpy.mri.poisson``.

    The pattern is generated on the smallest grid centred on the k-space centre ``W // 2`` that covers the
    acquired columns, so its density and calibration block stay centred on the k-space centre for an
    asymmetric band (partial Fourier), then cut to the band. With an asymmetric band the acceleration
    over the acquired points is somewhat below ``R``, since the cut removes low-density edges. sigpy is
    seeded from ``rng`` and restores numpy's global state itself.

    Args:
        shape: ``(H, W)``.
        center_fraction: calibration-block fraction per axis, in ``[0, 1]``.
        acceleration: ``R > 1`` over acquired points (sigpy's tolerance: +-0.1).
        rng: random generator (draws sigpy's seed).
        pe_range: acquired columns ``(start, stop)``.

    Returns:
        bool ``(H, W)``.

    Raises:
        ImportError: if sigpy is not installed.
        ValueError: for ``acceleration <= 1`` or an unreachable acceleration.
    """
    try:
        import sigpy.mri
    except ImportError as err:  # pragma: no cover - sigpy is a declared dependency
        raise ImportError("poisson_disc_mask needs sigpy (pip install sigpy)") from err
    h, w = int(shape[0]), int(shape[1])
    if _check_acceleration(acceleration) <= 1:
        raise ValueError(f"acceleration must be > 1 for a Poisson-disc mask, got {acceleration}")
    start, stop = resolve_pe_range(w, pe_range)
    block = _acs_block((h, w), center_fraction, (start, stop))
    _lines_budget(h * (stop - start), int(block.sum()), acceleration, what="points")
    n_rows, n_cols = int(round(h * center_fraction)), int(round((stop - start) * center_fraction))
    seed = _randint(rng, 2**31 - 1)
    centre = w // 2
    half = max(centre - start, stop - centre)  # the centred grid [centre - half, centre + half) holds the band
    sub = sigpy.mri.poisson((h, 2 * half), acceleration, calib=(n_rows, n_cols), dtype=bool, seed=seed)
    mask = np.zeros((h, w), dtype=bool)
    mask[:, start:stop] = sub[:, start - (centre - half) : stop - (centre - half)]
    return mask | block


def _rasterise(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-grid rasterisation of continuous ``(row, col)`` points (offsets from the centre)."""
    h, w = shape
    r = np.rint(rows + h // 2).astype(np.int64)
    c = np.rint(cols + w // 2).astype(np.int64)
    keep = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    mask = np.zeros(shape, dtype=bool)
    mask[r[keep], c[keep]] = True
    return mask


def _radial_pattern(shape: tuple[int, int], n_spokes: int, rotation: float) -> np.ndarray:
    """Golden-angle spokes through the centre, rasterised at half-pixel steps."""
    h, w = shape
    radius = 0.5 * np.hypot(h, w)
    t = np.arange(-radius, radius, 0.5)
    angles = rotation + np.arange(n_spokes) * np.pi * (np.sqrt(5) - 1) / 2  # golden angle ~111.25 deg
    rows = np.outer(np.sin(angles), t) * (h / max(h, w))
    cols = np.outer(np.cos(angles), t) * (w / max(h, w))
    return _rasterise(rows.ravel(), cols.ravel(), shape)


def _spiral_pattern(shape: tuple[int, int], turns: float, n_arms: int, rotation: float) -> np.ndarray:
    """Archimedean spiral arms ``r = r_max * theta / (2 pi turns)``, rasterised at half-pixel arc steps."""
    h, w = shape
    r_max = 0.5 * np.hypot(h, w)
    n_points = int(np.ceil(2 * np.pi * turns * r_max))  # arc length ~ pi * turns * r_max, two points per pixel
    theta = np.linspace(0.0, 2 * np.pi * turns, max(n_points, 2))
    radius = r_max * theta / (2 * np.pi * turns)
    offsets = rotation + 2 * np.pi * np.arange(n_arms) / n_arms
    phase = theta[None, :] + offsets[:, None]
    rows = radius[None, :] * np.sin(phase) * (h / max(h, w))
    cols = radius[None, :] * np.cos(phase) * (w / max(h, w))
    return _rasterise(rows.ravel(), cols.ravel(), shape)


def _fit_density(pattern, lo: float, hi: float, target: int, region: np.ndarray, integer: bool) -> np.ndarray:
    """Bisect the density parameter of ``pattern(p)`` so the acquired point count reaches ``target``.

    ``[lo, hi]`` is an initial bracket (widened upwards if needed); bisection stops once the count is
    within 1 % above ``target`` or the bracket cannot shrink further.
    """
    best = pattern(hi)
    while int((best & region).sum()) < target:
        lo, hi = hi, 2 * hi
        best = pattern(hi)
    for _ in range(40):
        if int((best & region).sum()) <= 1.01 * target or hi - lo <= (1.0 if integer else 1e-3):
            break
        mid = float(int(np.ceil((lo + hi) / 2))) if integer else (lo + hi) / 2
        if integer and mid >= hi:
            break
        candidate = pattern(mid)
        if int((candidate & region).sum()) >= target:
            best, hi = candidate, mid
        else:
            lo = mid
    return best


def radial_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
) -> np.ndarray:
    """Golden-angle radial pattern rasterised on the Cartesian grid (plus the centre block).

    The number of spokes is the smallest that samples at least ``round(H n / R)`` acquired points.

    Args:
        shape: ``(H, W)``.
        center_fraction: centre-block fraction per axis, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired points.
        rng: random generator (draws the rotation of the first spoke).
        pe_range: acquired columns ``(start, stop)``.

    Returns:
        bool ``(H, W)``.
    """
    h, w = int(shape[0]), int(shape[1])
    rng_pe = resolve_pe_range(w, pe_range)
    block = _acs_block((h, w), center_fraction, rng_pe)
    region = _acquired_region((h, w), rng_pe)
    target = int(round(region.sum() / _check_acceleration(acceleration)))
    _lines_budget(int(region.sum()), int(block.sum()), acceleration, what="points")
    rotation = float(_uniform(rng)) * np.pi
    mask = _fit_density(
        lambda n: _radial_pattern((h, w), int(n), rotation) | block,
        1.0,
        float(max(2, int(np.ceil(2 * target / np.hypot(h, w))))),  # a spoke covers ~hypot(h, w) pixels
        target,
        region,
        True,
    )
    return mask & region


def spiral_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
    n_arms: int = 8,
) -> np.ndarray:
    """Multi-arm Archimedean spiral rasterised on the Cartesian grid (plus the centre block).

    The number of turns is the smallest (to 1e-3) that samples at least ``round(H n / R)`` acquired points.

    Args:
        shape: ``(H, W)``.
        center_fraction: centre-block fraction per axis, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired points.
        rng: random generator (draws the rotation of the arms).
        pe_range: acquired columns ``(start, stop)``.
        n_arms: number of interleaved arms (>= 1).

    Returns:
        bool ``(H, W)``.
    """
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    h, w = int(shape[0]), int(shape[1])
    rng_pe = resolve_pe_range(w, pe_range)
    block = _acs_block((h, w), center_fraction, rng_pe)
    region = _acquired_region((h, w), rng_pe)
    target = int(round(region.sum() / _check_acceleration(acceleration)))
    _lines_budget(int(region.sum()), int(block.sum()), acceleration, what="points")
    rotation = float(_uniform(rng)) * 2 * np.pi
    mask = _fit_density(
        lambda t: _spiral_pattern((h, w), t, n_arms, rotation) | block,
        0.05,
        # arm passes ~r_max / (turns * n_arms) pixels apart: sample fraction ~ turns * n_arms / r_max
        max(0.1, 2 * np.hypot(h, w) / 2 * target / region.sum() / n_arms),
        target,
        region,
        False,
    )
    return mask & region


def generate_mask(
    mask_type: str,
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    rng: Rng,
    pe_range: Sequence[int] | None = None,
) -> tuple[np.ndarray, int]:
    """Generate any mask type as a bool ``(H, W)`` array.

    Args:
        mask_type: one of :data:`MASK_TYPES` (``"random"``, ``"equispaced"``, ``"gaussian1d"``,
            ``"gaussian2d"``, ``"poisson"``, ``"radial"``, ``"spiral"``).
        shape: ``(H, W)`` of the k-space grid.
        center_fraction: ACS fraction of the acquired width, in ``[0, 1]``.
        acceleration: ``R >= 1`` over acquired columns / points.
        rng: random generator.
        pe_range: acquired columns ``(start, stop)``; ``None`` = all.

    Returns:
        ``(mask, num_low_frequencies)``: bool ``(H, W)`` (column masks expanded along ``H``) and the
        number of ACS columns ``round(n * center_fraction)``.

    Raises:
        ValueError: for an unknown ``mask_type`` or invalid parameters (named in the message).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with positive sizes, got {tuple(shape)}")
    h, w = int(shape[0]), int(shape[1])
    _, n_acs = acs_range(w, center_fraction, pe_range)
    if mask_type in COLUMN_MASK_TYPES:
        column_fn = {
            "random": random_column_mask,
            "equispaced": equispaced_column_mask,
            "gaussian1d": gaussian_column_mask,
        }[mask_type]
        columns = column_fn(w, center_fraction, acceleration, rng, pe_range)
        return np.broadcast_to(columns[None, :], (h, w)).copy(), n_acs
    fn = {"gaussian2d": gaussian_2d_mask, "poisson": poisson_disc_mask, "radial": radial_mask, "spiral": spiral_mask}
    return fn[mask_type]((h, w), center_fraction, acceleration, rng, pe_range), n_acs

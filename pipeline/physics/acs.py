"""The ACS (auto-calibration signal) region: where it starts and how it is found in a mask.

One convention for the whole package, fastMRI's: a centred block of ``n`` samples on an axis of
``N`` samples starts at ``(N - n + 1) // 2`` and always contains the k-space centre ``N // 2``.
Masks, the SSDU split, the sensitivity estimators and the networks all place and find the ACS region
with the functions here. ``num_low_frequencies`` (fastMRI's name) is the ACS width in phase-encode
columns; ``0`` means "unknown: detect it from the mask".

Detection takes the contiguous run of sampled lines through the centre line. A line that is sampled
right next to the ACS block therefore counts as ACS; pass ``num_low_frequencies`` from the header to
avoid that.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor


def acs_start(size: int, num: int) -> int:
    """First index of a centred block of ``num`` samples on an axis of ``size`` (fastMRI convention).

    Example:
        >>> acs_start(25, 2), acs_start(24, 2), acs_start(368, 30)
        (12, 11, 169)
    """
    return (int(size) - int(num) + 1) // 2


def acs_slice(size: int, num: int) -> slice:
    """``slice`` of the centred block of ``num`` samples (clipped to ``size``) on an axis of ``size``."""
    num = min(max(int(num), 0), int(size))
    first = acs_start(size, num)
    return slice(first, first + num)


def centre_run(lines: Tensor) -> Tuple[Tensor, Tensor]:
    """``[start, stop)`` of the contiguous run of sampled lines through the centre line ``N // 2``.

    Args:
        lines: ``(B, N)``, non-zero = sampled.

    Returns:
        ``(start, stop)``, int64 ``(B,)`` each; ``start == stop == N // 2`` where the centre is not sampled.
    """
    centre = lines.shape[-1] // 2
    sampled = (lines != 0).to(torch.float32)
    right = torch.cumprod(sampled[:, centre:], dim=1).sum(dim=1)  # run from the centre rightwards
    left = torch.cumprod(sampled[:, :centre].flip(1), dim=1).sum(dim=1)  # run leftwards
    left = torch.where(right > 0, left, torch.zeros_like(left))
    return (centre - left).to(torch.long), (centre + right).to(torch.long)


def acs_columns(mask: Tensor, num_low_frequencies: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """ACS phase-encode columns ``[start, stop)`` of each sample of a batch of masks.

    A column counts as acquired when any of its points is sampled (so a 2-D point mask split from a
    1-D acquisition keeps its columns). A sample with a positive ``num_low_frequencies`` uses that many
    centred columns (:func:`acs_start`); otherwise the run of acquired columns through ``W // 2``
    (:func:`centre_run`). A sample whose centre column is not acquired gets an empty range.

    Args:
        mask: ``(B, ..., W, 1)`` (e.g. ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``), non-zero = sampled.
        num_low_frequencies: ``(B,)`` or ``(1,)`` ACS widths in columns, 0 = detect; ``None`` = detect all.

    Returns:
        ``(start, stop)``, int64 ``(B,)`` each (``B`` broadcast over ``mask`` and ``num_low_frequencies``).
    """
    batch, width = mask.shape[0], mask.shape[-2]
    columns = (mask != 0).reshape(batch, -1, width).any(dim=1)  # (B, W)
    start, stop = centre_run(columns)
    if num_low_frequencies is not None:
        n = num_low_frequencies.to(device=mask.device, dtype=torch.long).reshape(-1).clamp(0, width)
        batch = max(batch, n.shape[0])
        n, start, stop = n.expand(batch), start.expand(batch), stop.expand(batch)
        given = n > 0
        header_start = torch.div(width - n + 1, 2, rounding_mode="floor")
        start = torch.where(given, header_start, start)
        stop = torch.where(given, header_start + n, stop)
    return start, stop


def acs_block(mask: Tensor) -> Tuple[int, int]:
    """Size ``(h, w)`` of the fully sampled centre block of one ``(H, W)`` mask.

    ``w`` is the run of sampled points through the centre along the centre row, ``h`` the run along the
    centre column (``H`` for a column mask). ``(0, 0)`` when the centre is not sampled.

    Example:
        >>> m = torch.zeros(8, 10, dtype=torch.bool); m[:, 4:7] = True
        >>> acs_block(m)
        (8, 3)
    """
    h, w = mask.shape
    row_start, row_stop = centre_run(mask[h // 2].reshape(1, w))
    col_start, col_stop = centre_run(mask[:, w // 2].reshape(1, h))
    return int(col_stop - col_start), int(row_stop - row_start)

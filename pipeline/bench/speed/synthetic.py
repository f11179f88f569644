"""Synthetic inputs of the speed benchmark: random masked k-space with a fastMRI equispaced mask (timing only)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.transforms.masks import equispaced_column_mask

__all__ = ["FASTMRI_SHAPE", "synthetic_slice"]

#: ``(coils, H, W)`` of a fastMRI brain slice.
FASTMRI_SHAPE = (15, 640, 368)


def synthetic_slice(coils: int, h: int, w: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random masked k-space and its 4x equispaced column mask (8% ACS), both seeded by ``seed``.

    Args:
        coils: ``C``.
        h: readout size ``H``.
        w: phase-encode size ``W``.
        batch: ``B``.
        seed: seed of the k-space values and of the mask's grid offset.

    Returns:
        ``(kspace, mask)``: float32 ``(B, C, H, W, 2)``, zero at unsampled columns, and bool ``(1, 1, 1, W, 1)``.

    Example:
        >>> kspace, mask = synthetic_slice(2, 8, 32)
        >>> kspace.shape, mask.shape, int(mask.sum())
        (torch.Size([1, 2, 8, 32, 2]), torch.Size([1, 1, 1, 32, 1]), 7)
    """
    columns = equispaced_column_mask(w, 0.08, 4, np.random.default_rng(seed))
    mask = torch.from_numpy(columns).reshape(1, 1, 1, w, 1)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, coils, h, w, 2, generator=g) * mask, mask

"""What every reconstruction network of the package returns: one network-neutral output type."""

from typing import List, NamedTuple

import numpy as np
import torch
from torch import Tensor

from pipeline.physics.coils import rss
from pipeline.physics.fft import ifft2c


class ReconstructionOutput(NamedTuple):
    """The output of a reconstruction network (a TorchScript-compatible ``NamedTuple``).

    Losses, engines, writers and exports read only these fields, so a new network needs no edits there.

    Attributes:
        kspace: final predicted multi-coil k-space ``(B, C, H, W, 2)``, float32, in the input's units.
        image: RSS magnitude of ``ifft2c(kspace)`` on the full grid ``(B, H, W)`` (not cropped).
        sens_maps: coil sensitivities used ``(B, C, H, W, 2)``, ``sum_c |S_c|^2 = 1``.
        kspace_iterates: predicted k-space after each unrolled step (cascade / iteration), oldest first,
            the last one equal to ``kspace``, for deep supervision; empty unless requested.
    """

    kspace: Tensor
    image: Tensor
    sens_maps: Tensor
    kspace_iterates: List[Tensor]


def restrict_to_band(output: ReconstructionOutput, pe_range: Tensor) -> ReconstructionOutput:
    """The output with its k-space set to zero outside the acquirable phase-encode band (hard constraint).

    Columns outside ``[start, stop)`` (the padding band of fastMRI-style data, zero in every file by
    construction) can never be measured, so neither the supervised nor the SSDU loss constrains what a network
    puts there when trained on subsampled data alone; left free, a self-supervised network fills them with
    energy that shows up as high-frequency artefacts in the image. Zeroing them in training and at inference
    makes the prediction agree with what is known about the data.

    Args:
        output: a network's output; ``kspace`` and every entry of ``kspace_iterates`` ``(B, C, H, W, 2)``.
        pe_range: ``(B, 2)`` or ``(2,)`` integer ``[start, stop)`` acquired columns per sample
            (:attr:`pipeline.keys.Keys.PE_RANGE`).

    Returns:
        A new :class:`ReconstructionOutput`: k-space (and iterates) zero outside the band, ``image`` recomputed
        as the RSS of the restricted k-space, ``sens_maps`` unchanged. The input is returned as it is when
        every band covers the whole width.

    Raises:
        ValueError: if ``pe_range`` is not ``(2,)`` / ``(B, 2)`` or a band is empty or outside ``[0, W]``.
    """
    width = output.kspace.shape[-2]
    bands = torch.as_tensor(pe_range, device=output.kspace.device).reshape(-1, 2).long()
    if bands.shape[0] not in (1, output.kspace.shape[0]):
        raise ValueError(
            f"pe_range must be (2,) or (B, 2) with B = {output.kspace.shape[0]}, got {tuple(np.shape(pe_range))}")
    start, stop = bands[:, 0], bands[:, 1]
    if bool(((start < 0) | (stop > width) | (stop <= start)).any()):
        raise ValueError(f"pe_range {bands.tolist()} must hold 0 <= start < stop <= W = {width}")
    if bool(((start == 0) & (stop == width)).all()):
        return output
    columns = torch.arange(width, device=output.kspace.device)
    band = ((columns >= start[:, None]) & (columns < stop[:, None])).to(output.kspace.dtype)
    band = band[:, None, None, :, None]  # (B, 1, 1, W, 1)
    kspace = output.kspace * band
    iterates = [k * band for k in output.kspace_iterates]
    return ReconstructionOutput(kspace, rss(ifft2c(kspace)), output.sens_maps, iterates)



def replace_measured(output: ReconstructionOutput, masked_kspace: Tensor, mask: Tensor) -> ReconstructionOutput:
    """The output with its k-space replaced by the measurement where the input mask is set (hard data consistency).

    An unrolled network only pulls its k-space towards the input on the input mask (soft data consistency with
    a learned weight); a self-supervised loss, which sees only the SSDU loss set Lambda, never penalises what
    it does on the input set Theta, so a network trained on subsampled data alone drifts away from the very
    data it was given (mostly at the high frequencies that Gaussian Lambda selection rarely picks). Replacing
    the prediction by the measurement there makes the output agree with every acquired sample exactly.

    Args:
        output: a network's output; ``kspace`` (and ``kspace_iterates``) ``(B, C, H, W, 2)``.
        masked_kspace: the network's input k-space ``(B, C, H, W, 2)`` (zero outside ``mask``).
        mask: the network's input mask, bool or 0/1 float, broadcastable to the k-space (``(B, 1, H, W, 1)``).

    Returns:
        A new :class:`ReconstructionOutput`: ``mask * masked_kspace + (1 - mask) * kspace`` for the final k-space,
        which also replaces the last entry of ``kspace_iterates`` (the rule of the class: the last iterate is the
        final k-space; the earlier steps are left as the network gave them), ``image`` recomputed,
        ``sens_maps`` unchanged.
    """
    keep = mask.to(output.kspace.dtype)
    kspace = keep * masked_kspace.to(output.kspace.dtype) + (1.0 - keep) * output.kspace
    iterates = [*output.kspace_iterates[:-1], kspace] if output.kspace_iterates else []
    return ReconstructionOutput(kspace, rss(ifft2c(kspace)), output.sens_maps, iterates)

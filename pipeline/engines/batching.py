"""From a collated batch to what the network and the losses take: one place, used by every engine.

The trainer, the evaluators and the benchmarks read batches only through these helpers, so the meaning of
each key (:class:`pipeline.keys.Keys`), the intensity scale and the data range are interpreted once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from pipeline.keys import Keys
from pipeline.networks.output import ReconstructionOutput, replace_measured, restrict_to_band

#: ``precision`` setting -> autocast dtype (``None``: no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` in ``{"fp32", "bf16", "fp16"}`` (a no-op for fp32).

    Raises:
        ValueError: for an unknown precision, or fp16 on a CPU (unsupported there; use bf16).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on a CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def network_inputs(
    batch: Mapping[str, Any], device: torch.device, non_blocking: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The network's arguments: ``masked_kspace (B, C, H, W, 2)``, ``input_mask (B, 1, H, W, 1)`` and
    ``num_low_frequencies (B,)`` (``None`` when the batch has none)."""
    kspace = batch[Keys.MASKED_KSPACE].to(device, non_blocking=non_blocking)
    mask = batch[Keys.INPUT_MASK].to(device, non_blocking=non_blocking)
    nlf = batch.get(Keys.NUM_LOW_FREQUENCIES)
    if nlf is not None:
        nlf = torch.as_tensor(nlf).to(device=device, dtype=torch.long)
    return kspace, mask, nlf


def constrain_output(
    output: ReconstructionOutput,
    batch: Mapping[str, Any],
    device: torch.device,
    band_limit: bool = True,
    data_consistency: bool = True,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ReconstructionOutput:
    """The network output under the constraints of what is known about the data, for training and evaluation.

    The one place where they are applied: first the measured samples replace the prediction on the input mask
    (:func:`pipeline.networks.output.replace_measured`, when ``data_consistency``), then the k-space is set to
    zero outside each sample's acquirable phase-encode band ``Keys.PE_RANGE``
    (:func:`pipeline.networks.output.restrict_to_band`, when ``band_limit`` and the batch has the key).

    Args:
        output: the network's output on ``device``.
        batch: the collated batch (``Keys.PE_RANGE``; the network inputs when ``inputs`` is ``None``).
        device: where the network ran.
        band_limit: apply the phase-encode band.
        data_consistency: replace the prediction by the measurement on the input mask.
        inputs: the network's ``(masked_kspace, input_mask)`` already on ``device`` (:func:`network_inputs`),
            so they are not copied there again; ``None``: read from ``batch``.
    """
    if data_consistency:
        kspace_in, mask_in = inputs if inputs is not None else network_inputs(batch, device)[:2]
        output = replace_measured(output, kspace_in, mask_in)
    if band_limit and Keys.PE_RANGE in batch:
        output = restrict_to_band(output, torch.as_tensor(batch[Keys.PE_RANGE]).to(device))
    return output


def recon_size(batch: Mapping[str, Any]) -> tuple[int, int]:
    """The ``(Hr, Wr)`` crop of a batch.

    Raises:
        ValueError: if the samples of the batch have different recon sizes.
    """
    sizes = torch.as_tensor(batch[Keys.RECON_SIZE]).reshape(-1, 2)
    if not bool((sizes == sizes[0]).all()):
        raise ValueError(f"a batch mixes recon sizes {sizes.tolist()}; use batch_size=1 for such data")
    return int(sizes[0, 0]), int(sizes[0, 1])


def intensity_scale(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
    """``(B, 1, 1, 1)`` intensity scale of each sample (``normalised = raw / scale``; 1 when not normalised)."""
    scale = batch.get(Keys.SCALE)
    if scale is None:
        return torch.ones(1, 1, 1, 1, device=device)
    return torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(-1, 1, 1, 1)


def data_range(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor | None:
    """SSIM / PSNR data range ``(B,)`` of each sample, in the (normalised) units of the batch's images.

    The one convention of the package (fastMRI's): the reference VOLUME maximum ``Keys.MAX`` divided by
    the sample's intensity scale. A sample whose file gives no volume maximum (``MAX <= 0``) falls back
    to the maximum of its own reference slice. ``None`` for a batch without a reference image.
    """
    if Keys.TARGET not in batch:
        return None
    target = torch.as_tensor(batch[Keys.TARGET]).to(device)
    slice_max = target.flatten(1).amax(dim=1).float()
    volume_max = batch.get(Keys.MAX)
    if volume_max is None:
        return slice_max
    volume_max = torch.as_tensor(volume_max, dtype=torch.float32, device=device).reshape(-1)
    volume_max = volume_max.expand_as(slice_max) / intensity_scale(batch, device).reshape(-1)
    return torch.where(volume_max > 0, volume_max, slice_max)


def loss_arguments(batch: Mapping[str, Any], device: torch.device, non_blocking: bool = False) -> dict[str, Any]:
    """Keyword arguments of the JSSL loss (:class:`pipeline.losses.JointLoss`) for the batch's branch.

    ``Keys.KSPACE`` (as stored) is the k-space reference of both branches: a supervised (``"sl"``) batch
    is compared with it on the whole grid and with ``Keys.TARGET``; a self-supervised (``"ssl"``) batch only
    on its SSDU loss set ``Keys.LOSS_MASK`` (Lambda, inside the acquired set).

    Returns:
        ``{"ref_kspace", "ref_image", "kspace_mask", "data_range", "crop_size"}``.

    Raises:
        ValueError: an ``"ssl"`` batch without ``Keys.LOSS_MASK`` or an ``"sl"`` batch without ``Keys.TARGET``.
    """
    branch = batch[Keys.BRANCH]
    ref_kspace = batch[Keys.KSPACE].to(device, non_blocking=non_blocking)
    if branch == "ssl":
        if Keys.LOSS_MASK not in batch:
            raise ValueError("a self-supervised batch needs an SSDU loss mask (Keys.LOSS_MASK)")
        return {
            "ref_kspace": ref_kspace,
            "ref_image": None,
            "kspace_mask": batch[Keys.LOSS_MASK].to(device, non_blocking=non_blocking),
            "data_range": None,
            "crop_size": recon_size(batch),
        }
    if Keys.TARGET not in batch:
        raise ValueError(f"a supervised batch needs a reference image (Keys.TARGET); branch {branch!r}")
    return {
        "ref_kspace": ref_kspace,
        "ref_image": batch[Keys.TARGET].to(device, non_blocking=non_blocking),
        "kspace_mask": None,
        "data_range": data_range(batch, device),
        "crop_size": recon_size(batch),
    }

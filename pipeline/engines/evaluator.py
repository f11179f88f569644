"""Evaluation and inference on MONAI's :class:`SupervisedEvaluator`.

The network reconstructs from the full acquired set (no SSDU split at inference). Predictions are
centre-cropped to the header's recon size and put back into the units of the input (``x * scale``),
so that metrics and written files compare with the stored references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents

from pipeline.baselines import BASELINES
from pipeline.data.errors import DataError
from pipeline.engines.batching import autocast_context, constrain_output, intensity_scale, network_inputs, recon_size
from pipeline.keys import Keys
from pipeline.physics import center_crop
from pipeline.transforms import denormalize

#: Batch keys passed through to ``engine.state.output`` for metrics and writers.
PASSTHROUGH = (Keys.VOLUME, Keys.FILENAME, Keys.SLICE, Keys.NUM_SLICES, Keys.MAX, Keys.RECON_SIZE)


class ReconstructionEvaluator(SupervisedEvaluator):
    """Reconstruct every slice of a loader with the network and, optionally, classical baselines.

    Args:
        device: where the network runs.
        val_data_loader: batches with ``Keys.MASKED_KSPACE``, ``Keys.INPUT_MASK`` (= the acquisition
            mask), ``Keys.RECON_SIZE`` and, for scoring, ``Keys.TARGET`` and ``Keys.MAX``.
        network: the reconstruction network, or ``None`` to run baselines only.
        baselines: names from :data:`pipeline.baselines.BASELINES` computed next to the network
            (e.g. ``["zero_filled", "sense"]``); each lands in the output under its own name.
        metrics: name -> Ignite metric; the first is MONAI's key metric (MONAI registers additional
            metrics only next to a key metric, so they are passed together here).
        val_handlers: as in MONAI.
        precision: autocast precision for the network (``"fp32"``, ``"bf16"``, ``"fp16"``).
        epoch_length: as in MONAI.
        band_limit: zero the predicted k-space outside each sample's acquirable phase-encode band
            (``Keys.PE_RANGE``) before forming the image, as the trainer does
            (:func:`pipeline.engines.batching.constrain_output`).
        data_consistency: replace the predicted k-space by the measured input on the input mask before the
            loss / image (hard data consistency, :func:`pipeline.networks.output.replace_measured`).

    ``engine.state.output`` is a dict of batched tensors: ``Keys.PRED`` ``(B, 1, Hr, Wr)``, each
    baseline ``(B, 1, Hr, Wr)``, ``Keys.TARGET`` (when the batch has one) and the pass-through keys.
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Iterable,
        network: torch.nn.Module | None,
        baselines: Sequence[str] = (),
        metrics: Mapping[str, Metric] | None = None,
        val_handlers: Sequence | None = None,
        precision: str = "fp32",
        epoch_length: int | None = None,
        band_limit: bool = True,
        data_consistency: bool = True,
    ) -> None:
        unknown = [name for name in baselines if name not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
        if network is None and not baselines:
            raise ValueError("nothing to evaluate: give a network, baselines, or both")
        names = list(metrics or {})
        key_val_metric = {names[0]: metrics[names[0]]} if names else None  # type: ignore[index]
        additional_metrics = {name: metrics[name] for name in names[1:]} if names else None  # type: ignore[index]
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=network if network is not None else torch.nn.Identity(),
            epoch_length=epoch_length,
            key_val_metric=key_val_metric,
            additional_metrics=additional_metrics,
            val_handlers=val_handlers,
            decollate=False,
        )
        self.has_network = network is not None
        self.scores = bool(metrics)
        self.baselines = list(baselines)
        autocast_context(torch.device(device), precision)
        self.precision = precision
        self.band_limit = bool(band_limit)
        self.data_consistency = bool(data_consistency)

    def _iteration(self, engine: ReconstructionEvaluator, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = engine.state.device
        if engine.scores and Keys.TARGET not in batchdata:
            name = batchdata.get(Keys.VOLUME, batchdata.get(Keys.FILENAME, ["?"]))[0]
            problem = "no reference image to score against (evaluation needs fully sampled references; " \
                "reconstruct such files with inference.json)"
            raise DataError(name, problem, int(torch.as_tensor(batchdata[Keys.SLICE]).reshape(-1)[0]))
        crop = recon_size(batchdata)
        scale = intensity_scale(batchdata, device)
        output: dict[str, Any] = {key: batchdata[key] for key in PASSTHROUGH if key in batchdata}
        if Keys.TARGET in batchdata:
            output[Keys.TARGET] = denormalize(batchdata[Keys.TARGET].to(device), scale)
        if engine.has_network:
            kspace_in, mask_in, nlf = network_inputs(batchdata, device, engine.non_blocking)
            engine.network.eval()
            with torch.inference_mode(), autocast_context(device, engine.precision):
                result = constrain_output(
                    engine.network(kspace_in, mask_in, nlf), batchdata, device,
                    engine.band_limit, engine.data_consistency, (kspace_in, mask_in),
                )
            output[Keys.PRED] = denormalize(center_crop(result.image.float(), crop).unsqueeze(1), scale)
        for name in engine.baselines:
            kspace = batchdata[Keys.MASKED_KSPACE]
            mask = batchdata[Keys.INPUT_MASK]
            images = [BASELINES[name](kspace[i], mask[i], crop) for i in range(kspace.shape[0])]
            output[name] = denormalize(torch.stack(images).unsqueeze(1).to(device), scale)
        engine.state.output = output
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return output

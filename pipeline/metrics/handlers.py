"""Ignite metrics that accumulate slices per volume and report fastMRI volume NMSE / PSNR / SSIM.

Usable in a MONAI ``SupervisedEvaluator`` (``key_val_metric`` / ``additional_metrics``) or any Ignite
engine. Correct under DDP: ``compute()`` gathers per-slice statistics from every rank with
``ignite.distributed.all_gather`` and de-duplicates slices by ``(volume, slice)`` (a
``DistributedSampler`` pads ranks by repeating samples). Volumes are keyed by ``Keys.VOLUME``, their path
relative to the data root, so two files of the same name in different folders are two volumes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence

import ignite.distributed as idist
import numpy as np
import torch
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from pipeline.keys import Keys
from pipeline.metrics.functional import METRIC_NAMES, ssim_slices


def volume_output_transform(
    pred_key: Hashable = Keys.PRED,
    target_key: Hashable = Keys.TARGET,
    volume_key: Hashable = Keys.VOLUME,
    slice_key: Hashable = Keys.SLICE,
    max_key: Hashable = Keys.MAX,
) -> Callable[[object], tuple]:
    """Build an ``output_transform`` from an engine output to ``(pred, target, volumes, slices, maxval)``.

    Accepts a dict of batched values or a list of per-sample dicts (MONAI's decollated output).
    A missing ``max_key`` gives ``maxval = 0`` (use the target volume maximum).
    """

    def _transform(output: object) -> tuple:
        items = output if isinstance(output, Sequence) and not isinstance(output, Mapping) else [output]
        preds, targets, names, slices, maxvals = [], [], [], [], []
        for item in items:
            pred, target = torch.as_tensor(item[pred_key]), torch.as_tensor(item[target_key])
            batched = pred.ndim == 4
            preds.append(pred if batched else pred[None])
            targets.append(target if batched else target[None])
            name = item[volume_key]
            names.extend(list(name) if batched else [name])
            slices.extend(torch.as_tensor(item[slice_key]).reshape(-1).tolist())
            maxval = item.get(max_key, 0.0)
            count = pred.shape[0] if batched else 1
            maxvals.extend(torch.as_tensor(maxval, dtype=torch.float64).reshape(-1).expand(count).tolist())
        return torch.cat(preds), torch.cat(targets), names, slices, maxvals

    return _transform


def aggregate_volumes(records: Sequence[tuple]) -> dict[str, dict[str, float]]:
    """Per-volume metrics from per-slice records.

    Args:
        records: ``(volume, slice, sse, ss_gt, n_pixels, ssim, data_range)`` per slice: squared-error
            sum, squared-reference sum, pixel count, slice SSIM and the volume data range. Duplicate
            ``(volume, slice)`` records are counted once.

    Returns:
        ``{volume: {"nmse", "psnr", "ssim"}}``.
    """
    unique: dict[tuple[str, int], tuple] = {}
    for record in records:
        unique.setdefault((record[0], int(record[1])), record)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for (name, _), (_, _, sse, ss_gt, n_pix, ssim_value, maxval) in sorted(unique.items()):
        acc = sums[name]
        acc[0] += sse
        acc[1] += ss_gt
        acc[2] += n_pix
        acc[3] += ssim_value
        acc[4] += 1
        acc[5] = maxval
    result = {}
    for name, (sse, ss_gt, n_pix, ssim_sum, count, maxval) in sums.items():
        mse = sse / n_pix
        result[name] = {
            "nmse": sse / ss_gt if ss_gt > 0 else float("nan"),
            "psnr": float(20 * np.log10(maxval) - 10 * np.log10(mse)) if mse > 0 else float("inf"),
            "ssim": ssim_sum / count,
        }
    return result


class VolumeMetrics(Metric):
    """fastMRI volume metrics as one Ignite metric.

    ``update((pred, target, volumes, slice_idx, maxval))`` with ``pred``/``target`` ``(B, 1, H, W)``
    magnitudes in the same units, ``volumes`` ``(B,)`` str (volume identities, ``Keys.VOLUME``),
    ``slice_idx`` ``(B,)`` int and ``maxval`` ``(B,)`` the reference volume maximum (``<= 0``: use the
    maximum of the target slices seen).
    ``compute()`` returns ``{"nmse", "psnr", "ssim"}`` averaged over volumes, or one float when
    ``metric`` is given (for ``key_val_metric``); :meth:`per_volume` gives the per-volume values.

    Args:
        metric: ``None`` (dict of all three) or one of ``"nmse"``, ``"psnr"``, ``"ssim"``.
        output_transform: engine output -> the 5-tuple above (see :func:`volume_output_transform`).
        device: device for the metric's state (Ignite convention).
    """

    def __init__(
        self,
        metric: str | None = None,
        output_transform: Callable = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if metric is not None and metric not in METRIC_NAMES:
            raise ValueError(f"metric must be None or one of {METRIC_NAMES}, got {metric!r}")
        self.metric = metric
        self._slices: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, float]] = {}
        self._per_volume: dict[str, dict[str, float]] = {}
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        """Forget all accumulated slices."""
        self._slices = {}
        self._per_volume = {}

    @reinit__is_reduced
    def update(self, output: Sequence) -> None:
        """Store one batch of slices (later duplicates of a ``(volume, slice)`` replace earlier ones)."""
        pred, target, volumes, slices, maxvals = output
        pred = torch.as_tensor(pred).detach().to("cpu", torch.float32)
        target = torch.as_tensor(target).detach().to("cpu", torch.float32)
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 1:
            raise ValueError(
                f"pred and target must both be (B, 1, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        slices = torch.as_tensor(slices).reshape(-1).tolist()
        maxvals = torch.as_tensor(maxvals, dtype=torch.float64).reshape(-1).expand(pred.shape[0]).tolist()
        if len(volumes) != pred.shape[0] or len(slices) != pred.shape[0]:
            raise ValueError("volumes and slice_idx must have one entry per batch element")
        for b in range(pred.shape[0]):
            key = (str(volumes[b]), int(slices[b]))
            self._slices[key] = (pred[b, 0].numpy(), target[b, 0].numpy(), float(maxvals[b]))

    def compute(self) -> dict[str, float] | float:
        """Mean over volumes of NMSE, PSNR (dB) and SSIM, gathered over all DDP ranks."""
        local = sorted(self._slices.items())
        # 1) volume data ranges: the given maxval, else the max of the target slices over all ranks
        ranges_local = [(name, s, float(t.max()), m) for (name, s), (_, t, m) in local]
        data_range: dict[str, float] = {}
        given: dict[str, float] = {}
        for name, _, target_max, maxval in self._gather(ranges_local):
            data_range[name] = max(data_range.get(name, 0.0), target_max)
            if maxval > 0:
                given[name] = maxval
        data_range.update(given)
        # 2) per-slice statistics on this rank, then gathered
        records = []
        for (name, s), (p, t, _) in local:
            t64 = t.astype(np.float64)
            sse = float(((t64 - p.astype(np.float64)) ** 2).sum())
            ssim_value = float(ssim_slices(t[None], p[None], data_range[name])[0])
            records.append((name, s, sse, float((t64**2).sum()), t64.size, ssim_value, data_range[name]))
        self._per_volume = aggregate_volumes(self._gather(records))
        if not self._per_volume:
            raise ValueError("VolumeMetrics must have at least one slice before it can be computed")
        means = {k: float(np.mean([v[k] for v in self._per_volume.values()])) for k in METRIC_NAMES}
        return means if self.metric is None else means[self.metric]

    def per_volume(self) -> dict[str, dict[str, float]]:
        """``{volume: {"nmse", "psnr", "ssim"}}`` from the last :meth:`compute`."""
        return dict(self._per_volume)

    @staticmethod
    def _gather(items: list) -> list:
        """Concatenate a per-rank list of picklable records over all ranks."""
        if idist.get_world_size() == 1:
            return list(items)
        gathered = idist.all_gather(items)
        return [record for rank_items in gathered for record in rank_items]


def method_metrics(methods: Sequence[str]) -> dict[str, VolumeMetrics]:
    """One :class:`VolumeMetrics` per method: ``"network"`` reads ``Keys.PRED``, any other name its own
    output key (a baseline of :class:`~pipeline.engines.ReconstructionEvaluator`)."""
    return {
        name: VolumeMetrics(output_transform=volume_output_transform(pred_key=Keys.PRED if name == "network" else name))
        for name in methods
    }

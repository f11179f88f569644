"""The JSSL trainer: one unrolled network, supervised and SSDU self-supervised steps, on MONAI's engine.

A step of branch ``"sl"`` (fully sampled proxy data) compares the prediction with the fully sampled
k-space and reference image; a step of branch ``"ssl"`` (subsampled target data) feeds the network only
the SSDU input set Theta and compares its predicted k-space with the measurement on the disjoint loss set
Lambda. Which branch a batch belongs to is written into it by :class:`~pipeline.engines.InterleavedLoader`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from torch.optim import Optimizer

from pipeline.engines.batching import autocast_context, constrain_output, loss_arguments, network_inputs
from pipeline.keys import Keys

logger = logging.getLogger(__name__)


def _check_no_leak(kspace_in: torch.Tensor, input_mask: torch.Tensor, loss_mask: torch.Tensor) -> None:
    """Refuse an SSDU step whose network input carries k-space of the loss set Lambda.

    Raises:
        RuntimeError: if Theta and Lambda overlap or the input k-space is non-zero on Lambda.
    """
    lam = loss_mask.to(torch.bool)
    if (input_mask.to(torch.bool) & lam).any():
        raise RuntimeError("SSDU input mask Theta and loss mask Lambda overlap: the loss would see its own input")
    if (kspace_in * lam).abs().amax() > 0:
        raise RuntimeError("the network input k-space is non-zero on the SSDU loss set Lambda")


class JSSLTrainer(SupervisedTrainer):
    """Interleaved supervised / self-supervised training on MONAI's :class:`SupervisedTrainer`.

    Args:
        device: where the network runs.
        max_epochs: epochs of ``epoch_length`` steps.
        train_data_loader: an iterable of single-domain batches carrying ``Keys.BRANCH``
            (:class:`~pipeline.engines.InterleavedLoader`).
        network: returns a :class:`~pipeline.networks.ReconstructionOutput` from
            ``(masked_kspace, input_mask, num_low_frequencies)``.
        optimizer: the optimiser.
        losses: branch name -> loss called as ``loss(output, **loss_arguments(batch))`` (see
            :func:`pipeline.engines.batching.loss_arguments`), returning ``(total, {term: value})``.
        branch_weights: multiplies each branch's loss (default 1 for every branch).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (fp16 uses a gradient scaler; CUDA only).
        grad_clip_norm: clip the global gradient norm to this value (``None``: no clipping).
        max_nonfinite_steps: a step whose loss or gradients are not finite is skipped (the optimiser is not
            stepped, so the weights stay finite) and counted; this many skipped steps in a row stop the run
            with a :class:`FloatingPointError` naming the files and slices of those batches. fp16 steps
            that the gradient scaler skips while it calibrates are not counted.
        epoch_length: steps per epoch (default ``len(train_data_loader)``).
        train_handlers: Ignite/MONAI handlers.
        non_blocking: as in MONAI.
        band_limit: zero the predicted k-space outside each sample's acquirable phase-encode band
            (``Keys.PE_RANGE``) before the loss (:func:`pipeline.engines.batching.constrain_output`). Without it a
            self-supervised branch leaves those columns unconstrained and diverges; keep it equal to the
            evaluator's setting.
        data_consistency: replace the predicted k-space by the measured input on the input mask before the
            loss / image (hard data consistency, :func:`pipeline.networks.output.replace_measured`).

    The iteration output (``engine.state.output``) is a dict of floats: ``loss`` (weighted, of this
    step), ``loss_<branch>`` and ``<branch>/<term>`` for every loss term, ``<branch>/grad_norm`` (the global
    gradient norm before clipping; NaN or inf for a skipped step), and ``skipped_steps`` (non-finite steps skipped so
    far), ready for the stats and MLflow handlers.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: Optimizer,
        losses: Mapping[str, Callable],
        branch_weights: Mapping[str, float] | None = None,
        precision: str = "fp32",
        grad_clip_norm: float | None = None,
        max_nonfinite_steps: int = 5,
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        non_blocking: bool = False,
        band_limit: bool = True,
        data_consistency: bool = True,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=None,  # type: ignore[arg-type]  # per-branch losses below
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            train_handlers=train_handlers,
            decollate=False,
            optim_set_to_none=True,
        )
        self.losses = dict(losses)
        self.band_limit = bool(band_limit)
        self.data_consistency = bool(data_consistency)
        self.branch_weights = {name: float((branch_weights or {}).get(name, 1.0)) for name in self.losses}
        for name, weight in self.branch_weights.items():
            if weight < 0:
                raise ValueError(f"branch weight for {name!r} must be >= 0, got {weight}")
        autocast_context(torch.device(device), precision)  # validates precision/device early
        self.precision = precision
        self.grad_clip_norm = grad_clip_norm
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.state.skipped_steps = 0  # part of the engine's checkpointed state
        self.state_dict_user_keys.append("skipped_steps")
        self._skipped_in_a_row: list[str] = []
        self.grad_scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def _iteration(self, engine: JSSLTrainer, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        branch = batchdata[Keys.BRANCH]
        if branch not in engine.losses:
            raise ValueError(f"batch of branch {branch!r} but losses are configured only for {sorted(engine.losses)}")
        device = engine.state.device
        kspace_in, mask_in, nlf = network_inputs(batchdata, device, engine.non_blocking)
        loss_kwargs = loss_arguments(batchdata, device, engine.non_blocking)
        if branch == "ssl":
            _check_no_leak(kspace_in, mask_in, loss_kwargs["kspace_mask"])

        engine.state.output = {}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, engine.precision):
            output = engine.network(kspace_in, mask_in, nlf)
        output = constrain_output(output, batchdata, device, engine.band_limit, engine.data_consistency,
                                  (kspace_in, mask_in))
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss, terms = engine.losses[branch](output, **loss_kwargs)
        weighted = engine.branch_weights[branch] * loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        finite = bool(torch.isfinite(weighted))
        grad_norm = float("nan")
        if finite and engine.grad_scaler is not None:
            engine.grad_scaler.scale(weighted).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.grad_scaler.unscale_(engine.optimizer)
            grad_norm = self._clip(engine)
            engine.grad_scaler.step(engine.optimizer)  # skips overflowing steps itself
            engine.grad_scaler.update()
        elif finite:
            weighted.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            grad_norm = self._clip(engine)
            finite = math.isfinite(grad_norm)
            if finite:
                engine.optimizer.step()
        if finite:
            engine._skipped_in_a_row.clear()
        else:
            engine.optimizer.zero_grad(set_to_none=True)
            self._skip(engine, batchdata, branch, float(weighted.detach()))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)

        engine.state.output = {
            "skipped_steps": float(engine.state.skipped_steps),
            "loss": float(weighted.detach()),
            f"loss_{branch}": float(loss.detach()),
            f"{branch}/grad_norm": grad_norm,
            **{f"{branch}/{name}": float(value) for name, value in terms.items()},
        }
        return engine.state.output

    @staticmethod
    def _clip(engine: JSSLTrainer) -> float:
        """Clip the global gradient norm (when set); returns the norm before clipping (not finite when a gradient
        is not)."""
        max_norm = engine.grad_clip_norm if engine.grad_clip_norm is not None else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(engine.network.parameters(), max_norm))

    @staticmethod
    def _skip(engine: JSSLTrainer, batch: Mapping[str, Any], branch: str, loss: float) -> None:
        """Count a skipped non-finite step; stop after ``max_nonfinite_steps`` of them in a row.

        Raises:
            FloatingPointError: naming the files and slices of the batches of those steps.
        """
        engine.state.skipped_steps += 1
        slices = torch.as_tensor(batch.get(Keys.SLICE, [])).reshape(-1).tolist()
        names = batch.get(Keys.FILENAME, [])
        where = ", ".join(f"{name} slice {s}" for name, s in zip(names, slices)) or "unknown slices"
        engine._skipped_in_a_row.append(f"iteration {engine.state.iteration} ({branch}): {where}")
        logger.warning(
            f"skipped a non-finite {branch} step at iteration {engine.state.iteration} (loss {loss}): {where}"
        )
        if len(engine._skipped_in_a_row) >= engine.max_nonfinite_steps:
            raise FloatingPointError(
                f"{len(engine._skipped_in_a_row)} training steps in a row had a non-finite loss or gradients; "
                "the weights were left unchanged. Batches: " + "; ".join(engine._skipped_in_a_row)
            )

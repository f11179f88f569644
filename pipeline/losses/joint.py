"""One loss for both JSSL branches: supervised (proxy, fully sampled) and SSDU self-supervised (target).

- SL (``kspace_mask=None``): k-space terms between the predicted and the fully sampled k-space over the
  whole grid; image terms between the predicted image, centre-cropped to ``ref_image``'s size, and
  ``ref_image``.
- SSL (``kspace_mask = Lambda``): k-space terms between the predicted and the measured k-space on Lambda
  only; image terms (only if weighted) between the predicted image and the RSS image of the Lambda
  k-space alone, both centre-cropped to ``crop_size`` when given (e.g. the header's recon size).
- With ``cascade_weighting`` the k-space terms are applied to the k-space of every unrolled step
  (``ReconstructionOutput.kspace_iterates``) with weights ``logspace(0.1 -> 1.0)``, normalised to sum to 1
  (JSSL reference).

Reference weights (Yiasemis et al., MIDL 2025): L1 2, SSIM 2, HFEN-L1 1, HFEN-L2 1, k-space NMAE 2,
k-space NMSE 2 (:data:`REFERENCE_WEIGHTS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from pipeline.losses.terms import hfen_loss, kspace_nmae, kspace_nmse, l1_image_loss, ssim_loss
from pipeline.networks.output import ReconstructionOutput
from pipeline.physics.coils import center_crop, rss_image

IMAGE_TERMS = ("l1", "ssim", "hfen_l1", "hfen_l2")
KSPACE_TERMS = ("kspace_nmse", "kspace_nmae")
TERMS = IMAGE_TERMS + KSPACE_TERMS
REFERENCE_WEIGHTS: dict[str, float] = {
    "l1": 2.0,
    "ssim": 2.0,
    "hfen_l1": 1.0,
    "hfen_l2": 1.0,
    "kspace_nmse": 2.0,
    "kspace_nmae": 2.0,
}

_KSPACE_FNS: dict[str, Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]] = {
    "kspace_nmse": kspace_nmse,
    "kspace_nmae": kspace_nmae,
}


def iterate_weights(num_iterates: int) -> Tensor:
    """Weights of the unrolled steps' k-space losses: ``logspace`` from 0.1 to 1.0, normalised to sum 1.

    Args:
        num_iterates: number of step outputs (cascades / iterations), >= 1.

    Returns:
        float32 ``(num_iterates,)``, increasing, ``[1.0]`` for a single step.
    """
    weights = torch.logspace(-1.0, 0.0, steps=num_iterates)
    return weights / weights.sum()


class JointLoss(nn.Module):
    """Weighted sum of image-domain and k-space loss terms, same call for the SL and SSL branches.

    Example:
        >>> kspace = torch.randn(1, 2, 16, 16, 2)
        >>> output = ReconstructionOutput(kspace, rss_image(kspace), torch.ones_like(kspace), [])
        >>> total, terms = JointLoss({"l1": 1.0, "kspace_nmse": 2.0})(output, kspace)
        >>> float(total), sorted(terms)
        (0.0, ['kspace_nmse', 'l1'])
    """

    def __init__(self, weights: Mapping[str, float], cascade_weighting: bool = False) -> None:
        """Configure the loss.

        Args:
            weights: term name -> weight (>= 0); names from :data:`TERMS`. Zero-weight terms are skipped.
            cascade_weighting: apply the k-space terms to every cascade's k-space
                (``ReconstructionOutput.kspace_iterates``, network called with ``return_iterates=True``) with
                :func:`iterate_weights`.

        Raises:
            ValueError: unknown term name, negative or non-finite weight, or no positive weight.
        """
        super().__init__()
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ValueError(f"weights: unknown loss terms {unknown}; valid terms are {list(TERMS)}")
        for name, weight in weights.items():
            if not (float(weight) >= 0.0 and float(weight) < float("inf")):
                raise ValueError(f"weights[{name!r}] must be a finite number >= 0, got {weight}")
        self.weights = {name: float(weights[name]) for name in TERMS if name in weights and weights[name] > 0}
        if not self.weights:
            raise ValueError(f"weights: at least one term needs a positive weight, got {dict(weights)}")
        self.cascade_weighting = cascade_weighting

    def forward(
        self,
        output: ReconstructionOutput,
        ref_kspace: Tensor,
        ref_image: Optional[Tensor] = None,
        kspace_mask: Optional[Tensor] = None,
        data_range: Optional[Tensor] = None,
        crop_size: Optional[Sequence[int]] = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the weighted loss.

        Args:
            output: the network's :class:`~pipeline.networks.ReconstructionOutput`.
            ref_kspace: reference k-space ``(B, C, H, W, 2)``: fully sampled (SL) or as measured (SSL).
            ref_image: SL only: reference magnitude image ``(B, 1, Hr, Wr)`` (the prediction is
                centre-cropped to its size); ``None`` = RSS of ``ref_kspace`` on the full grid.
            kspace_mask: SSL only: the loss set Lambda ``(B, 1, H, W, 1)``, bool or 0/1 float; ``None``
                selects the supervised branch.
            data_range: SSIM data range per sample ``(B,)`` (the reference volume's maximum, same units
                as the images); ``None`` = each reference image's maximum.
            crop_size: ``(Hr, Wr)`` centre crop of both images of the image terms when ``ref_image`` is
                ``None`` (SSL, or SL against the RSS of ``ref_kspace``); ``None`` = full grid.

        Returns:
            ``(total, terms)``: the weighted sum (scalar, with gradient) and each weighted term's unweighted
            value, detached, keyed by term name (only terms with a positive weight).

        Raises:
            ValueError: ``ref_image`` together with ``kspace_mask``, or ``cascade_weighting`` without
                cascade outputs.
        """
        ref_kspace = ref_kspace.float()
        terms: dict[str, Tensor] = {}
        kspace_names = [name for name in KSPACE_TERMS if name in self.weights]
        if kspace_names:
            if self.cascade_weighting:
                if not output.kspace_iterates:
                    raise ValueError("cascade_weighting needs the per-cascade k-space: call the network with "
                                     "return_iterates=True")
                predictions = list(output.kspace_iterates)
            else:
                predictions = [output.kspace]
            step_weights = iterate_weights(len(predictions)).tolist()
            for name in kspace_names:
                fn = _KSPACE_FNS[name]
                terms[name] = sum(w * fn(k.float(), ref_kspace, kspace_mask) for w, k in zip(step_weights, predictions))
        image_names = [name for name in IMAGE_TERMS if name in self.weights]
        if image_names:
            pred, target = self._images(output.image.float(), ref_kspace, ref_image, kspace_mask, crop_size)
            if "l1" in self.weights:
                terms["l1"] = l1_image_loss(pred, target)
            if "ssim" in self.weights:
                if data_range is None:
                    data_range = target.flatten(1).amax(dim=1)
                terms["ssim"] = ssim_loss(pred, target, data_range)
            if "hfen_l1" in self.weights:
                terms["hfen_l1"] = hfen_loss(pred, target, p=1)
            if "hfen_l2" in self.weights:
                terms["hfen_l2"] = hfen_loss(pred, target, p=2)
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, {name: value.detach() for name, value in terms.items()}

    @staticmethod
    def _images(
        image: Tensor,
        ref_kspace: Tensor,
        ref_image: Optional[Tensor],
        kspace_mask: Optional[Tensor],
        crop_size: Optional[Sequence[int]],
    ) -> tuple[Tensor, Tensor]:
        """Predicted and reference images ``(B, 1, h, w)`` for the image terms (see :meth:`forward`)."""
        pred = image.unsqueeze(1)  # (B, 1, H, W)
        if kspace_mask is not None:
            if ref_image is not None:
                raise ValueError("ref_image must be None in the SSL branch (kspace_mask given): the reference "
                                 "image is made from the Lambda k-space; pass crop_size to crop")
            target = rss_image(ref_kspace * kspace_mask.to(ref_kspace)).unsqueeze(1)  # (B, 1, H, W)
        elif ref_image is not None:
            target = ref_image.float()
            crop_size = target.shape[-2:]
        else:
            target = rss_image(ref_kspace).unsqueeze(1)
        if crop_size is not None:
            pred, target = center_crop(pred, crop_size), center_crop(target, crop_size)
        return pred, target

"""Unrolled end-to-end variational network (E2E-VarNet) with a learned coil-sensitivity model.

Sriram et al., "End-to-End Variational Networks for Accelerated MRI Reconstruction", MICCAI 2020, as used
by JSSL (Yiasemis et al., MIDL 2025). The network sees the input k-space ``y`` (zero outside the input
mask ``M``) and returns its k-space estimate after ``num_cascades`` cascades

    k <- k - w * M (k - y) - F S R(S^H F^H k)

(soft data consistency with a learned weight ``w``, U-Net regulariser ``R``), starting from ``k = y``.
The sensitivities ``S`` are estimated from the low-frequency (ACS) columns of ``y``, refined by a U-Net
and normalised to ``sum_c |S_c|^2 = 1``.

The cascades run on uncentred k-space: with ``P = ifftshift`` and the centred FFT ``F = P^-1 FFT P``,
the shifts between consecutive ``F`` and ``F^H`` cancel, so the network shifts ``y``, ``M`` and ``S`` once,
iterates ``k' = P k`` with plain FFTs (the image is shifted back for ``R``, a single-coil roll) and returns
``P^-1 k'``. The same maths as the centred form, equal to float rounding, without four multi-coil rolls per
cascade (at 15 coils 640x368 each is a 28 MB copy).

The sensitivity model is :class:`~pipeline.networks.sensitivity.SensitivityModel`. Compared with MONAI's
``VariationalNetworkModel`` this model takes bool or float masks, a different mask
per sample, 2-D (point) masks, fully sampled masks and an explicit number of ACS columns, normalises the
maps as complex numbers, never produces NaN (no ACS lines, all-zero input), returns the k-space, keeps
FFTs and data consistency in float32 under autocast, and scripts with ``torch.jit.script``. It is 2-D
only: 3-D k-space raises ``ValueError``.
"""

import copy
from typing import Dict, List, Optional

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from pipeline.networks.output import ReconstructionOutput
from pipeline.networks.sensitivity import SensitivityModel, measured_input
from pipeline.networks.unet import NormUnet
from pipeline.physics.coils import rss, sense_expand, sense_reduce
from pipeline.physics.fft import fft2_uncentred, fftshift2, ifft2_uncentred, ifftshift2

#: Named sizes (``network_size`` in the bundle): name -> :class:`VarNet` arguments.
VARNET_SIZES: Dict[str, Dict[str, int]] = {
    # unit tests and smoke runs: trains in seconds
    "tiny": {"num_cascades": 2, "chans": 8, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    # CPU demo: trains in minutes on the embedded demo data
    "demo": {"num_cascades": 4, "chans": 12, "pools": 3, "sens_chans": 6, "sens_pools": 3},
    # the fastMRI E2E-VarNet (about 30 M parameters)
    "fastmri": {"num_cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4},
}


class VarNetBlock(nn.Module):
    """One cascade: ``k - w * M (k - y) - F S R(S^H F^H k)``, in float32 around the regulariser ``R``.

    It works on uncentred data (k-space, mask and maps passed through ``ifftshift``, see the module
    docstring): ``F`` and ``F^H`` are plain FFTs there, and ``R`` sees the centred image.
    """

    def __init__(self, regulariser: nn.Module) -> None:
        """Build the cascade (data-consistency weight initialised to 1).

        Args:
            regulariser: complex-image model ``(B, H, W, 2) -> (B, H, W, 2)``, e.g. :class:`NormUnet`.
        """
        super().__init__()
        self.regulariser = regulariser
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(self, kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor) -> Tensor:
        """Apply one cascade.

        Args:
            kspace: current estimate ``(B, C, H, W, 2)``, float32, uncentred.
            ref_kspace: measured input k-space ``(B, C, H, W, 2)``, zero outside ``mask``, uncentred.
            mask: float32 0/1 mask broadcastable to the k-space, ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``,
                uncentred.
            sens_maps: ``(B, C, H, W, 2)``, uncentred.

        Returns:
            Updated uncentred k-space ``(B, C, H, W, 2)``, float32.
        """
        image = fftshift2(sense_reduce(ifft2_uncentred(kspace), sens_maps))  # S^H F^H k: (B, H, W, 2)
        refined = ifftshift2(self.regulariser(image).float())  # (B, H, W, 2)
        regulariser_term = fft2_uncentred(sense_expand(refined, sens_maps))  # F S R(.): (B, C, H, W, 2)
        # k - w M (k - y) = k (1 - w M) + w y, as y = M y: two passes over the multi-coil data instead of four
        soft_dc = torch.addcmul(kspace * (1.0 - self.dc_weight * mask), ref_kspace, self.dc_weight)
        return soft_dc - regulariser_term


class VarNet(nn.Module):
    """E2E-VarNet (fastMRI's ``VarNet``): learned sensitivities + ``num_cascades`` unrolled cascades.

    The defaults (6 cascades, 12-channel U-Nets with 3 poolings, 8-channel sensitivity U-Net; 1.74 M
    parameters) suit CPU demo training. The fastMRI E2E-VarNet is
    ``VarNet(num_cascades=12, chans=18, pools=4, sens_chans=8, sens_pools=4)`` (29.9 M parameters);
    the JSSL paper's E2E-VarNet uses 6 cascades of 16-channel U-Nets.

    Example:
        >>> net = VarNet(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)
        >>> mask = torch.zeros(1, 1, 1, 16, 1, dtype=torch.bool)
        >>> mask[..., 6:10, :] = True
        >>> out = net(torch.randn(1, 3, 16, 16, 2) * mask, mask)
        >>> out.kspace.shape, out.image.shape
        (torch.Size([1, 3, 16, 16, 2]), torch.Size([1, 16, 16]))
    """

    def __init__(
        self,
        num_cascades: int = 6,
        chans: int = 12,
        pools: int = 3,
        sens_chans: int = 8,
        sens_pools: int = 3,
        use_checkpoint: bool = False,
        share_weights: bool = False,
        return_iterates: bool = False,
        sens_coil_batch: Optional[int] = None,
    ) -> None:
        """Build the network.

        Args:
            num_cascades: number of unrolled cascades, >= 1.
            chans: first-level channels of each cascade's U-Net.
            pools: poolings of each cascade's U-Net (the grid is padded to a multiple of ``2**pools``).
            sens_chans: first-level channels of the sensitivity U-Net.
            sens_pools: poolings of the sensitivity U-Net.
            use_checkpoint: recompute the sensitivity model and each cascade in the backward pass
                (``torch.utils.checkpoint``, non-reentrant) to save activation memory while training.
            share_weights: one cascade (U-Net and data-consistency weight) applied ``num_cascades`` times
                instead of independent copies.
            return_iterates: default of :meth:`forward`'s ``return_iterates``.
            sens_coil_batch: coil images per sensitivity U-Net call, 0 = all, ``None`` = chosen by grid size
                (:class:`SensitivityModel`'s ``coil_batch``; same outputs at every value).

        Raises:
            ValueError: if ``num_cascades`` < 1 or ``sens_coil_batch`` < 0.
        """
        super().__init__()
        if num_cascades < 1:
            raise ValueError(f"num_cascades must be >= 1, got {num_cascades}")
        self.sens_net = SensitivityModel(sens_chans, sens_pools, coil_batch=sens_coil_batch)
        cascade = VarNetBlock(NormUnet(chans, pools))
        if share_weights:
            self.cascades = nn.ModuleList([cascade] * num_cascades)
        else:
            self.cascades = nn.ModuleList([copy.deepcopy(cascade) for _ in range(num_cascades)])
        self.use_checkpoint = use_checkpoint
        self.return_iterates = return_iterates

    @torch.jit.unused
    def _checkpointed(
        self, cascade: nn.Module, kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor
    ) -> Tensor:
        """Run ``cascade`` under non-reentrant gradient checkpointing (eager mode only)."""
        return torch.utils.checkpoint.checkpoint(cascade, kspace, ref_kspace, mask, sens_maps, use_reentrant=False)

    def forward(
        self,
        masked_kspace: Tensor,
        mask: Tensor,
        num_low_frequencies: Optional[Tensor] = None,
        return_iterates: Optional[bool] = None,
    ) -> ReconstructionOutput:
        """Reconstruct multi-coil k-space.

        Args:
            masked_kspace: input k-space ``(B, C, H, W, 2)`` (values outside ``mask`` are ignored).
            mask: input mask (Theta for SSDU, else the acquisition mask), bool or float (non-zero =
                sampled), ``(B, 1, H, W, 1)`` (2-D / point masks) or ``(B, 1, 1, W, 1)`` (column masks);
                ``B`` may be 1 to share one mask across the batch.
            num_low_frequencies: ``(B,)`` integer ACS widths in columns from the header; 0 entries or
                ``None`` detect the ACS from the mask per sample.
            return_iterates: fill ``kspace_iterates`` with every cascade's k-space; ``None`` uses the
                ``return_iterates`` given at construction.

        Returns:
            :class:`~pipeline.networks.output.ReconstructionOutput`, all float32 (also under autocast).

        Raises:
            ValueError: if ``masked_kspace`` is not ``(B, C, H, W, 2)`` or ``mask`` is not 5-D.
        """
        keep_cascades = self.return_iterates if return_iterates is None else return_iterates
        mask_f, ref_kspace = measured_input(masked_kspace, mask)
        if self.use_checkpoint and self.training and not torch.jit.is_scripting():
            sens_maps = self.sens_net.checkpointed(ref_kspace, mask_f, num_low_frequencies)
        else:
            sens_maps = self.sens_net(ref_kspace, mask_f, num_low_frequencies)
        # uncentred copies (P = ifftshift) for the cascades; see the module docstring
        shifted_ref, shifted_mask, shifted_maps = ifftshift2(ref_kspace), ifftshift2(mask_f), ifftshift2(sens_maps)
        kspace = shifted_ref
        kspace_iterates: List[Tensor] = []
        for cascade in self.cascades:
            if self.use_checkpoint and self.training and not torch.jit.is_scripting():
                kspace = self._checkpointed(cascade, kspace, shifted_ref, shifted_mask, shifted_maps)
            else:
                kspace = cascade(kspace, shifted_ref, shifted_mask, shifted_maps)
            if keep_cascades:
                kspace_iterates.append(fftshift2(kspace))
        image = torch.fft.fftshift(rss(ifft2_uncentred(kspace)), dim=(-2, -1))  # (B, H, W): RSS, then centred
        kspace = kspace_iterates[-1] if keep_cascades else fftshift2(kspace)
        return ReconstructionOutput(kspace, image, sens_maps, kspace_iterates)

"""Unrolled end-to-end variational network (E2E-VarNet) with a learned coil-sensitivity model.

Sriram et al., "End-to-End Variational Networks for Accelerated MRI Reconstruction", MICCAI 2020, as used
by JSSL (Yiasemis et al., MIDL 2025). The network sees the input k-space ``y`` (zero outside the input
mask ``M``) and returns its k-space estimate after ``num_cascades`` cascades

    k <- k - w * M (k - y) - F S R(S^H F^H k)

(soft data consistency with a learned weight ``w``, U-Net regulariser ``R``), starting from ``k = y``.
The sensitivities ``S`` are estimated from the low-frequency (ACS) columns of ``y``, refined by a U-Net
and normalised to ``sum_c |S_c|^2 = 1``.

Compared with MONAI's ``VariationalNetworkModel`` this model takes bool or float masks, a different mask
per sample, 2-D (point) masks, fully sampled masks and an explicit number of ACS columns, normalises the
maps as complex numbers, never produces NaN (no ACS lines, all-zero input), returns the k-space, keeps
FFTs and data consistency in float32 under autocast, and scripts with ``torch.jit.script``. It is 2-D
only: 3-D k-space raises ``ValueError``.
"""

import copy
from typing import List, NamedTuple, Optional

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from pipeline.networks.unet import NormUnet
from pipeline.physics.coils import rss, sense_expand, sense_reduce
from pipeline.physics.complex import complex_abs_sq
from pipeline.physics.fft import fft2c, ifft2c

# Floor of sum_c |S_c|^2 before normalising the maps (float32 normal range): all-zero maps stay zero.
_SENS_FLOOR = 1e-30


class VarNetOutput(NamedTuple):
    """What :class:`JSSLVarNet` returns (a TorchScript-compatible ``NamedTuple``).

    Attributes:
        kspace: final predicted multi-coil k-space ``(B, C, H, W, 2)``, float32, input units.
        image: RSS magnitude of ``ifft2c(kspace)`` on the full grid ``(B, H, W)`` (not cropped).
        sens_maps: estimated coil sensitivities ``(B, C, H, W, 2)``, ``sum_c |S_c|^2 = 1``.
        cascade_kspace: k-space after each cascade, ``num_cascades`` tensors ``(B, C, H, W, 2)`` (the
            last one is ``kspace``); empty unless cascade outputs were requested.
    """

    kspace: Tensor
    image: Tensor
    sens_maps: Tensor
    cascade_kspace: List[Tensor]


def acs_column_window(mask: Tensor, num_low_frequencies: Optional[Tensor], batch_size: int) -> Tensor:
    """Per-sample window of the low-frequency (ACS) phase-encode columns used for the sensitivity estimate.

    A column counts as acquired when any of its points is sampled (so a 2-D point mask split from a
    1-D acquisition keeps its columns). The detected ACS is the contiguous run of acquired columns that
    contains the centre column ``W // 2`` (lines adjacent to the ACS enlarge it: pass the header value
    to avoid that). A sample with a positive ``num_low_frequencies`` uses that many centred columns,
    starting at ``(W - n + 1) // 2`` (fastMRI convention). A sample whose centre column is not acquired
    uses every column (its zero-filled data), so the estimate never collapses to zero.

    Args:
        mask: sampling mask ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)`` (``B`` may be 1 to broadcast),
            any dtype, non-zero = sampled.
        num_low_frequencies: ``(B,)`` or ``(1,)`` integer ACS widths in columns, 0 = detect from the mask;
            ``None`` = detect for every sample.
        batch_size: ``B`` of the k-space.

    Returns:
        Float32 window ``(B, 1, 1, W, 1)``, 1 on the ACS columns and 0 elsewhere.
    """
    width = mask.shape[-2]
    centre = width // 2
    columns = (mask != 0).to(torch.float32).amax(dim=(1, 2, 4)).expand(batch_size, width)  # (B, W)
    right = torch.cumprod(columns[:, centre:], dim=1).sum(dim=1)  # run from the centre rightwards (B,)
    left = torch.cumprod(columns[:, :centre].flip(1), dim=1).sum(dim=1)  # run leftwards (B,)
    start = (centre - left).to(torch.long)
    stop = (centre + right).to(torch.long)
    no_acs = right == 0
    start = torch.where(no_acs, torch.zeros_like(start), start)
    stop = torch.where(no_acs, torch.full_like(stop, width), stop)
    if num_low_frequencies is not None:
        n = num_low_frequencies.to(device=mask.device, dtype=torch.long).reshape(-1).expand(batch_size)
        n = n.clamp(0, width)
        given = n > 0
        header_start = torch.div(width - n + 1, 2, rounding_mode="floor")
        start = torch.where(given, header_start, start)
        stop = torch.where(given, header_start + n, stop)
    index = torch.arange(width, device=mask.device).unsqueeze(0)  # (1, W)
    window = (index >= start.unsqueeze(1)) & (index < stop.unsqueeze(1))  # (B, W)
    return window.to(torch.float32).view(batch_size, 1, 1, width, 1)


class SensitivityModel(nn.Module):
    """Learned coil sensitivities: ACS low-resolution coil images, refined per coil by a :class:`NormUnet`.

    The maps are divided by their root-sum-of-squares over coils as complex numbers, so that
    ``sum_c |S_c|^2 = 1`` wherever the maps are non-zero (fastMRI convention; MONAI normalises the real
    and imaginary parts separately, which gives 2 and alters the phase).
    """

    def __init__(self, chans: int, pools: int) -> None:
        """Build the sensitivity model.

        Args:
            chans: channels of the first U-Net level.
            pools: U-Net poolings.
        """
        super().__init__()
        self.norm_unet = NormUnet(chans, pools)
        self.sens_floor = _SENS_FLOOR

    def forward(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: Optional[Tensor] = None) -> Tensor:
        """Estimate the sensitivity maps.

        Args:
            masked_kspace: input k-space ``(B, C, H, W, 2)``, float32, zero outside ``mask``.
            mask: ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``, non-zero = sampled.
            num_low_frequencies: ``(B,)`` ACS widths in columns, 0 / ``None`` = detect (see
                :func:`acs_column_window`).

        Returns:
            Sensitivity maps ``(B, C, H, W, 2)``, float32, ``sum_c |S_c|^2 = 1``.
        """
        b, c, h, w, two = masked_kspace.shape
        window = acs_column_window(mask, num_low_frequencies, b)  # (B, 1, 1, W, 1)
        coil_images = ifft2c(masked_kspace * window)  # (B, C, H, W, 2)
        maps = self.norm_unet(coil_images.reshape(b * c, h, w, two)).float()  # (B*C, H, W, 2)
        maps = maps.reshape(b, c, h, w, two)
        sum_sq = complex_abs_sq(maps).sum(dim=1, keepdim=True).unsqueeze(-1)  # (B, 1, H, W, 1)
        return maps * torch.rsqrt(sum_sq.clamp_min(self.sens_floor))


class VarNetCascade(nn.Module):
    """One cascade: ``k - w * M (k - y) - F S R(S^H F^H k)``, in float32 around the regulariser ``R``."""

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
            kspace: current estimate ``(B, C, H, W, 2)``, float32.
            ref_kspace: measured input k-space ``(B, C, H, W, 2)``, zero outside ``mask``.
            mask: float32 0/1 mask broadcastable to the k-space, ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``.
            sens_maps: ``(B, C, H, W, 2)``.

        Returns:
            Updated k-space ``(B, C, H, W, 2)``, float32.
        """
        image = sense_reduce(ifft2c(kspace), sens_maps)  # (B, H, W, 2)
        refined = self.regulariser(image).float()  # (B, H, W, 2)
        regulariser_term = fft2c(sense_expand(refined, sens_maps))  # (B, C, H, W, 2)
        return kspace - (kspace - ref_kspace) * mask * self.dc_weight - regulariser_term


class JSSLVarNet(nn.Module):
    """E2E-VarNet for JSSL: learned sensitivities + ``num_cascades`` unrolled cascades.

    The defaults (6 cascades, 12-channel U-Nets with 3 poolings, 8-channel sensitivity U-Net; 1.74 M
    parameters) suit CPU demo training. The fastMRI E2E-VarNet is
    ``JSSLVarNet(num_cascades=12, chans=18, pools=4, sens_chans=8, sens_pools=4)`` (29.9 M parameters);
    the JSSL paper's E2E-VarNet uses 6 cascades of 16-channel U-Nets.

    Example:
        >>> net = JSSLVarNet(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)
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
        return_cascades: bool = False,
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
            return_cascades: default of :meth:`forward`'s ``return_cascades``.

        Raises:
            ValueError: if ``num_cascades`` < 1.
        """
        super().__init__()
        if num_cascades < 1:
            raise ValueError(f"num_cascades must be >= 1, got {num_cascades}")
        self.sens_net = SensitivityModel(sens_chans, sens_pools)
        cascade = VarNetCascade(NormUnet(chans, pools))
        if share_weights:
            self.cascades = nn.ModuleList([cascade] * num_cascades)
        else:
            self.cascades = nn.ModuleList([copy.deepcopy(cascade) for _ in range(num_cascades)])
        self.use_checkpoint = use_checkpoint
        self.return_cascades = return_cascades

    @torch.jit.unused
    def _checkpointed(
        self, cascade: nn.Module, kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor
    ) -> Tensor:
        """Run ``cascade`` under non-reentrant gradient checkpointing (eager mode only)."""
        return torch.utils.checkpoint.checkpoint(cascade, kspace, ref_kspace, mask, sens_maps, use_reentrant=False)

    @torch.jit.unused
    def _checkpointed_sens(self, ref_kspace: Tensor, mask: Tensor, num_low_frequencies: Optional[Tensor]) -> Tensor:
        """Run the sensitivity model under non-reentrant gradient checkpointing (eager mode only).

        It works on every coil image at full resolution, so its activations rival a cascade's.
        """
        return torch.utils.checkpoint.checkpoint(
            self.sens_net, ref_kspace, mask, num_low_frequencies, use_reentrant=False
        )

    def forward(
        self,
        masked_kspace: Tensor,
        mask: Tensor,
        num_low_frequencies: Optional[Tensor] = None,
        return_cascades: Optional[bool] = None,
    ) -> VarNetOutput:
        """Reconstruct multi-coil k-space.

        Args:
            masked_kspace: input k-space ``(B, C, H, W, 2)`` (values outside ``mask`` are ignored).
            mask: input mask (Theta for SSDU, else the acquisition mask), bool or float (non-zero =
                sampled), ``(B, 1, H, W, 1)`` (2-D / point masks) or ``(B, 1, 1, W, 1)`` (column masks);
                ``B`` may be 1 to share one mask across the batch.
            num_low_frequencies: ``(B,)`` integer ACS widths in columns from the header; 0 entries or
                ``None`` detect the ACS from the mask per sample.
            return_cascades: fill ``cascade_kspace`` with every cascade's k-space; ``None`` uses the
                ``return_cascades`` given at construction.

        Returns:
            :class:`VarNetOutput`, all float32 (also under autocast).

        Raises:
            ValueError: if ``masked_kspace`` is not ``(B, C, H, W, 2)`` or ``mask`` is not 5-D.
        """
        if masked_kspace.dim() != 5 or masked_kspace.shape[-1] != 2:
            raise ValueError("masked_kspace must be (B, C, H, W, 2); 3-D k-space is not supported")
        if mask.dim() != 5:
            raise ValueError("mask must be (B, 1, H, W, 1) or (B, 1, 1, W, 1)")
        keep_cascades = self.return_cascades if return_cascades is None else return_cascades
        mask_f = (mask != 0).to(torch.float32)
        ref_kspace = masked_kspace.float() * mask_f
        if self.use_checkpoint and self.training and not torch.jit.is_scripting():
            sens_maps = self._checkpointed_sens(ref_kspace, mask_f, num_low_frequencies)
        else:
            sens_maps = self.sens_net(ref_kspace, mask_f, num_low_frequencies)
        kspace = ref_kspace
        cascade_kspace: List[Tensor] = []
        for cascade in self.cascades:
            if self.use_checkpoint and self.training and not torch.jit.is_scripting():
                kspace = self._checkpointed(cascade, kspace, ref_kspace, mask_f, sens_maps)
            else:
                kspace = cascade(kspace, ref_kspace, mask_f, sens_maps)
            if keep_cascades:
                cascade_kspace.append(kspace)
        image = rss(ifft2c(kspace))  # (B, H, W)
        return VarNetOutput(kspace, image, sens_maps, cascade_kspace)

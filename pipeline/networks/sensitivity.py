"""Learned coil-sensitivity estimation shared by the unrolled networks (fastMRI E2E-VarNet style).

Sriram et al., "End-to-End Variational Networks for Accelerated MRI Reconstruction", MICCAI 2020: the
sensitivities are the coil images of the ACS (low-frequency) columns of the input k-space, refined per coil
by a :class:`~pipeline.networks.unet.NormUnet` and normalised to ``sum_c |S_c|^2 = 1``.
"""

from typing import Optional, Tuple

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from pipeline.networks.unet import NormUnet
from pipeline.physics.acs import acs_columns
from pipeline.physics.coils import normalize_sens_maps
from pipeline.physics.fft import ifft2c

PER_COIL_PIXELS = 2**17
"""Grid size (``H*W``) from which ``coil_batch=None`` runs the sensitivity U-Net one coil image per call.

Measured with ``python -m pipeline.bench.speed --threads 1 --parts peers`` and a side-by-side A/B
(16-channel 4-pool U-Net, 1 thread, 2026-12-01): at 15 coils 640x368 (235,520 px) one coil per call made
the VarNet forward 1.66x faster than all 15 in one call; at 8 coils 128x128 and 256x136 (16,384 and 34,816 px)
one call for all coils trained the U-Net 1.21x and 1.05x faster than one coil per call.
"""


def measured_input(masked_kspace: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Check an unrolled network's inputs; return the 0/1 float32 mask and the measurement ``y = M k``.

    Args:
        masked_kspace: ``(B, C, H, W, 2)``; values outside ``mask`` are ignored.
        mask: ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``, bool or float, non-zero = sampled.

    Returns:
        ``(mask_f, y)``: the mask as float32 0/1 and the k-space in float32, zero outside the mask.

    Raises:
        ValueError: if ``masked_kspace`` is not ``(B, C, H, W, 2)`` or ``mask`` is not 5-D.
    """
    if masked_kspace.dim() != 5 or masked_kspace.shape[-1] != 2:
        raise ValueError("masked_kspace must be (B, C, H, W, 2); 3-D k-space is not supported")
    if mask.dim() != 5:
        raise ValueError("mask must be (B, 1, H, W, 1) or (B, 1, 1, W, 1)")
    mask_f = (mask != 0).to(torch.float32)
    return mask_f, masked_kspace.float() * mask_f


def acs_column_window(mask: Tensor, num_low_frequencies: Optional[Tensor], batch_size: int) -> Tensor:
    """Per-sample window of the ACS phase-encode columns used for the sensitivity estimate.

    The columns come from :func:`pipeline.physics.acs.acs_columns` (header width when given, else the
    acquired run through the centre). A sample whose centre column is not acquired uses every column
    (its zero-filled data), so the estimate never collapses to zero.

    Args:
        mask: sampling mask ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)`` (``B`` may be 1 to broadcast),
            non-zero = sampled.
        num_low_frequencies: ``(B,)`` or ``(1,)`` ACS widths in columns, 0 = detect; ``None`` = detect all.
        batch_size: ``B`` of the k-space.

    Returns:
        Float32 window ``(B, 1, 1, W, 1)``, 1 on the ACS columns and 0 elsewhere.
    """
    width = mask.shape[-2]
    start, stop = acs_columns(mask, num_low_frequencies)
    start, stop = start.expand(batch_size), stop.expand(batch_size)
    empty = stop <= start
    start = torch.where(empty, torch.zeros_like(start), start)
    stop = torch.where(empty, torch.full_like(stop, width), stop)
    index = torch.arange(width, device=mask.device).unsqueeze(0)  # (1, W)
    window = (index >= start.unsqueeze(1)) & (index < stop.unsqueeze(1))  # (B, W)
    return window.to(torch.float32).view(batch_size, 1, 1, width, 1)


class SensitivityModel(nn.Module):
    """Learned coil sensitivities: ACS low-resolution coil images, refined per coil by a :class:`NormUnet`.

    The maps are divided by their root-sum-of-squares over coils as complex numbers, so that
    ``sum_c |S_c|^2 = 1`` wherever the maps are non-zero (fastMRI convention; MONAI normalises the real
    and imaginary parts separately, which gives 2 and alters the phase). With ``refine=False`` the maps are
    the normalised ACS coil images themselves (no learned parameters).
    """

    def __init__(self, chans: int, pools: int, refine: bool = True, coil_batch: Optional[int] = None) -> None:
        """Build the sensitivity model.

        Args:
            chans: channels of the first U-Net level.
            pools: U-Net poolings.
            refine: refine the ACS estimate with the U-Net; ``False`` = ACS estimate only (``chans`` and
                ``pools`` unused).
            coil_batch: coil images per U-Net call (``B*C`` images are split into chunks of this many);
                0 = all in one call; ``None`` = one per call on grids of at least :data:`PER_COIL_PIXELS`
                pixels, else all in one call. Same maths at every value: the U-Net normalises each image alone.

        Raises:
            ValueError: if ``coil_batch`` < 0.
        """
        super().__init__()
        if coil_batch is not None and coil_batch < 0:
            raise ValueError(f"coil_batch must be >= 0 (0 = all coils in one batch), got {coil_batch}")
        self.norm_unet: nn.Module = NormUnet(chans, pools) if refine else nn.Identity()
        self.coil_batch: Optional[int] = coil_batch
        self.per_coil_pixels = PER_COIL_PIXELS

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
        images = self.acs_coil_images(masked_kspace, mask, num_low_frequencies)  # (B*C, H, W, 2)
        coil_batch = self.coil_batch
        if coil_batch is None:
            coil_batch = 1 if h * w >= self.per_coil_pixels else 0
        if coil_batch == 0 or coil_batch >= b * c:
            maps = self.norm_unet(images)
        else:  # smaller feature maps stay in cache: faster on a CPU at 15 coils 640x368 (see PER_COIL_PIXELS)
            chunks = [self.norm_unet(chunk) for chunk in images.split(coil_batch)]
            maps = torch.cat(chunks)
        return normalize_sens_maps(maps.float().reshape(b, c, h, w, two))

    def acs_coil_images(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: Optional[Tensor]) -> Tensor:
        """The coil images of the ACS columns, one sample per coil: ``(B, C, H, W, 2) -> (B*C, H, W, 2)``."""
        b, c, h, w, two = masked_kspace.shape
        window = acs_column_window(mask, num_low_frequencies, b)  # (B, 1, 1, W, 1)
        return ifft2c(masked_kspace * window).reshape(b * c, h, w, two)

    @torch.jit.unused
    def checkpointed(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: Optional[Tensor]) -> Tensor:
        """:meth:`forward` with the U-Net recomputed coil by coil in the backward pass (eager mode only).

        The U-Net works on every coil image at full resolution, so at 15 coils its activations outweigh an
        unrolled step's. It normalises each coil image on its own, so running it one coil at a time under
        non-reentrant ``torch.utils.checkpoint`` is the same maths, with one coil's activations alive at a time.
        """
        if isinstance(self.norm_unet, nn.Identity):  # nothing to recompute
            return self(masked_kspace, mask, num_low_frequencies)
        b, c, h, w, two = masked_kspace.shape
        images = self.acs_coil_images(masked_kspace, mask, num_low_frequencies)  # (B*C, H, W, 2)
        maps = torch.cat([
            torch.utils.checkpoint.checkpoint(self.norm_unet, images[i : i + 1], use_reentrant=False).float()
            for i in range(b * c)
        ])
        return normalize_sens_maps(maps.reshape(b, c, h, w, two))

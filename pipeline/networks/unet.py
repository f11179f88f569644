"""U-Nets for the unrolled networks: a plain 2-D U-Net, the complex-image :class:`NormUnet` around it (E2E-VarNet
regulariser, sensitivity refinement) and the un-normalised, padded :class:`PaddedUnet` (vSHARP denoiser).

The layout follows fastMRI's E2E-VarNet (Sriram et al., MICCAI 2020): 3x3 convolutions without bias,
instance normalisation and LeakyReLU(0.2), average-pool down-sampling, transposed-convolution
up-sampling, skip connections by concatenation and a final 1x1 convolution. :class:`NormUnet` maps a
complex image ``(N, H, W, 2)`` to a complex image of the same shape: it normalises each sample and
channel to zero mean and unit standard deviation, pads the grid to a multiple of ``2**pools`` and undoes
both afterwards.

MONAI's ``ComplexUnet`` is not reused: its ``BasicUNet`` always has four poolings (no ``pools``
setting), pads to a fixed factor, and divides by a standard deviation without a floor (NaN for an
all-zero input).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_NEGATIVE_SLOPE = 0.2
# Floor of the per-sample variance in NormUnet. Inputs are intensity-normalised (values of order 1), so it
# never binds on real data; it keeps 1 / std (the gradient's gain) at most 1e6 on blank or near-blank
# slices, where a float32-tiny floor let the backward pass overflow to NaN.
_VAR_FLOOR = 1e-12


def _instance_norm(chans: int) -> nn.GroupNorm:
    """Instance normalisation without affine parameters, as ``GroupNorm`` with one group per channel.

    Same result as ``nn.InstanceNorm2d(chans)`` but about 5x faster forward and 2x backward on CPU.
    """
    return nn.GroupNorm(chans, chans, affine=False)


def pad_to_multiple(x: Tensor, multiple: int) -> Tuple[Tensor, List[int]]:
    """Zero-pad the last two axes of ``(N, C, H, W)`` to multiples of ``multiple``, centred.

    Returns:
        The padded ``(N, C, H', W')`` tensor and the ``F.pad`` widths ``[left, right, top, bottom]``
        (crop back with ``x[..., top : top + H, left : left + W]``).
    """
    h, w = x.shape[-2], x.shape[-1]
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    pads = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
    if ph == 0 and pw == 0:
        return x, pads
    return F.pad(x, pads), pads


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> instance norm -> LeakyReLU(0.2)`` layers: ``(N, in_chans, H, W) -> (N, out_chans, H, W)``."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        """Build the two layers.

        Args:
            in_chans: input channels.
            out_chans: output channels.
        """
        super().__init__(
            nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
            _instance_norm(out_chans),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            _instance_norm(out_chans),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
        )


class UpBlock(nn.Module):
    """Up-sampling step: 2x transposed convolution, concatenation with the skip, :class:`ConvBlock`."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        """Build the step.

        Args:
            in_chans: channels of the coarse input (``2 * out_chans`` in :class:`Unet`).
            out_chans: channels of the skip connection and of the output.
        """
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            _instance_norm(out_chans),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
        )
        self.conv = ConvBlock(2 * out_chans, out_chans)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Up-sample ``x`` and merge it with ``skip``.

        Args:
            x: coarse features ``(N, in_chans, H/2, W/2)``.
            skip: skip features ``(N, out_chans, H, W)``.

        Returns:
            ``(N, out_chans, H, W)``.
        """
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class Unet(nn.Module):
    """2-D U-Net with ``pools`` poolings: ``(N, in_chans, H, W) -> (N, out_chans, H, W)``.

    ``H`` and ``W`` must be multiples of ``2**pools`` (:class:`NormUnet` and :class:`PaddedUnet` pad to that).
    Channel widths are ``chans * 2**level`` for levels ``0 .. pools`` (the bottleneck has ``chans * 2**pools``).

    Example:
        >>> Unet(2, 2, chans=8, pools=2)(torch.zeros(1, 2, 16, 12)).shape
        torch.Size([1, 2, 16, 12])
    """

    def __init__(self, in_chans: int, out_chans: int, chans: int, pools: int) -> None:
        """Build the U-Net.

        Args:
            in_chans: input channels.
            out_chans: output channels.
            chans: channels of the first level (doubled at every pooling).
            pools: number of 2x down-samplings, >= 1.

        Raises:
            ValueError: if ``chans`` < 1 or ``pools`` < 1.
        """
        super().__init__()
        if chans < 1:
            raise ValueError(f"chans must be >= 1, got {chans}")
        if pools < 1:
            raise ValueError(f"pools must be >= 1, got {pools}")
        widths = [chans * 2**level for level in range(pools + 1)]
        self.down = nn.ModuleList(
            [ConvBlock(in_chans, widths[0])] + [ConvBlock(widths[i], widths[i + 1]) for i in range(pools - 1)]
        )
        self.bottleneck = ConvBlock(widths[pools - 1], widths[pools])
        self.up = nn.ModuleList([UpBlock(widths[i + 1], widths[i]) for i in reversed(range(pools))])
        self.head = nn.Conv2d(widths[0], out_chans, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the U-Net.

        Args:
            x: ``(N, in_chans, H, W)``, ``H`` and ``W`` multiples of ``2**pools``.

        Returns:
            ``(N, out_chans, H, W)``.
        """
        skips: List[Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.bottleneck(x)
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)


class NormUnet(nn.Module):
    """Complex-image U-Net with per-sample normalisation: ``(N, H, W, 2) -> (N, H, W, 2)``.

    The real and imaginary parts become two channels, each normalised per sample to zero mean and unit
    standard deviation (variance floored at 1e-12 so that blank inputs give finite outputs and gradients), the
    grid is zero-padded to a multiple of ``2**pools``, and the :class:`Unet` output is cropped back and
    de-normalised. The output is in the input's units.

    Example:
        >>> NormUnet(chans=8, pools=2)(torch.randn(3, 13, 18, 2)).shape
        torch.Size([3, 13, 18, 2])
    """

    def __init__(self, chans: int, pools: int) -> None:
        """Build the normalised U-Net.

        Args:
            chans: channels of the first U-Net level.
            pools: number of 2x down-samplings of the U-Net.
        """
        super().__init__()
        self.unet = Unet(2, 2, chans=chans, pools=pools)
        self.multiple = 2**pools
        self.var_floor = _VAR_FLOOR

    def forward(self, x: Tensor) -> Tensor:
        """Normalise, pad, apply the U-Net, crop and de-normalise.

        Args:
            x: complex images ``(N, H, W, 2)``, any scale.

        Returns:
            Complex images ``(N, H, W, 2)``, same scale as ``x``.
        """
        h, w = x.shape[1], x.shape[2]
        # contiguous NCHW: the permuted view is channels-last in memory, which the convolutions would keep
        # through the whole U-Net, where the CPU's group-norm backward is several times slower
        x = x.permute(0, 3, 1, 2).contiguous()  # (N, 2, H, W)
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True)  # (N, 2, 1, 1) each
        std = torch.sqrt(var.clamp_min(self.var_floor))
        x, pads = pad_to_multiple((x - mean) / std, self.multiple)  # (N, 2, H', W')
        x = self.unet(x)
        x = x[:, :, pads[2] : pads[2] + h, pads[0] : pads[0] + w]  # (N, 2, H, W)
        x = x * std + mean
        return x.permute(0, 2, 3, 1)  # (N, H, W, 2)


class PaddedUnet(nn.Module):
    """:class:`Unet` for any grid size: ``(N, in_chans, H, W) -> (N, out_chans, H, W)``, in the input's units.

    The grid is zero-padded (centred) to a multiple of ``2**pools`` and the output cropped back; there is no
    input normalisation (unlike :class:`NormUnet`), so the network sees the data at its own scale.

    Example:
        >>> PaddedUnet(6, 2, chans=4, pools=2)(torch.zeros(2, 6, 13, 18)).shape
        torch.Size([2, 2, 13, 18])
    """

    def __init__(self, in_chans: int, out_chans: int, chans: int, pools: int) -> None:
        """Build the U-Net.

        Args:
            in_chans: input channels.
            out_chans: output channels.
            chans: channels of the first level (doubled at every pooling), >= 1.
            pools: number of 2x down-samplings, >= 1.

        Raises:
            ValueError: if ``chans`` < 1 or ``pools`` < 1.
        """
        super().__init__()
        self.unet = Unet(in_chans, out_chans, chans=chans, pools=pools)
        self.multiple = 2**pools

    def forward(self, x: Tensor) -> Tensor:
        """Pad, apply the U-Net, crop.

        Args:
            x: ``(N, in_chans, H, W)``, any ``H`` and ``W``.

        Returns:
            ``(N, out_chans, H, W)``.
        """
        h, w = x.shape[-2], x.shape[-1]
        x, pads = pad_to_multiple(x, self.multiple)
        return self.unet(x)[:, :, pads[2] : pads[2] + h, pads[0] : pads[0] + w]


def compile_unets(network: nn.Module, enable: bool = True) -> nn.Module:
    """Compile every :class:`NormUnet` and :class:`PaddedUnet` inside ``network`` with ``torch.compile`` (inductor).

    The U-Nets (cascade regularisers, the sensitivity U-Net, vSHARP's denoisers) are compiled in place with
    :meth:`torch.nn.Module.compile`, so parameter names, ``state_dict`` and checkpoints do not change; the
    complex arithmetic, FFTs and data consistency around them stay eager. Modules of one class and layout
    share one compiled graph (torch >= 2.5 passes their parameters as graph inputs), so the cascades compile
    once. Compiling happens at the first call (minutes on a CPU; 94 s for the forward and backward of a
    4-channel 2-pool ``NormUnet`` on this project's shared 2-core machine, 2026-12-01). Outputs and gradients
    equal the eager ones to float tolerance.

    Args:
        network: any module; changed in place.
        enable: ``False`` returns ``network`` untouched (so a config can pass its ``compile`` setting).

    Returns:
        ``network``.
    """
    if enable:
        for module in network.modules():
            if isinstance(module, (NormUnet, PaddedUnet)):
                module.compile()
    return network

"""vSHARP: unrolled half-quadratic splitting with a Lagrange multiplier and learned coil sensitivities.

Yiasemis et al., "vSHARP: variable Splitting Half-quadratic ADMM algorithm for Reconstruction of
inverse-Problems", 2023 (arXiv 2309.09954), the main network of JSSL (Yiasemis et al., MIDL 2025). With
``A = M F S`` (:func:`~pipeline.physics.operators.forward_operator`) and the input k-space ``y`` (zero
outside the input mask ``M``: Theta for SSDU batches), the network solves
``min_x 1/2 ||A x - y||^2 + R(x)`` by splitting ``x = z``. From the SENSE image ``x_0 = A^H y``, ``z_0 = x_0``
and a learned initial multiplier ``u_0 = G(x_0)`` (:class:`LagrangeMultipliersInitializer`), step
``t = 1 .. T`` (``num_steps``) is

    z_t = D_t(z_{t-1}, x_{t-1}, u_{t-1} / rho_t)                                   (denoiser, a U-Net)
    x_t = x_{t-1}, then K times (num_steps_dc_gd):
          x_t <- x_t - eta_k (A^H (A x_t - y) + rho_t (x_t - z_t) + u_{t-1})      (gradient-descent DC)
    u_t = u_{t-1} + rho_t (x_t - z_t)                                               (multiplier update)

with learned penalties ``rho_t`` (one per step) and step sizes ``eta_k`` (one per DC iteration, shared by the
steps, as in the reference implementation, DIRECT's ``VSharpNet``). Every ``x_t`` is an output: its k-space
``F S x_t`` is returned for deep supervision (:class:`~pipeline.losses.JointLoss` with ``cascade_weighting``,
``logspace(-1, 0)`` weights). The sensitivities come from the same model as the E2E-VarNet
(:class:`~pipeline.networks.sensitivity.SensitivityModel`: ACS estimate refined by a U-Net, or the ACS
estimate alone with ``sens_refinement=False``).

The network keeps the SENSE image, the data consistency and the multiplier in float32 under autocast (only
the U-Nets and the initialiser's convolutions run in reduced precision), recomputes each step in the backward
pass with ``use_checkpoint``, scripts with ``torch.jit.script`` and never produces NaN for an all-zero input.
"""

import copy
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from pipeline.networks.output import ReconstructionOutput
from pipeline.networks.sensitivity import SensitivityModel, measured_input
from pipeline.networks.unet import PaddedUnet
from pipeline.physics.coils import rss
from pipeline.physics.fft import ifft2c
from pipeline.physics.operators import NormalOperator, adjoint_operator, forward_operator

#: Named sizes (``network_size`` in the bundle): name -> :class:`VSharpNet` arguments.
VSHARP_SIZES: Dict[str, Dict[str, Any]] = {
    # unit tests and smoke runs: trains in seconds
    "tiny": {
        "num_steps": 2, "num_steps_dc_gd": 2, "chans": 8, "pools": 2, "sens_chans": 4, "sens_pools": 2,
        "initializer_channels": (8, 8, 16, 16),
    },
    # CPU demo: trains in minutes on the embedded demo data
    "demo": {
        "num_steps": 4, "num_steps_dc_gd": 4, "chans": 12, "pools": 3, "sens_chans": 6, "sens_pools": 3,
        "initializer_channels": (16, 16, 32, 32),
    },
    # the JSSL paper's vSHARP (DIRECT's projects/JSSL configs): 12 steps x 10 DC iterations, 32-filter U-Nets
    # with 4 poolings, a 16-filter sensitivity U-Net; 93.2 M parameters without the sensitivity model
    "paper": {
        "num_steps": 12, "num_steps_dc_gd": 10, "chans": 32, "pools": 4, "sens_chans": 16, "sens_pools": 4,
        "initializer_channels": (32, 32, 64, 64),
    },
}


def _check_positive(**settings: int) -> None:
    """Raise ``ValueError`` naming the first setting that is not an integer >= 1."""
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class LagrangeMultipliersInitializer(nn.Module):
    """Dilated-convolution initialiser of the multiplier, ``u_0 = G(x_0)``: ``(B, H, W, 2) -> (B, H, W, 2)``.

    Layers ``replication pad -> 3x3 conv (dilation d, bias) -> ReLU`` for each ``(channels, dilation)`` pair,
    then a 1x1 convolution to the two (real, imaginary) channels and a PReLU (vSHARP paper; DIRECT's
    ``LagrangeMultipliersInitializer`` without multiscale features). The grid size is kept.

    Example:
        >>> LagrangeMultipliersInitializer((4, 8), (1, 2))(torch.zeros(1, 9, 7, 2)).shape
        torch.Size([1, 9, 7, 2])
    """

    def __init__(self, channels: Sequence[int], dilations: Sequence[int]) -> None:
        """Build the initialiser.

        Args:
            channels: output channels of each dilated layer, non-empty.
            dilations: dilation of each layer, same length as ``channels``.

        Raises:
            ValueError: empty ``channels``, lengths that differ, or a value < 1.
        """
        super().__init__()
        if len(channels) == 0 or len(channels) != len(dilations):
            raise ValueError(
                f"initializer_channels and initializer_dilations must be non-empty and of equal length, got "
                f"{tuple(channels)} and {tuple(dilations)}"
            )
        _check_positive(**{f"initializer_channels[{i}]": c for i, c in enumerate(channels)})
        _check_positive(**{f"initializer_dilations[{i}]": d for i, d in enumerate(dilations)})
        layers: List[nn.Module] = []
        in_chans = 2
        for chans, dilation in zip(channels, dilations):
            layers += [
                nn.ReplicationPad2d(dilation),
                nn.Conv2d(in_chans, chans, kernel_size=3, dilation=dilation),
                nn.ReLU(inplace=True),
            ]
            in_chans = chans
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(in_chans, 2, kernel_size=1)
        self.activation = nn.PReLU()

    def forward(self, image: Tensor) -> Tensor:
        """Compute ``u_0``.

        Args:
            image: complex image ``(B, H, W, 2)``.

        Returns:
            ``(B, H, W, 2)``, float32.
        """
        x = self.features(image.permute(0, 3, 1, 2))
        return self.activation(self.head(x)).float().permute(0, 2, 3, 1)


class VSharpBlock(nn.Module):
    """One half-quadratic-splitting step: denoiser (z), gradient-descent data consistency (x), multiplier (u).

    The denoiser runs under any active autocast; its output, the data consistency and the multiplier
    update are float32.
    """

    def __init__(self, denoiser: nn.Module, num_steps_dc_gd: int) -> None:
        """Build the step.

        Args:
            denoiser: ``(B, 6, H, W) -> (B, 2, H, W)`` on the channels ``(z, x, u / rho)``, e.g. a
                :class:`~pipeline.networks.unet.PaddedUnet`.
            num_steps_dc_gd: gradient-descent iterations of the data consistency, >= 1.
        """
        super().__init__()
        self.denoiser = denoiser
        self.num_steps_dc_gd = num_steps_dc_gd

    def forward(
        self,
        x: Tensor,
        z: Tensor,
        u: Tensor,
        sense_image: Tensor,
        normal: NormalOperator,
        rho: Tensor,
        learning_rate_eta: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Apply the step.

        The data-consistency gradient ``A^H (A x - y)`` is computed as ``A^H A x - A^H y``: the same maths, with
        ``A^H y`` computed once per forward pass and ``A^H A`` prepared once (:class:`NormalOperator`).

        Args:
            x: image estimate ``(B, H, W, 2)``, float32.
            z: auxiliary (denoised) image ``(B, H, W, 2)``, float32.
            u: Lagrange multiplier ``(B, H, W, 2)``, float32.
            sense_image: ``A^H y`` ``(B, H, W, 2)`` of the measured k-space ``y`` (zero outside the mask).
            normal: ``A^H A`` for the sensitivities and the input mask.
            rho: this step's penalty, a 0-d tensor.
            learning_rate_eta: the ``(num_steps_dc_gd,)`` gradient-descent step sizes.

        Returns:
            The updated ``(x, z, u)``, float32.
        """
        # contiguous NCHW: the multiplier channels u / rho have a large mean and a small spread, and the
        # channels-last convolution path of the CPU loses float32 precision on such input
        denoiser_input = torch.cat([z, x, u / rho], dim=-1).permute(0, 3, 1, 2).contiguous()  # (B, 6, H, W)
        z = self.denoiser(denoiser_input).float().permute(0, 2, 3, 1)  # (B, H, W, 2)
        for k in range(self.num_steps_dc_gd):
            gradient = normal.apply(x) - sense_image  # A^H (A x - y): (B, H, W, 2)
            x = x - learning_rate_eta[k] * (gradient + rho * (x - z) + u)
        u = u + rho * (x - z)
        return x, z, u


class VSharpNet(nn.Module):
    """vSHARP with learned coil sensitivities: SENSE start, learned multiplier, ``num_steps`` HQS steps.

    The JSSL paper's configuration is the ``paper`` size of :data:`VSHARP_SIZES` (12 steps of 10 DC
    iterations, 32-filter U-Nets with 4 poolings, 93.2 M parameters plus 1.9 M for the sensitivity U-Net).

    Example:
        >>> net = VSharpNet(num_steps=2, num_steps_dc_gd=2, chans=4, pools=2, sens_chans=4, sens_pools=2,
        ...                 initializer_channels=(4, 4), initializer_dilations=(1, 2))
        >>> mask = torch.zeros(1, 1, 1, 16, 1, dtype=torch.bool)
        >>> mask[..., 6:10, :] = True
        >>> out = net(torch.randn(1, 3, 16, 16, 2) * mask, mask, return_iterates=True)
        >>> out.kspace.shape, out.image.shape, len(out.kspace_iterates)
        (torch.Size([1, 3, 16, 16, 2]), torch.Size([1, 16, 16]), 2)
    """

    def __init__(
        self,
        num_steps: int = 4,
        num_steps_dc_gd: int = 4,
        chans: int = 12,
        pools: int = 3,
        sens_chans: int = 6,
        sens_pools: int = 3,
        initializer_channels: Sequence[int] = (32, 32, 64, 64),
        initializer_dilations: Sequence[int] = (1, 1, 2, 4),
        sens_refinement: bool = True,
        share_weights: bool = False,
        use_checkpoint: bool = False,
        return_iterates: bool = False,
    ) -> None:
        """Build the network (penalties and step sizes drawn as in the reference implementation).

        Args:
            num_steps: unrolled half-quadratic-splitting steps ``T``, >= 1 (DIRECT: ``num_steps``).
            num_steps_dc_gd: gradient-descent data-consistency iterations per step, >= 1.
            chans: first-level channels of each step's denoiser U-Net (DIRECT: ``image_unet_num_filters``).
            pools: poolings of each denoiser U-Net (the grid is zero-padded to a multiple of ``2**pools``).
            sens_chans: first-level channels of the sensitivity U-Net.
            sens_pools: poolings of the sensitivity U-Net.
            initializer_channels: channels of the multiplier initialiser's dilated layers.
            initializer_dilations: their dilations, same length.
            sens_refinement: refine the ACS sensitivity estimate with a U-Net (``False``: ACS estimate only).
            share_weights: one denoiser for every step instead of independent copies (DIRECT:
                ``no_parameter_sharing=False``); the penalties stay per step.
            use_checkpoint: recompute the sensitivity model and each step in the backward pass
                (``torch.utils.checkpoint``, non-reentrant) to save activation memory while training.
            return_iterates: default of :meth:`forward`'s ``return_iterates``.

        Raises:
            ValueError: naming the setting, for a size that is not an integer >= 1 or an initialiser whose
                channels and dilations do not pair up.
        """
        super().__init__()
        _check_positive(num_steps=num_steps, num_steps_dc_gd=num_steps_dc_gd, chans=chans, pools=pools)
        if sens_refinement:
            _check_positive(sens_chans=sens_chans, sens_pools=sens_pools)
        self.sens_net = SensitivityModel(sens_chans, sens_pools, refine=sens_refinement)
        self.initializer = LagrangeMultipliersInitializer(initializer_channels, initializer_dilations)
        block = VSharpBlock(PaddedUnet(6, 2, chans=chans, pools=pools), num_steps_dc_gd)
        if share_weights:
            self.blocks = nn.ModuleList([block] * num_steps)
        else:
            self.blocks = nn.ModuleList([copy.deepcopy(block) for _ in range(num_steps)])
        self.learning_rate_eta = nn.Parameter(torch.empty(num_steps_dc_gd))
        self.rho = nn.Parameter(torch.empty(num_steps))
        nn.init.trunc_normal_(self.learning_rate_eta, mean=0.0, std=1.0, a=0.0)
        nn.init.trunc_normal_(self.rho, mean=0.0, std=0.1, a=0.0)
        self.use_checkpoint = use_checkpoint
        self.return_iterates = return_iterates

    @classmethod
    def check_input(cls, kspace_size: Sequence[int], **settings: Any) -> None:
        """Start-up check of a size's settings against the data's k-space grid (no network is built).

        Each U-Net pads the grid to a multiple of ``2**pools``; a grid side smaller than ``2**pools`` would
        leave its coarsest level with less than one pixel of data.

        Args:
            kspace_size: ``(H, W)`` of the k-space the network will see.
            **settings: :class:`VSharpNet` arguments (those not given take their defaults).

        Raises:
            ValueError: naming the setting that does not fit.
        """
        defaults = inspect.signature(cls.__init__).parameters
        args = {name: p.default for name, p in defaults.items() if p.default is not inspect.Parameter.empty}
        args.update(settings)
        _check_positive(**{name: args[name] for name in ("num_steps", "num_steps_dc_gd", "chans", "pools")})
        side = min(int(n) for n in kspace_size)
        names = ("pools", "sens_pools") if args["sens_refinement"] else ("pools",)
        for name in names:
            _check_positive(**{name: args[name]})
            if 2 ** args[name] > side:
                raise ValueError(
                    f"{name}={args[name]} needs a k-space of at least {2 ** args[name]} pixels per side, "
                    f"got {tuple(int(n) for n in kspace_size)}"
                )

    @torch.jit.unused
    def _checkpointed(
        self,
        block: nn.Module,
        x: Tensor,
        z: Tensor,
        u: Tensor,
        sense_image: Tensor,
        normal: NormalOperator,
        rho: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Run ``block`` under non-reentrant gradient checkpointing (eager mode only)."""
        return torch.utils.checkpoint.checkpoint(
            block, x, z, u, sense_image, normal, rho, self.learning_rate_eta, use_reentrant=False
        )

    def image_iterates(self, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor, keep_all: bool) -> List[Tensor]:
        """Run the unrolled algorithm for given sensitivities: the complex image after each step.

        Args:
            ref_kspace: measured k-space ``y`` ``(B, C, H, W, 2)``, float32, zero outside ``mask``.
            mask: float32 0/1 mask, ``(B, 1, H, W, 1)`` or ``(B, 1, 1, W, 1)``.
            sens_maps: ``(B, C, H, W, 2)``, ``sum_c |S_c|^2 = 1``.
            keep_all: return every step's image ``x_1 .. x_T``; else only ``[x_T]``.

        Returns:
            Complex images ``(B, H, W, 2)``, float32, oldest first.
        """
        sense_image = adjoint_operator(ref_kspace, sens_maps)  # SENSE image A^H y: (B, H, W, 2)
        normal = NormalOperator(sens_maps, mask)  # A^H A
        x, z = sense_image, sense_image
        u = self.initializer(x)
        images: List[Tensor] = []
        for t, block in enumerate(self.blocks):
            if self.use_checkpoint and self.training and not torch.jit.is_scripting():
                x, z, u = self._checkpointed(block, x, z, u, sense_image, normal, self.rho[t])
            else:
                x, z, u = block(x, z, u, sense_image, normal, self.rho[t], self.learning_rate_eta)
            if keep_all:
                images.append(x)
        if not keep_all:
            images.append(x)
        return images

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
                ``B`` may be 1 to share one mask across the batch. Only these samples enter the data
                consistency.
            num_low_frequencies: ``(B,)`` integer ACS widths in columns from the header; 0 entries or
                ``None`` detect the ACS from the mask per sample.
            return_iterates: fill ``kspace_iterates`` with ``F S x_t`` of every step (no mask); ``None`` uses
                the ``return_iterates`` given at construction.

        Returns:
            :class:`~pipeline.networks.output.ReconstructionOutput` with ``kspace = F S x_T`` on the whole
            grid, its RSS image and the sensitivities, all float32 (also under autocast).

        Raises:
            ValueError: if ``masked_kspace`` is not ``(B, C, H, W, 2)`` or ``mask`` is not 5-D.
        """
        keep_all = self.return_iterates if return_iterates is None else return_iterates
        mask_f, ref_kspace = measured_input(masked_kspace, mask)
        if self.use_checkpoint and self.training and not torch.jit.is_scripting():
            sens_maps = self.sens_net.checkpointed(ref_kspace, mask_f, num_low_frequencies)
        else:
            sens_maps = self.sens_net(ref_kspace, mask_f, num_low_frequencies)
        images = self.image_iterates(ref_kspace, mask_f, sens_maps, keep_all)
        kspace_iterates = [forward_operator(image, sens_maps) for image in images]  # F S x_t: (B, C, H, W, 2)
        kspace = kspace_iterates[-1]
        image = rss(ifft2c(kspace))  # (B, H, W)
        return ReconstructionOutput(kspace, image, sens_maps, kspace_iterates if keep_all else [])

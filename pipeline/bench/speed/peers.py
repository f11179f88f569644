"""Ours vs MONAI: forward and training step of the package's VarNet against MONAI's VarNet at matched sizes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pipeline.bench.common import num_params, paired
from pipeline.bench.speed.synthetic import synthetic_slice

__all__ = ["MONAI_INPUTS", "MONAI_NETS", "bench_vs_monai"]

#: ``(num_cascades, chans, sens_chans)`` of the matched ours-vs-MONAI networks (4 poolings in both).
MONAI_NETS = [(4, 8, 8), (6, 16, 8)]
#: ``(coils, H, W)`` of the ours-vs-MONAI inputs.
MONAI_INPUTS = [(4, 64, 64), (8, 128, 128)]


def _monai_varnet(num_cascades: int, chans: int, sens_chans: int) -> torch.nn.Module:
    """MONAI's ``VariationalNetworkModel`` with U-Net features ``(c, 2c, 4c, 8c, 16c, c)`` (4 poolings)."""
    from monai.apps.reconstruction.networks.nets.coil_sensitivity_model import CoilSensitivityModel
    from monai.apps.reconstruction.networks.nets.complex_unet import ComplexUnet
    from monai.apps.reconstruction.networks.nets.varnet import VariationalNetworkModel

    def features(c: int) -> tuple[int, ...]:
        return (c, 2 * c, 4 * c, 8 * c, 16 * c, c)

    return VariationalNetworkModel(
        CoilSensitivityModel(spatial_dims=2, features=features(sens_chans)),
        ComplexUnet(spatial_dims=2, features=features(chans)),
        num_cascades=num_cascades,
    )


def _step_fns(
    net: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, image_of: Callable[[Any], torch.Tensor]
) -> dict[str, Callable[[], None]]:
    """``{"forward": eval forward without gradients, "train": L1 on the image + backward + Adam}``."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    target = torch.rand(kspace.shape[0], kspace.shape[2], kspace.shape[3])

    def forward() -> None:
        net.eval()
        with torch.no_grad():
            net(kspace, mask)

    def train() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        (image_of(net(kspace, mask)) - target).abs().mean().backward()
        opt.step()

    return {"forward": forward, "train": train}


def bench_vs_monai(
    nets: Sequence[tuple[int, int, int]], inputs: Sequence[tuple[int, int, int]], repeats: int
) -> list[dict[str, Any]]:
    """Forward and train step (L1 on the RSS image + Adam) of ours vs MONAI, interleaved.

    Args:
        nets: ``(num_cascades, chans, sens_chans)`` per network pair.
        inputs: ``(coils, H, W)`` per input (batch 1, synthetic 4x equispaced k-space).
        repeats: interleaved repetitions per measurement.

    Returns:
        One row per (network, input): ``network``, ``input``, ``params_M_ours``, ``params_M_monai`` and
        ``forward`` / ``train`` timings (:func:`pipeline.bench.common.paired`, ours = a).
    """
    from pipeline.networks import build_network

    rows = []
    for num_cascades, chans, sens_chans in nets:
        for coils, h, w in inputs:
            torch.manual_seed(0)
            kspace, mask = synthetic_slice(coils, h, w)
            ours = build_network("varnet", "fastmri", num_cascades=num_cascades, chans=chans, pools=4,
                                 sens_chans=sens_chans, sens_pools=4)
            theirs = _monai_varnet(num_cascades, chans, sens_chans)
            fa = _step_fns(ours, kspace, mask, lambda out: out.image)
            fb = _step_fns(theirs, kspace, mask, lambda out: out)
            row: dict[str, Any] = {
                "network": f"{num_cascades} cascades, {chans} chans (sens {sens_chans})",
                "input": f"{coils} coils {h}x{w}",
                "params_M_ours": num_params(ours),
                "params_M_monai": num_params(theirs),
            }
            for kind in ("forward", "train"):
                row[kind] = paired(fa[kind], fb[kind], repeats)
            rows.append(row)
            print(
                f"  vs MONAI {row['network']}, {row['input']}: forward ratio {row['forward']['ratio']:.2f}, "
                f"train ratio {row['train']['ratio']:.2f}",
                flush=True,
            )
    return rows

"""Parity (and speed) of this package's vSHARP and E2E-VarNet with the reference implementation, DIRECT.

Usage::

    pip install ... ; python -m pipeline.bench.install_direct  # once: direct-recon 2.2.0 into .bench/
    python -m pipeline.bench.parity                           # table + bench_results/parity/parity.json
    python -m pipeline.bench.parity --timing                  # + train-step timing, ours vs DIRECT's vSHARP

Benchmark-only: DIRECT is never a dependency of the package. Without the unpacked wheel (or its
``requirements-bench.txt`` packages) the CLI prints ``parity: skipped (<reason>)`` and exits 0.

The check builds each network at a small matched configuration in both implementations, copies DIRECT's
(randomly initialised) weights into ours through an explicit name map that must cover both state dicts
(so the architectures are proven equal, tensor by tensor), runs both on the same 4x-undersampled
multi-coil input and reports relative differences ``||ours - direct|| / ||direct||``; each must be
< 1e-4. Both use the centred orthonormal FFT (DIRECT's ``fft2``/``ifft2`` with ``centered=True,
normalized=True`` are this package's ``fft2c``/``ifft2c``), the same complex layout ``(..., 2)`` and the
same ``sum_c |S_c|^2 = 1`` normalisation, so no input conversion is needed.

Conventions that differ, and how the check treats each:

- vSHARP denoiser output bias: DIRECT 2.2 builds it without bias (``image_unet_conv_out_bias=False``);
  DIRECT up to 2.1, used for the JSSL paper, and this package have one. The check builds DIRECT's with
  the bias.
- U-Net padding: this package zero-pads every U-Net input to a multiple of ``2**pools`` (and crops back);
  DIRECT's ``UnetModel2d`` does not pad but reflect-pads odd up-sampled feature maps, and its
  ``NormUnetModel2d`` pads to a multiple of 16. Identical on grids that are multiples of 16 (the parity
  grids); the row ``vsharp, 60x44 grid`` shows the size of the difference elsewhere (explained, not gated).
- Sensitivity refinement: DIRECT's JSSL configs refine the RSS-normalised ACS maps with a plain
  ``UnetModel2d``; this package (fastMRI E2E-VarNet) refines the ACS coil images with a normalised U-Net.
  The check gives DIRECT the same refinement with its own ``NormUnetModel2d`` on the same ACS coil images.
  DIRECT's engine glue that applies it per coil and normalises the maps
  (``MRIModelEngine.compute_sensitivity_map``; its module needs torchvision) is reproduced in
  :func:`direct_sensitivity_maps` with DIRECT's own ``safe_divide``.
- E2E-VarNet regulariser: DIRECT's ``EndToEndVarNet`` adds ``F S R(S^H F^H k)`` with a plain
  ``UnetModel2d``; fastMRI's (and this package's) subtracts it with a ``NormUnet``. The check swaps
  DIRECT's regularisers for its ``NormUnetModel2d`` behind a sign change (:class:`Negated`), keeping
  DIRECT's cascade code.
- Training-time k-space: DIRECT's vSHARP engines compute the loss k-space as ``y + (1 - M) F S x_t``;
  this package's vSHARP returns ``F S x_t`` (no mask). On the SSDU loss set Lambda (disjoint from the
  input set) both are equal; for supervised batches the k-space loss also sees the residual on the
  input samples. This is a loss-side choice, not part of the network compared here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.bench.install_direct import DEFAULT_DEST, bench_paths
from pipeline.networks import VarNet, VSharpNet, acs_column_window
from pipeline.physics import forward_operator, ifft2c

#: Largest relative difference accepted for an exact-parity row.
TOLERANCE = 1e-4
#: The matched small configurations of the parity check (this package's argument names).
VSHARP_CONFIG: dict[str, Any] = {
    "num_steps": 3, "num_steps_dc_gd": 3, "chans": 8, "pools": 3, "sens_chans": 4, "sens_pools": 2,
    "initializer_channels": (8, 8, 16, 16), "initializer_dilations": (1, 1, 2, 4),
}
VARNET_CONFIG: dict[str, Any] = {"num_cascades": 3, "chans": 8, "pools": 3, "sens_chans": 4, "sens_pools": 2}
#: Timing configurations: name -> (vSHARP arguments, (coils, H, W)).
TIMING_CASES: dict[str, tuple[dict[str, Any], tuple[int, int, int]]] = {
    "paper size, 8 coils 128x128": (
        {"num_steps": 12, "num_steps_dc_gd": 10, "chans": 32, "pools": 4, "sens_chans": 16, "sens_pools": 4,
         "initializer_channels": (32, 32, 64, 64), "initializer_dilations": (1, 1, 2, 4)},
        (8, 128, 128),
    ),
    "demo size, 8 coils 256x136": (
        {"num_steps": 4, "num_steps_dc_gd": 4, "chans": 12, "pools": 3, "sens_chans": 6, "sens_pools": 3,
         "initializer_channels": (16, 16, 32, 32), "initializer_dilations": (1, 1, 2, 4)},
        (8, 256, 136),
    ),
}


# --------------------------------------------------------------------------------------------- DIRECT
def load_direct(dest: str | Path = DEFAULT_DEST) -> tuple[types.SimpleNamespace | None, str]:
    """Import DIRECT's model modules from an install made by :mod:`pipeline.bench.install_direct`.

    The install's folders are appended to ``sys.path`` (the environment's own packages keep precedence).

    Returns:
        ``(namespace, version)`` with the classes and functions used here, or ``(None, reason)``.
    """
    paths = [p for p in bench_paths(dest) if p.is_dir()]
    if not (Path(dest) / "direct" / "direct").is_dir():
        return None, f"DIRECT is not unpacked in {dest} (run: python -m pipeline.bench.install_direct)"
    for path in paths:
        if str(path) not in sys.path:
            sys.path.append(str(path))
    try:  # DIRECT is a benchmark-only plug-in found on the paths above, not an installed requirement
        direct = importlib.import_module("direct")
        types_ = importlib.import_module("direct.nn.types")
        unet = importlib.import_module("direct.nn.unet.unet_2d")
        namespace = types.SimpleNamespace(
            T=importlib.import_module("direct.data.transforms"),
            InitType=types_.InitType,
            ModelName=types_.ModelName,
            UnetModel2d=unet.UnetModel2d,
            NormUnetModel2d=unet.NormUnetModel2d,
            EndToEndVarNet=importlib.import_module("direct.nn.varnet.varnet").EndToEndVarNet,
            VSharpNet=importlib.import_module("direct.nn.vsharp.vsharp").VSharpNet,
        )
    except ImportError as err:
        return None, f"DIRECT does not import ({err}); install requirements-bench.txt"
    return namespace, str(getattr(direct, "__version__", "unknown"))


class Negated(nn.Module):
    """``-model(x)``: fastMRI's subtracted regulariser inside DIRECT's added one."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 2, H, W) -> (N, 2, H, W)``."""
        return -self.model(x)


def direct_sensitivity_maps(D: types.SimpleNamespace, model: nn.Module | None, acs_images: Tensor) -> Tensor:
    """DIRECT's ``MRIModelEngine.compute_sensitivity_map``: per-coil refinement, then ``sum_c |S_c|^2 = 1``.

    Args:
        D: the namespace of :func:`load_direct`.
        model: DIRECT sensitivity model on ``(B, 2, H, W)``; ``None`` = no refinement.
        acs_images: ACS coil images ``(B, C, H, W, 2)``.

    Returns:
        ``(B, C, H, W, 2)`` maps.
    """
    maps = acs_images
    if model is not None:
        channels_first = maps.permute(0, 1, 4, 2, 3)  # (B, C, 2, H, W)
        maps = torch.stack([model(channels_first[:, c]) for c in range(maps.shape[1])], dim=1).permute(0, 1, 3, 4, 2)
    norm = torch.sqrt((maps**2).sum(-1).sum(1)).unsqueeze(1).unsqueeze(-1)  # (B, 1, H, W, 1)
    return D.T.safe_divide(maps, norm)


def direct_vsharp(D: types.SimpleNamespace, config: Mapping[str, Any], conv_out_bias: bool = True) -> nn.Module:
    """DIRECT's ``VSharpNet`` at this package's ``config`` (every iterate returned, as in the JSSL configs)."""
    return D.VSharpNet(
        D.T.fft2, D.T.ifft2, num_steps=config["num_steps"], num_steps_dc_gd=config["num_steps_dc_gd"],
        image_init=D.InitType.SENSE, no_parameter_sharing=True, image_model_architecture=D.ModelName.UNET,
        initializer_channels=tuple(config["initializer_channels"]),
        initializer_dilations=tuple(config["initializer_dilations"]), auxiliary_steps=-1,
        image_unet_num_filters=config["chans"], image_unet_num_pool_layers=config["pools"],
        image_unet_conv_out_bias=conv_out_bias,
    )


def direct_varnet(D: types.SimpleNamespace, config: Mapping[str, Any]) -> nn.Module:
    """DIRECT's ``EndToEndVarNet`` with this package's maths at ``config`` (``num_cascades``, ``chans``, ``pools``).

    Each cascade's regulariser is DIRECT's ``NormUnetModel2d`` behind :class:`Negated` (fastMRI subtracts
    the regulariser term, DIRECT adds it); the cascade code, data consistency and FFTs stay DIRECT's.
    """
    net = D.EndToEndVarNet(D.T.fft2, D.T.ifft2, num_layers=config["num_cascades"],
                           regularizer_num_filters=config["chans"], regularizer_num_pull_layers=config["pools"])
    for layer in net.layers_list:
        layer.regularizer_model = Negated(D.NormUnetModel2d(2, 2, config["chans"], config["pools"], 0.0))
    return net


# --------------------------------------------------------------------------------------------- weight maps
def unet_name_map(ours: str, theirs: str, pools: int) -> dict[str, str]:
    """Parameter names of :class:`~pipeline.networks.Unet` (prefix ``ours``) -> DIRECT's ``UnetModel2d``."""
    names: dict[str, str] = {}
    for i in range(pools):
        names[f"{ours}down.{i}.0.weight"] = f"{theirs}down_sample_layers.{i}.layer_1.conv.weight"
        names[f"{ours}down.{i}.3.weight"] = f"{theirs}down_sample_layers.{i}.layer_2.conv.weight"
        names[f"{ours}up.{i}.up.0.weight"] = f"{theirs}up_transpose_conv.{i}.conv.weight"
        names[f"{ours}up.{i}.conv.0.weight"] = f"{theirs}up_conv.{i}.layer_1.conv.weight"
        names[f"{ours}up.{i}.conv.3.weight"] = f"{theirs}up_conv.{i}.layer_2.conv.weight"
    names[f"{ours}bottleneck.0.weight"] = f"{theirs}conv.layer_1.conv.weight"
    names[f"{ours}bottleneck.3.weight"] = f"{theirs}conv.layer_2.conv.weight"
    names[f"{ours}head.weight"] = f"{theirs}conv_out.weight"
    names[f"{ours}head.bias"] = f"{theirs}conv_out.bias"
    return names


def vsharp_name_map(config: Mapping[str, Any]) -> dict[str, str]:
    """:class:`~pipeline.networks.VSharpNet` names -> ``vsharp.<DIRECT VSharpNet>`` / ``sens.<NormUnetModel2d>``."""
    names = {"rho": "vsharp.rho", "learning_rate_eta": "vsharp.learning_rate_eta"}
    for i in range(len(config["initializer_channels"])):
        for kind in ("weight", "bias"):
            names[f"initializer.features.{3 * i + 1}.{kind}"] = f"vsharp.initializer.conv_blocks.{i}.1.{kind}"
    for ours, theirs in (("head.weight", "out_block.weight"), ("head.bias", "out_block.bias"),
                         ("activation.weight", "activation.weight")):
        names[f"initializer.{ours}"] = f"vsharp.initializer.{theirs}"
    for t in range(config["num_steps"]):
        names.update(unet_name_map(f"blocks.{t}.denoiser.unet.", f"vsharp.denoiser_blocks.{t}.", config["pools"]))
    names.update(unet_name_map("sens_net.norm_unet.unet.", "sens.unet2d.", config["sens_pools"]))
    return names


def varnet_name_map(config: Mapping[str, Any]) -> dict[str, str]:
    """:class:`~pipeline.networks.VarNet` names -> ``varnet.<DIRECT EndToEndVarNet>`` / ``sens.<NormUnetModel2d>``."""
    names: dict[str, str] = {}
    for i in range(config["num_cascades"]):
        names[f"cascades.{i}.dc_weight"] = f"varnet.layers_list.{i}.learning_rate"
        names.update(unet_name_map(f"cascades.{i}.regulariser.unet.",
                                   f"varnet.layers_list.{i}.regularizer_model.model.unet2d.", config["pools"]))
    names.update(unet_name_map("sens_net.norm_unet.unet.", "sens.unet2d.", config["sens_pools"]))
    return names


def copy_weights(ours: nn.Module, theirs: Mapping[str, nn.Module], names: Mapping[str, str]) -> None:
    """Load the weights of the ``theirs`` modules (keys prefix their names) into ``ours`` through ``names``.

    Raises:
        ValueError: when the map does not cover both sides exactly or a shape differs (the architectures
            differ).
    """
    their_state = {f"{prefix}.{k}": v for prefix, module in theirs.items() for k, v in module.state_dict().items()}
    own = ours.state_dict()
    if set(names) != set(own) or set(names.values()) != set(their_state):
        raise ValueError(
            f"weight map mismatch: ours unmapped {sorted(set(own) - set(names))}, "
            f"theirs unmapped {sorted(set(their_state) - set(names.values()))}"
        )
    shapes = [k for k, v in names.items() if own[k].shape != their_state[v].shape]
    if shapes:
        raise ValueError(f"shape mismatch: {shapes}")
    ours.load_state_dict({k: their_state[v] for k, v in names.items()})


# --------------------------------------------------------------------------------------------- inputs
def parity_input(coils: int = 4, h: int = 64, w: int = 48, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A 4x equispaced-undersampled multi-coil k-space of a smooth random object with smooth coil maps.

    Returns:
        ``(masked_kspace (1, C, H, W, 2), mask (1, 1, 1, W, 1) bool)``.
    """
    gen = torch.Generator().manual_seed(seed)

    def smooth(*shape: int, keep: int) -> Tensor:
        spectrum = torch.zeros(*shape, h, w, 2)
        ch, cw = h // 2, w // 2
        spectrum[..., ch - keep : ch + keep, cw - keep : cw + keep, :] = torch.randn(*shape, 2 * keep, 2 * keep, 2,
                                                                                     generator=gen)
        return ifft2c(spectrum)

    image = smooth(1, keep=8)  # (1, H, W, 2)
    maps = smooth(1, coils, keep=2)
    kspace = forward_operator(image, maps)  # (1, C, H, W, 2)
    kspace = kspace + 0.01 * kspace.std() * torch.randn(kspace.shape, generator=gen)
    mask = torch.zeros(1, 1, 1, w, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    acs = max(2, round(0.08 * w))
    mask[..., (w - acs + 1) // 2 : (w - acs + 1) // 2 + acs, :] = True
    return kspace * mask, mask


def relative_difference(ours: Tensor, theirs: Tensor) -> float:
    """``||ours - theirs|| / ||theirs||`` in float64."""
    ours, theirs = ours.detach().double(), theirs.detach().double()
    return float((ours - theirs).norm() / theirs.norm().clamp_min(1e-30))


# --------------------------------------------------------------------------------------------- parity
def _row(name: str, quantity: str, value: float, gated: bool = True, note: str = "") -> dict[str, Any]:
    return {"case": name, "quantity": quantity, "rel_diff": value, "gated": gated,
            "passed": (value < TOLERANCE) if gated else None, "note": note}


@torch.no_grad()
def vsharp_parity(D: types.SimpleNamespace, grid: tuple[int, int, int] = (4, 64, 48)) -> list[dict[str, Any]]:
    """vSHARP rows: image iterates for given maps, sensitivities, and the end-to-end k-space and image."""
    torch.manual_seed(0)
    theirs = direct_vsharp(D, VSHARP_CONFIG).eval()
    sens = D.NormUnetModel2d(2, 2, VSHARP_CONFIG["sens_chans"], VSHARP_CONFIG["sens_pools"], 0.0).eval()
    ours = VSharpNet(**VSHARP_CONFIG).eval()
    copy_weights(ours, {"vsharp": theirs, "sens": sens}, vsharp_name_map(VSHARP_CONFIG))
    masked_kspace, mask = parity_input(*grid)
    mask_f = mask.float()
    name = f"vsharp, {grid[0]} coils {grid[1]}x{grid[2]}"
    acs_images = ifft2c(masked_kspace * acs_column_window(mask_f, None, 1))
    their_maps = direct_sensitivity_maps(D, sens, acs_images)
    their_images = theirs(masked_kspace=masked_kspace, sensitivity_map=their_maps, sampling_mask=mask)
    our_images = ours.image_iterates(masked_kspace, mask_f, their_maps, keep_all=True)
    out = ours(masked_kspace, mask, return_iterates=True)
    their_kspace = D.T.fft2(D.T.expand_operator(their_images[-1], their_maps, dim=1), dim=(2, 3))
    return [
        _row(name, f"image iterates x_1..x_{len(their_images)} (same maps), worst",
             max(relative_difference(a, b) for a, b in zip(our_images, their_images))),
        _row(name, "sensitivity maps", relative_difference(out.sens_maps, their_maps)),
        _row(name, "k-space F S x_T (end to end)", relative_difference(out.kspace, their_kspace)),
        _row(name, "RSS image (end to end)", relative_difference(out.image, D.T.modulus(their_images[-1]))),
    ]


@torch.no_grad()
def vsharp_padding_row(D: types.SimpleNamespace, grid: tuple[int, int, int] = (4, 60, 44)) -> dict[str, Any]:
    """The vSHARP difference on a grid that is not a multiple of ``2**pools`` (padding conventions differ)."""
    torch.manual_seed(0)
    theirs = direct_vsharp(D, VSHARP_CONFIG).eval()
    sens = D.NormUnetModel2d(2, 2, VSHARP_CONFIG["sens_chans"], VSHARP_CONFIG["sens_pools"], 0.0).eval()
    ours = VSharpNet(**VSHARP_CONFIG).eval()
    copy_weights(ours, {"vsharp": theirs, "sens": sens}, vsharp_name_map(VSHARP_CONFIG))
    masked_kspace, mask = parity_input(*grid)
    maps = direct_sensitivity_maps(D, None, ifft2c(masked_kspace * acs_column_window(mask.float(), None, 1)))
    their_images = theirs(masked_kspace=masked_kspace, sensitivity_map=maps, sampling_mask=mask)
    our_images = ours.image_iterates(masked_kspace, mask.float(), maps, keep_all=True)
    return _row(f"vsharp, {grid[0]} coils {grid[1]}x{grid[2]}", "image x_T (same maps)",
                relative_difference(our_images[-1], their_images[-1]), gated=False,
                note="explained: zero padding to 2**pools here, reflect padding of odd feature maps in DIRECT")


@torch.no_grad()
def varnet_parity(D: types.SimpleNamespace, grid: tuple[int, int, int] = (4, 64, 48)) -> list[dict[str, Any]]:
    """E2E-VarNet rows: sensitivities and the end-to-end k-space and image."""
    torch.manual_seed(0)
    cfg = VARNET_CONFIG
    theirs = direct_varnet(D, cfg)
    for layer in theirs.layers_list:
        nn.init.uniform_(layer.learning_rate, 0.5, 1.5)  # not the default 1, so the weight is really copied
    theirs.eval()
    sens = D.NormUnetModel2d(2, 2, cfg["sens_chans"], cfg["sens_pools"], 0.0).eval()
    ours = VarNet(**cfg).eval()
    copy_weights(ours, {"varnet": theirs, "sens": sens}, varnet_name_map(cfg))
    masked_kspace, mask = parity_input(*grid)
    maps = direct_sensitivity_maps(D, sens, ifft2c(masked_kspace * acs_column_window(mask.float(), None, 1)))
    their_kspace = theirs(masked_kspace, mask, maps)
    out = ours(masked_kspace, mask)
    name = f"varnet, {grid[0]} coils {grid[1]}x{grid[2]}"
    their_image = D.T.root_sum_of_squares(D.T.ifft2(their_kspace, dim=(2, 3)), dim=1)
    return [
        _row(name, "sensitivity maps", relative_difference(out.sens_maps, maps)),
        _row(name, "k-space after the last cascade", relative_difference(out.kspace, their_kspace)),
        _row(name, "RSS image", relative_difference(out.image, their_image)),
    ]


def run_parity(D: types.SimpleNamespace) -> list[dict[str, Any]]:
    """Every parity row (see the module docstring)."""
    return [*vsharp_parity(D), vsharp_padding_row(D), *varnet_parity(D)]


# --------------------------------------------------------------------------------------------- timing
def _median_times(steps: Mapping[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median wall time (s) of each callable over ``repeats`` alternating rounds, after one warm-up round."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def time_vsharp(D: types.SimpleNamespace, config: Mapping[str, Any], grid: Sequence[int],
                repeats: int = 5) -> dict[str, Any]:
    """Forward and train-step time of this package's vSHARP vs DIRECT's at the same configuration.

    One thread, batch 1, float32. A train step is forward + L1 of the final magnitude image + backward + one
    Adam step. Both include the sensitivity refinement (DIRECT: the JSSL configs' plain ``UnetModel2d`` per
    coil on the ACS maps, which DIRECT's data loader computes outside the step; ours: ACS estimate and
    ``NormUnet`` inside the network) and every iterate of the unrolled algorithm.

    Returns:
        ``{"config", "grid", "params": {impl: count}, "forward_s": {impl: s}, "train_step_s": {impl: s},
        "speedup_train": direct / ours, "speedup_forward": direct / ours}``.
    """
    torch.manual_seed(0)
    coils, h, w = grid
    masked_kspace, mask = parity_input(coils, h, w)
    acs_images = ifft2c(masked_kspace * acs_column_window(mask.float(), None, 1))
    target = torch.rand(1, h, w)
    ours = VSharpNet(**config)
    theirs = direct_vsharp(D, config, conv_out_bias=False)
    sens = D.UnetModel2d(2, 2, config["sens_chans"], config["sens_pools"], 0.0)
    ours_opt = torch.optim.Adam(ours.parameters(), lr=1e-4)
    theirs_opt = torch.optim.Adam([*theirs.parameters(), *sens.parameters()], lr=1e-4)

    def ours_image() -> Tensor:
        return ours(masked_kspace, mask).image

    def theirs_image() -> Tensor:
        maps = direct_sensitivity_maps(D, sens, acs_images)
        images = theirs(masked_kspace=masked_kspace, sensitivity_map=maps, sampling_mask=mask)
        return D.T.modulus(images[-1])

    def forward(net: nn.Module, run: Callable[[], Tensor]) -> Callable[[], None]:
        def step() -> None:
            net.eval()
            with torch.no_grad():
                run()
        return step

    def train(modules: Sequence[nn.Module], optimizer: torch.optim.Optimizer, run: Callable[[], Tensor]):
        def step() -> None:
            for module in modules:
                module.train()
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.l1_loss(run(), target).backward()
            optimizer.step()
        return step

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fwd = _median_times({"ours": forward(ours, ours_image), "direct": forward(theirs, theirs_image)}, repeats)
        trn = _median_times({"ours": train([ours], ours_opt, ours_image),
                             "direct": train([theirs, sens], theirs_opt, theirs_image)}, repeats)
    finally:
        torch.set_num_threads(threads)
    count = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    return {
        "config": dict(config), "grid": list(grid),
        "params": {"ours": count([ours]), "direct": count([theirs, sens])},
        "forward_s": fwd, "train_step_s": trn,
        "speedup_forward": fwd["direct"] / fwd["ours"], "speedup_train": trn["direct"] / trn["ours"],
    }


# --------------------------------------------------------------------------------------------- CLI
def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of parity rows."""
    lines = ["| case | quantity | rel. difference | result |", "|---|---|---:|---|"]
    for row in rows:
        result = ("pass" if row["passed"] else "FAIL") if row["gated"] else row["note"]
        lines.append(f"| {row['case']} | {row['quantity']} | {row['rel_diff']:.2e} | {result} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring). Exit status 1 only when a gated row fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct-dir", type=Path, default=DEFAULT_DEST, help="install of install_direct")
    parser.add_argument("--out", type=Path, default=Path("bench_results/parity"), help="folder of parity.json")
    parser.add_argument("--timing", action="store_true", help="also time ours vs DIRECT's vSHARP")
    parser.add_argument("--timing-cases", nargs="*", default=list(TIMING_CASES), choices=list(TIMING_CASES))
    parser.add_argument("--repeats", type=int, default=5, help="timing repetitions (median)")
    args = parser.parse_args(argv)
    D, version = load_direct(args.direct_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    if D is None:
        print(f"parity: skipped ({version})")
        (args.out / "parity.json").write_text(json.dumps({"status": "skipped", "reason": version}, indent=2))
        return 0
    rows = run_parity(D)
    failed = any(row["gated"] and not row["passed"] for row in rows)
    report: dict[str, Any] = {"status": "failed" if failed else "passed", "direct_version": version,
                              "tolerance": TOLERANCE, "torch": torch.__version__, "rows": rows}
    print(f"parity with DIRECT {version} (tolerance {TOLERANCE:g}):")
    print(format_table(rows))
    if args.timing:
        report["timing"] = {}
        for name in args.timing_cases:
            config, grid = TIMING_CASES[name]
            result = time_vsharp(D, config, grid, args.repeats)
            report["timing"][name] = result
            print(f"timing, {name} (1 thread, batch 1, fp32, median of {args.repeats}): "
                  f"forward ours {result['forward_s']['ours']:.3f} s / DIRECT {result['forward_s']['direct']:.3f} s "
                  f"(x{result['speedup_forward']:.2f}); train step ours {result['train_step_s']['ours']:.3f} s / "
                  f"DIRECT {result['train_step_s']['direct']:.3f} s (x{result['speedup_train']:.2f})")
    (args.out / "parity.json").write_text(json.dumps(report, indent=2))
    print(f"parity: {report['status']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""This package's networks against their peers at matched maths: DIRECT's E2E-VarNet and vSHARP, MONAI's VarNet.

One fresh process per input size (``python -m pipeline.bench.speed --peer-worker SPEC``) builds every
contender, then times the forward pass (eval, no gradients), the training step (forward + L1 on the
RSS image + backward + Adam) and, at the two small sizes, the training step under bf16 autocast (every
contender alike; fast on CPUs with bf16 matrix units such as AMX) of all of them round-robin, the order
rotated every repetition (:func:`pipeline.bench.common.interleaved`). Each pair's figure is the median of its
per-repetition ratios.

Contenders (batch 1, float32, synthetic 4x equispaced k-space with 8% ACS):

- ``ours, sens 16`` vs ``DIRECT E2E-VarNet, sens 16``: the JSSL paper's E2E-VarNet, 6 cascades of 16-channel
  4-pool U-Nets, with a 16-channel 4-pool sensitivity U-Net. DIRECT's side is
  :func:`pipeline.bench.parity.direct_varnet` (its ``EndToEndVarNet`` with its ``NormUnetModel2d``
  regularisers) and its ``NormUnetModel2d`` sensitivity refinement applied per coil, as DIRECT's engine does
  (:func:`pipeline.bench.parity.direct_sensitivity_maps`); the parity check proves the maths equal with
  copied weights. DIRECT is benchmark-only (``python -m pipeline.bench.install_direct``); without it these
  contenders are skipped and the report says why.
- ``ours, sens 8`` vs ``MONAI VarNet, sens 8``: MONAI's ``VariationalNetworkModel(CoilSensitivityModel,
  ComplexUnet)`` with features ``(c, 2c, 4c, 8c, 16c, c)`` (its U-Nets always pool 4 times).
- ``ours vSHARP`` vs ``DIRECT vSHARP`` at the same configuration (:data:`pipeline.bench.parity.TIMING_CASES`:
  the paper's at 8 coils 128x128, the demo's at the demo size), with the same sensitivity refinement as above.
"""

from __future__ import annotations

import dataclasses
import statistics
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.bench.common import interleaved, num_params, ratio_stats
from pipeline.bench.speed.synthetic import synthetic_slice

__all__ = ["OURS_DEFAULT", "PAIRS", "PEER_SIZES", "PHASES", "QUICK_SIZE", "VARNET_CONFIG", "bench_peers", "peer_worker"]

#: The matched E2E-VarNet: the JSSL paper's (6 cascades of 16-channel U-Nets), 4 poolings everywhere.
VARNET_CONFIG: dict[str, int] = {"num_cascades": 6, "chans": 16, "pools": 4, "sens_pools": 4}
#: Timed phases: key -> what the report calls it.
PHASES = {"forward": "forward", "train": "train", "train_bf16": "train (bf16 autocast)"}
#: Input sizes: label -> ``(coils, H, W)``, phases timed, the vSHARP case of ``parity.TIMING_CASES`` (or None).
PEER_SIZES: dict[str, tuple[tuple[int, int, int], tuple[str, ...], str | None]] = {
    "8 coils 128x128": ((8, 128, 128), ("forward", "train", "train_bf16"), "paper size, 8 coils 128x128"),
    "demo, 8 coils 256x136": ((8, 256, 136), ("forward", "train", "train_bf16"), "demo size, 8 coils 256x136"),
    "fastMRI, 15 coils 640x368": ((15, 640, 368), ("forward",), None),
}
#: ``--quick``: a smoke-test size (and a 2-cascade, 8-channel network) that runs in seconds.
QUICK_SIZE: dict[str, tuple[tuple[int, int, int], tuple[str, ...], str | None]] = {
    "quick, 4 coils 64x64": ((4, 64, 64), ("forward", "train", "train_bf16"), "quick"),
}
_QUICK_VARNET = {"num_cascades": 2, "chans": 8, "pools": 4, "sens_pools": 4}
_QUICK_VSHARP = {"num_steps": 2, "num_steps_dc_gd": 2, "chans": 8, "pools": 2, "sens_chans": 4, "sens_pools": 2,
                 "initializer_channels": (8, 8, 16, 16), "initializer_dilations": (1, 1, 2, 4)}
#: ``(ours, peer)`` pairs with identical maths; each gets a per-repetition ratio.
PAIRS = [
    ("ours, sens 16", "DIRECT E2E-VarNet, sens 16"),
    ("ours, sens 16, all coils per call", "DIRECT E2E-VarNet, sens 16"),
    ("ours, sens 8", "MONAI VarNet, sens 8"),
    ("ours vSHARP", "DIRECT vSHARP"),
]
#: The package's default configuration in this comparison (16-channel sensitivity U-Net, as the paper's).
OURS_DEFAULT = "ours, sens 16"
#: Peers among which "the fastest peer" is chosen (same network family as :data:`OURS_DEFAULT`).
VARNET_PEERS = ("DIRECT E2E-VarNet, sens 16", "MONAI VarNet, sens 8")


@dataclasses.dataclass
class Contender:
    """One timed network: its modules (for ``train()`` / ``eval()`` and the optimiser) and its image.

    Attributes:
        modules: every module with parameters.
        image: runs the network on the benchmark input; the magnitude image ``(B, H, W)``.
    """

    modules: list[nn.Module]
    image: Callable[[], Tensor]

    @property
    def params_M(self) -> float:
        """Parameters in millions."""
        return sum(num_params(m) for m in self.modules)


def _monai_varnet(num_cascades: int, chans: int, sens_chans: int) -> nn.Module:
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


def _direct_contenders(
    D: types.SimpleNamespace, varnet: dict[str, int], vsharp: dict[str, Any] | None, kspace: Tensor, mask: Tensor
) -> dict[str, Contender]:
    """DIRECT's E2E-VarNet (16-channel sensitivity U-Net) and, when ``vsharp`` is given, its vSHARP."""
    from pipeline.bench.parity import direct_sensitivity_maps, direct_varnet, direct_vsharp
    from pipeline.networks import acs_column_window
    from pipeline.physics import ifft2c

    def acs_images() -> Tensor:  # inside the step, as in ours (DIRECT computes it in its data loader)
        return ifft2c(kspace * acs_column_window(mask.float(), None, kspace.shape[0]))

    net = direct_varnet(D, varnet)
    sens = D.NormUnetModel2d(2, 2, 16, varnet["sens_pools"], 0.0)

    def varnet_image() -> Tensor:
        maps = direct_sensitivity_maps(D, sens, acs_images())
        return D.T.root_sum_of_squares(D.T.ifft2(net(kspace, mask, maps), dim=(2, 3)), dim=1)

    out = {"DIRECT E2E-VarNet, sens 16": Contender([net, sens], varnet_image)}
    if vsharp is not None:
        vnet = direct_vsharp(D, vsharp)
        vsens = D.NormUnetModel2d(2, 2, vsharp["sens_chans"], vsharp["sens_pools"], 0.0)

        def vsharp_image() -> Tensor:
            maps = direct_sensitivity_maps(D, vsens, acs_images())
            return D.T.modulus(vnet(masked_kspace=kspace, sensitivity_map=maps, sampling_mask=mask)[-1])

        out["DIRECT vSHARP"] = Contender([vnet, vsens], vsharp_image)
    return out


def build_contenders(
    shape: tuple[int, int, int], vsharp_case: str | None, quick: bool = False
) -> tuple[dict[str, Contender], dict[str, str]]:
    """Every contender on one synthetic input of ``shape``, and the peers skipped (name -> reason).

    Args:
        shape: ``(coils, H, W)``.
        vsharp_case: key of :data:`pipeline.bench.parity.TIMING_CASES` (``"quick"``: a tiny vSHARP), or
            ``None`` for no vSHARP pair.
        quick: tiny VarNets (smoke test).

    Returns:
        ``(contenders, skipped)``; DIRECT's contenders are skipped when it is not installed.
    """
    from pipeline.bench.parity import TIMING_CASES, load_direct
    from pipeline.networks import build_network

    torch.manual_seed(0)
    kspace, mask = synthetic_slice(*shape)
    varnet = _QUICK_VARNET if quick else VARNET_CONFIG
    vsharp = None if vsharp_case is None else (_QUICK_VSHARP if vsharp_case == "quick" else
                                                 TIMING_CASES[vsharp_case][0])

    def ours(net: nn.Module) -> Contender:
        return Contender([net], lambda: net(kspace, mask).image)

    contenders: dict[str, Contender] = {}
    for sens_chans in (16, 8):
        contenders[f"ours, sens {sens_chans}"] = ours(build_network("varnet", "fastmri", **varnet,
                                                                    sens_chans=sens_chans))
    # the sensitivity U-Net on all coil images in one call (the default chooses by grid size)
    contenders["ours, sens 16, all coils per call"] = ours(build_network("varnet", "fastmri", **varnet,
                                                                         sens_chans=16, sens_coil_batch=0))
    monai = _monai_varnet(varnet["num_cascades"], varnet["chans"], 8)
    contenders["MONAI VarNet, sens 8"] = Contender([monai], lambda: monai(kspace, mask))
    if vsharp is not None:
        contenders["ours vSHARP"] = ours(build_network("vsharp", "paper", **vsharp))
    skipped: dict[str, str] = {}
    D, reason = load_direct()
    if D is None:
        skipped = {"DIRECT E2E-VarNet, sens 16": reason}
        if vsharp is not None:
            skipped["DIRECT vSHARP"] = reason
    else:
        contenders.update(_direct_contenders(D, varnet, vsharp, kspace, mask))
    return contenders, skipped


def _steps(contender: Contender, target: Tensor) -> dict[str, Callable[[], None]]:
    """``{"forward": eval forward without gradients, "train": L1 on the image + backward + Adam, "train_bf16": the
    same step with the forward pass under bf16 autocast}``."""
    params = [p for m in contender.modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)

    def forward() -> None:
        for m in contender.modules:
            m.eval()
        with torch.no_grad():
            contender.image()

    def train(bf16: bool = False) -> None:
        for m in contender.modules:
            m.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # the forward pass, as the trainer
            image = contender.image()
        (image - target).abs().mean().backward()
        opt.step()

    return {"forward": forward, "train": train, "train_bf16": lambda: train(bf16=True)}


def peer_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Time every contender at one size in THIS process (run it in a fresh one).

    Args:
        spec: ``{"label": a key of PEER_SIZES or QUICK_SIZE, "repeats": int, "quick": bool}``.

    Returns:
        ``{"label", "input", "params_M": {name: M}, "skipped": {name: reason}, "<phase>": {"times":
        {name: [s, ...]}, "median_s": {name: s}, "pairs": [...], "default_vs_fastest_peer": {...}}}``;
        each pair is ``{"ours", "peer", **ratio_stats}`` (ratio = ours / peer, < 1 = ours faster).
    """
    sizes = QUICK_SIZE if spec.get("quick") else PEER_SIZES
    shape, phases, vsharp_case = sizes[spec["label"]]
    contenders, skipped = build_contenders(shape, vsharp_case, quick=bool(spec.get("quick")))
    target = torch.rand(1, shape[1], shape[2])
    steps = {name: _steps(c, target) for name, c in contenders.items()}
    result: dict[str, Any] = {
        "label": spec["label"], "input": f"{shape[0]} coils {shape[1]}x{shape[2]}, batch 1",
        "params_M": {name: c.params_M for name, c in contenders.items()}, "skipped": skipped,
    }
    for phase in phases:
        print(f"    {spec['label']}: {phase} ...", flush=True)
        times = interleaved({name: s[phase] for name, s in steps.items()}, spec["repeats"])
        medians = {name: statistics.median(t) for name, t in times.items()}
        pairs = [{"ours": a, "peer": b, **ratio_stats(times[a], times[b])}
                 for a, b in PAIRS if a in times and b in times]
        peers = [p for p in VARNET_PEERS if p in times]
        fastest = min(peers, key=medians.__getitem__)
        result[phase] = {
            "median_s": medians, "times": times, "pairs": pairs,
            "default_vs_fastest_peer": {"ours": OURS_DEFAULT, "peer": fastest,
                                        **ratio_stats(times[OURS_DEFAULT], times[fastest])},
        }
    return result


def bench_peers(labels: Sequence[str], repeats: int, quick: bool, timeout: int) -> list[dict[str, Any]]:
    """:func:`peer_worker` for each size label, each in a fresh subprocess.

    Args:
        labels: keys of :data:`PEER_SIZES` (of :data:`QUICK_SIZE` with ``quick``).
        repeats: interleaved repetitions per phase (the fastMRI size uses at most 3).
        quick: smoke test (tiny networks).
        timeout: seconds per subprocess.

    Returns:
        One :func:`peer_worker` result per label (``{"label", "error"}`` where the worker failed).
    """
    from pipeline.bench.speed.memory import run_worker

    rows = []
    for label in labels:
        n = min(repeats, 3) if label.startswith("fastMRI") else repeats
        row = run_worker("--peer-worker", {"label": label, "repeats": n, "quick": quick}, timeout)
        row.setdefault("label", label)
        rows.append(row)
        for phase in PHASES:
            for pair in row.get(phase, {}).get("pairs", []):
                print(f"  {label} {phase}: {pair['ours']} / {pair['peer']} = {pair['ratio']:.3f}", flush=True)
        if row.get("skipped"):
            print(f"  {label}: skipped {row['skipped']}", flush=True)
        if "error" in row:
            print(f"  {label}: FAILED {row['error']}", flush=True)
    return rows

"""Inference vs compressed sensing: network forward per slice against L1-wavelet CS on the same slice.

At demo size on a real demo test slice (through the bundle's validation transforms; SSIM of both when the
bundle has trained weights ``models/model.pt``); at fastMRI size on a synthetic slice with random weights (one
run each) and, given weights trained at that size, on a test slice of their manifest with SSIM. On a test slice
the network also runs under bf16 autocast (the bundle's ``precision: bf16``; the U-Nets in bfloat16, k-space,
FFTs and data consistency in float32), timed round-robin with the float32 network and CS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.bench.bundle import train_parser
from pipeline.bench.common import interleaved, num_params, ratio_stats, timed
from pipeline.bench.speed.synthetic import FASTMRI_SHAPE, synthetic_slice

__all__ = ["bench_inference"]


def _test_slice(bundle: Path, manifest: Path) -> dict[str, Any]:
    """Middle slice of the first test volume of ``manifest`` through the bundle's ``preprocessing``, batched (B=1)."""
    from monai.data import list_data_collate

    from pipeline.data import manifest_dataset
    from pipeline.data.simulate import ensure_dataset

    ensure_dataset(manifest)
    transforms = train_parser(bundle, manifest, {}).get_parsed_content("preprocessing")
    dataset = manifest_dataset(manifest, "test", transform=transforms)
    first_volume = [i for i, item in enumerate(dataset.data) if item["file"] == dataset.data[0]["file"]]
    return list_data_collate([dataset[first_volume[len(first_volume) // 2]]])


def _on_test_slice(
    bundle: Path, manifest: Path, weights: Path | None, network_size: str, repeats: int, label: str,
) -> dict[str, Any]:
    """Interleaved timing (and SSIM) of the network and CS on one test slice of ``manifest``.

    The network runs under ``torch.inference_mode`` with the weights ``weights`` (random when ``None``); the SSIM
    of both methods (and of zero-filled) is in the batch's normalised units with the fastMRI data range (the
    volume maximum), the network's only with trained weights.
    """
    from pipeline.baselines import l1_wavelet, zero_filled
    from pipeline.engines.batching import autocast_context, data_range, network_inputs, recon_size
    from pipeline.handlers.checkpoint import load_weights
    from pipeline.keys import Keys
    from pipeline.metrics import ssim
    from pipeline.networks import build_network
    from pipeline.physics import center_crop

    cpu = torch.device("cpu")
    batch = _test_slice(bundle, manifest)
    kspace, mask, nlf = network_inputs(batch, cpu)
    recon = recon_size(batch)
    net = build_network("varnet", network_size).eval()
    trained = weights is not None
    if trained:
        load_weights(net, weights)
    out: dict[str, torch.Tensor] = {}

    def run_net(precision: str) -> None:
        with torch.inference_mode(), autocast_context(cpu, precision):
            out[precision] = center_crop(net(kspace, mask, nlf).image, recon)[0]

    def run_cs() -> None:
        out["cs"] = l1_wavelet(kspace[0], mask[0], recon)

    times = interleaved({"fp32": lambda: run_net("fp32"), "bf16": lambda: run_net("bf16"), "cs": run_cs}, repeats)
    timing, timing_bf16 = ratio_stats(times["fp32"], times["cs"]), ratio_stats(times["bf16"], times["cs"])
    coils, h, w = kspace.shape[1:4]
    row: dict[str, Any] = {
        "input": f"{label} test slice, {coils} coils {h}x{w} (recon {recon[0]}x{recon[1]}), "
                 f"{network_size} network ({num_params(net):.2f} M)",
        "weights": f"trained ({weights})" if trained else "random (no trained weights)",
        "net_s": timing["a_s"],
        "cs_s": timing["b_s"],
        "ratio": timing["ratio"],
        "timing": timing,
        "bf16": {"net_s": timing_bf16["a_s"], "ratio": timing_bf16["ratio"], "timing": timing_bf16},
    }
    if Keys.TARGET in batch:
        gt = batch[Keys.TARGET][0]
        vmax = float(data_range(batch, cpu)[0])
        row["ssim_cs"] = ssim(gt, out["cs"][None], vmax)
        row["ssim_zero_filled"] = ssim(gt, zero_filled(kspace[0], mask[0], recon)[None], vmax)
        row["ssim_net"] = ssim(gt, out["fp32"][None], vmax) if trained else None
        row["bf16"]["ssim_net"] = ssim(gt, out["bf16"][None], vmax) if trained else None
    print(f"  inference {label}: net {row['net_s']:.3f} s (bf16 {row['bf16']['net_s']:.3f} s), CS {row['cs_s']:.2f} s, "
          f"ratio {row['ratio']:.3f} (bf16 {row['bf16']['ratio']:.3f})", flush=True)
    return row


def _fastmri() -> dict[str, Any]:
    """One forward of the fastMRI-size network (random weights) and one CS run on a synthetic slice."""
    from pipeline.baselines import l1_wavelet
    from pipeline.networks import build_network

    coils, h, w = FASTMRI_SHAPE
    kspace, mask = synthetic_slice(coils, h, w)
    mask = mask.expand(1, 1, h, w, 1)  # the baselines take a per-slice (1, H, W, 1) mask
    net = build_network("varnet", "fastmri").eval()
    recon = (320, 320)

    def forward() -> None:
        with torch.inference_mode():
            net(kspace, mask)

    net_s = timed(forward)
    cs_s = timed(lambda: l1_wavelet(kspace[0], mask[0], recon))
    print(f"  inference fastMRI: net {net_s:.1f} s, CS {cs_s:.1f} s", flush=True)
    return {
        "input": f"synthetic {coils} coils {h}x{w}, fastmri network (random weights), 1 repeat",
        "params_M": num_params(net),
        "net_s": net_s,
        "cs_s": cs_s,
        "ratio": net_s / cs_s,
    }


def bench_inference(
    bundle: Path, manifest: Path, repeats: int, fastmri: bool,
    trained_fastmri: tuple[Path, Path, str] | None = None,
) -> dict[str, Any]:
    """Per-slice network forward vs L1-wavelet CS at demo size and (``fastmri``) fastMRI size.

    Args:
        bundle: the bundle folder (``configs/train.json``'s ``preprocessing``, ``models/model.pt`` if present).
        manifest: the demo manifest; its data are generated when missing.
        repeats: interleaved repetitions on a test slice.
        fastmri: also time the fastMRI-size network (random weights) and CS once each on a synthetic slice.
        trained_fastmri: ``(manifest, weights, network_size)``: weights trained at fastMRI size (e.g. on the
            ``fastmri`` simulator preset), timed and scored against CS on a test slice of that manifest.

    Returns:
        ``{"demo": {"net_s", "cs_s", "ratio", "ssim_*", "bf16": {"net_s", "ratio", "ssim_net"}, ...}}`` plus
        ``"fastmri"`` and ``"fastmri_trained"`` (same keys as ``"demo"``) when asked.
    """
    weights = Path(bundle) / "models" / "model.pt"
    results = {"demo": _on_test_slice(bundle, manifest, weights if weights.is_file() else None, "demo", repeats,
                                      "demo")}
    if fastmri:
        results["fastmri"] = _fastmri()
    if trained_fastmri is not None:
        fastmri_manifest, fastmri_weights, size = trained_fastmri
        results["fastmri_trained"] = _on_test_slice(bundle, fastmri_manifest, fastmri_weights, size, repeats,
                                                    "fastMRI-size")
    return results

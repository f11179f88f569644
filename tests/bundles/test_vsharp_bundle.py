"""End-to-end: the ``jssl_varnet`` bundle with ``--network vsharp`` (train, inference, TorchScript export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import mlflow
import nibabel as nib
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"
CONFIGS = BUNDLE / "configs"
INFERENCE = str([str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")])
VSHARP = ("--network", "vsharp", "--network_size", "tiny")

pytestmark = pytest.mark.slow


def bundle(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle <args>`` from the repository root."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bundle {args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def test_vsharp_trains_infers_and_exports(tiny_dataset, tmp_path):
    from monai.data import load_net_with_metadata

    from pipeline.handlers import load_weights
    from pipeline.networks import VSharpNet, build_network

    out, model = tmp_path / "train", tmp_path / "train" / "model.pt"
    settings = {
        "manifest": tiny_dataset, "output_dir": out, "model_path": model, "num_workers": 0, "max_epochs": 1,
        "epoch_length": 2, "val_interval": 2, "checkpoint_interval": 2, "batch_size": 1,
        "generate_demo_data": False, "bundle_root": BUNDLE, "cascade_weighting": True,
    }
    args = ["run", "--config_file", str(CONFIGS / "train.json"), *VSHARP]
    for key, value in settings.items():
        args += [f"--{key}", str(value)]
    bundle(*args)
    state = torch.load(model, weights_only=True)
    assert "learning_rate_eta" in state and "blocks.1.denoiser.unet.head.weight" in state
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlruns.db'}")
    run = client.search_runs([client.get_experiment_by_name("jssl_varnet").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["network"] == "vsharp" and run.data.params["network_size"] == "tiny"
    assert int(run.data.params["num_parameters"]) == sum(v.numel() for v in state.values())
    assert all(np.isfinite(m.value) for m in client.get_metric_history(run.info.run_id, "loss"))

    # inference: .h5, .nii.gz and .png per volume, weights loaded with the architecture check
    inferred = tmp_path / "inference"
    bundle("run", "--config_file", INFERENCE, *VSHARP, "--bundle_root", str(BUNDLE), "--manifest", str(tiny_dataset),
           "--section", "test", "--ckpt_path", str(model), "--output_dir", str(inferred),
           "--generate_demo_data", "False")
    volume = inferred / "test" / "test_000"  # outputs keep the volume's folder relative to the data root
    with h5py.File(volume.with_suffix(".h5")) as f:
        rec = f["reconstruction"][()]
    assert rec.dtype == np.float32 and rec.shape == (2, 64, 64) and np.isfinite(rec).all() and rec.max() > 0
    assert nib.load(volume.with_name("test_000.nii.gz")).shape == (64, 64, 2)
    assert volume.with_suffix(".png").stat().st_size > 1000
    with pytest.raises(ValueError, match="different network architecture"):
        load_weights(build_network("varnet", "tiny"), model)  # what inference.json's loader refuses

    # TorchScript export matches the eager network
    ts = tmp_path / "model.ts"
    bundle("ckpt_export", "network_def", *VSHARP, "--filepath", str(ts), "--ckpt_file", str(model),
           "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "train.json"),
           "--bundle_root", str(BUNDLE))
    scripted, meta, _ = load_net_with_metadata(str(ts))
    assert meta["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    eager = build_network("vsharp", "tiny")
    assert isinstance(eager, VSharpNet)
    eager.load_state_dict(state)
    eager.eval()
    scripted.eval()
    torch.manual_seed(0)
    mask = torch.zeros(1, 1, 1, 72, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    mask[..., 32:40, :] = True
    kspace = torch.randn(1, 4, 128, 72, 2) * mask
    with torch.no_grad():
        a, b = eager(kspace, mask, None, True), scripted(kspace, mask, None, True)
    torch.testing.assert_close(b.image, a.image, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.kspace, a.kspace, rtol=1e-5, atol=1e-6)
    assert len(b.kspace_iterates) == 2

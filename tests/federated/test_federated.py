"""Federated JSSL through ``python -m pipeline.federated``: real NVFlare simulator runs (FedAvg) of the bundle's
trainer on the tiny dataset, on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.federated.job import demo_sites
from pipeline.handlers import load_weights
from pipeline.networks import build_network

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def federate(out: Path, *args: str, cwd: Path = REPO, rounds: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "pipeline.federated", "--output_dir", str(out), "--rounds", str(rounds),
           "--iterations", "2", "--network_size", "tiny", "--generate_demo_data", "false", "--keep_site_weights", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _float_items(state: dict) -> dict:
    return {key: value for key, value in state.items() if value.is_floating_point()}


def test_two_sites_two_rounds_average_into_the_global_model(tiny_dataset, tmp_path):
    """One proxy site (SL branch) and one target site (SSL branch), 2 rounds of NVFlare's FedAvg."""
    out = tmp_path / "fed"
    proc = federate(out, "--manifest", str(tiny_dataset), "--target_sites", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    for site in ("proxy", "target-1"):
        assert [f"{site} round {r}: trained" in lines for r in (0, 1)] == [True, True]
    settings = json.loads((out / "federation.json").read_text())
    assert {name: spec["mode"] for name, spec in settings["sites"].items()} == {"proxy": "sl", "target-1": "ssl"}
    assert json.loads(Path(settings["sites"]["target-1"]["manifest"]).read_text()).keys() >= {"target"}
    global_state = torch.load(out / "global_model.pt", weights_only=True)
    sent = [torch.load(out / "sites" / site / "round_1.pt", weights_only=True) for site in ("proxy", "target-1")]
    initial = torch.load(out / "initial_model.pt", weights_only=True)
    # FedAvg with equal steps per site: the global network is the mean of what the two sites sent last round
    for key, value in _float_items(global_state).items():
        torch.testing.assert_close(value, (sent[0][key] + sent[1][key]) / 2, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(sent[0][k], sent[1][k]) for k in _float_items(initial))  # each trained its branch
    assert any(not torch.equal(global_state[k], initial[k]) for k in _float_items(initial))
    load_weights(build_network("varnet", "tiny"), out / "global_model.pt")  # a bundle checkpoint


def test_a_relative_output_dir_as_in_the_readme_works_from_any_directory(tiny_dataset, tmp_path):
    """`--output_dir runs/federated`: the sites' manifests must not be relative to a directory the sites leave."""
    proc = federate(Path("runs/federated"), "--manifest", str(tiny_dataset), "--target_sites", "1", cwd=tmp_path,
                    rounds=1)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "proxy round 0: trained" in proc.stdout and "target-1 round 0: trained" in proc.stdout
    assert (tmp_path / "runs" / "federated" / "global_model.pt").is_file()


def _sites_with_a_bad_target(tiny_dataset: Path, folder: Path, kind: str) -> Path:
    """``--sites`` JSON: the tiny proxy site, and a target site whose only file is missing or all NaN."""
    sites = demo_sites(tiny_dataset, folder, target_sites=1)
    manifest = Path(sites["target-1"]["manifest"])
    content = json.loads(manifest.read_text())
    source = Path(content["data_root"]) / content["target"][0]["file"]
    bad = folder / "bad_site" / source.name
    bad.parent.mkdir(parents=True)
    if kind == "nan":
        shutil.copy(source, bad)
        with h5py.File(bad, "r+") as f:
            f["kspace"][...] = np.full(f["kspace"].shape, np.nan, dtype=f["kspace"].dtype)
    content.update(data_root=str(bad.parent), target=[{"file": bad.name}])
    manifest.write_text(json.dumps(content))
    path = folder / "sites.json"
    path.write_text(json.dumps(sites))
    return path


def test_a_site_with_missing_data_fails_the_round_naming_it(tiny_dataset, tmp_path):
    sites = _sites_with_a_bad_target(tiny_dataset, tmp_path / "layout", kind="missing")
    out = tmp_path / "fed"
    proc = federate(out, "--sites", str(sites), "--on_bad_site", "fail")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: federated training failed: round 0: site target-1: ")
    assert last.endswith("bad_site contains no files")  # the site's data folder is empty
    assert not (out / "global_model.pt").exists()  # no global model from a failed job
    assert "target-1 round 0: failed" in proc.stdout


def test_a_site_with_bad_data_is_skipped_and_does_not_corrupt_the_global_model(tiny_dataset, tmp_path):
    sites = _sites_with_a_bad_target(tiny_dataset, tmp_path / "layout", kind="nan")
    out = tmp_path / "fed"
    proc = federate(out, "--sites", str(sites), "--on_bad_site", "skip")
    assert proc.returncode == 0, proc.stderr[-4000:]
    outcomes = [line for line in proc.stdout.splitlines() if line.startswith(("proxy round", "target-1 round"))]
    assert len(outcomes) == 4, outcomes  # 2 sites x 2 rounds
    for r in (0, 1):
        assert f"proxy round {r}: trained" in proc.stdout
        failed = next(line for line in proc.stdout.splitlines() if line.startswith(f"target-1 round {r}: failed"))
        assert "NaN or Inf values in 'kspace'" in failed and "target_000.h5" in failed
    global_state = torch.load(out / "global_model.pt", weights_only=True)
    proxy = torch.load(out / "sites" / "proxy" / "round_1.pt", weights_only=True)
    for key, value in _float_items(global_state).items():  # the average of the one good site
        assert torch.isfinite(value).all()
        torch.testing.assert_close(value, proxy[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sites", "{tmp}/none.json"], "--sites {tmp}/none.json does not exist"),
        (["--manifest", "{tmp}/none.json", "--generate_demo_data", "false"], "{tmp}/none.json: manifest not found"),
        (["--iterations", "0", "--manifest", str(REPO / "data_manifests" / "demo.json"), "--generate_demo_data",
          "false"], "--iterations must be >= 1, got 0"),
    ],
)
def test_bad_settings_stop_with_one_line_before_the_simulator(tmp_path, capsys, args, message):
    from pipeline.federated.__main__ import main

    assert main(["--output_dir", str(tmp_path / "fed"), *(a.format(tmp=tmp_path) for a in args)]) == 1
    assert capsys.readouterr().err == f"error: {message.format(tmp=tmp_path)}\n"
    assert not (tmp_path / "fed" / "nvflare").exists()

"""Parity with the reference implementation DIRECT: runs DIRECT's code where it is unpacked, else the clean skip."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.bench.install_direct import DEFAULT_DEST
from pipeline.bench.parity import TOLERANCE, copy_weights, load_direct, run_parity, unet_name_map
from pipeline.networks import Unet

REPO = Path(__file__).resolve().parents[2]


def parity_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.bench.parity", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_cli_reports_skipped_without_direct(tmp_path):
    proc = parity_cli("--direct-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    reason = f"DIRECT is not unpacked in {tmp_path / 'nothing'} (run: python -m pipeline.bench.install_direct)"
    assert proc.stdout.strip() == f"parity: skipped ({reason})"
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["status"] == "skipped"


def test_weight_copy_refuses_a_different_architecture():
    ours = Unet(2, 2, chans=4, pools=2)
    same_names = {k: f"u.{k}" for k in ours.state_dict()}
    copy_weights(ours, {"u": Unet(2, 2, chans=4, pools=2)}, same_names)
    with pytest.raises(ValueError, match="shape mismatch"):
        copy_weights(ours, {"u": Unet(2, 2, chans=8, pools=2)}, same_names)
    with pytest.raises(ValueError, match=r"weight map mismatch: ours unmapped \[\], theirs unmapped \['u.down.2"):
        copy_weights(ours, {"u": Unet(2, 2, chans=4, pools=3)}, same_names)
    assert len(unet_name_map("", "", 2)) == len(ours.state_dict())


def test_parity_with_direct_where_unpacked(tmp_path):
    direct, version = load_direct()
    if direct is None:  # no benchmark install here: the default CLI must say so and succeed
        assert not (DEFAULT_DEST / "direct" / "direct").is_dir() or "does not import" in version
        proc = parity_cli("--out", str(tmp_path))
        assert proc.returncode == 0 and proc.stdout.startswith("parity: skipped (")
        return
    torch.manual_seed(0)
    rows = run_parity(direct)
    gated = [row for row in rows if row["gated"]]
    assert {row["case"].split(",")[0] for row in gated} == {"vsharp", "varnet"}
    for row in gated:
        assert row["rel_diff"] < TOLERANCE, row
    explained = [row for row in rows if not row["gated"]]
    assert explained and all(row["note"].startswith("explained:") for row in explained)

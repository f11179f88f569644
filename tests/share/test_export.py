"""Export from a real MLflow run store (written through the package's tracker, not by training: fast): the
weights the run recorded, the metrics at the exported step, the run's inference settings, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from safetensors.torch import load as load_safetensors

from pipeline.networks import build_network
from pipeline.share.archive import read_bundle
from pipeline.share.cli import main
from pipeline.tracking import MLflowTracker, RegisterModel
from pipeline.tracking.handlers import RUN_FILE

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"

#: val_ssim peaks at step 4; the other metrics are best elsewhere, and the last validation is step 6.
HISTORY = {
    "val_ssim": {2: 0.5, 4: 0.7, 6: 0.6},
    "val_psnr": {2: 20.0, 4: 22.0, 6: 25.0},
    "val_nmse": {2: 0.3, 4: 0.2, 6: 0.1},
}
PARAMS = {"mode": "sl", "network": "varnet", "network_size": "tiny", "readout_crop": "True", "band_limit": "False",
          "data_consistency": "False", "mask_type": "random", "acceleration": "8", "center_fraction": "0.04"}


def _network_weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_network("varnet", "tiny").state_dict(), path)
    return path


@pytest.fixture
def train_dir(tmp_path) -> Path:
    """A training output folder: its MLflow store (SQLite), tracking_run.json and the weights the run wrote,
    recorded by :class:`RegisterModel` as in a bundle training."""
    out = tmp_path / "train"
    weights = _network_weights(out / "model.pt", seed=1)
    tracker = MLflowTracker(f"sqlite:///{out / 'mlflow' / 'mlruns.db'}", experiment_name="jssl_varnet")
    run_id = tracker.start("sl-run")
    (out / RUN_FILE).write_text(json.dumps({"run_id": run_id, "run_name": "sl-run"}))
    tracker.set_tags({"mode": "sl", "manifest_digest": "ab" * 32})
    tracker.log_params(PARAMS)
    for key, values in HISTORY.items():
        for step, value in values.items():
            tracker.log_metrics({key: value}, step=step)
    RegisterModel(weights, None, "varnet", "tiny").log(Engine(lambda e, b: None), tracker, {})
    tracker.end()
    return out


def _bundle_with_other_weights(tmp_path: Path) -> Path:
    """The repository's bundle copied, with a models/model.safetensors that the run did not write."""
    from safetensors.torch import save_file

    bundle = tmp_path / "bundle" / "jssl_varnet"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("model.*"))
    torch.manual_seed(2)
    save_file(build_network("varnet", "tiny").state_dict(), bundle / "models" / "model.safetensors")
    return bundle


def test_export_ships_the_weights_the_run_wrote_with_metrics_at_the_best_step(train_dir, tmp_path, capsys):
    bundle = _bundle_with_other_weights(tmp_path)
    out = tmp_path / "shared.zip"
    assert main(["export", "--bundle", str(bundle), "--train_dir", str(train_dir), "--out", str(out)]) == 0
    _, files = read_bundle(out)
    shipped = load_safetensors(files["models/model.safetensors"])
    own = torch.load(train_dir / "model.pt", weights_only=True)
    assert shipped.keys() == own.keys() and all(torch.equal(shipped[k], own[k]) for k in own)
    provenance = json.loads(files["configs/metadata.json"])["provenance"]
    assert provenance["validation_step"] == 4
    assert provenance["validation_metrics"] == {key: values[4] for key, values in HISTORY.items()}
    assert "iteration 4, the best `val_ssim`" in files["docs/model_card.md"].decode()
    assert "6,val_psnr,25" in files["logs/validation.csv"].decode()  # the log keeps every validation
    train = json.loads(files["configs/train.json"])
    assert {key: train[key] for key in ("readout_crop", "band_limit", "data_consistency", "mask_type",
                                        "acceleration", "center_fraction")} == {
        "readout_crop": True, "band_limit": False, "data_consistency": False, "mask_type": "random",
        "acceleration": 8, "center_fraction": 0.04}


def test_export_refuses_weights_another_run_wrote_over_the_recorded_file(train_dir, tmp_path, capsys):
    _network_weights(train_dir / "model.pt", seed=3)  # a second run sharing the same weights path
    out = tmp_path / "shared.zip"
    assert main(["export", "--bundle", str(BUNDLE), "--train_dir", str(train_dir), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: weights {train_dir / 'model.pt'} are not the ones MLflow run ")
    other = _network_weights(tmp_path / "other.pt", seed=4)
    assert main(["export", "--bundle", str(BUNDLE), "--train_dir", str(train_dir), "--out", str(out),
                 "--weights", str(other)]) == 1
    assert "are not the ones MLflow run" in capsys.readouterr().err
    assert not out.exists()


def _broken_run_file(train_dir: Path) -> str:
    (train_dir / RUN_FILE).write_text("{not json")
    return "not a tracking run file (JSONDecodeError"


def _run_file_without_id(train_dir: Path) -> str:
    (train_dir / RUN_FILE).write_text(json.dumps({"run_name": "x"}))
    return f"{train_dir / RUN_FILE}: has no run_id"


def _unknown_run(train_dir: Path) -> str:
    (train_dir / RUN_FILE).write_text(json.dumps({"run_id": "0" * 32}))
    return f"MLflow run {'0' * 32} (from {train_dir}) is not in sqlite:///"


def _no_store(train_dir: Path) -> str:
    shutil.rmtree(train_dir / "mlflow")
    return "no MLflow store at sqlite:///"


def _unfinished_run(train_dir: Path) -> str:
    """A training stopped before it completed: its run is still RUNNING and recorded no weights."""
    tracker = MLflowTracker(f"sqlite:///{train_dir / 'mlflow' / 'mlruns.db'}", experiment_name="jssl_varnet")
    run_id = tracker.start("stopped-run")
    tracker.set_tags({"mode": "sl", "manifest_digest": "ab" * 32})
    tracker.log_params(PARAMS)
    (train_dir / RUN_FILE).write_text(json.dumps({"run_id": run_id, "run_name": "stopped-run"}))
    return f"MLflow run {run_id} has not finished (status RUNNING): its weights are recorded when training completes"


@pytest.mark.parametrize("breakage", [_broken_run_file, _run_file_without_id, _unknown_run, _no_store,
                                      _unfinished_run])
def test_export_errors_are_one_line_and_create_nothing(train_dir, tmp_path, capsys, breakage):
    message = breakage(train_dir)
    before = sorted(p.relative_to(train_dir) for p in train_dir.rglob("*"))
    out = tmp_path / "shared.zip"
    assert main(["export", "--bundle", str(BUNDLE), "--train_dir", str(train_dir), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(p.relative_to(train_dir) for p in train_dir.rglob("*")) == before  # no mlruns.db created
    assert not out.exists()


def test_export_of_a_bundle_without_metadata_is_one_line(train_dir, tmp_path, capsys):
    bundle = tmp_path / "jssl_varnet"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("model.*", "metadata.json"))
    assert main(["export", "--bundle", str(bundle), "--train_dir", str(train_dir), "--out",
                 str(tmp_path / "x.zip")]) == 1
    assert capsys.readouterr().err == f"error: {bundle}: not a bundle folder (no configs/metadata.json)\n"
    assert not (tmp_path / "x.zip").exists()

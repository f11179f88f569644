"""End-to-end tests of the ``jssl_varnet`` bundle through the real ``python -m monai.bundle`` CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
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
SCHEMA = REPO.parent / "shared" / "reference" / "monai_meta_schema_20240725.json"
#: ``--config_file`` values: inference is an overlay of train.json, evaluation an overlay of inference.json.
INFERENCE = str([str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")])
EVALUATE = str([str(CONFIGS / "train.json"), str(CONFIGS / "inference.json"), str(CONFIGS / "evaluate.json")])

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def bundle(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle <args>`` from the repository root."""
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        output = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        raise AssertionError(f"bundle {args[0]} failed ({proc.returncode}):\n{output}")
    return proc


def train_args(manifest: Path, out: Path, /, **overrides) -> list[str]:
    settings = {
        "manifest": manifest, "output_dir": out, "model_path": out / "model.pt", "network_size": "tiny",
        "num_workers": 0, "max_epochs": 1, "epoch_length": 4, "val_interval": 4, "checkpoint_interval": 2,
        "batch_size": 2, "generate_demo_data": False, "bundle_root": BUNDLE,
    }
    settings.update(overrides)
    args = ["run", "--config_file", str(CONFIGS / "train.json")]
    for key, value in settings.items():
        args += [f"--{key}", str(value)]
    return args


def _runs(out: Path):
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("jssl_varnet")
    return client, client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """A jssl run of the bundle on the tiny dataset: (output dir, model path)."""
    out = tmp_path_factory.mktemp("train")
    bundle(*train_args(tiny_dataset, out, run_name="1e5"))  # fire would make this run name a float
    return out, out / "model.pt"


def test_verify_metadata_offline():
    proc = bundle("verify_metadata", "--meta_file", str(CONFIGS / "metadata.json"), "--filepath", str(SCHEMA))
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def test_train_writes_checkpoints_weights_and_mlflow_run(trained, tiny_dataset):
    out, model = trained
    assert model.is_file()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint_*.pt")) == ["checkpoint_iteration=4.pt"]
    client, runs = _runs(out)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert {"mode", "learning_rate", "sl_ssl_ratio", "ssdu_q", "network_size", "schedule", "num_parameters",
            "readout_crop", "override_stored_masks", "target_section"} <= set(run.data.params)
    assert run.data.params["mode"] == "jssl" and run.data.params["network_size"] == "tiny"  # an override
    assert run.info.run_name == "1e5" == run.data.params["run_name"]  # a name stays text, as given
    assert run.data.tags["mode"] == "jssl" and len(run.data.tags["manifest_digest"]) == 64
    assert run.data.tags["code_version"]
    metrics = {"loss", "loss_sl", "loss_ssl", "sl/l1", "ssl/kspace_nmse", "lr_group_0", "val_ssim", "val_psnr"}
    assert metrics | {"val_nmse", "skipped_steps"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"train.json", "metadata.json", "model.pt", "command.txt", "validation"} <= artifacts
    # the command as typed (no path of the site's Python environment), overrides included
    command = (out / "command.txt").read_text()
    assert command.startswith("python -m monai.bundle run --config_file ") and "--run_name 1e5" in command
    assert "__main__.py" not in command
    pngs = [a.path for a in client.list_artifacts(run.info.run_id, "validation")]
    assert pngs == ["validation/iteration_000004.png"]
    # interleaving: both branches stepped, and every logged value is finite
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4] and all(np.isfinite(m.value) for m in history)
    # no patient identifier anywhere in the store
    with h5py.File(tiny_dataset.parent / "data" / "target_train" / "target_000.h5") as f:
        patient_id = str(f.attrs["patient_id"]).encode()
    stored = [(out / "mlflow" / "mlruns.db").read_bytes()]
    stored += [p.read_bytes() for p in (out / "mlflow" / "mlruns").rglob("*") if p.is_file()]
    assert not any(patient_id in blob or b"patient_id" in blob for blob in stored)


def test_inference_writes_every_format(trained, tiny_dataset, tmp_path):
    out, model = trained
    bundle("run", "--config_file", INFERENCE, "--bundle_root", str(BUNDLE),
           "--manifest", str(tiny_dataset), "--section", "target", "--ckpt_path", str(model),
           "--network_size", "tiny", "--output_dir", str(tmp_path), "--generate_demo_data", "False")
    # target training files: subsampled, no reference -- the real target situation
    for name in ("target_train/target_000", "target_train/target_001"):  # the inputs' folders are kept
        with h5py.File(tmp_path / f"{name}.h5") as f:
            rec = f["reconstruction"]
            assert rec.dtype == np.float32 and rec.shape == (3, 64, 64)
            assert np.isfinite(rec[()]).all() and rec[()].max() > 0
        assert nib.load(tmp_path / f"{name}.nii.gz").shape == (64, 64, 3)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_inference_batches_slices_with_the_same_results(trained, tiny_dataset, tmp_path):
    """``inference_batch_size`` 2 over 2 volumes of 3 slices: a batch spans two volumes, and every volume comes
    out as with one slice per batch (the network normalises per slice)."""
    _, model = trained
    for size in (1, 2):
        bundle("run", "--config_file", INFERENCE, "--bundle_root", str(BUNDLE),
               "--manifest", str(tiny_dataset), "--section", "target", "--ckpt_path", str(model),
               "--network_size", "tiny", "--output_dir", str(tmp_path / f"b{size}"), "--generate_demo_data", "False",
               "--inference_batch_size", str(size))
    for name in ("target_train/target_000", "target_train/target_001"):
        with h5py.File(tmp_path / "b1" / f"{name}.h5") as one, h5py.File(tmp_path / "b2" / f"{name}.h5") as two:
            assert one["reconstruction"].shape == two["reconstruction"].shape == (3, 64, 64)
            np.testing.assert_allclose(two["reconstruction"][()], one["reconstruction"][()], rtol=1e-4,
                                       atol=1e-5 * float(one["reconstruction"][()].max()))


def test_inference_on_a_folder_of_files(trained, tiny_dataset, tmp_path):
    _, model = trained
    folder = tiny_dataset.parent / "data" / "test"
    bundle("run", "--config_file", INFERENCE, "--bundle_root", str(BUNDLE),
           "--input_dir", str(folder), "--ckpt_path", str(model), "--network_size", "tiny",
           "--output_dir", str(tmp_path), "--generate_demo_data", "False")
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["test_000.h5"]


def test_evaluate_reports_network_and_baselines(trained, tiny_dataset, tmp_path):
    _, model = trained
    bundle("run", "--config_file", EVALUATE, "--bundle_root", str(BUNDLE),
           "--manifest", str(tiny_dataset), "--ckpt_path", str(model), "--network_size", "tiny",
           "--output_dir", str(tmp_path), "--generate_demo_data", "False")
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["summary"]) == {"network", "zero_filled", "sense"}
    for row in report["summary"].values():
        assert 0 < row["ssim"] <= 1 and row["nmse"] > 0 and np.isfinite(row["psnr"])
    lines = (tmp_path / "metrics_per_volume.csv").read_text().splitlines()
    assert lines[0] == "method,volume,nmse,psnr,ssim" and len(lines) == 1 + 3  # 3 methods x 1 test volume
    assert "| sense |" in (tmp_path / "metrics.md").read_text()


def test_evaluating_files_without_references_stops_with_one_line(trained, tiny_dataset, tmp_path):
    _, model = trained
    proc = bundle("run", "--config_file", EVALUATE, "--bundle_root", str(BUNDLE), "--section", "target",
                  "--manifest", str(tiny_dataset), "--ckpt_path", str(model), "--network_size", "tiny",
                  "--output_dir", str(tmp_path), "--generate_demo_data", "False", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "target_000.h5, slice 0: no reference image to score against" in last


def test_ckpt_export_matches_the_eager_network(trained, tmp_path):
    from monai.data import load_net_with_metadata

    from pipeline.networks import build_network

    _, model = trained
    ts = tmp_path / "model.ts"
    bundle("ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(model),
           "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "train.json"),
           "--bundle_root", str(BUNDLE), "--network_size", "tiny")
    scripted, meta, _ = load_net_with_metadata(str(ts))
    assert meta["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    eager = build_network("varnet", "tiny")
    eager.load_state_dict(torch.load(model, weights_only=True))
    eager.eval()
    scripted.eval()
    torch.manual_seed(0)
    mask = torch.zeros(1, 1, 1, 72, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    mask[..., 32:40, :] = True
    kspace = torch.randn(1, 4, 128, 72, 2) * mask
    with torch.no_grad():
        a, b = eager(kspace, mask), scripted(kspace, mask)
    torch.testing.assert_close(b.image, a.image, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.kspace, a.kspace, rtol=1e-5, atol=1e-6)


def test_checkpoint_of_another_architecture_is_refused(trained, tiny_dataset, tmp_path):
    _, model = trained
    proc = bundle("run", "--config_file", INFERENCE, "--bundle_root", str(BUNDLE),
                  "--manifest", str(tiny_dataset), "--ckpt_path", str(model), "--network_size", "demo",
                  "--output_dir", str(tmp_path), "--generate_demo_data", "False", check=False)
    assert proc.returncode != 0
    assert "different network architecture" in proc.stderr and "shape mismatch" in proc.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"network_size": "huge"}, "unknown --network_size 'huge'"),
        ({"mode": "semi"}, "unknown --mode 'semi'"),
        ({"manifest": "nowhere.json"}, "manifest nowhere.json does not exist"),
        ({"sl_ssl_ratio": "{'sl': 0, 'ssl': 0}"}, "zero for every branch"),
        ({"tracking_uri": "file:///tmp/x"}, "file store"),
    ],
)
def test_bad_overrides_stop_before_training_with_one_line(tiny_dataset, tmp_path, overrides, message):
    proc = bundle(*train_args(tiny_dataset, tmp_path, **overrides), check=False, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_empty_data_root_is_named(tiny_dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = bundle(*train_args(tiny_dataset, tmp_path / "out", data_root=empty), check=False, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(f"data root {empty} contains no files")


def _metric_series(out: Path) -> tuple[str, dict[str, dict[int, float]]]:
    """The run's id and every metric as ``{step: last value}`` (a resumed run re-logs the redone steps)."""
    client, runs = _runs(out)
    assert len(runs) == 1
    run_id = runs[0].info.run_id
    series = {}
    for key in runs[0].data.metrics:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
        series[key] = {m.step: m.value for m in history}
    return run_id, series


def test_kill_9_at_random_iterations_then_resume_is_exact(tiny_dataset, tmp_path):
    """Three SIGKILLs at random iterations: the resumed run sees the same batches, masks and SSDU splits as an
    uninterrupted one, so its final weights and its MLflow metric series are the same."""
    overrides = dict(epoch_length=8, max_epochs=2, val_interval=8, checkpoint_interval=1, num_workers=1)
    bundle(*train_args(tiny_dataset, tmp_path / "straight", **overrides))

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "monai.bundle", *train_args(tiny_dataset, out, **overrides)]
    ckpt_dir = out / "checkpoints"
    kills = sorted(random.Random(0).sample(range(2, 15), 3))
    for kill_after in kills:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and not any(
            int(p.stem.split("=")[1]) >= kill_after for p in ckpt_dir.glob("checkpoint_iteration=*.pt")
        ):
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    newest = max(int(p.stem.split("=")[1]) for p in ckpt_dir.glob("checkpoint_iteration=*.pt"))
    assert newest < 16, "the run finished before the last kill"
    bundle(*cmd[3:])

    straight = torch.load(tmp_path / "straight" / "checkpoints" / "checkpoint_iteration=16.pt", weights_only=True)
    resumed = torch.load(ckpt_dir / "checkpoint_iteration=16.pt", weights_only=True)
    assert resumed["trainer"]["iteration"] == 16 and resumed["train_loader"] == straight["train_loader"]
    for name, value in straight["network"].items():
        torch.testing.assert_close(resumed["network"][name], value, rtol=0, atol=0, msg=name)
    run_a, series_a = _metric_series(tmp_path / "straight")
    run_b, series_b = _metric_series(out)
    assert set(series_a) == set(series_b) and {"loss", "loss_sl", "loss_ssl", "val_ssim"} <= set(series_a)
    for key, values in series_a.items():
        assert series_b[key] == pytest.approx(values, rel=0, abs=0), key
    client, runs = _runs(out)
    assert runs[0].info.status == "FINISHED" and json.loads((out / "tracking_run.json").read_text())["run_id"] == run_b


def _torchrun_gloo(args: list[str], out: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m monai.bundle <args>`` with the multi-GPU overlay.

    A rank used to abort at exit after a finished run ("terminate called without an active exception",
    SIGABRT) when it tore down its gloo group while rank 0 was still logging; ``finalize_distributed`` now
    waits at a barrier first. An abort before the first checkpoint (no step taken, seen on loaded machines) is
    retried, up to three tries; Python's fault handler is on so that an abort prints what it can.
    """
    args = list(args)
    args[2] = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu.json'}']"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "monai.bundle", *args]
    env = dict(_env(), PYTHONFAULTHANDLER="1")
    aborts: list[str] = []
    for _ in range(3):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        aborted = "SIGABRT" in proc.stderr or "exitcode: -6" in proc.stderr
        if proc.returncode == 0 or not aborted or list(out.glob("checkpoints/*.pt")):
            break
        aborts.append(proc.stderr[-3000:])
    earlier = "".join(f"aborted try {i + 1}:\n{text}\n" for i, text in enumerate(aborts))
    assert proc.returncode == 0, f"{earlier}last try:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.parametrize("network", ["varnet", "vsharp"])
def test_two_process_gloo_ddp_training(tiny_dataset, tmp_path, network):
    _torchrun_gloo(train_args(tiny_dataset, tmp_path, batch_size=1, network=network), tmp_path)
    assert (tmp_path / "model.pt").is_file()
    assert (tmp_path / "checkpoints" / "checkpoint_iteration=4.pt").is_file()
    _, runs = _runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 0 tracks alone



def test_missing_checkpoint_stops_inference_with_one_line(tiny_dataset, tmp_path):
    proc = bundle("run", "--config_file", INFERENCE, "--bundle_root", str(BUNDLE),
                  "--manifest", str(tiny_dataset), "--ckpt_path", str(tmp_path / "none.pt"),
                  "--output_dir", str(tmp_path), "--generate_demo_data", "False", check=False, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: checkpoint {tmp_path / 'none.pt'} does not exist: train the bundle first or set --ckpt_path"
    )


# ---------------------------------------------------------------------------------------------
# heterogeneous proxy collections (shape-bucketed batches), bad data met during a run


def _mixed_manifest(tiny_dataset: Path, folder: Path, bad: str | None = None) -> Path:
    """Proxy files of k-space shapes (4, 64, 48), (4, 64, 44), (6, 64, 48) in two sources (``knee/x.h5`` and
    ``brain/x.h5`` share a file name), the tiny dataset's target and validation sections; ``bad`` adds a
    (4, 64, 48) file whose every slice holds a NaN."""
    rng = np.random.default_rng(0)
    proxy = []
    shapes = [("knee", "x.h5", 4, 48), ("knee", "y.h5", 4, 44), ("brain", "x.h5", 6, 48)]
    if bad is not None:
        shapes.append(("brain", bad, 4, 48))
    for source, name, coils, width in shapes:
        path = folder / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        kspace = (rng.standard_normal((4, coils, 64, width)) + 1j * rng.standard_normal((4, coils, 64, width)))
        if name == bad:
            kspace[:, 0, 0, 0] = np.nan
        with h5py.File(path, "w") as f:
            f["kspace"] = kspace.astype(np.complex64)
            f["reconstruction_rss"] = rng.random((4, 32, 32)).astype(np.float32)
        proxy.append({"file": str(path.relative_to(folder)), "source": source})
    tiny = json.loads(tiny_dataset.read_text())
    data = tiny_dataset.parent / "data"
    content = {
        "data_root": str(folder),
        "proxy": proxy,
        "target": [{"file": str(data / item["file"])} for item in tiny["target"]],
        "validation": [{"file": str(data / item["file"])} for item in tiny["validation"]],
    }
    manifest = folder / "mixed.json"
    manifest.write_text(json.dumps(content))
    return manifest


def test_mixed_shapes_train_with_batch_size_two(tiny_dataset, tmp_path):
    """Three k-space shapes with --batch_size 2: every batch holds one shape; weights are logged; groups reported."""
    manifest = _mixed_manifest(tiny_dataset, tmp_path / "data")
    out = tmp_path / "out"
    proc = bundle(*train_args(manifest, out, epoch_length=8, val_interval=8, num_workers=1,
                              proxy_weights="{'knee': 1.0, 'brain': 2.0}"))
    groups = next(line for line in proc.stdout.splitlines() if "section 'proxy': 3 file(s), 12 slices" in line)
    for group in ("knee (4, 64, 48)", "knee (4, 64, 44)", "brain (6, 64, 48)"):
        assert f"{group} recon 32x32: 4 slices" in groups
    _, runs = _runs(out)
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.params["proxy_weights"] == "{'knee': 1.0, 'brain': 2.0}"
    assert runs[0].data.params["skipped_files"] == "0"


def test_bad_data_stops_a_raise_run_with_one_line_and_is_skipped_in_skip_mode(tiny_dataset, tmp_path):
    manifest = _mixed_manifest(tiny_dataset, tmp_path / "data", bad="nan.h5")
    bad = tmp_path / "data" / "brain" / "nan.h5"
    # raise: the header is fine, so training starts; the first read of the file ends it with one line
    proc = bundle(*train_args(manifest, tmp_path / "raise", mode="sl", epoch_length=8, val_interval=8,
                              num_workers=1), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}, slice ") and last.endswith(": NaN or Inf values in 'kspace'")
    # skip: the start-up check reads the data, lists the file once, trains on the others and tells MLflow
    out = tmp_path / "skip"
    proc = bundle(*train_args(manifest, out, mode="sl", epoch_length=8, val_interval=8, on_bad_file="skip"))
    assert (proc.stdout + proc.stderr).count("nan.h5, slice 0: NaN or Inf") == 1
    assert (out / "skipped_files.txt").read_text() == f"{bad}, slice 0: NaN or Inf values in 'kspace'\n"
    client, runs = _runs(out)
    assert runs[0].info.status == "FINISHED" and runs[0].data.params["skipped_files"] == "1"
    assert "skipped_files.txt" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def test_mixed_shapes_two_process_gloo_ddp_training(tiny_dataset, tmp_path):
    """The mixed-shape collection on 2 gloo ranks: equal steps per rank (no rank waits for another)."""
    manifest = _mixed_manifest(tiny_dataset, tmp_path / "data")
    args = train_args(manifest, tmp_path / "out", epoch_length=6, val_interval=6, checkpoint_interval=3)
    _torchrun_gloo(args, tmp_path / "out")
    assert (tmp_path / "out" / "checkpoints" / "checkpoint_iteration=6.pt").is_file()
    _, runs = _runs(tmp_path / "out")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"

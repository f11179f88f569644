"""The MLflow model registry against a real ``mlflow server`` (SQLite backend, local artifact root) that the
test starts on localhost, and through the bundle's real ``python -m monai.bundle`` CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest
import torch

from pipeline.engines.batching import constrain_output
from pipeline.engines.startup import ConfigError
from pipeline.handlers import load_weights
from pipeline.keys import Keys
from pipeline.networks import build_network
from pipeline.tracking import MLflowTracker, Tracker, inference_weights
from pipeline.tracking.registry import example_input

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"
CONFIGS = BUNDLE / "configs"
META = {"network": "varnet", "network_size": "tiny", "mode": "jssl"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``http://127.0.0.1:<port>`` of a real tracking server with a SQLite backend and a local artifact root,
    waited on until ``/health`` answers and stopped after the module."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group: its uvicorn workers included
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    torch.save(build_network("varnet", "tiny").state_dict(), path)
    return path


@pytest.fixture(scope="module")
def registered(server, weights):
    """Two versions of ``jssl_varnet`` logged by a training run on the server: (run id, versions)."""
    tracker = MLflowTracker(server, experiment_name="registry")
    run_id = tracker.start("train")
    versions = [tracker.log_model(weights, META, example_input(), "jssl_varnet") for _ in range(2)]
    tracker.end()
    return run_id, versions


def test_versions_are_mlflow_models_with_metadata_and_an_input_example(server, registered, weights):
    run_id, versions = registered
    assert versions == ["1", "2"]
    client = mlflow.MlflowClient(server, registry_uri=server)
    version = client.get_model_version("jssl_varnet", "2")
    assert version.run_id == run_id and version.tags["mode"] == "jssl" and version.tags["network_size"] == "tiny"
    assert "model" in {a.path for a in client.list_artifacts(run_id)}  # the run holds the model folder
    mlflow.set_tracking_uri(server)
    try:
        model = mlflow.pyfunc.load_model("models:/jssl_varnet/2")
    finally:
        mlflow.set_tracking_uri(None)
    assert model.metadata.metadata == META
    assert model.metadata.saved_input_example_info["type"] == "ndarray"
    # any coil count and size passes the signature; the output is the image the bundle's inference computes:
    # the network's output under the same constraints (the evaluator's constrain_output: data consistency on by
    # default, the phase-encode band when given)
    inputs = example_input(coils=6, height=64, width=48)
    network = load_weights(build_network("varnet", "tiny"), weights).eval()
    kspace, mask = torch.from_numpy(inputs["kspace"]), torch.from_numpy(inputs["mask"]) != 0
    batch = {Keys.MASKED_KSPACE: kspace, Keys.INPUT_MASK: mask}
    with torch.no_grad():
        raw = network(kspace, mask)
        expected = constrain_output(raw, batch, torch.device("cpu")).image.numpy()
        banded = constrain_output(raw, {**batch, Keys.PE_RANGE: torch.tensor([4, 44])}, torch.device("cpu"))
    assert not np.allclose(expected, raw.image.numpy(), rtol=1e-5, atol=1e-6)  # the constraint changes the image
    np.testing.assert_allclose(model.predict(inputs), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(inputs, params={"pe_range": [4, 44]}), banded.image.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(inputs, params={"data_consistency": False}), raw.image.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_model_uri_resolves_to_checked_weights(server, registered, weights, tmp_path):
    path = inference_weights("unused.pt", "models:/jssl_varnet/1", server, tmp_path, "varnet", "tiny")
    assert Path(path).read_bytes() == weights.read_bytes()
    load_weights(build_network("varnet", "tiny"), path)  # the architecture check still applies
    with pytest.raises(ValueError, match="different network architecture"):
        load_weights(build_network("varnet", "demo"), path)
    assert inference_weights("w.pt", None, None, tmp_path, "varnet", "tiny") == "w.pt"  # no URI: the file


@pytest.mark.parametrize(
    "uri, registry, message",
    [
        ("models:/jssl_varnet/7", None, "does not resolve in {server}: registered versions of 'jssl_varnet': 1, 2"),
        ("models:/nobody/1", None, "does not resolve in {server}: no registered model 'nobody'"),
        ("models:/it's/1", None, "does not resolve in {server}: no registered model \"it's\""),  # quoted filter
        ("runs:/abc/model", None, "'runs:/abc/model' is not a registry URI: use models:/<name>/<version>"),
        ("models:/jssl_varnet/1", "http://127.0.0.1:{port}", "does not resolve in http://127.0.0.1:{port}"),
        ("models:/jssl_varnet/1", "", "needs --registry_uri"),
        ("models:/jssl_varnet/1", "sqlite:///{tmp}/none.db", "no registry at sqlite:///{tmp}/none.db"),
    ],
)
def test_a_registry_uri_that_does_not_resolve_is_one_line(server, registered, tmp_path, uri, registry, message):
    fill = {"server": server, "port": _free_port(), "tmp": tmp_path}
    registry = server if registry is None else registry.format(**fill)
    with pytest.raises(ConfigError) as err:
        inference_weights("unused.pt", uri, registry, tmp_path, "varnet", "tiny")
    text = str(err.value)
    assert text.startswith("error: ") and "\n" not in text and message.format(**fill) in text


def test_a_version_of_another_architecture_is_refused_before_loading(server, registered, tmp_path):
    with pytest.raises(ConfigError, match="holds a varnet network of size 'tiny', but the config builds varnet of "
                                          "size 'demo': set --network varnet --network_size tiny"):
        inference_weights("unused.pt", "models:/jssl_varnet/1", server, tmp_path, "varnet", "demo")


def test_without_a_model_uri_the_weights_path_is_passed_through(tmp_path):
    # a baselines-only evaluation has no weights file: None stays None (not the string "None")
    assert inference_weights(None, None, None, tmp_path, "varnet", "tiny") is None
    weights = tmp_path / "model.pt"
    assert inference_weights(weights, None, None, tmp_path, "varnet", "tiny") == str(weights)


def test_model_logging_goes_through_the_tracker_guard(tmp_path, weights):
    class NoModels(Tracker):  # a backend without a model store
        _start = lambda self, name, run_id: "r"  # noqa: E731
        _log_params = _log_metrics = _set_tags = _log_artifact = _end = lambda self, *args: None  # noqa: E731

    tracker = NoModels()
    with pytest.raises(RuntimeError, match="no active run"):
        tracker.log_model(weights, META, example_input())
    tracker.start("run")
    with pytest.raises(NotImplementedError, match="NoModels cannot log models"):
        tracker.log_model(weights, META, example_input())
    with pytest.raises(ValueError, match="patient identifiers never leave the data"):
        tracker.log_model(weights, {**META, "split": {"patient_id": "P1"}}, example_input())
    with pytest.raises(ValueError, match="missing \\['network_size'\\]"):
        tracker.log_model(weights, {"network": "varnet"}, example_input())
    with pytest.raises(TypeError, match="overrides \\['log_model'\\]"):
        type("Sneaky", (NoModels,), {"log_model": lambda self, *args: None})


def _bundle(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"bundle {args[0]} failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
    return proc


def test_version_tags_name_the_bundle_and_hold_no_local_path(tmp_path, weights):
    """What RegisterModel passes (the bundle's metadata.json by its absolute path) never becomes a tag value."""
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = MLflowTracker(store, experiment_name="tags")
    tracker.start("train")
    metadata_file = (CONFIGS / "metadata.json").resolve()
    version = tracker.log_model(weights, {**META, "bundle_metadata_file": str(metadata_file)}, example_input(),
                                "tagged")
    tracker.end()
    tags = mlflow.MlflowClient(store, registry_uri=store).get_model_version("tagged", version).tags
    bundle = json.loads(metadata_file.read_text())
    assert tags["bundle.name"] == bundle["name"] and tags["bundle.version"] == bundle["version"]
    assert tags["mode"] == "jssl" and "bundle_metadata_file" not in tags
    assert not [value for value in tags.values() if Path(value).is_absolute() or str(REPO) in value]


@pytest.mark.slow
def test_bundle_training_registers_and_inference_takes_the_model_uri(server, tiny_dataset, tmp_path):
    out = tmp_path / "train"
    settings = {"manifest": tiny_dataset, "output_dir": out, "model_path": out / "model.pt", "network_size": "tiny",
                "num_workers": 0, "max_epochs": 1, "epoch_length": 2, "val_interval": 2, "checkpoint_interval": 2,
                "generate_demo_data": False, "bundle_root": BUNDLE, "tracking_uri": server,
                "experiment_name": "bundle", "registered_model_name": "bundle_jssl"}
    args = ["run", "--config_file", str(CONFIGS / "train.json")]
    for key, value in settings.items():
        args += [f"--{key}", str(value)]
    _bundle(*args)
    client = mlflow.MlflowClient(server, registry_uri=server)
    version = client.get_model_version("bundle_jssl", "1")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and version.tags["mode"] == "jssl"
    assert len(version.tags["manifest_digest"]) == 64 and version.tags["code_version"]
    mlmodel = mlflow.artifacts.download_artifacts(f"runs:/{version.run_id}/model/MLmodel", tracking_uri=server)
    meta = mlflow.models.Model.load(mlmodel).metadata
    assert meta["bundle"]["name"] == "JSSL VarNet" and 0 < meta["val_ssim"] <= 1 and meta["iterations"] == 2
    # no patient identifier in what was registered
    with h5py.File(tiny_dataset.parent / "data" / "target_train" / "target_000.h5") as f:
        patient_id = str(f.attrs["patient_id"])
    assert patient_id not in json.dumps(meta) and patient_id not in json.dumps(version.tags)

    inference = str([str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")])
    common = ["run", "--config_file", inference, "--bundle_root", str(BUNDLE), "--manifest", str(tiny_dataset),
              "--section", "test", "--generate_demo_data", "False",
              "--ckpt_path", str(tmp_path / "no_such_file.pt")]
    _bundle(*common, "--output_dir", str(tmp_path / "infer"), "--model_uri", "models:/bundle_jssl/1",
            "--registry_uri", server, "--network_size", "tiny")
    with h5py.File(tmp_path / "infer" / "test" / "test_000.h5") as f:
        assert f["reconstruction"].shape == (2, 64, 64) and np.isfinite(f["reconstruction"][()]).all()
    for extra, message in [(["--model_uri", "models:/bundle_jssl/5", "--registry_uri", server,
                             "--network_size", "tiny"],
                            "registered versions of 'bundle_jssl': 1"),
                           (["--model_uri", "models:/bundle_jssl/1", "--registry_uri", server,
                             "--network_size", "demo"], "holds a varnet network of size 'tiny'")]:
        proc = _bundle(*common, "--output_dir", str(tmp_path / "bad"), *extra, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: --model_uri ") and message in last
        assert not list((tmp_path / "bad").rglob("*.h5"))

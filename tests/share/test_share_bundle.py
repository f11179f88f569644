"""A real shared archive, end to end: train, export, verify, a tampered-archive corpus, inference at a receiving
site from another working directory (copied folder and zip), fine-tuning that records its parent bundle."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import mlflow
import pytest
import torch

from pipeline.data.manifests import manifest_digest
from pipeline.share import bundle_hash, read_bundle, verify
from pipeline.share.archive import CHECKSUMS, ArchiveError, checksums_text, write_zip
from pipeline.share.cli import main

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "jssl_varnet"

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The package from this checkout (as installed), whatever the working directory."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def python(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[:3]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def settings(**values) -> list[str]:
    return [token for key, value in values.items() for token in (f"--{key}", str(value))]


#: A short training run on the tiny dataset.
SHORT = dict(num_workers=0, max_epochs=1, epoch_length=4, val_interval=4, checkpoint_interval=2, batch_size=2,
             generate_demo_data=False)


@pytest.fixture(scope="module")
def shared(tiny_dataset, tmp_path_factory):
    """A tiny VarNet trained with ``--mode sl`` and exported: (archive, training folder)."""
    out = tmp_path_factory.mktemp("shared_train")
    python("-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "train.json"),
           *settings(bundle_root=BUNDLE, manifest=tiny_dataset, output_dir=out, model_path=out / "model.pt",
                     network_size="tiny", mode="sl", **SHORT))
    archive = out.parent / "shared" / "jssl_varnet.zip"
    proc = python("-m", "pipeline.share", "export", "--bundle", str(BUNDLE), "--train_dir", str(out),
                  "--out", str(archive))
    assert proc.stdout.startswith(f"exported {archive}: ")
    return archive, out


def test_exported_archive_has_weights_provenance_card_and_checksums(shared, tiny_dataset):
    archive, _ = shared
    name, files = read_bundle(archive)
    assert name == "jssl_varnet"
    assert {"configs/train.json", "configs/inference.json", "configs/finetune.json", "configs/metadata.json",
            "configs/logging.conf", "docs/README.md", "docs/model_card.md", "models/model.safetensors",
            "logs/validation.csv", "LICENSE", CHECKSUMS} <= set(files)
    assert not any(n.endswith(".pt") for n in files)
    listed = {line.split("  ", 1)[1] for line in files[CHECKSUMS].decode().splitlines()}
    assert listed == set(files) - {CHECKSUMS}
    provenance = json.loads(files["configs/metadata.json"])["provenance"]
    assert provenance["mode"] == "sl" and (provenance["network"], provenance["network_size"]) == ("varnet", "tiny")
    assert provenance["manifest_digest"] == manifest_digest(tiny_dataset)
    assert provenance["code_version"].startswith("0.1.0") and provenance["parent_bundle"] is None
    assert 0 < provenance["validation_metrics"]["val_ssim"] <= 1
    assert json.loads(files["configs/train.json"])["network_size"] == "tiny"
    assert "4,val_ssim," in files["logs/validation.csv"].decode()
    card = files["docs/model_card.md"].decode()
    assert provenance["manifest_digest"] in card and "`sl`" in card


def test_verify_accepts_the_exported_archive(shared):
    archive, _ = shared
    _, files = read_bundle(archive)
    proc = python("-m", "pipeline.share", "verify", str(archive))
    # every file of the archive, the checksums file included
    assert proc.stdout.strip() == f"verified {archive}: {len(files)} files, bundle hash {bundle_hash(archive)}"


# ---------------------------------------------------------------------------------------------
# the tampered-archive corpus: each case is made from the real archive and must be refused with its line


def _json_edit(name: str, edit: Callable[[dict], None]) -> Callable[[dict[str, bytes]], None]:
    def apply(files: dict[str, bytes]) -> None:
        content = json.loads(files[name])
        edit(content)
        files[name] = json.dumps(content, indent=4).encode()
    return apply


def _append(name: str, text: str) -> Callable[[dict[str, bytes]], None]:
    def apply(files: dict[str, bytes]) -> None:
        files[name] += text.encode()
    return apply


def _flip_weights_byte(files: dict[str, bytes]) -> None:
    data = bytearray(files["models/model.safetensors"])
    data[-7] ^= 0x01
    files["models/model.safetensors"] = bytes(data)


def _both(key: str, value: str) -> Callable[[dict[str, bytes]], None]:
    def apply(files: dict[str, bytes]) -> None:
        _json_edit("configs/train.json", lambda c: c.update({key: value}))(files)
        _json_edit("configs/metadata.json", lambda c: c["provenance"].update({key: value}))(files)
    return apply


#: case -> (tampering, recompute checksums.sha256 as an attacker would, the refusal's text)
TAMPERED = {
    "weights_one_byte": (_flip_weights_byte, False, "sha256 mismatch for models/model.safetensors"),
    "import_expression": (
        _json_edit("configs/inference.json", lambda c: c["initialize"].append("$__import__('os').system('id')")),
        True, "configs/inference.json: initialize#3: expression calls the name '__import__', which is not allowed"),
    "import_expression_not_rehashed": (
        _json_edit("configs/inference.json", lambda c: c["initialize"].append("$__import__('os').system('id')")),
        False, "sha256 mismatch for configs/inference.json"),
    "target_outside_allow_list": (
        _json_edit("configs/train.json", lambda c: c["network_def"].update({"_target_": "subprocess.Popen"})),
        True, "configs/train.json: network_def: _target_ 'subprocess.Popen' is not in the allow-list"),
    "escape_through_torch": (
        _json_edit("configs/train.json", lambda c: c.update({"device": "$torch.os.getcwd()"})),
        True, "configs/train.json: device: expression uses 'torch.os.getcwd', which is not in the allow-list"),
    "lambda_hides_a_builtin": (
        _json_edit("configs/train.json", lambda c: c.update({"device": "$(lambda exec: 0) and exec('1')"})),
        True, "configs/train.json: device: expression binds the name 'exec'"),
    "monai_bundle_run": (
        _json_edit("configs/inference.json", lambda c: c["initialize"].append("$monai.bundle.run('x')")),
        True, "configs/inference.json: initialize#3: expression uses 'monai.bundle.run', which is not in the allow"),
    "text_pickle_added": (
        lambda files: files.update({"models/notes.txt": pickle.dumps({"run": os.system}, protocol=0)}), True,
        "models/notes.txt: the file is a pickle"),
    "config_name_not_lowercase": (
        lambda files: files.update({"configs/evaluate.JSON": json.dumps({"x": "$__import__('os')"}).encode()}),
        True, "configs/evaluate.JSON: a config file must be a lowercase .json name or logging.conf"),
    "yaml_config_added": (
        lambda files: files.update({"configs/extra.yaml": b"x: $__import__('os')\n"}), True,
        "configs/extra.yaml: a config file must be a lowercase .json name or logging.conf"),
    "members_differ_only_in_case": (
        lambda files: files.update({"docs/readme.md": files["docs/README.md"]}), True,
        "docs/README.md and docs/readme.md differ only in case"),
    "path_in_log": (_append("logs/validation.csv", "8,val_ssim,0.5 /data/site_a/scans/case7.h5\n"), True,
                    "logs/validation.csv: an absolute path ('/data/site_a/scans/case7.h5') on line"),
    "id_in_log": (_append("logs/validation.csv", "patient_id=AB123456\n"), True,
                  "logs/validation.csv: a patient identifier ('patient_id=')"),
    "id_key_in_metadata": (
        _json_edit("configs/metadata.json", lambda c: c["provenance"].update({"patient_id": "AB123456"})),
        True, "configs/metadata.json: provenance#patient_id: a patient identifier key"),
    "missing_weights": (lambda files: files.pop("models/model.safetensors"), True,
                        "models/model.safetensors is missing"),
    "missing_weights_not_rehashed": (lambda files: files.pop("models/model.safetensors"), False,
                                     "models/model.safetensors is listed in checksums.sha256 but missing"),
    "metadata_fails_schema": (_json_edit("configs/metadata.json", lambda c: c.pop("version")), True,
                              "fails the MONAI metadata schema: 'version' is a required property"),
    "no_provenance": (_json_edit("configs/metadata.json", lambda c: c.pop("provenance")), True,
                      "configs/metadata.json has no 'provenance' entry"),
    "other_network_size": (_both("network_size", "demo"), True,
                           "models/model.safetensors (metadata: varnet demo) was made for a different network"),
    "other_network": (_both("network", "vsharp"), True,
                      "models/model.safetensors (metadata: vsharp tiny) was made for a different network"),
    "configs_disagree_with_metadata": (
        _json_edit("configs/train.json", lambda c: c.update({"network_size": "demo"})), True,
        "configs/train.json: network_size 'demo' differs from the metadata's 'tiny'"),
    "pickle_weights_added": (lambda files: files.update({"models/model.pt": b"\x80\x04K\x01."}), True,
                             "models/model.pt: pickle-based files can run code when loaded"),
    "file_added_after_export": (lambda files: files.update({"docs/extra.md": b"# hi\n"}), False,
                                "docs/extra.md is not listed in checksums.sha256"),
    "logging_conf_runs_code": (
        lambda files: files.update({"configs/logging.conf": files["configs/logging.conf"].replace(
            b"args=(sys.stdout,)", b"args=(__import__('os').system('id'),)")}),
        True, "configs/logging.conf: [handler_consoleHandler] args"),
    "macro_reads_another_file": (
        _json_edit("configs/evaluate.json", lambda c: c.update({"metrics": "%../../secrets.json::key"})), True,
        "configs/evaluate.json: metrics: the macro '%../../secrets.json::key' reads another file"),
    "absolute_path_in_config": (
        _json_edit("configs/train.json", lambda c: c.update({"data_root": "/mnt/pacs/export"})), True,
        "configs/train.json: data_root: an absolute path ('/mnt/pacs/export')"),
    "corrupt_safetensors_header": (
        lambda files: files.update({"models/model.safetensors": b"\xff" * 8 + files["models/model.safetensors"][8:]}),
        True, "models/model.safetensors cannot be read as safetensors"),
}


def _tamper(archive: Path, folder: Path, case: str) -> Path:
    edit, rehash, _ = TAMPERED[case]
    name, files = read_bundle(archive)
    edit(files)
    if rehash:
        files.pop(CHECKSUMS)
        files[CHECKSUMS] = checksums_text(files).encode()
    return write_zip(name, files, folder / f"{case}.zip")


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_archive_is_refused_with_one_line(shared, tmp_path, case, capsys):
    bad = _tamper(shared[0], tmp_path, case)
    assert main(["verify", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ")
    assert TAMPERED[case][2] in lines[0]


def test_a_tampered_archive_is_never_unpacked_or_run(shared, tmp_path):
    bad = _tamper(shared[0], tmp_path, "import_expression")
    proc = python("-m", "pipeline.share", "run", str(bad), "inference", "--output_dir", str(tmp_path / "out"),
                  check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: {TAMPERED['import_expression'][2]}"]
    assert not (tmp_path / "out").exists()


def test_run_of_a_workflow_whose_config_the_archive_lacks_stops_with_one_line(shared, tmp_path, capsys):
    name, files = read_bundle(shared[0])
    files.pop("configs/evaluate.json")
    files[CHECKSUMS] = checksums_text({k: v for k, v in files.items() if k != CHECKSUMS}).encode()
    bad = write_zip(name, files, tmp_path / "no_evaluate.zip")
    verify(bad)  # a valid archive: evaluate.json is not required
    assert main(["run", str(bad), "evaluate", "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: `run evaluate` needs configs/evaluate.json, which the bundle does not have"]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# the receiving site: another working directory, only the package installed


def _scans(tiny_dataset: Path, site: Path) -> Path:
    scans = site / "scans"
    scans.mkdir(parents=True)
    shutil.copy(tiny_dataset.parent / "data" / "test" / "test_000.h5", scans)
    return scans


def _reconstructed(out: Path) -> None:
    with h5py.File(out / "test_000.h5") as f:
        assert f["reconstruction"].shape == (2, 64, 64) and f["reconstruction"][()].max() > 0


def test_copied_bundle_folder_infers_on_a_folder_of_files_from_another_directory(shared, tiny_dataset, tmp_path):
    """The issue's command, on the repository's bundle folder copied elsewhere with its weights in models/."""
    _, train_dir = shared
    site = tmp_path / "site"
    shutil.copytree(BUNDLE, site / "jssl_varnet", ignore=shutil.ignore_patterns("model.*"))
    shutil.copy(train_dir / "model.pt", site / "jssl_varnet" / "models" / "model.pt")
    _scans(tiny_dataset, site)
    configs = "['jssl_varnet/configs/train.json','jssl_varnet/configs/inference.json']"
    python("-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root", "jssl_varnet",
           "--input_dir", "scans", "--output_dir", "out", "--network_size", "tiny", cwd=site)
    _reconstructed(site / "out")


def test_unpacked_archive_folder_infers_with_the_plain_monai_command(shared, tiny_dataset, tmp_path):
    archive, _ = shared
    site = tmp_path / "site"
    shutil.unpack_archive(archive, site)
    _scans(tiny_dataset, site)
    assert "verified" in python("-m", "pipeline.share", "verify", "jssl_varnet", cwd=site).stdout
    configs = "['jssl_varnet/configs/train.json','jssl_varnet/configs/inference.json']"
    python("-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root", "jssl_varnet",
           "--input_dir", "scans", "--output_dir", "out", cwd=site)  # no --network_size: the archive knows it
    _reconstructed(site / "out")


def test_zip_is_verified_unpacked_and_run_from_another_directory(shared, tiny_dataset, tmp_path):
    archive, _ = shared
    site = tmp_path / "site"
    _scans(tiny_dataset, site)
    shutil.copy(archive, site / "jssl_varnet.zip")
    proc = python("-m", "pipeline.share", "run", "jssl_varnet.zip", "inference", "--input_dir", "scans",
                  "--output_dir", "out", cwd=site)
    assert proc.stdout.startswith(f"verified jssl_varnet.zip (bundle hash {bundle_hash(archive)})")
    _reconstructed(site / "out")
    assert (site / "out" / "bundle" / "jssl_varnet" / "models" / "model.safetensors").is_file()


def test_a_size_override_that_does_not_fit_the_weights_stops_with_one_line(shared, tiny_dataset, tmp_path):
    archive, _ = shared
    site = tmp_path / "site"
    _scans(tiny_dataset, site)
    proc = python("-m", "pipeline.share", "run", str(archive), "inference", "--input_dir", "scans",
                  "--output_dir", "out", "--network_size", "demo", cwd=site, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: checkpoint ") and "(for --network varnet --network_size demo) was made for a " \
        "different network architecture" in last
    assert not (site / "out" / "test_000.h5").exists()


def test_finetune_records_the_parent_bundle_in_mlflow_and_in_the_exported_metadata(shared, tiny_dataset, tmp_path):
    archive, _ = shared
    parent = bundle_hash(archive)
    out = tmp_path / "finetune"
    python("-m", "pipeline.share", "run", str(archive), "finetune",
           *settings(manifest=tiny_dataset, output_dir=out, mode="ssl", **SHORT), cwd=tmp_path)
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("jssl_varnet_finetune").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["parent_bundle_hash"] == parent == runs[0].data.params["parent_bundle_hash"]
    assert runs[0].data.params["mode"] == "ssl" and runs[0].data.params["network_size"] == "tiny"
    # the fine-tuning network is built from the shared weights (the config item the trainer's model is moved from)
    from monai.bundle import ConfigParser
    from safetensors.torch import load_file

    root = out / "bundle" / "jssl_varnet"
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / "train.json"), str(root / "configs" / "finetune.json")])
    parser.update({"bundle_root": str(root)})
    start = parser.get_parsed_content("initial_network").state_dict()
    shared_weights = load_file(root / "models" / "model.safetensors")
    assert set(start) == set(shared_weights)
    for key, value in shared_weights.items():
        torch.testing.assert_close(start[key], value, rtol=0, atol=0, msg=key)
    child = tmp_path / "child.zip"
    python("-m", "pipeline.share", "export", "--bundle", str(out / "bundle" / "jssl_varnet"), "--train_dir", str(out),
           "--out", str(child))
    verified = verify(child)
    assert verified.metadata["provenance"]["parent_bundle"] == parent
    assert verified.metadata["provenance"]["mode"] == "ssl" and verified.bundle_hash != parent
    assert f"`{parent}` (fine-tuned from it)" in verified.files["docs/model_card.md"].decode()


def test_finetune_from_a_folder_that_is_not_a_shared_bundle_stops_with_one_line(tiny_dataset, tmp_path):
    configs = str([str(BUNDLE / "configs" / "train.json"), str(BUNDLE / "configs" / "finetune.json")])
    proc = python("-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root", str(BUNDLE),
                  *settings(manifest=tiny_dataset, output_dir=tmp_path / "ft", **SHORT), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --bundle_root {BUNDLE}: no checksums.sha256; export it with `python -m pipeline.share export`"
    )
    assert not (tmp_path / "ft" / "checkpoints").exists()


def test_verify_names_a_file_that_is_not_a_bundle(tmp_path):
    path = tmp_path / "x.zip"
    path.write_text("not a zip")
    with pytest.raises(ArchiveError, match="not a zip archive or a bundle folder"):
        verify(path)

"""The shared-bundle policy (allowed code, privacy) and safe archive reading, on real files (fast)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pipeline.share.archive import ArchiveError, bundle_hash, checksums_text, read_bundle, write_zip
from pipeline.share.policy import check_config, check_expression, check_logging_conf, check_privacy, check_target

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet" / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.json")))
def test_the_bundles_own_configs_pass(name):
    text = (CONFIGS / name).read_text()
    check_config(json.loads(text), name)
    check_privacy(name, text.encode())


def test_the_bundles_logging_conf_passes():
    check_logging_conf((CONFIGS / "logging.conf").read_text(), "logging.conf")


@pytest.mark.parametrize(
    "expression, refused",
    [
        ("$__import__('os').system('id')", "the name '__import__'"),
        ("$torch.os.getcwd()", "'torch.os' leads outside the allowed modules (to 'os')"),
        ("$monai.utils.optional_import('os')", "the attribute 'optional_import'"),
        ("$@model.__class__.__init__.__globals__", "the attribute '__globals__'"),
        ("$import subprocess", "'subprocess' is outside the allowed modules"),
        ("$from torch import os", "'torch.os' leads outside the allowed modules"),
        ("$open('notes.txt').read()", "the name 'open'"),
        ("$eval('1')", "the name 'eval'"),
        ("$getattr(torch, 'load')", "the name 'getattr'"),
        ("$x = 1", "only `import` statements"),
        ("$monai.utils.instantiate('os.system', 'id')", "the attribute 'instantiate'"),
        ("$pipeline.nothing_here()", "'pipeline.nothing_here' does not exist"),
    ],
)
def test_expressions_outside_the_allow_list_are_refused(expression, refused):
    with pytest.raises(ArchiveError, match="^train.json: x: ") as err:
        check_expression(expression, "train.json: x")
    assert refused in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "expression",
    [
        "$import torch",
        "$sum(p.numel() for p in @model.parameters())",
        "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "$(lambda x: x + 1)(@seed)",
        "$not pipeline.engines.uses_branch(@mode, 'sl')",
    ],
)
def test_expressions_inside_the_allow_list_pass(expression):
    check_expression(expression, "train.json: x")


@pytest.mark.parametrize(
    "target, refused",
    [
        ("subprocess.Popen", "outside the allowed modules"),
        ("builtins.exec", "outside the allowed modules"),
        ("torch.os.system", "leads outside the allowed modules"),
        ("NoSuchComponent", "not a MONAI component"),
        ("$__import__('os')", "the name '__import__'"),
    ],
)
def test_targets_outside_the_allow_list_are_refused(target, refused):
    with pytest.raises(ArchiveError, match=refused):
        check_target(target, "train.json: net")
    check_target("torch.optim.Adam", "ok")
    check_target("Compose", "ok")  # a MONAI component name, found by MONAI's locator


def test_config_keys_that_run_code_are_refused():
    with pytest.raises(ArchiveError, match="_mode_ 'debug'"):
        check_config({"net": {"_target_": "torch.nn.Identity", "_mode_": "debug"}}, "c.json")
    with pytest.raises(ArchiveError, match="reads another file"):
        check_config({"net": "%other.json::net"}, "c.json")


def test_logging_conf_that_evaluates_code_is_refused():
    text = (CONFIGS / "logging.conf").read_text().replace("args=(sys.stdout,)", "args=(__import__('os').system('id'),)")
    with pytest.raises(ArchiveError, match=r"\[handler_consoleHandler\] args"):
        check_logging_conf(text, "configs/logging.conf")


@pytest.mark.parametrize(
    "text, found",
    [
        ("4,val_ssim,0.5\nfile /data/site_a/x.h5\n", "an absolute path ('/data/site_a/x.h5') on line 2"),
        ("loaded C:\\scans\\x.h5\n", "an absolute path"),
        ("uri sqlite:////srv/mlruns.db\n", "an absolute path"),
        ("cache in ~/scans\n", "an absolute path"),
        ("PatientID=AB1234\n", "a patient identifier"),
        ("patient_id: 17\n", "a patient identifier"),
        ("the patient name is here\n", "a patient identifier"),
    ],
)
def test_privacy_finds_paths_and_identifiers_in_text(text, found):
    with pytest.raises(ArchiveError, match="^logs/run.log: ") as err:
        check_privacy("logs/run.log", text.encode())
    assert found in str(err.value)


def test_privacy_keeps_urls_relative_paths_and_plain_words():
    check_privacy("docs/README.md", b"See https://github.com/Project-MONAI/x/y and ../docs/a.png; no patient data.\n")
    check_privacy("c.json", json.dumps({"ckpt": "$@output_dir + '/models/model.pt'"}).encode())


def test_privacy_in_json_keys_and_values():
    with pytest.raises(ArchiveError, match="provenance#split#patient_id: a patient identifier key"):
        check_privacy("configs/metadata.json", json.dumps({"provenance": {"split": {"patient_id": 1}}}).encode())
    with pytest.raises(ArchiveError, match="manifest: an absolute path"):
        check_privacy("configs/train.json", json.dumps({"manifest": "/mnt/pacs/list.json"}).encode())
    with pytest.raises(ArchiveError, match="binary file"):
        check_privacy("models/extra.dat", bytes(range(256)))


def test_zip_members_outside_the_bundle_folder_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as f:
        f.writestr("jssl_varnet/configs/train.json", "{}")
        f.writestr("../evil.py", "print('x')")
    with pytest.raises(ArchiveError, match="'../evil.py' would be written outside the bundle folder"):
        read_bundle(archive)


def test_zip_round_trip_and_hash_are_reproducible(tmp_path):
    files = {"configs/a.json": b"{}", "docs/README.md": b"# x\n"}
    files["checksums.sha256"] = checksums_text(files).encode()
    a = write_zip("b", files, tmp_path / "a.zip")
    b = write_zip("b", files, tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()
    assert read_bundle(a) == ("b", files)
    assert bundle_hash(a) == bundle_hash(files) and len(bundle_hash(a)) == 64

"""The shared-bundle policy (allowed code, privacy) and safe archive reading, on real files (fast)."""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest

from pipeline.share.archive import CHECKSUMS, ArchiveError, bundle_hash, checksums_text, read_bundle, unpack, write_zip
from pipeline.share.policy import (
    check_config,
    check_expression,
    check_logging_conf,
    check_not_pickle,
    check_privacy,
    check_target,
)

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
        ("$torch.os.getcwd()", "'torch.os.getcwd', which is not in the allow-list"),
        ("$monai.utils.optional_import('os')", "'monai.utils.optional_import', which is not in the allow-list"),
        ("$@model.__class__.__init__.__globals__", "the attribute '__class__'"),
        ("$import subprocess", "`import subprocess` is not allowed"),
        ("$import torch as len", "renames a module"),
        ("$from torch import os", "only `import <module>` statements"),
        ("$open('notes.txt').read()", "the name 'open'"),
        ("$eval('1')", "the name 'eval'"),
        ("$getattr(torch, 'load')", "the name 'getattr'"),
        ("$x = 1", "only `import <module>` statements"),
        ("$monai.utils.instantiate('os.system', 'id')", "'monai.utils.instantiate', which is not in the allow-list"),
        ("$pipeline.nothing_here()", "'pipeline.nothing_here', which is not in the allow-list"),
        # names bound in a lambda or comprehension hold only there, and may not hide a builtin or a package
        ("$(lambda exec: 0) and exec('import os')", "binds the name 'exec'"),
        ("$[0 for __import__ in []] or __import__('subprocess').run(['id'])", "binds the name '__import__'"),
        ("$(lambda x: x)(1) and x", "calls the name 'x'"),
        ("$[y for y in range(2)] and y", "calls the name 'y'"),
        ("$[y for y in y]", "calls the name 'y'"),
        ("$(lambda t=t: t)()", "calls the name 't'"),
        ("$(lambda torch: torch.load('m.pt'))(0)", "binds the name 'torch'"),
        ("$(z := 1)", "assigns with ':='"),
        # whole packages are no longer reachable: only the callables the shipped configs use
        ("$torch.load('models/notes.txt', weights_only=False)", "'torch.load', which is not in the allow-list"),
        ("$pipeline.handlers.load_weights(@net, 'm.pt', weights_only=False)", "weights_only"),
        ("$monai.bundle.run(config_file='x.json')", "'monai.bundle.run', which is not in the allow-list"),
        ("$monai.bundle.ConfigParser({'x': '$1'})", "'monai.bundle.ConfigParser', which is not in the allow-list"),
        ("$monai.apps.download_and_extract('http://x/y.zip')", "'monai.apps.download_and_extract'"),
        ("$pipeline.bench.install_direct.install_requirements()", "'pipeline.bench.install_direct"),
        ("$torch", "the package 'torch' itself"),
        ("$@imports#0.load('m.pt')", "the attribute 'load'"),
        ("$pipeline.handlers.bundle_weights('.').write_text('x')", "the attribute 'write_text'"),
        ("$'{0.__class__}'.format(@net)", "the attribute 'format'"),
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
        "$import pipeline.engines",
        "$sum(p.numel() for p in @model.parameters())",
        "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "$(lambda x: x + 1)(@seed)",
        "$[[a, b] for a in range(2) for b in range(a)]",
        "$not pipeline.engines.uses_branch(@mode, 'sl')",
    ],
)
def test_expressions_inside_the_allow_list_pass(expression):
    check_expression(expression, "train.json: x")


def _shipped_uses() -> tuple[set[str], set[str], set[str], set[str]]:
    """(dotted callables, bare components, imports, attributes of non-packages) the shipped configs use."""
    import ast

    from pipeline.share.policy import ALLOWED_MODULES, _chain, _walk

    callables, components, imports, attributes = set(), set(), set(), set()
    for path in CONFIGS.glob("*.json"):
        for _, key, value in _walk(json.loads(path.read_text())):
            if key == "_target_" and not value.startswith("$"):
                (callables if "." in value else components).add(value)
            elif isinstance(value, str) and value.startswith("$"):
                code = re.sub(r"@[\w#:]+", "ref", value[1:])
                if code.startswith("import "):
                    imports.add(code.split()[1])
                    continue
                tree = ast.parse(code, mode="eval")
                inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
                for node in ast.walk(tree):
                    if id(node) in inner and _chain(node):
                        continue  # a prefix of a longer chain (``torch.cuda`` of ``torch.cuda.is_available``)
                    dotted = _chain(node) if isinstance(node, ast.Attribute) else None
                    if dotted and dotted.split(".")[0] in ALLOWED_MODULES:
                        callables.add(dotted)
                    elif isinstance(node, ast.Attribute):
                        attributes.add(node.attr)
    return callables, components, imports, attributes


def test_the_allow_list_is_exactly_what_the_shipped_configs_use():
    import importlib

    from pipeline.share.policy import (
        ALLOWED_ATTRIBUTES,
        ALLOWED_CALLABLES,
        ALLOWED_COMPONENTS,
        ALLOWED_IMPORTS,
    )

    callables, components, imports, attributes = _shipped_uses()
    assert ALLOWED_CALLABLES == callables
    assert ALLOWED_COMPONENTS == components and ALLOWED_IMPORTS == imports and ALLOWED_ATTRIBUTES == attributes
    # an allowed import offers none of the allowed attributes that is not itself an allowed callable
    for module in ALLOWED_IMPORTS:
        for attribute in ALLOWED_ATTRIBUTES:
            obj = getattr(importlib.import_module(module), attribute, None)
            assert obj is None or f"{module}.{attribute}" in ALLOWED_CALLABLES or callable(obj) and \
                obj.__module__.split(".")[0] in ("torch", "pipeline"), (module, attribute)


@pytest.mark.parametrize(
    "target, refused",
    [
        ("subprocess.Popen", "'subprocess.Popen' is not in the allow-list"),
        ("builtins.exec", "not in the allow-list"),
        ("torch.os.system", "not in the allow-list"),
        ("torch.load", "not in the allow-list"),
        ("monai.bundle.ConfigParser", "not in the allow-list"),
        ("ConfigParser", "'ConfigParser' is not in the allow-list"),
        ("NoSuchComponent", "not in the allow-list"),
        ("@imports#0", "not in the allow-list"),
        ("$__import__('os')", "the name '__import__'"),
    ],
)
def test_targets_outside_the_allow_list_are_refused(target, refused):
    with pytest.raises(ArchiveError, match="^train.json: net: ") as err:
        check_target(target, "train.json: net")
    assert refused in str(err.value)
    check_target("torch.optim.Adam", "ok")
    check_target("Compose", "ok")  # a MONAI component name, found by MONAI's locator


def test_config_keys_that_run_code_are_refused():
    with pytest.raises(ArchiveError, match="_mode_ 'debug'"):
        check_config({"net": {"_target_": "torch.device", "_mode_": "debug"}}, "c.json")
    with pytest.raises(ArchiveError, match="reads another file"):
        check_config({"net": "%other.json::net"}, "c.json")
    for value in (False, "$False", "false", None):
        with pytest.raises(ArchiveError, match="c.json: net#weights_only: weights_only .* only true is allowed"):
            check_config({"net": {"_target_": "pipeline.handlers.load_weights", "weights_only": value}}, "c.json")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_of_any_protocol_is_refused_whatever_its_name(protocol):
    data = pickle.dumps({"call": os.system, "args": ("id",)}, protocol=protocol)
    with pytest.raises(ArchiveError, match="^docs/notes.txt: the file is a pickle"):
        check_not_pickle("docs/notes.txt", data)
    if protocol == 0:
        data.decode("ascii")  # plain text: the privacy check alone would pass it
        check_privacy("docs/notes.txt", data)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.iterdir()))
def test_the_bundles_own_files_are_not_pickles(name):
    check_not_pickle(name, (CONFIGS / name).read_bytes())
    check_not_pickle("x.csv", b"step,metric,value\n4,val_ssim,0.5\n")
    check_not_pickle("x.md", b"Model.")  # valid opcodes, but no consistent pickle


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
        ("data_root: /data\n", "an absolute path ('/data') on line 1"),
        ("copied from C:/Users/alice/scans/x.h5\n", "an absolute path ('C:/Users/alice/scans/x.h5')"),
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
    check_privacy("docs/README.md", b"PSNR/SSIM, and/or `sl`/`ssl`, 1/2, <output_dir>/mlflow, a / b\n")
    check_privacy("c.json", json.dumps({"ckpt": "$@output_dir + '/models/model.pt'"}).encode())
    check_privacy("c.json", json.dumps({"ckpt": "$f'{@output_dir}/models/model.pt'"}).encode())


@pytest.mark.parametrize(
    "content, found",
    [
        ({"data_root": "/mnt"}, "data_root: an absolute path ('/mnt')"),
        ({"data_root": "/data"}, "data_root: an absolute path ('/data')"),
        ({"x": ["C:/Users/alice/scans/x.h5"]}, "x#0: an absolute path ('C:/Users/alice/scans/x.h5')"),
        ({"root": "$'/mnt' + '/pacs/site_a'"}, "root: an absolute path ('/mnt/pacs/site_a')"),
        ({"root": "$'/m' + 'nt' + @suffix"}, "root: an absolute path ('/mnt')"),
        ({"root": "$f'/mnt/{@site}'"}, "root: an absolute path ('/mnt/')"),
        ({"root": "$'%s/pacs' % '/mnt'"}, "root: an absolute path ('/mnt')"),
    ],
)
def test_privacy_finds_short_windows_and_composed_absolute_paths_in_json(content, found):
    with pytest.raises(ArchiveError, match="^configs/train.json: ") as err:
        check_privacy("configs/train.json", json.dumps(content).encode())
    assert found in str(err.value)


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


def test_unpack_replaces_an_earlier_bundle_whole_and_refuses_a_foreign_folder(tmp_path):
    old = {"configs/train.json": b"{}", "configs/evaluate.json": b'{"stale": 1}', "docs/README.md": b"# old\n"}
    old[CHECKSUMS] = checksums_text(old).encode()
    new = {"configs/train.json": b'{"new": 1}', "docs/README.md": b"# new\n"}
    new[CHECKSUMS] = checksums_text(new).encode()
    folder = tmp_path / "out" / "bundle" / "jssl_varnet"
    unpack(old, folder)
    unpack(new, folder)  # the evaluate.json of the earlier archive must not survive next to the new files
    assert read_bundle(folder)[1] == new
    assert sorted(p.name for p in folder.parent.iterdir()) == ["jssl_varnet"]  # no staging folder left
    foreign = tmp_path / "mine"
    (foreign / "notes").mkdir(parents=True)
    with pytest.raises(ArchiveError, match=f"^{foreign} exists and is not an unpacked shared bundle"):
        unpack(new, foreign)
    assert (foreign / "notes").is_dir() and not (foreign / "configs").exists()

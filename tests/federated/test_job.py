"""The federation's data layout and settings (fast; the simulator runs are in test_federated)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.manifests import load_manifest
from pipeline.federated.job import demo_sites, write_settings


def test_the_demo_split_gives_each_site_its_own_data_and_branch(tiny_dataset, tmp_path):
    sites = demo_sites(tiny_dataset, tmp_path, target_sites=2)
    assert {name: spec["mode"] for name, spec in sites.items()} == {"proxy": "sl", "target-1": "ssl", "target-2": "ssl"}
    files = {name: [item["file"] for item in load_manifest(spec["manifest"], "proxy" if name == "proxy" else "target")]
             for name, spec in sites.items()}
    assert files["proxy"] == [item["file"] for item in load_manifest(tiny_dataset, "proxy")]
    target = [item["file"] for item in load_manifest(tiny_dataset, "target")]
    assert files["target-1"] == target[0::2] and files["target-2"] == target[1::2]  # disjoint halves
    assert all(len(json.loads(open(spec["manifest"]).read())) == 3 for spec in sites.values())  # one section
    with pytest.raises(ValueError, match="target_sites must be between 1 and 2"):
        demo_sites(tiny_dataset, tmp_path, target_sites=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"on_bad_site": "ignore"}, "--on_bad_site must be one of"), ({"iterations": 0}, "--iterations must be >= 1"),
     ({"sites": {"a": {"mode": "semi", "manifest": "m.json"}}}, "unknown --mode 'semi'"),
     ({"sites": {}}, "at least one site")],
)
def test_bad_federation_settings_are_refused(tmp_path, kwargs, message):
    settings = {"sites": {"a": {"mode": "ssl", "manifest": "m.json"}}, "iterations": 2, "bundle_root": tmp_path,
                "overrides": {}, "on_bad_site": "fail", **kwargs}
    with pytest.raises(ValueError, match=message):
        write_settings(tmp_path, **settings)
    assert not (tmp_path / "federation.json").exists()


def test_settings_hold_absolute_paths_whatever_the_working_directory(tiny_dataset, tmp_path, monkeypatch):
    """The README's `--output_dir runs/federated` is relative; NVFlare runs each site in a folder of its own."""
    monkeypatch.chdir(tmp_path)
    sites = demo_sites(tiny_dataset, Path("runs/federated"), target_sites=1)
    assert not Path(sites["proxy"]["manifest"]).is_absolute()
    path = write_settings(Path("runs/federated"), sites, 2, Path("bundle"), {}, "fail")
    settings = json.loads(path.read_text())
    monkeypatch.chdir(tmp_path / "runs")
    for spec in settings["sites"].values():
        assert Path(spec["manifest"]).is_absolute() and Path(spec["manifest"]).is_file()
    assert Path(settings["output_dir"]).is_absolute() and Path(settings["bundle_root"]).is_absolute()


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "--sites must map site names to"),
        ('{"a": "ssl"}', "--sites: site 'a' must be {\"mode\": \"<mode>\", \"manifest\": \"<datalist>\"}, got \"ssl\""),
        ('{"a": {"mode": "ssl"}}', "--sites: site 'a' must be"),
        ('{"a": {"mode": "ssl", "manifest": "none.json"}}', "--sites: manifest of site 'a' (none.json) does not exist"),
        ('{"a": ', "is not valid JSON"),
    ],
)
def test_malformed_sites_stop_with_one_line(tmp_path, capsys, content, message):
    from pipeline.federated.__main__ import main

    sites = tmp_path / "sites.json"
    sites.write_text(content)
    assert main(["--output_dir", str(tmp_path / "fed"), "--sites", str(sites)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "fed").exists()

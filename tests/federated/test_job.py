"""The federation's data layout and settings (fast; the simulator runs are in test_federated)."""

from __future__ import annotations

import json

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

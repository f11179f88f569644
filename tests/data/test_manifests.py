"""Manifests: MONAI datalist compatibility, data_root resolution and override, clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from pipeline.data.errors import DataError
from pipeline.data.manifests import SECTIONS, load_manifest, manifest_data_root, manifest_digest, manifest_sections

REPO = Path(__file__).resolve().parents[2]


def _manifest(tmp_path: Path, content: dict, name: str = "m.json") -> Path:
    path = tmp_path / "manifests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    for rel in ("data/proxy/a.h5", "data/proxy/b.h5", "data/test/t.h5", "other/proxy/a.h5", "other/proxy/b.h5"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    return _manifest(
        tmp_path,
        {
            "data_root": "../data",
            "proxy": [{"file": "proxy/a.h5"}, {"file": "proxy/b.h5", "slices": [1, 3]}],
            "target": [],
            "test": [{"file": "test/t.h5"}],
        },
    )


def test_load_with_relative_data_root(layout, tmp_path):
    items = load_manifest(layout, "proxy")
    assert items == [
        {"file": str(tmp_path / "data/proxy/a.h5"), "domain": "proxy", "volume": "proxy/a.h5"},
        {"file": str(tmp_path / "data/proxy/b.h5"), "slices": [1, 3], "domain": "proxy", "volume": "proxy/b.h5"},
    ]
    # the same file loads with MONAI's own datalist loader
    monai_items = load_decathlon_datalist(
        layout, is_segmentation=False, data_list_key="proxy", base_dir=tmp_path / "data"
    )
    assert [i["file"] for i in monai_items] == [i["file"] for i in items]


def test_data_root_override(layout, tmp_path):
    items = load_manifest(layout, "proxy", data_root=tmp_path / "other")
    assert items[0]["file"] == str(tmp_path / "other/proxy/a.h5")
    assert manifest_data_root(layout, tmp_path / "other") == tmp_path / "other"


def test_section_errors_name_available_sections(layout):
    expected = r"m\.json: section 'validation' not found; available sections: \['proxy', 'test'\]"
    with pytest.raises(DataError, match=expected):
        load_manifest(layout, "validation")
    with pytest.raises(DataError, match="section 'target' is empty"):
        load_manifest(layout, "target")
    assert manifest_sections(layout) == ["proxy", "test"]


def test_missing_manifest_and_data_root(tmp_path, layout):
    with pytest.raises(DataError, match=r"nothere\.json: manifest not found"):
        load_manifest(tmp_path / "nothere.json", "proxy")
    with pytest.raises(DataError, match="data root .*nowhere does not exist"):
        load_manifest(layout, "proxy", data_root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="contains no files"):
        load_manifest(layout, "proxy", data_root=tmp_path / "empty")
    (tmp_path / "data/proxy/b.h5").unlink()
    with pytest.raises(DataError, match=r"1 file\(s\) of section 'proxy' not found: .*b\.h5"):
        load_manifest(layout, "proxy")
    assert len(load_manifest(layout, "proxy", check_files=False)) == 2


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: manifest is not valid JSON"):
        load_manifest(path, "proxy")


def test_digest(layout):
    assert manifest_digest(layout) == hashlib.sha256(layout.read_bytes()).hexdigest()


def test_committed_demo_manifest_format():
    path = REPO / "data_manifests" / "demo.json"
    content = json.loads(path.read_text())
    assert content["data_root"] == "../data/demo"
    assert manifest_data_root(path) == REPO / "data" / "demo"
    for section in SECTIONS:
        items = load_decathlon_datalist(path, is_segmentation=False, data_list_key=section, base_dir=REPO / "data/demo")
        assert items and all(set(i) == {"file"} for i in items)


def test_volume_source_and_format_fields(tmp_path):
    """Names that also name a folder under the root stay names (MONAI's loader would make them paths)."""
    for rel in ("data/knee/file1.h5", "data/brain/file1.h5", "data/cc359/x.h5"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    manifest = _manifest(
        tmp_path,
        {
            "data_root": "../data",
            "formats": {"target": "cc359"},
            "proxy": [
                {"file": "knee/file1.h5", "source": "knee"},
                {"file": "brain/file1.h5", "source": "brain", "format": "fastmri"},
            ],
            "target": [{"file": "cc359/x.h5"}],
        },
    )
    proxy = load_manifest(manifest, "proxy")
    assert [(i["volume"], i["source"], i.get("format")) for i in proxy] == [
        ("knee/file1.h5", "knee", None), ("brain/file1.h5", "brain", "fastmri")
    ]
    assert load_manifest(manifest, "target")[0]["format"] == "cc359"
    content = json.loads(manifest.read_text())
    content["proxy"][0]["format"] = "dicom"
    manifest.write_text(json.dumps(content))
    with pytest.raises(DataError, match=r"m\.json: item 0 of section 'proxy': unknown format 'dicom'"):
        load_manifest(manifest, "proxy")


def test_directory_entries_are_named(layout, tmp_path):
    (tmp_path / "data/proxy/b.h5").unlink()
    (tmp_path / "data/proxy/b.h5").mkdir()
    with pytest.raises(DataError, match=r"1 entries of section 'proxy' are directories, expected k-space .*b\.h5"):
        load_manifest(layout, "proxy")

"""The simulator: fastMRI consistency of its files, determinism, the committed manifest, ensure_dataset."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.data.datasets import SliceDataset
from pipeline.data.ismrmrd import parse_ismrmrd_header
from pipeline.data.manifests import SECTIONS, load_manifest
from pipeline.data.readers import LoadSlice
from pipeline.data.simulate import PRESETS, build_manifest, ensure_dataset, generate, main
from pipeline.keys import Keys
from pipeline.physics import center_crop, ifft2c, rss, to_tensor
from pipeline.seeds import stable_seed
from pipeline.transforms.masks import equispaced_column_mask

REPO = Path(__file__).resolve().parents[2]


def _files(manifest: Path, section: str) -> list[str]:
    return [i["file"] for i in load_manifest(manifest, section)]


def test_manifest_sections_and_sizes(tiny_dataset):
    preset = PRESETS["tiny"]
    for section in SECTIONS:
        files = _files(tiny_dataset, section)
        volumes, slices = preset.volumes["target" if section == "target_reference" else section]
        assert len(files) == volumes
        for path in files:
            with h5py.File(path) as f:
                assert f["kspace"].shape == (slices, 4, 128, 72)
                assert f["kspace"].dtype == np.complex64


def test_reference_is_rss_of_cropped_coil_images(tiny_dataset):
    for section in ("proxy", "validation", "test", "target_reference"):
        with h5py.File(_files(tiny_dataset, section)[0]) as f:
            kspace, ref = f["kspace"][()], f["reconstruction_rss"][()]
            assert ref.dtype == np.float32
            expected = center_crop(rss(ifft2c(to_tensor(kspace))), (64, 64)).numpy()
            np.testing.assert_allclose(ref, expected, rtol=1e-5, atol=1e-6 * expected.max())
            assert f.attrs["max"] == pytest.approx(float(ref.max()))
            assert f.attrs["norm"] == pytest.approx(float(np.linalg.norm(ref)), rel=1e-5)


def test_header_padding_band_and_masks(tiny_dataset):
    for section in SECTIONS:
        with h5py.File(_files(tiny_dataset, section)[0]) as f:
            info = parse_ismrmrd_header(f["ismrmrd_header"][()])
            assert info.encoded_size == (128, 72) and info.recon_size == (64, 64) and info.pe_range == (4, 68)
            kspace = f["kspace"][()]
            assert not kspace[..., :4].any() and not kspace[..., 68:].any()
            assert "patient_id" in f.attrs  # dummy, must never reach a sample
            if section == "proxy":
                assert "mask" not in f and f.attrs["acquisition"] == "AXT1"
                continue
            assert f.attrs["acquisition"] == "CORFLAIR" and f.attrs["acceleration"] == 4
            mask = f["mask"][()]
            assert mask.shape == (kspace.shape[0], 72) and mask.dtype == bool
            assert not mask[:, :4].any() and not mask[:, 68:].any() and mask[:, 36].all()
            assert 0.2 < mask[:, 4:68].mean() < 0.33
            if section == "target":
                assert "reconstruction_rss" not in f
                assert not kspace[np.broadcast_to(~mask[:, None, None, :], kspace.shape)].any()
                for s in range(kspace.shape[0]):  # every sampled column holds data
                    assert np.all(np.abs(kspace[s][..., mask[s]]).sum(axis=(0, 1)) > 0)
            else:
                assert np.all(np.abs(kspace[..., 4:68]).sum(axis=(1, 2)) > 0)  # fully sampled


def test_samples_from_every_section(tiny_dataset):
    loader = LoadSlice()
    for section in SECTIONS:
        item = load_manifest(tiny_dataset, section)[0]
        sample = loader(item["file"], 1, section)
        assert sample[Keys.PE_RANGE].tolist() == [4, 68] and sample[Keys.RECON_SIZE].tolist() == [64, 64]
        assert "patient_id" not in sample
        assert all("SIM" not in str(v) for v in sample.values())
        assert (Keys.TARGET.value in sample) == (section != "target")
        assert (Keys.MASK.value in sample) == (section != "proxy")
        if section != "proxy":
            assert sample[Keys.NUM_LOW_FREQUENCIES] == 5


def test_target_differs_from_proxy(tiny_dataset):
    proxy = SliceDataset(load_manifest(tiny_dataset, "proxy"))[1][Keys.TARGET]
    target = SliceDataset(load_manifest(tiny_dataset, "validation"))[1][Keys.TARGET]
    assert proxy.shape == target.shape == (1, 64, 64)
    corr = np.corrcoef(proxy.flatten().numpy(), target.flatten().numpy())[0, 1]
    assert corr < 0.9


def test_deterministic_from_seed(tiny_dataset, tmp_path):
    again = generate("tiny", tmp_path / "again", seed=0)
    other = generate("tiny", tmp_path / "other", seed=1)
    for section in SECTIONS:
        for a, b, c in zip(_files(tiny_dataset, section), _files(again, section), _files(other, section)):
            with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
                assert fa["kspace"][()].tobytes() == fb["kspace"][()].tobytes()
                assert fa["kspace"][()].tobytes() != fc["kspace"][()].tobytes()
                if "mask" in fa:
                    np.testing.assert_array_equal(fa["mask"][()], fb["mask"][()])


def test_committed_demo_manifest_matches_generator():
    committed = (REPO / "data_manifests" / "demo.json").read_text()
    assert json.loads(committed) == build_manifest("demo", seed=0, data_root="../data/demo")
    assert committed == json.dumps(build_manifest("demo", seed=0, data_root="../data/demo"), indent=2) + "\n"


def test_ensure_dataset_generates_once_atomically(tiny_dataset, tmp_path, caplog):
    manifest = tmp_path / "manifests" / "tiny.json"
    manifest.parent.mkdir()
    content = json.loads(tiny_dataset.read_text())
    manifest.write_text(json.dumps({**content, "data_root": "../data/tiny"}))
    with caplog.at_level("INFO", logger="pipeline.data.simulate.files"):
        root = ensure_dataset(manifest, preset="tiny")
    assert root == tmp_path / "data" / "tiny"
    assert f"simulating the 'tiny' data of {manifest} into {root}" in caplog.text  # a first run says why it waits
    assert len(load_manifest(manifest, "proxy")) == 2
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".tiny.tmp")]
    stamp = (root / "proxy/proxy_000.h5").stat().st_mtime_ns
    assert ensure_dataset(manifest, preset="tiny") == root  # complete: nothing regenerated
    assert (root / "proxy/proxy_000.h5").stat().st_mtime_ns == stamp
    (root / "test/test_000.h5").unlink()  # incomplete: regenerated in full
    ensure_dataset(manifest, preset="tiny")
    assert (root / "test/test_000.h5").is_file()
    shutil.rmtree(root)
    with pytest.raises(ValueError, match="preset='demo'"):
        ensure_dataset(manifest, preset="demo")


def test_masks_are_equispaced_masks_seeded_by_file_and_slice(tiny_dataset):
    """Each stored slice mask is the package's equispaced mask of the band, seeded by "{seed}:{file}:{slice}"."""
    preset = PRESETS["tiny"]
    for section in ("target", "validation", "test"):
        for path in _files(tiny_dataset, section):
            name = f"{Path(path).parent.name}/{Path(path).name}"
            with h5py.File(path) as f:
                stored, num_low = f["mask"][()], f.attrs["num_low_frequency"]
            assert num_low == round(64 * preset.center_fraction)
            for s, row in enumerate(stored):
                rng = np.random.default_rng(stable_seed(f"0:{name}:{s}", bits=63))
                np.testing.assert_array_equal(row, equispaced_column_mask(72, 0.08, 4, rng, (4, 68)))


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--preset" in capsys.readouterr().out


def test_preview_png(tiny_dataset, tmp_path):
    from pipeline.data.preview import render_preview

    out = render_preview(tiny_dataset, tmp_path / "preview.png", num_slices=2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_target_reference_is_the_target_acquisition_fully_sampled(tiny_dataset):
    """The oracle's files hold exactly the target training slices, before subsampling, with the same mask."""
    for acquired, full in zip(_files(tiny_dataset, "target"), _files(tiny_dataset, "target_reference")):
        with h5py.File(acquired) as a, h5py.File(full) as r:
            assert "reconstruction_rss" not in a and "reconstruction_rss" in r
            np.testing.assert_array_equal(a["mask"][()], r["mask"][()])
            mask = a["mask"][()][:, None, None, :]
            np.testing.assert_array_equal(a["kspace"][()], r["kspace"][()] * mask)
            assert np.abs(r["kspace"][()] * ~mask).max() > 0


def test_abdomen_target_is_real_anatomy_at_disjoint_positions():
    from pipeline.data.simulate.anatomy import field_of_view, object_slice, slice_positions

    preset = PRESETS["cpu_abdomen"]
    assert preset.target.anatomy == "abdomen" and preset.proxy.anatomy == "brain"
    positions = slice_positions(preset, "target")
    flat = {s: np.concatenate(v) for s, v in positions.items()}
    assert not set(flat["target"]) & set(flat["test"]) and not set(flat["validation"]) & set(flat["test"])
    assert not set(flat["target"]) & set(flat["validation"])
    fov, _ = field_of_view(preset.target)
    image = object_slice(preset.target, float(flat["test"][0]), (48, 48), pixel_mm=fov / 48)
    assert image.shape == (48, 48) and image.min() >= 0
    # a real body: most of the field of view is tissue, with structure (not a flat phantom)
    assert (image > 0.1 * image.max()).mean() > 0.3 and image.std() > 0.15 * image.mean()
    with pytest.raises(ValueError, match="flip angles"):
        object_slice(dataclasses.replace(preset.target, contrast="t2"), float(flat["test"][0]), (8, 8), 1.0)


def test_extra_contrasts_repeat_training_and_validation_positions_never_test(tmp_path, monkeypatch):
    """An abdomen preset with another flip angle: the training and validation slabs are acquired again at
    the same positions (same anatomy, other contrast, own draws); the test section keeps one contrast."""
    abdomen = dataclasses.replace(PRESETS["cpu_abdomen"].target, num_coils=2)
    preset = dataclasses.replace(PRESETS["tiny"], name="tiny_fa", target=abdomen, extra_contrasts=("fa2",),
                                 proxy=dataclasses.replace(PRESETS["tiny"].proxy, num_coils=2))
    monkeypatch.setitem(PRESETS, "tiny_fa", preset)
    manifest = generate("tiny_fa", tmp_path / "data", seed=0, manifest_path=tmp_path / "m.json")
    counts = {s: len(_files(manifest, s)) for s in SECTIONS}
    assert counts == {"proxy": 2, "target": 4, "target_reference": 4, "validation": 2, "test": 1}
    refs = []
    for path in _files(manifest, "target_reference"):
        with h5py.File(path) as f:
            refs.append(f["reconstruction_rss"][()])
    # volume k * 2 + j is slab j at contrast k: the same slab at two flip angles is the same anatomy (closer
    # than the other slab at the same flip angle), but not the same image
    same_slab = np.corrcoef(refs[0].ravel(), refs[2].ravel())[0, 1]
    other_slab = np.corrcoef(refs[0].ravel(), refs[1].ravel())[0, 1]
    assert same_slab > other_slab and not np.allclose(refs[0], refs[2])
    with pytest.raises(ValueError, match="repeat"):
        dataclasses.replace(preset, extra_contrasts=("fa15",))

import json
import logging
import shutil

import h5py
import pytest

from pipeline.engines.modes import branch_sections
from pipeline.engines.startup import ConfigError, preflight, record_skipped_files, skipped_files


def _copy_dataset(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset.parent / "data", root)
    manifest = json.loads(tiny_dataset.read_text())
    manifest["data_root"] = "data"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path, root


def test_mode_table_sections():
    assert branch_sections("jssl") == {"sl": "proxy", "ssl": "target"}
    assert branch_sections("sl_target") == {"sl": "target_reference"}
    assert branch_sections("ssl", target_section="mine") == {"ssl": "mine"}
    with pytest.raises(ValueError, match="unknown --mode 'x'"):
        branch_sections("x")
    with pytest.raises(ConfigError, match="unknown --mode 'x'"):
        preflight("x", "no_manifest.json")


def test_preflight_names_unknown_networks_and_sizes(tiny_dataset):
    with pytest.raises(ConfigError, match=r"unknown --network 'unet3d'; choose one of \['varnet', 'vsharp'\]"):
        preflight("sl", tiny_dataset, network="unet3d")
    with pytest.raises(ConfigError, match="unknown --network_size 'huge' for varnet"):
        preflight("sl", tiny_dataset, network_size="huge")


def test_preflight_accepts_a_good_setup_and_creates_nothing(tiny_dataset, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow/m.db"
    preflight("jssl", tiny_dataset, network_size="tiny", tracking_uri=uri, ratio={"sl": 1, "ssl": 1})
    assert list(tmp_path.iterdir()) == []


def test_preflight_refuses_an_undersampled_target_without_its_mask(tiny_dataset, tmp_path):
    manifest, root = _copy_dataset(tiny_dataset, tmp_path)
    bad = root / "target_train" / "target_001.h5"
    with h5py.File(bad, "a") as f:
        del f["mask"]
    with pytest.raises(ConfigError) as err:
        preflight("ssl", manifest)
    message = str(err.value)
    assert message.startswith("error: ") and str(bad) in message and "no 'mask' dataset" in message
    preflight("sl", manifest)  # the supervised branch does not read the target section


@pytest.mark.parametrize("mode", ["jssl", "ssl"])
def test_preflight_needs_target_data_for_self_supervision(tiny_dataset, tmp_path, mode):
    manifest, _ = _copy_dataset(tiny_dataset, tmp_path)
    content = json.loads(manifest.read_text())
    del content["target"]
    manifest.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="section 'target' not found"):
        preflight(mode, manifest)


def test_preflight_needs_proxy_data_for_jssl(tiny_dataset, tmp_path):
    manifest, _ = _copy_dataset(tiny_dataset, tmp_path)
    content = json.loads(manifest.read_text())
    content["proxy"] = []
    manifest.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="section 'proxy' is empty"):
        preflight("jssl", manifest)


def test_preflight_names_a_corrupt_file(tiny_dataset, tmp_path):
    manifest, root = _copy_dataset(tiny_dataset, tmp_path)
    bad = root / "validation" / "validation_000.h5"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="validation_000.h5"):
        preflight("sl", manifest)


def test_preflight_refuses_a_tracking_uri_that_cannot_open(tiny_dataset):
    with pytest.raises(ConfigError, match="--tracking_uri"):
        preflight("sl", tiny_dataset, tracking_uri="sqlite:////etc/hostname/mlruns.db")


def test_preflight_reports_shape_groups_and_skips_bad_data(tiny_dataset, tmp_path, caplog):
    """Skip mode reads the data once: a NaN inside a slice is listed at start-up and written for the tracker."""
    manifest, root = _copy_dataset(tiny_dataset, tmp_path)
    bad = root / "proxy" / "proxy_001.h5"
    with h5py.File(bad, "a") as f:
        kspace = f["kspace"][2]
        kspace[0, 5, 5] = float("nan")
        f["kspace"][2] = kspace
    preflight("sl", manifest, batch_size=2)  # raise mode checks headers only: the NaN is found when read
    caplog.clear()  # the raise-mode check above may already have logged (when another test set INFO)
    with caplog.at_level(logging.INFO, logger="pipeline.engines.startup"):
        with pytest.warns(UserWarning, match=r"skipped 1 bad file\(s\):\n  .*proxy_001\.h5, slice 2: NaN"):
            lines = preflight("sl", manifest, on_bad_file="skip", batch_size=2)
    assert not (tmp_path / "out").exists()  # the check creates nothing; the bundle records the list
    record_skipped_files(tmp_path / "out", lines)
    assert skipped_files(tmp_path / "out") == [f"{bad}, slice 2: NaN or Inf values in 'kspace'"]
    groups = [r.message for r in caplog.records if r.message.startswith("section 'proxy'")]
    assert groups == [
        "section 'proxy': 1 file(s), 3 slices, 1 skipped; shape groups: proxy (4, 128, 72) recon 64x64: 3 slices"
    ]
    assert preflight("sl", manifest, on_bad_file="skip") == lines  # cached, and no second warning
    record_skipped_files(tmp_path / "clean", preflight("sl", tiny_dataset))
    assert skipped_files(tmp_path / "clean") == [] and (tmp_path / "clean" / "skipped_files.txt").is_file()


def test_preflight_checks_proxy_weights_and_batches(tiny_dataset, tmp_path):
    manifest, _ = _copy_dataset(tiny_dataset, tmp_path)
    content = json.loads(manifest.read_text())
    content["proxy"] = [{**item, "source": name} for item, name in zip(content["proxy"], ("knee", "brain"))]
    manifest.write_text(json.dumps(content))
    preflight("sl", manifest, proxy_weights={"knee": 1, "brain": 2}, batch_size=2)
    with pytest.raises(ConfigError, match=r"--proxy_weights for section 'proxy': .*missing \['brain'\]"):
        preflight("sl", manifest, proxy_weights={"knee": 1}, batch_size=2)
    with pytest.raises(ConfigError, match=r"--batch_size for section 'proxy': no shape group holds a complete batch"):
        preflight("sl", manifest, batch_size=4)


def test_a_data_error_during_a_run_exits_with_one_line(tmp_path):
    from ignite.engine import Engine

    from pipeline.data.errors import DataError
    from pipeline.engines.startup import DataErrorExit

    def step(engine, batch):
        raise RuntimeError("applying transform") from DataError(tmp_path / "a.h5", "NaN or Inf values in 'kspace'", 4)

    engine = Engine(step)
    DataErrorExit().attach(engine)
    with pytest.raises(ConfigError) as err:
        engine.run([0], max_epochs=1)
    assert str(err.value) == f"error: {tmp_path / 'a.h5'}, slice 4: NaN or Inf values in 'kspace'"
    other = Engine(lambda e, b: 1 / 0)
    DataErrorExit().attach(other)
    with pytest.raises(ZeroDivisionError):
        other.run([0], max_epochs=1)


def test_inference_on_a_folder_needs_no_manifest(tmp_path):
    assert preflight("eval", None, sections=()) == []
    with pytest.raises(ConfigError, match="^error: manifest None does not exist: set --manifest"):
        preflight("eval", None, sections=("test",))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_of_another_size_stop_the_start_up_with_one_line(tmp_path, suffix):
    import torch
    from safetensors.torch import save_file

    from pipeline.networks import build_network

    path = tmp_path / f"model{suffix}"
    state = build_network("varnet", "tiny").state_dict()
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    preflight("eval", None, network_size="tiny", ckpt_path=path, sections=())
    with pytest.raises(ConfigError) as err:
        preflight("eval", None, network_size="demo", ckpt_path=path, sections=())
    message = str(err.value)
    assert message.startswith(f"error: checkpoint {path} (for --network varnet --network_size demo) was made for a "
                              "different network architecture; ") and "\n" not in message
    path.write_bytes(b"not weights")
    with pytest.raises(ConfigError, match=f"^error: checkpoint {path} cannot be read as weights: "):
        preflight("eval", None, network_size="tiny", ckpt_path=path, sections=())

"""Settings given on the bundle command line keep the type of their config default."""

from __future__ import annotations

from pathlib import Path

from pipeline.engines import keep_text_settings

TRAIN = str(Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet" / "configs" / "train.json")
MAIN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"


def test_text_settings_typed_by_fire_are_put_back_as_given():
    resolved = {"already": 1}
    argv = [MAIN, "run", "--config_file", TRAIN, "--run_name", "1e5", "--experiment_name=2024", "--mode", "1",
            "--target_section", "0x10", "--learning_rate", "1e-3", "--readout_crop", "True", "--data_root", "None",
            "--schedule", "['sl', 'ssl']", "--manifest", "study.json", "--seed", "7"]
    restored = keep_text_settings(resolved, argv)
    assert restored == {"run_name": "1e5", "experiment_name": "2024", "mode": "1", "target_section": "0x10"}
    assert resolved == {"already": 1, **restored}  # numbers, booleans, None, lists and plain text untouched


def test_other_command_lines_are_left_alone():
    assert keep_text_settings({}, ["python", "-m", "pytest"]) == {}
    assert keep_text_settings({}, [MAIN, "ckpt_export", "--run_name", "1e5"]) == {}
    assert keep_text_settings({}, [MAIN, "run", "--run_name", "1e5"]) == {}  # no config file: nothing to compare

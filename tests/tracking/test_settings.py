"""Params come from the resolved bundle config, overrides included, without a hand-written list."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monai.bundle import ConfigParser, ConfigWorkflow, ReferenceResolver

from pipeline.tracking import code_version, loggable_settings

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet" / "configs"


def test_the_bundle_reaches_the_resolved_config_as_local_refs():
    # the tracker item's "$__local_refs" names MONAI's table of resolved items; a rename would show here
    assert ReferenceResolver._vars == "__local_refs"
    parser = ConfigParser({"a": 2, "b": "$@a * 3", "live": "$__local_refs"})
    live = parser.get_parsed_content("live")
    parser.get_parsed_content("b")
    assert live["b"] == 6  # the same dict keeps filling: read it when the run starts


def test_settings_keep_plain_values_and_drop_objects_and_unset():
    config = {"acceleration": 4, "center_fraction": 0.08, "schedule": ["sl", "ssl"], "nested": {"a": [1, {"b": 2}]},
              "device": object(), "losses": {"sl": object()}, "run_name": None, "initialize::0": 1, "_meta_": {}}
    assert loggable_settings(config) == {"acceleration": "4", "center_fraction": "0.08",
                                         "nested": "{'a': [1, {'b': 2}]}", "schedule": "['sl', 'ssl']"}


def test_train_json_logs_every_setting_and_the_overrides(tiny_dataset, tmp_path):
    """The real train.json, overrides as ``python -m monai.bundle run --key value`` passes them, one iteration."""
    overrides = {
        "manifest": str(tiny_dataset), "output_dir": str(tmp_path), "model_path": str(tmp_path / "model.pt"),
        "bundle_root": str(CONFIGS.parent), "generate_demo_data": False, "network_size": "tiny", "num_workers": 0,
        "batch_size": 1, "max_epochs": 1, "epoch_length": 1, "val_interval": 100, "checkpoint_interval": 100,
        "learning_rate": 0.0005, "unused_setting": 7,
        "tracker#backend": {"_target_": "tests.tracking.test_base.MemoryTracker"},
    }
    workflow = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), meta_file=str(CONFIGS / "metadata.json"),
                              logging_file=False, workflow_type=None, **overrides)
    workflow.initialize()
    workflow.run()
    backend = workflow.parser.get_parsed_content("tracker").backend
    [params] = backend.payloads("params")
    assert params["readout_crop"] == "False" and params["override_stored_masks"] == "False"
    assert params["target_section"] == "target" and params["sl_loss_weights"].startswith("{'l1': 1.0")
    assert params["learning_rate"] == "0.0005" and params["network_size"] == "tiny"  # overrides
    assert params["schedule"] == "['sl', 'ssl']" and int(params["num_parameters"]) > 0  # derived, explicit
    assert params["network"] == "varnet"  # the network's registry name is a setting
    assert "device" not in params and "model" not in params and "trainer" not in params
    assert "unused_setting" not in params  # read by nothing, so not resolved: cannot change results
    assert backend.payloads("end") == ["FINISHED"]


def test_code_version_names_the_commit_of_this_checkout():
    repo = CONFIGS.parents[2]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    assert head.stdout.strip() and head.stdout.strip() in code_version()

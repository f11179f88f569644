"""The bundle's config layering, checked by parsing the configs (fast; the CLI runs are in test_jssl_varnet)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from pipeline.data import LoadSlice, load_manifest
from pipeline.keys import Keys

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet" / "configs"


def _parser(*files: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_self_supervised_chain_never_overwrites_the_stored_kspace(tiny_dataset):
    item = load_manifest(tiny_dataset, "target")[0]
    sample = LoadSlice()(item["file"], 1, "target")
    stored = sample[Keys.KSPACE].clone()
    chain = _parser("train.json", manifest=str(tiny_dataset)).get_parsed_content("ssl_transforms")
    out = chain(sample)
    scale = out[Keys.SCALE]
    torch.testing.assert_close(out[Keys.KSPACE] * scale, stored)  # as stored, only normalised
    theta, lam = out[Keys.INPUT_MASK], out[Keys.LOSS_MASK]
    assert not (theta & lam).any() and torch.equal(theta | lam, out[Keys.MASK])
    torch.testing.assert_close(out[Keys.MASKED_KSPACE], out[Keys.KSPACE] * theta)


def test_overlays_are_short_and_share_the_preprocessing_chain():
    evaluate = json.loads((CONFIGS / "evaluate.json").read_text())
    inference = json.loads((CONFIGS / "inference.json").read_text())
    assert set(evaluate) <= {"output_dir", "baselines", "metrics", "handlers"}
    assert "preprocessing" not in inference and "network_def" not in inference
    parser = _parser("train.json", "inference.json", "evaluate.json")
    assert parser["dataset"]["transform"] == "@preprocessing" == parser["val_dataset"]["transform"]
    # the training network definition, compiled (or not) by the same `compile` setting as in training
    assert parser["model"]["network"] == "$pipeline.networks.compile_unets(@network_def.to(@device), @compile)"


def test_handler_order_logs_before_checkpointing_and_exports_before_the_run_ends():
    """A kill between a checkpoint and the tracker's log of that step would lose the step from MLflow."""
    train = json.loads((CONFIGS / "train.json").read_text())
    names = [h["_target_"] if isinstance(h, dict) else h for h in train["trainer"]["train_handlers"]]
    assert names.index("@tracker") < names.index("pipeline.handlers.AtomicCheckpointSaver")
    assert names.index("pipeline.handlers.ExportBundleWeights") < names.index("@tracker")  # model.pt is logged
    assert train["checkpoint_state"]["train_loader"] == "@train_loader"


def test_checkpoint_state_is_one_item_and_rank0_flags_live_in_the_multi_gpu_overlay():
    train = json.loads((CONFIGS / "train.json").read_text())
    handlers = {h["_target_"] if isinstance(h, dict) else h: h for h in train["trainer"]["train_handlers"]}
    assert handlers["pipeline.handlers.ResumeFromLatestCheckpoint"]["load_dict"] == "@checkpoint_state"
    assert handlers["pipeline.handlers.AtomicCheckpointSaver"]["save_dict"] == "@checkpoint_state"
    assert "_disabled_" not in json.dumps(train["trainer"])
    overlay = json.loads((CONFIGS / "multi_gpu.json").read_text())
    flagged = [key for key in overlay if key.startswith("trainer#train_handlers#")]
    parser = _parser("train.json", "multi_gpu.json")
    targets = {parser[key.rsplit("#", 1)[0]]["_target_"] for key in flagged}
    assert targets == {
        "pipeline.handlers.AtomicCheckpointSaver",
        "pipeline.handlers.ExportBundleWeights",
        "pipeline.handlers.TrainingProgress",
    }

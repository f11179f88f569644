"""One federated site's trainer outside NVFlare (fast): every failure to set up or to take the global weights is
a one-line SiteError naming the site, so ``--on_bad_site skip`` can leave the site out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pipeline.federated.job import demo_sites
from pipeline.federated.site import SiteError, SiteTrainer
from pipeline.networks import build_network

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "jssl_varnet"
TINY = {"network_size": "tiny", "batch_size": 2, "num_workers": 0}


def _site(tiny_dataset: Path, tmp_path: Path, bundle: Path = BUNDLE, **overrides) -> SiteTrainer:
    manifest = demo_sites(tiny_dataset, tmp_path / "layout", target_sites=1)["target-1"]["manifest"]
    return SiteTrainer("target-1", "ssl", manifest, tmp_path / "site", 2, bundle, {**TINY, **overrides})


def test_a_bundle_whose_config_does_not_parse_is_the_sites_failure(tiny_dataset, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("model.*"))
    (bundle / "configs" / "federated.json").write_text("{ not json")
    with pytest.raises(SiteError, match="^site target-1: its trainer could not be built: ") as err:
        _site(tiny_dataset, tmp_path, bundle)
    assert "\n" not in str(err.value)


def test_a_trainer_that_cannot_be_built_is_the_sites_failure(tiny_dataset, tmp_path):
    with pytest.raises(SiteError, match="^site target-1: its trainer could not be built: ") as err:
        _site(tiny_dataset, tmp_path, learning_rate="fast")
    assert "\n" not in str(err.value)


def test_global_weights_of_another_network_are_refused_by_the_checked_loader(tiny_dataset, tmp_path):
    site = _site(tiny_dataset, tmp_path)
    other = build_network("varnet", "demo").state_dict()
    with pytest.raises(SiteError, match="^site target-1: checkpoint of the global model was made for a different "
                                        "network architecture; .*shape mismatch"):
        site.train_round(other)
    weights = site.train_round({k: v.clone() for k, v in site.network.state_dict().items()})
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())

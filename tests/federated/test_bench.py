"""The federated comparison benchmark scores every model with the quality benchmark's evaluation rule."""

from __future__ import annotations

from pathlib import Path

from pipeline.bench.quality.methods import CENTER_FRACTIONS
from pipeline.federated.bench import ACCELERATION, score_overrides


def test_scoring_uses_fixed_equispaced_masks_of_the_benchmark_acceleration(tmp_path):
    model = tmp_path / "model.pt"
    overrides = score_overrides(Path("bundles/jssl_varnet"), Path("data_manifests/demo.json"), "tiny", model,
                                tmp_path / "eval")
    assert overrides["ckpt_path"] == str(model)
    assert overrides["section"] == "test"
    assert (overrides["mask_type"], overrides["acceleration"]) == ("equispaced", ACCELERATION)
    assert overrides["center_fraction"] == CENTER_FRACTIONS[ACCELERATION]
    assert overrides["override_stored_masks"] is True
    assert overrides["baselines"] == ["zero_filled"]

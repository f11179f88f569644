"""Smoke test of the speed / memory benchmark CLI (``--quick``: tiny sizes; checks files and keys, not numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bench import speed


@pytest.mark.slow
def test_quick_run_writes_report(tmp_path: Path) -> None:
    speed.main(["--quick", "--threads", "1", "--out", str(tmp_path)])

    report = json.loads((tmp_path / "speed.json").read_text())
    for key in ("meta", "engine", "vs_monai", "inference", "memory", "gpu", "summary"):
        assert key in report, key
    for key in ("cpu", "cpu_count", "torch", "monai", "torch_threads"):
        assert key in report["meta"], key
    assert report["meta"]["quick"] is True
    assert {"ratio", "engine_s", "bare_s"} <= set(report["engine"]["overhead"])
    assert "wait_fraction" in report["engine"]["data_wait"]
    assert {"forward", "train"} <= set(report["vs_monai"][0])
    assert "ratio" in report["inference"]["demo"]
    assert {"no_checkpoint", "checkpoint", "ratio"} <= set(report["memory"])
    assert "activation_GiB" in report["memory"]["checkpoint"], report["memory"]["checkpoint"]
    assert report["gpu"].get("available") in (True, False)
    assert report["summary"] and all({"measurement", "ratio", "target", "met"} <= set(r) for r in report["summary"])

    table = (tmp_path / "speed.md").read_text()
    assert "| measurement |" in table
    assert (tmp_path / "speed.png").stat().st_size > 0


def test_paired_interleaves_and_reports_ratio() -> None:
    calls: list[str] = []
    result = speed.paired(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {"a_s", "b_s", "ratio", "ratio_min", "ratio_max"} <= set(result)
    assert len(result["a_all"]) == len(result["b_all"]) == 3

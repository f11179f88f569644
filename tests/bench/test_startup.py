"""The start-up benchmark: table and JSON, and the cached run reads every record from the cache."""

from __future__ import annotations

import json

from pipeline.bench.startup import main


def test_startup_benchmark_writes_table_and_json(tmp_path, capsys):
    assert main(["--files", "12", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "startup.json").read_text())
    assert [(r["check"], r["run"]) for r in result["rows"]] == [
        ("header check", "first run"), ("header check", "cached"),
        ("header + data check (skip mode)", "first run"), ("header + data check (skip mode)", "cached"),
    ]
    assert [r["cache_hits"] for r in result["rows"]] == [0, 12, 0, 12]
    assert "| header check | cached | 12 |" in capsys.readouterr().out
    assert (tmp_path / "startup.md").is_file()

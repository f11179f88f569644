"""Smoke test of the reconstruction-quality benchmark CLI (``--quick``: tiny preset, a few iterations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bench import quality
from pipeline.bench.quality import methods, tables


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        quality.parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--iterations", "--seeds", "--accelerations", "--network-size", "--readout-crop",
                   "--set", "--out", "--bundle", "--manifest"):
        assert option in text
    assert "62.5 % of the budget" in " ".join(text.split())  # profile descriptions, '%' and all


def test_parse_args_defaults_and_errors():
    args = quality.parse_args(["--set", "ssdu_q=0.5", "--set", 'sl_ssl_ratio={"sl": 1, "ssl": 2}'])
    assert args.accelerations == [4, 8] and args.seeds == [0, 1, 2]
    assert args.iterations == methods.DEFAULT_ITERATIONS and args.network_size == "demo"
    assert args.overrides == {"ssdu_q": 0.5, "sl_ssl_ratio": {"sl": 1, "ssl": 2}}
    quick = quality.parse_args(["--quick"])
    assert quick.accelerations == [4] and quick.seeds == [0] and quick.network_size == "tiny"
    with pytest.raises(SystemExit):
        quality.parse_args(["--accelerations", "5"])


def test_methods_are_the_baselines_and_the_training_modes():
    from pipeline.baselines import BASELINES
    from pipeline.engines.modes import MODES

    assert set(methods.CLASSICAL) == set(BASELINES) and set(methods.LEARNED) == set(MODES)
    assert methods.METHODS == ("zero_filled", "sense", "compressed_sensing", "sl", "ssl", "jssl", "sl_target")


def test_missing_bundle_or_manifest_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root: the default bundle is not there
    with pytest.raises(SystemExit) as exc:
        quality.main([])
    message = str(exc.value.code)
    assert "\n" not in message and "bundles/jssl_varnet" in message and "--bundle" in message
    (tmp_path / "bundle").mkdir()
    with pytest.raises(SystemExit) as exc:
        quality.main(["--bundle", "bundle"])
    message = str(exc.value.code)
    assert "\n" not in message and "data_manifests/demo.json" in message and "--manifest" in message


def test_aggregate_mean_std_over_seeds_and_comparison():
    learned = [
        {"method": "ssl", "acceleration": 8, "seed": s, "summary": {"nmse": 0.02, "psnr": 30.0 + s, "ssim": 0.80}}
        for s in range(3)
    ] + [
        {"method": "jssl", "acceleration": 8, "seed": s, "summary": {"nmse": 0.01, "psnr": 32.0, "ssim": 0.85}}
        for s in range(3)
    ]
    classical = {8: {"summary": {"zero_filled": {"nmse": 0.1, "psnr": 20.0, "ssim": 0.5}}}}
    table = tables.aggregate(classical, learned, ["zero_filled", "ssl", "jssl"], [8])
    assert table["ssl"]["8x"]["psnr"] == pytest.approx(31.0) and table["ssl"]["8x"]["psnr_std"] == pytest.approx(1.0)
    assert table["zero_filled"]["8x"]["ssim_std"] == 0.0 and table["jssl"]["8x"]["n"] == 3
    (comp,) = tables.comparisons(table, [8])
    assert comp["jssl_beats_ssl"] and comp["ssim_diff"] == pytest.approx(0.05)
    assert comp["psnr_diff_db"] == pytest.approx(1.0)


@pytest.mark.slow
def test_quick_run_writes_json_markdown_and_figure(tmp_path):
    out = tmp_path / "out"
    assert quality.main(["--quick", "--out", str(out), "--work-dir", str(tmp_path / "runs")]) == 0
    report = json.loads((out / "quality.json").read_text())
    assert set(report["table"]) == set(methods.METHODS)
    for method in methods.METHODS:
        row = report["table"][method]["4x"]
        assert 0 < row["ssim"] <= 1 and row["nmse"] > 0
    assert {r["method"] for r in report["learned"]} == set(methods.LEARNED)
    assert all(r["train_seconds"] > 0 for r in report["learned"])
    assert report["machine"]["cpu_count"] and report["machine"]["torch"]
    assert len(report["jssl_vs_ssl"]) == 1
    text = (out / "quality.md").read_text()
    for method in methods.METHODS:
        assert f"| {methods.LABELS[method]} |" in text
    png = (out / "quality.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # the bundle's own weights are never touched: every run wrote its model under the work dir
    assert all(str(tmp_path / "runs") in r["model_path"] for r in report["learned"])
    # a second start reuses the finished runs (same settings): no retraining
    assert quality.main(["--quick", "--out", str(out), "--work-dir", str(tmp_path / "runs")]) == 0
    again = json.loads((out / "quality.json").read_text())
    assert [r["train_seconds"] for r in again["learned"]] == [r["train_seconds"] for r in report["learned"]]


def test_profile_defaults_scenarios_and_named_ablation_rows():
    from pipeline.bench.quality.profiles import ABLATIONS, PROFILES, SCENARIOS

    args = quality.parse_args(["--profile", "cpu"])
    cpu = PROFILES["cpu"]
    assert args.accelerations == [4, 8, 16] and args.seeds == [0, 1, 2] and args.iterations == cpu.iterations
    assert args.network_size == cpu.network_size and args.val_interval == cpu.iterations // cpu.val_points
    assert args.batch_size == cpu.batch_size and quality.parse_args([]).batch_size == 2
    assert args.scenarios == list(SCENARIOS) and args.ablation == list(ABLATIONS)
    one = quality.parse_args(["--profile", "cpu", "--ablation", "q_0.2"])
    assert one.scenarios == [] and one.ablation == ["q_0.2"]
    assert quality.parse_args(["--profile", "cpu", "--ablation", "none"]).ablation == []
    with pytest.raises(SystemExit):
        quality.parse_args(["--profile", "cpu", "--quick"])


def test_a_profile_decays_the_learning_rate_at_the_same_fraction_of_any_budget():
    args = quality.parse_args(["--profile", "cpu"])
    assert args.overrides == {"warmup_iterations": 50, "lr_step_iterations": 200, "lr_gamma": 0.1}  # decay at 250
    longer = quality.parse_args(["--profile", "cpu", "--iterations", "800", "--set", "lr_gamma=0.5"])
    assert longer.overrides == {"warmup_iterations": 100, "lr_step_iterations": 400, "lr_gamma": 0.5}
    assert quality.parse_args(["--profile", "cpu64"]).overrides == {}  # its tables keep train.json's schedule
    train = json.loads((Path(__file__).parents[2] / "bundles/jssl_varnet/configs/train.json").read_text())
    assert set(args.overrides) <= set(train)


def test_every_ablation_override_is_a_train_setting():
    """A typo in an ablation row would otherwise only show as a bundle error after the runs before it."""
    from pipeline.bench.quality.profiles import ABLATIONS

    train = Path(__file__).parents[2] / "bundles" / "jssl_varnet" / "configs" / "train.json"
    settings = json.loads(train.read_text())
    for ablation in ABLATIONS.values():
        assert set(ablation.overrides) <= set(settings), ablation.name


def test_ablation_manifests_keep_the_files_and_change_only_their_section(tmp_path):
    from pipeline.bench.quality.profiles import ABLATIONS, ablation_manifest

    data = {"name": "x", "data_root": "data", "proxy": [{"file": f"proxy/p{i}.h5"} for i in range(4)],
            "target": [{"file": "t/t0.h5"}], "validation": [], "test": [],
            "target_reference": [{"file": "r/t0.h5"}]}
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(data))
    assert ablation_manifest(manifest, ABLATIONS["q_0.2"], tmp_path / "out") == manifest
    few = json.loads(ablation_manifest(manifest, ABLATIONS["proxy_25"], tmp_path / "out").read_text())
    assert few["proxy"] == data["proxy"][:1]
    assert (tmp_path / "out" / few["data_root"]).resolve() == (tmp_path / "data").resolve()
    every = json.loads(ablation_manifest(manifest, ABLATIONS["ssl_all"], tmp_path / "out").read_text())
    assert every["target_reference"] == data["target_reference"] + data["proxy"]
    assert ABLATIONS["ssl_all"].mode == "ssl"


def test_targets_need_non_overlapping_std_and_measure_the_gap_closed():
    def row(ssim, psnr, nmse, std=0.01):
        return {"8x": {"ssim": ssim, "psnr": psnr, "nmse": nmse, "ssim_std": std, "psnr_std": std * 10,
                       "nmse_std": std / 10, "n": 3}}

    table = {"zero_filled": row(0.60, 20.0, 0.10, 0.0), "sl": row(0.70, 23.0, 0.05),
             "ssl": row(0.65, 21.0, 0.08), "jssl": row(0.72, 24.0, 0.04), "sl_target": row(0.75, 25.0, 0.03)}
    (entry,) = tables.targets(table, [8])
    assert entry["jssl_vs_ssl"]["beyond_std"] and not entry["jssl_vs_sl"]["beyond_std"]
    assert entry["jssl_vs_sl"]["better"] and entry["ssl_above_zero_filled"]
    assert entry["gap_closed"] == pytest.approx(0.7)
    assert "70 %" in tables.target_lines([entry])[0]
    # one seed: a zero std is no spread, so no verdict beyond it
    one = {m: {"8x": {**r["8x"], "n": 1, "ssim_std": 0.0, "psnr_std": 0.0, "nmse_std": 0.0}} for m, r in table.items()}
    (single,) = tables.targets(one, [8])
    assert not single["jssl_vs_ssl"]["beyond_std"] and single["jssl_vs_ssl"]["seeds"] == 1
    assert "one seed, no ±1 std verdict" in tables.target_lines([single])[0]


def test_late_gain_reads_the_last_fifth_of_the_budget():
    from pipeline.bench.quality.runs import late_gain

    assert late_gain([[50, 0.5], [100, 0.6], [160, 0.70], [200, 0.703]], 200) == pytest.approx(0.003)
    assert late_gain([[200, 0.7]], 200) is None


def test_run_digest_hashes_contents_not_paths(tmp_path):
    """A finished run is reused from another checkout: the digest reads the bundle configs and the manifest,
    not where they are; a changed manifest or config is a new run; the tracking folder changes nothing."""
    import shutil

    from pipeline.bench.quality.runs import _digest, finished_result

    checkouts = []
    for name in ("a", "b"):
        bundle = tmp_path / name / "bundle"
        shutil.copytree("bundles/jssl_varnet/configs", bundle / "configs")
        (tmp_path / name / "m.json").write_text('{"proxy": []}')
        checkouts.append({"bundle": str(bundle), "manifest": str(tmp_path / name / "m.json"), "iterations": 4,
                          "tracking_dir": str(tmp_path / name / "mlflow")})
    a, b = checkouts
    assert _digest(a) == _digest(b)
    assert _digest({**a, "iterations": 5}) != _digest(a)
    (tmp_path / "b" / "m.json").write_text('{"proxy": [{"file": "p.h5"}]}')
    assert _digest(a) != _digest(b)
    (tmp_path / "b" / "m.json").write_text('{"proxy": []}')
    train = tmp_path / "b" / "bundle" / "configs" / "train.json"
    train.write_text(train.read_text().replace('"learning_rate": 0.001', '"learning_rate": 0.002'))
    assert _digest(a) != _digest(b)

    # a reused result points at the folder it is read from, not where it was made
    moved = tmp_path / "moved" / "sl_8x_seed0"
    moved.mkdir(parents=True)
    (moved / "result.json").write_text(json.dumps({"digest": "d", "run_dir": "/old/sl_8x_seed0",
                                                   "model_path": "/old/sl_8x_seed0/model.pt"}))
    result = finished_result(moved / "result.json", "d")
    assert result["run_dir"] == str(moved) and result["model_path"] == str(moved / "model.pt")
    assert finished_result(moved / "result.json", "other") is None


# the settings of a run that decide its digest, as one process of --jobs parses them
_RUN_SETTINGS = ("profile", "accelerations", "iterations", "val_interval", "network_size", "batch_size",
                 "readout_crop", "mask_type", "num_workers", "overrides", "threads", "fresh")


def test_jobs_split_the_profile_by_seed_with_the_parents_settings(tmp_path):
    argv = ["--profile", "cpu", "--jobs", "2", "--work-dir", str(tmp_path / "w"), "--set", "ssdu_q=0.3",
            "--set", 'sl_ssl_ratio={"sl": 1, "ssl": 2}', "--iterations", "80"]
    args = quality.parse_args(argv)
    bundle = Path("bundles/jssl_varnet").resolve()
    commands = quality.process_commands(args, bundle)
    names = [name for name, _ in commands]
    assert names == [f"{s}_seed{k}" for s in ("abdomen", "brain") for k in (0, 1, 2)] + [
        f"ablations_seed{k}" for k in (0, 1, 2)]
    children = {name: quality.parse_args(child) for name, child in commands}
    for name, child in children.items():
        assert {k: getattr(child, k) for k in _RUN_SETTINGS} == {k: getattr(args, k) for k in _RUN_SETTINGS}, name
        assert child.jobs == 1 and child.work_dir == (tmp_path / "w").resolve() and child.bundle == bundle
        assert child.seeds == [int(name[-1])] and child.out == (tmp_path / "w" / "reports" / name).resolve()
    # the deterministic baselines run once per scenario, in the first seed's process
    assert children["abdomen_seed0"].methods == list(methods.METHODS)
    assert children["brain_seed2"].methods == list(methods.LEARNED) and children["brain_seed2"].scenarios == ["brain"]
    assert children["ablations_seed1"].scenarios == [] and children["ablations_seed1"].ablation == args.ablation
    assert children["abdomen_seed1"].ablation == []
    with pytest.raises(SystemExit):
        quality.parse_args(["--jobs", "2"])  # needs --profile
    with pytest.raises(SystemExit):
        quality.parse_args(["--profile", "cpu", "--jobs", "0"])


def test_a_failed_process_is_named_with_its_exit_code_and_log(tmp_path):
    from pipeline.bench.quality.cli import _run_processes

    failed = _run_processes([("bad", ["--no-such-option"]), ("help", ["--help"])], jobs=2, log_dir=tmp_path)
    assert failed == [f"bad (exit code 2, log {tmp_path / 'bad.log'})"]
    assert "unrecognized arguments: --no-such-option" in (tmp_path / "bad.log").read_text()
    assert "--jobs" in (tmp_path / "help.log").read_text()


@pytest.mark.slow
def test_jobs_run_processes_then_report_every_seed(tmp_path):
    """Two real processes (one per seed) of the 64 px profile on its simulated data, then the combined report."""
    out = tmp_path / "out"
    argv = ["--profile", "cpu64", "--scenarios", "abdomen", "--ablation", "none", "--accelerations", "8",
            "--methods", "zero_filled", "ssl", "--seeds", "0", "1", "--iterations", "2", "--jobs", "2",
            "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "w"), "--out", str(out)]
    assert quality.main(argv) == 0
    report = json.loads((out / "quality.json").read_text())
    learned = report["scenarios"]["abdomen"]["learned"]
    assert sorted((r["method"], r["seed"]) for r in learned) == [("ssl", 0), ("ssl", 1)]
    assert report["scenarios"]["abdomen"]["table"]["zero_filled"]["8x"]["ssim"] > 0
    assert sorted(p.name for p in (tmp_path / "w" / "logs").iterdir()) == ["abdomen_seed0.log", "abdomen_seed1.log"]
    assert "| SSL on target only |" in (out / "quality.md").read_text()


@pytest.mark.parametrize("argv", [
    [],
    ["--iterations", "100"],
    ["--scenarios", "abdomen", "--ablation", "none", "--accelerations", "8", "--mask-type", "random", "--seeds", "0",
     "--set", "network=vsharp", "--set", 'sl_ssl_ratio={"sl": 1, "ssl": 2}', "--readout-crop", "false",
     "--set", 'run_name="true"'],
    ["--ablation", "q_0.2", "vsharp", "--methods", "ssl", "jssl", "--set", "lr_gamma=0.5"],
])
def test_the_reproduce_command_parses_back_to_the_same_runs(argv):
    import shlex

    args = quality.parse_args(["--profile", "cpu", *argv])
    command = quality.reproduce_command(args)
    assert command.startswith("python -m pipeline.bench.quality --profile cpu")
    again = quality.parse_args(shlex.split(command)[3:])
    keys = (*_RUN_SETTINGS, "scenarios", "ablation", "seeds", "methods")
    assert {k: getattr(again, k) for k in keys} == {k: getattr(args, k) for k in keys}
    if not argv:
        assert command == "python -m pipeline.bench.quality --profile cpu"
    if "network=vsharp" in argv:
        assert " --set network=vsharp" in command and "--set 'sl_ssl_ratio={\"sl\": 1, \"ssl\": 2}'" in command


def test_reports_name_the_network_the_runs_trained():
    assert methods.network_label({"network_size": "tiny", "overrides": {}}) == "tiny E2E-VarNet"
    assert methods.network_label({"network_size": "tiny", "overrides": {"network": "vsharp"}}) == "tiny vSHARP"


def test_a_profile_sets_its_batch_size_and_the_option_wins(monkeypatch):
    import dataclasses

    from pipeline.bench.quality import cli
    from pipeline.bench.quality.profiles import PROFILES

    monkeypatch.setitem(cli.PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], batch_size=3))
    assert quality.parse_args(["--profile", "cpu"]).batch_size == 3
    assert quality.parse_args(["--profile", "cpu", "--batch-size", "1"]).batch_size == 1
    with pytest.raises(SystemExit):
        quality.parse_args(["--batch-size", "0"])

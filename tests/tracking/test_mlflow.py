"""The MLflow backend on a real SQLite store."""

from __future__ import annotations

import mlflow
import pytest

from pipeline.tracking import MLflowTracker, check_tracking_uri


@pytest.fixture()
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlruns.db'}"


def test_a_run_records_params_metrics_tags_and_artifacts(tmp_path, uri):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text("{}")
    (tmp_path / "grid.png").write_bytes(b"png")
    tracker = MLflowTracker(uri, experiment_name="exp")
    run_id = tracker.start("jssl-1")
    tracker.log_params({f"p{i:03d}": i for i in range(150)})  # over MLflow's 100 params per batch
    tracker.log_metrics({"loss": 0.5}, step=1)
    tracker.log_metrics({"loss": 0.25}, step=2)
    tracker.set_tags({"mode": "jssl"})
    tracker.log_artifact(tmp_path / "configs")  # a folder: its files
    tracker.log_artifact(tmp_path / "grid.png", "validation")
    tracker.end()

    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "jssl-1" and run.info.status == "FINISHED"
    assert len(run.data.params) == 150 and run.data.params["p042"] == "42"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 0.5), (2, 0.25)]
    assert run.data.tags["mode"] == "jssl"
    assert {a.path for a in client.list_artifacts(run_id)} == {"train.json", "validation"}
    assert (tmp_path / "mlflow" / "mlruns").is_dir()  # SQLite store: artifacts next to the database


def test_runs_are_found_by_id_never_by_name(uri):
    first = MLflowTracker(uri).start("same")
    assert MLflowTracker(uri).start("same") != first  # a second folder with the same name: a new run
    assert MLflowTracker(uri).start("anything", run_id=first) == first  # a resumed folder: its own run
    with pytest.raises(ValueError, match="is not in"):
        MLflowTracker(uri).start("x", run_id="0" * 32)


def test_an_extended_finished_run_reopens_and_records_changed_params(uri):
    tracker = MLflowTracker(uri)
    run_id = tracker.start("jssl")
    tracker.log_params({"max_epochs": 4, "seed": 0})
    tracker.end()
    extended = MLflowTracker(uri)
    assert extended.start("jssl", run_id=run_id) == run_id
    extended.log_params({"max_epochs": 8, "seed": 0, "new_setting": "x"})
    run = extended.client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params == {"max_epochs": "4", "seed": "0", "new_setting": "x"}
    assert run.data.tags["param_changed.max_epochs"] == "4 -> 8"


@pytest.mark.parametrize("bad, message", [("runs/mlruns", "file store"), ("file:///tmp/x", "file store"),
                                          ("sqlite:////etc/hostname/mlruns.db", "cannot open")])
def test_a_bad_tracking_uri_is_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        check_tracking_uri(bad)
    with pytest.raises(ValueError, match=message):
        MLflowTracker(bad).start("run")


def test_the_check_creates_nothing_and_the_store_opens_at_start(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/folder/mlruns.db"
    assert check_tracking_uri(uri) == uri and not (tmp_path / "new").exists()
    MLflowTracker(uri).start("run")
    assert (tmp_path / "new" / "folder" / "mlruns.db").is_file()
    with pytest.raises(ValueError, match="cannot open"):  # found only when opening (root may write to /proc)
        MLflowTracker("sqlite:////proc/forbidden/mlruns.db").start("run")


def _start_run_after(barrier, uri: str, name: str, queue) -> None:
    barrier.wait()
    try:
        tracker = MLflowTracker(uri, experiment_name="shared")
        tracker.start(name)
        tracker.end()
        queue.put((name, None))
    except Exception as err:  # noqa: BLE001 - reported to the test
        queue.put((name, repr(err)))


def test_processes_sharing_a_new_sqlite_store_each_get_their_run(tmp_path):
    """Runs of one seed in parallel processes share a store: its first opening (tables, experiment) must not
    race ('table ... already exists' / 'experiment already exists' before the lock)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlruns.db'}"
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_start_run_after, args=(barrier, uri, f"run{i}", queue)) for i in range(3)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert results == {"run0": None, "run1": None, "run2": None}
    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "shared"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run0", "run1", "run2"]
    assert {r.info.status for r in runs} == {"FINISHED"}

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


def test_start_resumes_the_unfinished_run_of_that_name_only(uri):
    first = MLflowTracker(uri).start("a")
    assert MLflowTracker(uri).start("a") == first  # after a crash: same run
    other = MLflowTracker(uri)
    assert other.start("b") != first
    other.end()
    assert MLflowTracker(uri).start("b") != other.run_id  # a finished run is not reopened


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

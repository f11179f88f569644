"""The Tracker interface and its patient-identifier guard, on an in-memory backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.tracking import Tracker


class MemoryTracker(Tracker):
    """An in-memory backend: records every hook call as ``(hook, run_id, payload)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str | None, object]] = []
        self.runs: dict[str, str] = {}  # run id -> run name

    def _start(self, run_name, run_id):
        if run_id is None:
            run_id = f"run{len(self.runs)}"
            self.runs[run_id] = run_name
        elif run_id not in self.runs:
            raise ValueError(f"run {run_id} is not in this store")
        self.calls.append(("start", run_id, run_name))
        return run_id

    def _log_params(self, params):
        self.calls.append(("params", self.run_id, params))

    def _log_metrics(self, metrics, step):
        self.calls.append(("metrics", self.run_id, (step, metrics)))

    def _set_tags(self, tags):
        self.calls.append(("tags", self.run_id, tags))

    def _log_artifact(self, path, artifact_path):
        self.calls.append(("artifact", self.run_id, (path.name, artifact_path)))

    def _end(self, run_id, status):
        self.calls.append(("end", run_id, status))

    def payloads(self, hook: str) -> list:
        return [payload for name, _, payload in self.calls if name == hook]


def test_public_methods_convert_and_reach_the_hooks(tmp_path):
    tracker = MemoryTracker()
    assert tracker.run_id is None
    assert tracker.start("jssl-1") == "run0" == tracker.run_id
    tracker.log_params({"acceleration": 4, "sl_ssl_ratio": {"sl": 1, "ssl": 1}, "data_root": None})
    tracker.log_metrics({"loss": 1, "val_ssim": 0.5}, step=3)
    tracker.set_tags({"mode": "jssl"})
    tracker.log_artifact(tmp_path / "command.txt", "inputs")
    tracker.end()
    assert tracker.run_id is None
    assert tracker.calls == [
        ("start", "run0", "jssl-1"),
        ("params", "run0", {"acceleration": "4", "sl_ssl_ratio": "{'sl': 1, 'ssl': 1}", "data_root": "None"}),
        ("metrics", "run0", (3, {"loss": 1.0, "val_ssim": 0.5})),
        ("tags", "run0", {"mode": "jssl"}),
        ("artifact", "run0", ("command.txt", "inputs")),
        ("end", "run0", "FINISHED"),
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.log_params({"patient_id": "P001"}),
        lambda t: t.log_params({"split": {"Patient": "P001"}}),  # nested, any case
        lambda t: t.log_metrics({"patient_ssim": 0.9}, step=1),
        lambda t: t.set_tags({"patient": "P001"}),
        lambda t: t.log_artifact(Path("patient_P001.png")),
        lambda t: t.log_artifact(Path("grid.png"), "patient_P001"),
    ],
)
def test_every_backend_refuses_patient_identifiers(call):
    tracker = MemoryTracker()
    tracker.start("run")
    with pytest.raises(ValueError, match="patient identifiers never leave the data"):
        call(tracker)
    assert [name for name, _, _ in tracker.calls] == ["start"]  # nothing reached the backend


def test_a_backend_cannot_replace_the_guarded_methods():
    with pytest.raises(TypeError, match=r"overrides \['log_params'\]"):

        class Leaky(MemoryTracker):
            def log_params(self, params):
                self._log_params(dict(params))


def test_logging_needs_an_active_run_and_a_known_status():
    tracker = MemoryTracker()
    with pytest.raises(RuntimeError, match="no active run"):
        tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.start("run")
    with pytest.raises(ValueError, match="status must be one of"):
        tracker.end("DONE")
    tracker.end("FAILED")
    assert tracker.payloads("end") == ["FAILED"]

"""``python -m pipeline.data.inspect``: per-section facts and problems, cached headers shared with start-up."""

from __future__ import annotations

import json

import h5py
import numpy as np

from pipeline.data.cache import default_cache_path
from pipeline.data.inspect import main


def _write(path, kspace, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        for key, value in extra.items():
            f[key] = value


def test_inspection_reports_sections_and_problems(tmp_path, capsys):
    ones = np.ones((3, 4, 16, 12), np.complex64)
    _write(tmp_path / "knee" / "a.h5", ones, reconstruction_rss=np.ones((3, 8, 8), np.float32))
    _write(tmp_path / "brain" / "a.h5", np.ones((2, 6, 16, 10), np.complex64))
    nan = ones.copy()
    nan[1, 0, 0, 0] = np.nan
    _write(tmp_path / "knee" / "nan.h5", nan)
    _write(tmp_path / "target" / "t.h5", ones * np.r_[0, 1] .repeat(6), mask=np.r_[0, 1].repeat(6).astype(bool))
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({
        "proxy": [{"file": "knee/a.h5", "source": "knee"}, {"file": "brain/a.h5", "source": "brain"},
                  {"file": "knee/nan.h5", "source": "knee"}, {"file": "knee/missing.h5"}],
        "target": [{"file": "target/t.h5"}],
    }))
    assert main(["--manifest", str(manifest), "--json", str(tmp_path / "out.json")]) == 1  # the missing file
    out = capsys.readouterr().out
    assert "section proxy: 4 files, 8 slices, 1 bad" in out
    assert "coils           4: 2, 6: 1" in out and "k-space (H x W) 16x12: 2, 16x10: 1" in out
    assert "knee (4, 16, 12) recon 12x12 (no reference, no mask): 3 slices" in out
    assert "missing.h5: file not found" in out and "stored masks    columns: 1" in out
    assert "acquired        0.500 of phase-encode columns, by the stored masks (min 0.500" in out
    assert "acquired        1.000 of phase-encode columns, by the acquirable band (min 1.000" in out
    summaries = json.loads((tmp_path / "out.json").read_text())["sections"]
    assert summaries[1]["masks"] == {"columns": 1} and summaries[0]["bad_files"] == 1
    # --data reads every slice: the NaN is found; the headers come from the cache written above
    assert main(["--manifest", str(manifest), "--sections", "proxy", "--data"]) == 1
    out = capsys.readouterr().out
    assert "nan.h5, slice 1: NaN or Inf values in 'kspace'" in out and "(3 from the cache" in out
    assert default_cache_path(manifest).is_file()


def test_unreadable_manifest(tmp_path, capsys):
    assert main(["--manifest", str(tmp_path / "none.json")]) == 2
    assert "none.json: manifest not found" in capsys.readouterr().err

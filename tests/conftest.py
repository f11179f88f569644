"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def header_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the header cache (:mod:`pipeline.data.cache`) of every test, and of the bundle runs the tests
    start, in a session folder instead of the user's cache folder."""
    folder = tmp_path_factory.mktemp("header_cache")
    previous = os.environ.get("PIPELINE_CACHE_DIR")
    os.environ["PIPELINE_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("PIPELINE_CACHE_DIR", None)
    else:
        os.environ["PIPELINE_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest path of the ``tiny`` simulated dataset (seed 0), generated once per test session.

    Layout (see :mod:`pipeline.data.simulate`): recon 64x64, k-space (4 coils, 128, 72) with a
    4-column padding band at each edge; sections ``proxy`` (2 volumes x 3 slices, fully sampled),
    ``target`` (2 x 3, subsampled 4x, per-slice ``mask``), ``validation`` and ``test`` (1 x 2 each,
    fully sampled + ``reconstruction_rss`` + per-slice ``mask``). Load it with
    :func:`pipeline.data.manifests.load_manifest`. Treat the files as read-only.
    """
    from pipeline.data.simulate import generate

    root = tmp_path_factory.mktemp("tiny_dataset")
    return generate("tiny", root / "data", seed=0, manifest_path=root / "tiny.json")

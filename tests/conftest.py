"""Shared pytest fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

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


_REFRESHES_OPERATORS = "torch.ao.quantization.fx._decomposed"  # imported by torch.compile's inductor backend


@pytest.fixture(autouse=True)
def no_torch_compile_in_the_test_process(request: pytest.FixtureRequest):
    """Fail a test that runs ``torch.compile`` in the pytest process: it must use :func:`fresh_process`.

    ``torch.compile`` imports ``torch.ao.quantization.fx._decomposed``, which adds overloads to existing
    ``quantized_decomposed`` operators; PyTorch then replaces those operator objects while ``torch.jit``'s
    builtin table keeps the ids of the freed ones (torch 2.13, ``torch._ops._refresh_packet``). A list attribute
    later allocated at such an address is taken for a builtin, and ``torch.jit.script`` fails by chance with
    "builtin cannot be used as a value" (at ``Conv2d._reversed_padding_repeated_twice``): 2 of ~6 full runs
    failed so before this guard.
    """
    loaded = _REFRESHES_OPERATORS in sys.modules
    yield
    if not loaded and _REFRESHES_OPERATORS in sys.modules:
        pytest.fail(
            f"{request.node.nodeid} imported {_REFRESHES_OPERATORS} (torch.compile does) in the pytest process; "
            "a later torch.jit.script can then fail by chance. Run that part with the fresh_process fixture."
        )


@pytest.fixture
def fresh_process() -> Callable[..., Any]:
    """``fresh_process(fn, *args)`` runs the module-level function ``fn`` in a new Python process (``spawn``)
    and returns its result; an exception in it is raised here with its remote traceback."""

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(fn, *args).result()

    return run

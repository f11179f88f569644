"""The suite's own guards (``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

_CASES = '''
import torch


def broken():
    assert 1 == 2, "raised in the fresh process"


def test_compiles_in_process():
    torch.compile(torch.nn.Linear(2, 2))


def test_fresh_process_raises_here(fresh_process):
    fresh_process(broken)


def test_fresh_process_returns(fresh_process):
    assert fresh_process(sum, [1, 2]) == 3
'''


@pytest.mark.slow
def test_compiling_in_the_pytest_process_fails_and_fresh_process_reports_back(pytester: pytest.Pytester) -> None:
    """``torch.compile`` in the pytest process fails the test that did it (it can break a later
    ``torch.jit.script``); ``fresh_process`` returns results and raises the child's errors."""
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(test_cases=_CASES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*test_compiles_in_process*imported torch.ao.quantization.fx._decomposed (torch.compile does)*",
        "*AssertionError: raised in the fresh process*",
    ])

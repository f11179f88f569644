"""Tests of pipeline.engines.memory: freed tensors leave the process at once (real glibc, fresh processes)."""

import json
import platform
import subprocess
import sys

import pytest

from pipeline.engines.memory import MAX_MMAP_THRESHOLD, return_freed_memory

# Frees 64 tensors of 4 MiB while small tensors allocated between them stay alive (as gradients and saved
# k-spaces do in a checkpointed backward pass); prints the resident memory still held above the start, in MiB.
_PROBE = """
import json, sys
from pathlib import Path
import torch
from pipeline.engines.memory import return_freed_memory
def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
applied = return_freed_memory(sys.argv[1] == "1")
first = torch.ones(2**20)
del first  # a freed 4 MiB block: glibc's dynamic threshold moves above it
start = rss_mib()
big, small = [], []
for _ in range(64):
    big.append(torch.ones(2**20))
    small.append(torch.ones(2**14))  # 64 KiB, from the top of the heap
del big
print(json.dumps({"applied": applied, "held_MiB": rss_mib() - start}))
"""


def _held_mib(enable: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, "1" if enable else "0"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_tensors_leave_the_process():
    default, returned = _held_mib(False), _held_mib(True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert not default["applied"] and returned["applied"] is glibc  # other C libraries are left alone
    if not glibc:
        assert returned["held_MiB"] == pytest.approx(default["held_MiB"], abs=20)  # and nothing changes there
        return
    # glibc's default heap keeps the 256 MiB freed below the live small tensors; with the setting it is gone
    assert default["held_MiB"] > 200, default
    assert returned["held_MiB"] < 20, returned


@pytest.mark.parametrize("threshold", [0, 4095, MAX_MMAP_THRESHOLD + 1])
def test_bad_threshold_names_the_setting(threshold):
    with pytest.raises(ValueError, match="threshold"):
        return_freed_memory(True, threshold)


def test_disabled_is_a_no_op():
    assert return_freed_memory(False) is False


def test_bundle_turns_it_on_with_checkpointing():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config("bundles/jssl_varnet/configs/train.json")
    assert "$pipeline.engines.return_freed_memory(@gradient_checkpointing)" in parser["initialize"]

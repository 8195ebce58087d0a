"""Keeping freed memory for the next training step (`beyondgloss.utils.keep_freed_memory`)."""

import json
import platform
import subprocess
import sys

import pytest

from beyondgloss.cli import main

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Four "steps", each allocating and filling 128 MiB in 16 MiB tensors and freeing them (as a training step does with
# its activations); prints the page faults of the last three (ru_minflt).
_STEPS = """
import json, resource, sys, torch
from beyondgloss.utils import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(4 * 2**20) for _ in range(8)]
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del blocks
print(json.dumps({"kept": kept, "faults": sum(faults[1:])}))
"""


def _reallocation(mode: str) -> dict:
    completed = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_steps_are_reused_without_faulting_their_pages_in_again():
    """By default glibc gives the 128 MiB freed at the end of each step back to the kernel (more than its trim
    threshold of at most 64 MiB), and the next step faults its 3 x 32768 pages of 4 KiB in again (fewer with
    transparent huge pages, in which case there is nothing to compare); with the setting they stay with the process."""
    default, kept = _reallocation("default"), _reallocation("keep")
    assert kept["kept"] is True and default["kept"] is False
    if default["faults"] < 3 * 32768 / 4:
        pytest.skip(f"the kernel faulted only {default['faults']} pages in without the setting (huge pages)")
    assert kept["faults"] < default["faults"] / 4, (kept, default)


def test_the_training_commands_keep_freed_memory(monkeypatch, tmp_path):
    from beyondgloss.cli import training

    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append(True) or True)
    for command in ("pretrain", "finetune"):
        assert main([command, str(tmp_path / "absent.yaml")]) != 0
    assert calls == [True, True]

"""Pre-training across two processes (torchrun, gloo on CPU): gathered negatives and a Trainer run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("torchrun_pretraining.py")


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchrun")
    result_file = folder / "result.json"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
               str(result_file), str(folder / "run")]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(result_file.read_text())


def test_torchrun_pretraining_run_completes_with_loss_parts(distributed_run):
    training = distributed_run["training"]
    assert training["world_size"] == 2 and training["global_step"] == 4
    logs = [entry for entry in training["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in logs] == [2, 4]
    for entry in logs:
        assert {"alignment_loss", "description_loss", "hand_loss"} <= entry.keys()


def test_gathered_contrastive_loss_equals_the_single_process_loss_on_the_joined_batch(distributed_run):
    # Each process scores its 3 videos against all 6 sentences.
    assert distributed_run["logits_columns"] == 6
    gathered, joined = distributed_run["gathered"], distributed_run["joined"]
    assert gathered[0] == pytest.approx(joined[0], rel=1e-5)  # alignment
    assert gathered[1] == pytest.approx(joined[1], rel=1e-5)  # description


def test_an_all_gather_with_full_backward_gives_the_joined_gradient(distributed_run):
    # The harness itself: with an all-gather that returns every process's gradient, DDP's average is exact.
    assert distributed_run["gradient_difference_autograd_gather"] < 1e-5 * max(1.0, distributed_run["gradient_max_abs"])


def test_gathered_negatives_give_the_joined_gradient(distributed_run):
    # DDP averages the processes' gradients; with gathered negatives that must be the joined batch's gradient, which
    # needs the gather's backward to return the other processes' loss terms too (a local-only gather gave 0.34 here).
    assert distributed_run["gradient_difference_model_gather"] < 1e-5 * max(1.0, distributed_run["gradient_max_abs"])

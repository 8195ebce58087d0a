"""The benchmark's quick mode runs end to end (so it cannot rot) and its arguments are checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beyondgloss.benchmark import main


def test_quick_benchmark_prints_every_measurement(tmp_path):
    output = tmp_path / "bench.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    completed = subprocess.run(
        [sys.executable, "-m", "beyondgloss.cli", "benchmark", "--quick", "--threads", "1", "--steps", "1", "--warmup",
         "0", "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    assert json.loads(output.read_text()) == results
    assert results["machine"]["torch_threads"] == 1
    for name in ("pretrain_step", "reference_pretrain_step"):
        step = results[name]
        assert step["median_s"] > 0 and step["peak_rss_mb"] >= step["rss_after_build_mb"] > 0
        assert step["loss"] == step["loss"]  # not NaN
    assert results["pretrain_step"]["trainable_parameters"] == results["reference_pretrain_step"]["trainable_parameters"]
    translation = results["translation"]
    assert translation["generated_tokens"] == 20 and translation["beams"] == 5 and translation["median_s"] > 0
    encoder = results["encoder_inference"]
    assert encoder["frame_encoder_fps"] > 0 and encoder["flops_per_frame"] > 0 and encoder["matmul_peak_gflops"] > 0
    assert 0 < encoder["fraction_of_matmul_peak"] == pytest.approx(
        encoder["achieved_gflops"] / encoder["matmul_peak_gflops"], rel=0.05, abs=1e-3)
    assert results["long_video"]["frames"] == 12 and results["long_video"]["steps"] == 6
    derived = results["derived"]
    assert derived["pretrain_speedup_vs_reference"] > 0 and derived["pretrain_peak_rss_ratio_vs_reference"] > 0


def test_skip_reference_and_only_select_measurements(capsys):
    assert main(["--quick", "--threads", "1", "--steps", "1", "--warmup", "0", "--only", "matmul_peak"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["matmul_peak"]["gflops"] > 0
    assert "pretrain_step" not in results and "reference_pretrain_step" not in results


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch=0 must be a positive integer"),
    (["--dtype", "fp8"], "invalid choice"),
    (["--device", "cuda:7"], "CUDA is not available"),
])
def test_bad_arguments_are_refused_with_the_reason(argv, message, capsys):
    if "cuda" in argv[-1]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_rounds_alternate_the_pretraining_pair_and_pool_their_steps(capsys, monkeypatch):
    from beyondgloss.benchmark import runner as benchmark

    order = []

    def fake_spawn(name, argv):
        order.append(name)
        seconds = {"pretrain_step": 1.0, "reference_pretrain_step": 2.0}.get(name, 0.5) * len(order)
        return {"median_s": seconds, "best_s": seconds, "times_s": [seconds], "peak_rss_mb": 10.0 * len(order)}

    monkeypatch.setattr(benchmark, "_spawn", fake_spawn)
    assert main(["--rounds", "2", "--only", "pretrain_step", "reference_pretrain_step", "translation"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert order == ["pretrain_step", "reference_pretrain_step", "translation", "pretrain_step",
                     "reference_pretrain_step"]
    assert results["pretrain_step"]["times_s"] == [1.0, 4.0] and results["pretrain_step"]["median_s"] == 2.5
    assert results["reference_pretrain_step"]["peak_rss_mb"] == 50.0 and results["translation"]["times_s"] == [1.5]
    assert results["derived"]["pretrain_speedup_per_round"] == [4.0, 2.5]

"""The benchmark's quick mode runs end to end (so it cannot rot), its arguments are checked, and its derived ratios
are the ratios of the figures it measured."""

import json
import os
import subprocess
import sys

import pytest
import torch

from beyondgloss.benchmark import REFERENCE_IMPL_VS_AUTHORS, main, measure_matmul_peak
from beyondgloss.benchmark import measurements
from beyondgloss.benchmark import runner as benchmark


def test_quick_benchmark_prints_every_measurement(tmp_path):
    output = tmp_path / "bench.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    completed = subprocess.run(
        [sys.executable, "-m", "beyondgloss.cli", "benchmark", "--quick", "--threads", "1", "--steps", "1", "--warmup",
         "0", "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    assert json.loads(output.read_text()) == results
    assert results["machine"]["torch_threads"] == 1
    for name in ("pretrain_step", "reference_pretrain_step"):
        step = results[name]["fp32"]
        assert step["median_s"] > 0 and step["peak_rss_mb"] >= step["rss_after_build_mb"] > 0
        assert step["loss"] == step["loss"]  # not NaN
    ours, reference = results["pretrain_step"]["fp32"], results["reference_pretrain_step"]["fp32"]
    assert ours["trainable_parameters"] == reference["trainable_parameters"]
    assert ours["matmul_gflop"] > 0 and reference["matmul_gflop"] > 0
    assert set(results["translation"]) == set(results["encoder_inference"]) == {"fp32", "bf16"}
    for precision, translation in results["translation"].items():
        assert translation["generated_tokens"] == 20 and translation["beams"] == 5 and translation["median_s"] > 0
        assert translation["frames"] == 8 and translation["precision"] in ("fp32", precision)
    for precision, encoder in results["encoder_inference"].items():
        assert encoder["frame_encoder_fps"] > 0 and encoder["flops_per_frame"] > 0 and encoder["matmul_peak_gflops"] > 0
        assert 0 < encoder["fraction_of_matmul_peak"] == pytest.approx(
            encoder["achieved_gflops"] / encoder["matmul_peak_gflops"], rel=0.05, abs=1e-3)
    # The same work is counted whatever precision does it.
    assert results["encoder_inference"]["bf16"]["flops_per_frame"] == results["encoder_inference"]["fp32"]["flops_per_frame"]
    for name in ("translation", "encoder_inference"):
        cosine = results[name]["bf16"]["encoder_cosine_to_fp32"]
        assert -1 <= cosine <= 1 and "encoder_cosine_to_fp32" not in results[name]["fp32"]
        assert results["derived"][name]["encoder_cosine_to_fp32"] == {"bf16": cosine}
        assert results["derived"][name]["speedup_vs_fp32"]["bf16"] > 0
    assert results["long_video"]["fp32"]["frames"] == 12 and results["long_video"]["fp32"]["steps"] == 6
    assert set(results["streaming"]) == {"fp32", "bf16"}
    pretrain = results["derived"]["pretrain_step"]
    assert pretrain["speedup_vs_reference_impl"]["fp32"] > 0 and pretrain["peak_rss_ratio_vs_reference_impl"]["fp32"] > 0
    assert pretrain["reference_impl_vs_authors"] == REFERENCE_IMPL_VS_AUTHORS == 1.17
    peak = results["encoder_inference"]["fp32"]["matmul_peak_gflops"]
    assert pretrain["matmul_floor_s"]["fp32"] == pytest.approx(ours["matmul_gflop"] / peak, rel=1e-3)


def test_int8_translation_and_the_frame_encoder_it_runs_with(capsys):
    """"int8" quantizes mBART: translation runs in it; the encoder-only model has no mBART, so its frame encoder is
    measured as "auto" runs it, against the peak of the precision it chose (both peaks are measured)."""
    assert main(["--quick", "--threads", "1", "--steps", "1", "--warmup", "0", "--only", "translation",
                 "encoder_inference", "matmul_peak", "--precision", "fp32", "int8"]) == 0
    results = json.loads(capsys.readouterr().out)
    translation = results["translation"]["int8"]
    assert translation["precision"] == "int8" and translation["inference_precision_report"]["mbart"] == "int8"
    assert translation["generated_tokens"] == 20 and -1 <= translation["encoder_cosine_to_fp32"] <= 1
    encoder = results["encoder_inference"]["int8"]
    assert encoder["requested_precision"] == "int8" and encoder["precision"] in ("fp32", "bf16")
    assert set(results["matmul_peak"]) == {"fp32", "bf16"}
    assert results["derived"]["translation"]["speedup_vs_fp32"]["int8"] > 0


def test_skip_reference_and_only_select_measurements(capsys):
    assert main(["--quick", "--threads", "1", "--steps", "1", "--warmup", "0", "--only", "matmul_peak",
                 "--precision", "fp32"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["matmul_peak"]["fp32"]["gflops"] > 0 and results["matmul_peak"]["fp32"]["dtype"] == "float32"
    assert "pretrain_step" not in results and "reference_pretrain_step" not in results


def test_matmul_peak_is_measured_in_the_precision_asked_for():
    peak = measure_matmul_peak(torch.device("cpu"), quick=True, repeats=1, dtype=torch.bfloat16)
    assert peak["dtype"] == "bfloat16" and peak["gflops"] == max(peak["per_shape_gflops"].values()) > 0


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch=0 must be a positive integer"),
    (["--new-tokens", "0"], "--new_tokens=0 must be a positive integer"),
    (["--dtype", "fp8"], "invalid choice"),
    (["--precision", "fp16"], "invalid choice"),
    (["--device", "cuda:7"], "CUDA is not available"),
])
def test_bad_arguments_are_refused_with_the_reason(argv, message, capsys):
    if "cuda" in argv[-1] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_hyphenated_flags_still_parse_and_are_hidden_from_help(capsys):
    hyphenated = ["--target-tokens", "3", "--translation-frames", "5", "--new-tokens", "7", "--long-frames", "9",
                  "--vocab-size", "50", "--chunk-size", "4", "--gradient-checkpointing", "--skip-reference"]
    underscored = ["--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag for flag in hyphenated]
    assert underscored[0] == "--target_tokens"
    parser = benchmark.build_parser()
    assert vars(parser.parse_args(hyphenated)) == vars(parser.parse_args(underscored))
    defaults = vars(parser.parse_args([]))
    assert defaults["new_tokens"] == 20 and defaults["skip_reference"] is False and defaults["chunk_size"] is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--new_tokens" in help_text and "--skip_reference" in help_text
    for flag in (argument for argument in hyphenated if argument.startswith("--")):
        assert flag not in help_text


def test_translation_refuses_a_generation_of_the_wrong_length(monkeypatch):
    from beyondgloss.modeling_beyondgloss import BeyondGlossForSignTranslation

    original = BeyondGlossForSignTranslation.generate

    def stops_early(self, *args, **kwargs):
        return original(self, *args, **kwargs)[:, :-1]

    monkeypatch.setattr(BeyondGlossForSignTranslation, "generate", stops_early)
    args = benchmark.build_parser().parse_args(["--quick", "--steps", "1", "--warmup", "0", "--beams", "2",
                                           "--new_tokens", "3"])
    benchmark._quick_sizes(args)
    with pytest.raises(RuntimeError, match="generated 2 tokens, not --new_tokens=3"):
        measurements._translation(args, torch.device("cpu"), "fp32")
    monkeypatch.setattr(BeyondGlossForSignTranslation, "generate", original)
    assert measurements._translation(args, torch.device("cpu"), "fp32")["generated_tokens"] == 3


def _fake_results(name, precision, call):
    """Figures a child could return; times differ by measurement, precision and call, so that a ratio taken from
    the wrong pair of figures gives a different number."""
    base = {"pretrain_step": 1.0, "reference_pretrain_step": 3.0, "translation": 2.0, "encoder_inference": 0.5,
            "long_video": 4.0}[name]
    seconds = base * (0.5 if precision == "bf16" else 1.0) * call
    result = {"precision": precision, "median_s": seconds, "best_s": seconds, "times_s": [seconds],
              "peak_rss_mb": 10.0 * call + (5 if precision == "bf16" else 0)}
    if name in ("pretrain_step", "reference_pretrain_step"):
        result["matmul_gflop"] = 50.0 if name == "pretrain_step" else 60.0
    if precision == "bf16" and name in ("translation", "encoder_inference"):
        result["encoder_cosine_to_fp32"] = 0.9995 if name == "translation" else 0.998
    if name == "encoder_inference":
        peak = 100.0 if precision == "fp32" else 300.0
        result.update(frames=8, flops_per_frame=10**9, sign_encoder_times_s=[seconds], matmul_peak_gflops=peak)
        result.update(measurements.encoder_rates(result))
    return result


def test_rounds_alternate_the_compared_measurements_and_ratios_come_from_the_figures(capsys, monkeypatch):
    order = []

    def fake_spawn(name, precision, argv):
        order.append((name, precision))
        assert "--child" not in argv  # the parent adds --child itself
        return _fake_results(name, precision, len(order))

    monkeypatch.setattr(benchmark, "_spawn", fake_spawn)
    assert main(["--rounds", "2", "--only", "pretrain_step", "reference_pretrain_step", "translation",
                 "encoder_inference", "long_video", "--dtype", "fp32", "bf16"]) == 0
    results = json.loads(capsys.readouterr().out)
    one_round = [("pretrain_step", "fp32"), ("pretrain_step", "bf16"), ("reference_pretrain_step", "fp32"),
                 ("reference_pretrain_step", "bf16"), ("translation", "fp32"), ("translation", "bf16"),
                 ("encoder_inference", "fp32"), ("encoder_inference", "bf16")]
    assert order == one_round + [("long_video", "fp32")] + one_round

    def call(job, round_index):  # the call number of a job's run in a round (1-based, as the fake counts)
        return [i for i, seen in enumerate(order, 1) if seen == job][round_index]

    def times(job):  # the fake's times of a job in the two rounds: base x (0.5 for bf16) x call number
        base = {"pretrain_step": 1.0, "reference_pretrain_step": 3.0}[job[0]] * (0.5 if job[1] == "bf16" else 1.0)
        return [base * call(job, r) for r in (0, 1)]

    # Every timed step of both rounds is pooled; the peak memory is the larger one.
    ours = results["pretrain_step"]["fp32"]
    assert ours["times_s"] == [1.0, 10.0] and ours["median_s"] == 5.5 and ours["peak_rss_mb"] == 100.0
    for job in [("pretrain_step", "bf16"), ("reference_pretrain_step", "fp32"), ("reference_pretrain_step", "bf16")]:
        assert results[job[0]][job[1]]["times_s"] == times(job)

    # Each precision against the baseline in the same precision; a reduced one also against the fp32 baseline.
    derived = results["derived"]["pretrain_step"]
    ours_fp32, ours_bf16 = times(("pretrain_step", "fp32")), times(("pretrain_step", "bf16"))  # [1, 10], [1, 5.5]
    reference_fp32 = times(("reference_pretrain_step", "fp32"))  # [9, 36]
    reference_bf16 = times(("reference_pretrain_step", "bf16"))  # [6, 19.5]
    assert derived["baseline"] == "reference_impl in the same dtype, same run"
    assert derived["speedup_vs_reference_impl"] == {"fp32": round(22.5 / 5.5, 3), "bf16": round(12.75 / 3.25, 3)}
    assert derived["speedup_vs_reference_impl_per_round"] == {
        "fp32": [round(r / o, 3) for r, o in zip(reference_fp32, ours_fp32)],
        "bf16": [round(r / o, 3) for r, o in zip(reference_bf16, ours_bf16)]}
    assert derived["speedup_vs_reference_impl_fp32"] == {"bf16": round(22.5 / 3.25, 3)}
    assert derived["speedup_vs_reference_impl_fp32_per_round"] == {
        "bf16": [round(r / o, 3) for r, o in zip(reference_fp32, ours_bf16)]}
    assert derived["estimated_speedup_vs_authors"] == {
        dtype: round(value / 1.17, 3) for dtype, value in derived["speedup_vs_reference_impl"].items()}
    assert derived["reference_impl_vs_authors"] == 1.17 and "estimate" in derived["estimate_note"]
    assert derived["peak_rss_mb"] == {"fp32": 100.0, "bf16": 115.0}
    assert derived["reference_peak_rss_mb"] == {"fp32": 120.0, "bf16": 135.0}
    assert derived["peak_rss_ratio_vs_reference_impl"] == {"fp32": round(100 / 120, 3), "bf16": round(115 / 135, 3)}
    # The floor: the step's matmul work at the matmul peak of its type (here from the encoder measurement's processes).
    assert derived["matmul_floor_s"] == {"fp32": 50.0 / 100.0, "bf16": round(50.0 / 300.0, 4)}
    assert derived["speedup_ceiling_vs_reference_impl"] == {"fp32": round(22.5 / 0.5, 3),
                                                           "bf16": round(12.75 / (50.0 / 300.0), 3)}

    translation = results["derived"]["translation"]
    fp32_times = [2.0 * call(("translation", "fp32"), r) for r in (0, 1)]
    bf16_times = [1.0 * call(("translation", "bf16"), r) for r in (0, 1)]
    assert results["translation"]["bf16"]["times_s"] == bf16_times
    assert translation["speedup_vs_fp32"] == {"bf16": round(sum(fp32_times) / sum(bf16_times), 3)}
    assert translation["speedup_vs_fp32_per_round"] == {"bf16": [round(f / b, 3) for f, b in zip(fp32_times, bf16_times)]}
    assert translation["encoder_cosine_to_fp32"] == {"bf16": 0.9995} and translation["guard_holds"] == {"bf16": True}

    encoder = results["derived"]["encoder_inference"]
    assert encoder["guard_holds"] == {"bf16": False}
    for precision, peak in (("fp32", 100.0), ("bf16", 300.0)):
        pooled = results["encoder_inference"][precision]
        median = sum(pooled["times_s"]) / 2
        assert pooled["frame_encoder_fps"] == round(8 / median, 2) == encoder["frame_encoder_fps"][precision]
        assert encoder["fraction_of_matmul_peak"][precision] == round(8 / median / peak, 3)


def test_a_failed_measurement_is_reported_and_fails_the_run(capsys, monkeypatch):
    def fake_spawn(name, precision, argv):
        if precision == "bf16":
            return {"error": "exit code 1", "stderr_tail": "RuntimeError: no bf16 here"}
        return _fake_results(name, precision, 1)

    monkeypatch.setattr(benchmark, "_spawn", fake_spawn)
    assert main(["--only", "translation"]) == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert results["translation"]["bf16"]["stderr_tail"].endswith("no bf16 here")
    assert "speedup_vs_fp32" not in results["derived"].get("translation", {})
    assert "encoder_inference" not in results["derived"]  # not measured: no empty sections
    assert "translation (bf16)" in captured.err


@pytest.mark.parametrize("segmentation", ["gate", "agreement"])
def test_streaming_measurement_on_the_tiny_model(capsys, segmentation):
    """Runs end to end and its counts add up; the speed figures are printed, not asserted on (docs/streaming.md)."""
    assert main(["--quick", "--threads", "1", "--only", "streaming", "--precision", "fp32", "--streaming_seconds",
                 "1", "--new_tokens", "4", "--streaming_segmentation", segmentation]) == 0
    result = json.loads(capsys.readouterr().out)["streaming"]["fp32"]
    assert result["segmentation"] == segmentation
    if segmentation == "gate":  # quick: sentences of 0.4 s after pauses of 0.4 s, one in 1 s; one stretch each
        assert result["sentences"] == [pytest.approx([0.4, 0.8])] and result["file_mode"]["windows"] == 1
        assert result["realtime"]["windows"] == 1 and result["realtime"]["caption_latency"]["count"] == 1
        assert {"gate_per_tail", "decoder_per_stretch"} <= set(result["stages_ms"])
    assert result["model"] == "tiny" and result["precision"] == "fp32" and result["video_seconds"] == 1.0
    assert all(0 < stage["best"] <= stage["median"] for stage in result["stages_ms"].values())
    assert result["real_time_factor_from_stages"] > 0
    assert result["file_mode"]["frames_encoded"] == 25 and result["file_mode"]["real_time_factor"] > 0
    live = result["realtime"]
    assert live["frames_received"] == 25 and live["frames_encoded"] + live["frames_dropped"] == 25
    assert live["windows"] >= 1 and live["window_latency"]["count"] == live["windows"]
    assert live["caption_latency"]["count"] > 0 and live["caption_latency"]["median_s"] > 0
    assert set(result["targets"]) == {"real_time_factor_at_most_1_no_frames_dropped",
                                      "caption_latency_median_at_most_2_s"}

"""Reduced-precision inference: what each precision runs, the quality guard, the per-machine choice of "auto", and
that training is untouched."""

import logging

import pytest
import torch

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation, BeyondGlossModel
from beyondgloss import inference_precision
from beyondgloss.inference_precision import GUARD_MIN_COSINE, step_cosines
from beyondgloss.testing import tiny_config


@pytest.fixture
def translator():
    torch.manual_seed(0)
    return BeyondGlossForSignTranslation(tiny_config()).eval()


def linear_dtypes(module) -> set:
    return {m.weight.dtype for m in module.modules() if isinstance(m, torch.nn.Linear)}


def test_bf16_keeps_the_encoder_output_and_translates(translator, videos):
    pixels, mask = videos
    with torch.no_grad():
        expected = translator.sign_encoder(pixels, mask)
        reference_ids = translator.generate(pixels, mask, num_beams=2, max_new_tokens=5)
    assert translator.set_inference_precision("bf16") == "bf16"
    report = translator.inference_precision_report
    assert report["chosen"] == "bf16" and report["guard_min_cosine"] >= GUARD_MIN_COSINE
    assert linear_dtypes(translator.mbart) == {torch.bfloat16}  # what the decoder reads per step is halved
    assert linear_dtypes(translator.sign_encoder) == {torch.float32}  # DINOv2 weights are cast per call only
    with torch.no_grad():
        actual = translator.sign_encoder(pixels, mask)
    assert actual.last_hidden_state.dtype == torch.float32
    cosines = step_cosines(actual.last_hidden_state, expected.last_hidden_state, expected.attention_mask)
    assert cosines.min() >= GUARD_MIN_COSINE
    # Not the fp32 result to the bit: the GEMMs really ran in bfloat16.
    assert not torch.equal(actual.last_hidden_state, expected.last_hidden_state)
    ids = translator.generate(pixels, mask, num_beams=2, max_new_tokens=5)
    assert ids.shape[0] == reference_ids.shape[0] == 2


def test_training_runs_in_the_models_own_precision(translator, videos):
    """With gradients the sign encoder ignores the inference precision: the same numbers as before it was set."""
    pixels, mask = videos
    translator.sign_encoder.head_dropout.p = 0.0
    before = translator.sign_encoder(pixels, mask).last_hidden_state.detach()
    translator.set_inference_precision("bf16")
    after = translator.sign_encoder(pixels, mask).last_hidden_state.detach()
    assert torch.equal(before, after)


def test_fp32_is_the_default_and_changes_nothing(translator, videos):
    pixels, mask = videos
    assert translator.inference_precision == "fp32"
    with torch.no_grad():
        before = translator.sign_encoder(pixels, mask).last_hidden_state
        assert translator.set_inference_precision("fp32") == "fp32"
        after = translator.sign_encoder(pixels, mask).last_hidden_state
    assert torch.equal(before, after)
    assert linear_dtypes(translator.mbart) == {torch.float32}


@pytest.mark.parametrize("speedup, expected", [(1.0, "fp32"), (3.0, "bf16")])
def test_auto_chooses_by_this_machines_speed(translator, monkeypatch, speedup, expected):
    monkeypatch.setattr(inference_precision, "bf16_matmul_speedup", lambda device, shape: speedup)
    assert translator.set_inference_precision("auto") == expected
    report = translator.inference_precision_report
    assert report["bf16_matmul_speedup"] == speedup
    assert ("guard_min_cosine" in report) == (expected == "bf16")


def test_a_failed_guard_keeps_fp32_under_auto_and_warns_under_bf16(translator, monkeypatch, caplog):
    monkeypatch.setattr(inference_precision, "bf16_matmul_speedup", lambda device, shape: 3.0)
    monkeypatch.setattr(inference_precision, "GUARD_MIN_COSINE", 1.5)  # no cosine reaches it
    assert translator.set_inference_precision("auto") == "fp32"
    assert "quality guard failed" in translator.inference_precision_report["reason"]
    assert linear_dtypes(translator.mbart) == {torch.float32}
    with caplog.at_level(logging.WARNING):
        assert translator.set_inference_precision("bf16") == "bf16"
    assert "quality guard failed" in caplog.text


def test_the_measured_speedup_is_a_positive_ratio():
    assert inference_precision.bf16_matmul_speedup("cpu", (64, 32, 64), repeats=1) > 0


def test_bad_requests_are_refused(translator):
    with pytest.raises(ValueError, match="choose one of fp32, bf16, auto"):
        translator.set_inference_precision("int4")
    translator.train()
    with pytest.raises(ValueError, match="model.eval"):
        translator.set_inference_precision("bf16")


@pytest.mark.parametrize("model_class", [BeyondGlossModel, BeyondGlossForContrastivePretraining])
def test_other_models_run_in_bf16(model_class, videos):
    pixels, mask = videos
    torch.manual_seed(0)
    model = model_class(tiny_config()).eval()
    assert model.set_inference_precision("bf16") == "bf16"
    with torch.no_grad():
        if model_class is BeyondGlossModel:
            assert model(pixels, mask).last_hidden_state.dtype == torch.float32
        else:
            out = model(pixels, mask, input_ids=torch.tensor([[5, 6, 2], [7, 2, 1]]),
                        attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
            assert out.video_embeds.dtype == torch.float32 and torch.isfinite(out.loss)


def test_a_training_step_runs_under_cpu_bf16_autocast(videos):
    """Mixed-precision training on a CPU runs the model under bf16 autocast: the LoRA blocks' in-place accumulation
    must take the autocast type (it used to fail with a dtype error). bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9);
    the tiny model's loss passes through about 20 roundings, so it may differ from fp32 by up to 20 * 2^-9 (4%)."""
    pixels, mask = videos
    ids, text_mask = torch.tensor([[5, 6, 2], [7, 2, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = BeyondGlossForContrastivePretraining(tiny_config(vision_lora_dropout=0.0, head_dropout=0.0)).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(pixels, mask, input_ids=ids, attention_mask=text_mask)
        out.loss.backward()
        gradient = model.sign_encoder.vision_lora["1"].fc1_B.grad  # (A has none yet: B starts at zero)
        assert gradient is not None and torch.isfinite(gradient).all() and gradient.abs().sum() > 0
        losses[precision] = out.loss.item()
    assert abs(losses["bf16"] - losses["fp32"]) <= 20 * 2**-9 * abs(losses["fp32"])


def test_the_commands_where_users_wait_choose_the_precision(tmp_path, monkeypatch, capsys):
    """`beyondgloss translate` and `serve` default to "auto" (the library to "fp32"); the flag reaches the model."""
    from beyondgloss.app import ServeArguments, SignVideoAnalyser
    from beyondgloss.cli import main
    from beyondgloss.modeling_beyondgloss import BeyondGlossPreTrainedModel
    from beyondgloss.testing import make_frames, write_mp4
    from beyondgloss.training.arguments import TranslateArguments

    from .test_pipeline import make_translator

    assert ServeArguments(model="m").inference_precision == "auto"
    assert TranslateArguments(model_name_or_path="m").inference_precision == "auto"
    folder = tmp_path / "model"
    translator = make_translator()
    translator.model.save_pretrained(folder)
    translator.processor.save_pretrained(folder)
    video = write_mp4(tmp_path / "clip.mp4", make_frames(4, height=32, width=32))
    chosen, original = [], BeyondGlossPreTrainedModel.set_inference_precision

    def record(model, precision="auto", probe=None):
        chosen.append(precision)
        return original(model, precision, probe)

    monkeypatch.setattr(BeyondGlossPreTrainedModel, "set_inference_precision", record)
    argv = ["translate", "--model_name_or_path", str(folder), "--videos", str(video), "--max_new_tokens", "3"]
    assert main(argv + ["--inference_precision", "bf16"]) == 0
    assert main(argv) == 0
    assert SignVideoAnalyser(str(folder)).model.inference_precision == "fp32"
    assert chosen == ["bf16", "auto", "fp32"]
    assert main(argv + ["--inference_precision", "int8"]) == 2
    assert "--inference_precision" in capsys.readouterr().err


def test_fp32_keeps_a_float64_model_in_float64(videos):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config()).double().eval()
    model.set_inference_precision("bf16")
    assert model.set_inference_precision("fp32") == "fp32"
    assert linear_dtypes(model.mbart) == {torch.float64}
    pixels, mask = videos
    assert model.generate(pixels.double(), mask, num_beams=2, max_new_tokens=3).shape[0] == 2


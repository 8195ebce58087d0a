"""Reduced-precision inference: what each precision runs, the quality guard, the per-machine choice of "auto", and
that training is untouched."""

import copy
import logging

import pytest
import torch
from torch import nn

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation, BeyondGlossModel
from beyondgloss import inference_precision
from beyondgloss.inference_precision import GUARD_MIN_COSINE, Int8Linear, step_cosines
from beyondgloss.testing import tiny_config


@pytest.fixture
def translator():
    torch.manual_seed(0)
    return BeyondGlossForSignTranslation(tiny_config()).eval()


DECODER_STEP_SECONDS = inference_precision._decoder_step_seconds  # before the fixture below replaces it


@pytest.fixture(autouse=True)
def int8_decoding_not_faster(monkeypatch):
    """"auto" times a decoding step in fp32 and in int8; pinned to equal times (int8 not chosen) unless a test says
    otherwise with `pin_decoder_steps`."""
    pin_decoder_steps(monkeypatch, int8_speedup=1.0)


def pin_decoder_steps(monkeypatch, int8_speedup: float) -> None:
    def seconds(mbart, rows):
        return 1.0 / int8_speedup if int8_layers(mbart) else 1.0
    monkeypatch.setattr(inference_precision, "_decoder_step_seconds", seconds)


def linear_dtypes(module) -> set:
    return {m.weight.dtype for m in module.modules() if isinstance(m, torch.nn.Linear)}


def int8_layers(module) -> list:
    return [m for m in module.modules() if isinstance(m.__dict__.get("forward"), Int8Linear)]


def teacher_forced_logits(translator, encoded, ids):
    return translator.mbart(inputs_embeds=encoded.last_hidden_state, attention_mask=encoded.attention_mask,
                            decoder_input_ids=ids).logits


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


def test_int8_quantizes_mbart_keeps_its_weights_and_translates(translator, videos):
    pixels, mask = videos
    weights = {name: tensor.clone() for name, tensor in translator.state_dict().items()}
    ids = torch.tensor([[3, 5, 6, 7, 8], [3, 9, 10, 11, 12]])
    with torch.no_grad():
        encoded = translator.sign_encoder(pixels, mask)
        expected = teacher_forced_logits(translator, encoded, ids)
    assert translator.set_inference_precision("int8") == "int8"
    report = translator.inference_precision_report
    assert report["mbart"] == "int8" and report["guard_min_cosine"] >= GUARD_MIN_COSINE
    linears = [name for name, m in translator.mbart.named_modules() if isinstance(m, nn.Linear)]
    quantized = int8_layers(translator.mbart)
    # Every Linear but the LoRA's A and B (one pair per q_proj/v_proj LoRA layer).
    lora = [name for name in linears if ".lora_" in name]
    assert lora and len(quantized) == len(linears) - len(lora)
    assert not int8_layers(translator.sign_encoder)
    # The float weights are untouched: the state dict (what save_pretrained writes) is the model's own.
    state = translator.state_dict()
    assert state.keys() == weights.keys() and all(torch.equal(state[name], weights[name]) for name in weights)
    with torch.no_grad():
        actual = teacher_forced_logits(translator, encoded, ids)
    cosines = torch.nn.functional.cosine_similarity(actual.flatten(0, 1).double(), expected.flatten(0, 1).double(), -1)
    assert cosines.min() >= GUARD_MIN_COSINE
    assert not torch.equal(actual, expected)  # the GEMMs really ran in int8
    assert translator.generate(pixels, mask, num_beams=2, max_new_tokens=5).shape[0] == 2
    # A copy packs its own weights; "fp32" is exact again.
    assert torch.equal(copy.deepcopy(translator).generate(pixels, mask, num_beams=2, max_new_tokens=5),
                       translator.generate(pixels, mask, num_beams=2, max_new_tokens=5))
    assert translator.set_inference_precision("fp32") == "fp32" and not int8_layers(translator.mbart)
    with torch.no_grad():
        assert torch.equal(teacher_forced_logits(translator, encoded, ids), expected)


def int8_error_bound(layer: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    """The largest |int8 - float| output of `layer` on `inputs` the two roundings allow: each weight moves by at most
    half its output channel's step (max |w| / 127), each input by half the input's step (its range, 0 included, over
    255 levels, or 127 where the kernels take 7-bit inputs), and x w becomes (x + dx)(w + dw)."""
    weight_step = layer.weight.abs().amax(dim=1) / 127
    levels = 127 if inference_precision._int8_reduce_range() else 255
    input_step = (inputs.max().clamp_min(0) - inputs.min().clamp_max(0)) / levels
    return (weight_step / 2 * inputs.abs().sum(dim=1, keepdim=True)
            + input_step / 2 * layer.weight.abs().sum(dim=1)
            + inputs.shape[1] * weight_step * input_step / 4).detach()


def test_an_int8_layer_is_within_its_rounding_bound():
    torch.manual_seed(0)
    layer, inputs = nn.Linear(48, 24), torch.randn(5, 48)
    with torch.no_grad():
        expected = layer(inputs)
        layer.forward = Int8Linear(layer)
        actual = layer(inputs)
    error, bound = (actual - expected).abs(), int8_error_bound(layer, inputs)
    assert (error <= bound * (1 + 1e-5)).all(), (error / bound).max()
    assert not torch.equal(actual, expected)


def test_an_int8_layer_multiplies_by_its_quantized_weights():
    """On inputs that lie on the int8 input grid (so the input rounding is exact), the layer computes exactly x times
    the weights rounded per output channel to max |w| / 127 steps, plus the bias: the int32 sums are exact, and the
    float32 rescaling adds a few roundings of the output's size."""
    torch.manual_seed(0)
    layer = nn.Linear(48, 24)
    levels = 127 if inference_precision._int8_reduce_range() else 255
    zero = (levels + 1) // 2
    grid = torch.randint(0, levels + 1, (5, 48))
    grid[0, :2] = torch.tensor([0, levels])  # the range the kernel sees: a step of exactly 1/100
    inputs = (grid - zero).float() / 100
    step = layer.weight.abs().amax(dim=1, keepdim=True) / 127
    rounded = (layer.weight / step).round() * step
    expected = inputs.double() @ rounded.double().t() + layer.bias.double()
    with torch.no_grad():
        layer.forward = Int8Linear(layer)
        actual = layer(inputs)
    tolerance = 8 * torch.finfo(torch.float32).eps * (inputs.double().abs() @ rounded.double().abs().t()
                                                      + layer.bias.double().abs())
    assert ((actual.double() - expected).abs() <= tolerance).all()


def test_int8_layers_follow_their_weights_and_compute_in_float_with_gradients():
    torch.manual_seed(0)
    layer, inputs = nn.Linear(16, 8), torch.randn(3, 16)
    layer.forward = Int8Linear(layer)
    with torch.no_grad():
        before = layer(inputs)
        layer.weight.mul_(2)  # changed in place (an optimizer step, a load)
        doubled = layer(inputs)
        expected = nn.functional.linear(inputs, layer.weight, layer.bias)
        assert not torch.equal(doubled, before)
        assert ((doubled - expected).abs() <= int8_error_bound(layer, inputs) * (1 + 1e-5)).all()
        layer.weight = nn.Parameter(torch.zeros_like(layer.weight))  # replaced
        assert torch.equal(layer(inputs), layer.bias.expand(3, -1))
    trained = layer(inputs)
    assert trained.grad_fn is not None
    assert torch.equal(trained, nn.functional.linear(inputs, layer.weight, layer.bias))


@pytest.mark.parametrize("int8_speedup, bf16_speedup, expected, frame_encoder", [
    (4.0, 3.0, "int8", "bf16"), (4.0, 1.0, "int8", "fp32"), (1.0, 3.0, "bf16", "bf16"), (1.0, 1.0, "fp32", "fp32")])
def test_auto_takes_int8_where_decoding_is_faster(translator, monkeypatch, int8_speedup, bf16_speedup, expected,
                                                   frame_encoder):
    pin_decoder_steps(monkeypatch, int8_speedup)
    monkeypatch.setattr(inference_precision, "bf16_matmul_speedup", lambda device, shape: bf16_speedup)
    assert translator.set_inference_precision("auto") == expected
    report = translator.inference_precision_report
    assert report["int8_decoder_step_speedup"] == int8_speedup
    assert (report["frame_encoder"], report["mbart"]) == (frame_encoder, expected if expected != "fp32" else "fp32")
    assert bool(int8_layers(translator.mbart)) == (expected == "int8")


def test_auto_falls_back_from_int8_when_its_guard_fails(translator, monkeypatch):
    pin_decoder_steps(monkeypatch, 4.0)
    monkeypatch.setattr(inference_precision, "bf16_matmul_speedup", lambda device, shape: 3.0)
    guard = inference_precision._guard_cosine

    def failing_int8(sign_encoder, mbart, decodes_text, probe, frame_dtype, text):
        return 0.5 if text == "int8" else guard(sign_encoder, mbart, decodes_text, probe, frame_dtype, text)

    monkeypatch.setattr(inference_precision, "_guard_cosine", failing_int8)
    assert translator.set_inference_precision("auto") == "bf16"
    report = translator.inference_precision_report
    assert report["guard_cosines"]["int8"] == 0.5 and report["guard_cosines"]["bf16"] >= GUARD_MIN_COSINE
    assert not int8_layers(translator.mbart)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_decoding_step_is_timed_in_the_models_type(dtype):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config()).to(dtype).eval()
    assert DECODER_STEP_SECONDS(model.mbart, rows=2, repeats=1) > 0


def test_int8_says_where_it_cannot_run(videos):
    assert "CPU only" in inference_precision.int8_unavailable_reason("cuda")
    assert inference_precision.int8_unavailable_reason("cpu") is None
    with pytest.raises(ValueError, match="no mBART"):
        BeyondGlossModel(tiny_config()).eval().set_inference_precision("int8")


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
    with pytest.raises(ValueError, match="choose one of fp32, bf16, int8, auto"):
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
        gradient = model.sign_encoder.frame_encoder.lora["1"].fc1_B.grad  # (A has none yet: B starts at zero)
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
    assert main(argv + ["--inference_precision", "int8"]) == 0
    assert main(argv) == 0
    assert SignVideoAnalyser(str(folder)).model.inference_precision == "fp32"
    assert chosen == ["bf16", "int8", "auto", "fp32"]
    assert main(argv + ["--inference_precision", "int4"]) == 2
    assert "--inference_precision" in capsys.readouterr().err


def test_a_float64_model_runs_int8_refuses_bf16_and_stays_float64(videos, monkeypatch):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config()).double().eval()
    with pytest.raises(ValueError, match="model.float"):
        model.set_inference_precision("bf16")
    monkeypatch.setattr(inference_precision, "bf16_matmul_speedup", lambda device, shape: 3.0)
    pin_decoder_steps(monkeypatch, 4.0)
    assert model.set_inference_precision("auto") == "int8"
    assert model.inference_precision_report["frame_encoder"] == "fp32"  # bf16 autocast would leave float64 as is
    pixels, mask = videos
    assert model.generate(pixels.double(), mask, num_beams=2, max_new_tokens=3).shape[0] == 2
    assert model.set_inference_precision("fp32") == "fp32"
    assert linear_dtypes(model.mbart) == {torch.float64}
    pixels, mask = videos
    assert model.generate(pixels.double(), mask, num_beams=2, max_new_tokens=3).shape[0] == 2


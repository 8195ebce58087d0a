import copy
import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSeq2SeqLM,
    Dinov2Config,
    Dinov2Model,
    MBartConfig,
    MBartForConditionalGeneration,
)
from transformers.models.mbart.modeling_mbart import shift_tokens_right

from beyondgloss import (
    BeyondGlossConfig,
    BeyondGlossForContrastivePretraining,
    BeyondGlossForSignTranslation,
    BeyondGlossModel,
)
from peft.tuners.lora import LoraLayer
from beyondgloss.testing import SAME_MATH_RTOL, assert_same_math, tiny_config

from .conftest import BLOCK_BEYONDGLOSS

ALL_CLASSES = [BeyondGlossModel, BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation]


def text_inputs():
    input_ids = torch.tensor([[5, 6, 7, 2, 3], [8, 9, 2, 3, 1]])
    return input_ids, (input_ids != 1).long()


# ---- shapes and masks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [[7, 4], [6, 6], [5, 2, 1]])
def test_encoder_shapes_and_mask(config, lengths):
    model = BeyondGlossModel(config).eval()
    frames = max(lengths)
    pixels = torch.randn(len(lengths), frames, 3, 28, 28)
    mask = torch.tensor([[1] * n + [0] * (frames - n) for n in lengths])
    output = model(pixels, mask)
    steps = math.ceil(frames / 2)
    assert output.last_hidden_state.shape == (len(lengths), steps, 2 * config.frame_dim)
    assert output.attention_mask.shape == (len(lengths), steps)
    assert output.attention_mask.sum(1).tolist() == [math.ceil(n / 2) for n in lengths]
    assert output.hand_predictions.shape == (len(lengths), frames, config.hand_dim)
    assert output.description_states.shape == (len(lengths), steps, config.description_dim)
    assert output.frame_features.shape == (len(lengths), frames, config.frame_dim)
    for row, n in enumerate(lengths):
        assert output.hand_predictions[row, n:].abs().sum() == 0


def test_reference_mask_rule_keeps_extra_step_for_even_lengths():
    model = BeyondGlossModel(tiny_config(reference_compat=True)).eval()
    lengths, frames = [8, 4, 3, 1], 8
    mask = torch.tensor([[1] * n + [0] * (frames - n) for n in lengths])
    output = model(torch.randn(4, frames, 3, 28, 28), mask)
    # The reference: min(ceil(T/2), floor(L/2) + 1) steps, i.e. one more than L/2 for even L < T.
    assert output.attention_mask.sum(1).tolist() == [min(4, n // 2 + 1) for n in lengths] == [4, 3, 2, 1]


def test_padding_invariance(config, videos):
    # The same math on another batch composition: compared in float64 (see beyondgloss.testing.assert_same_math).
    model = BeyondGlossModel(config).double().eval()
    pixels, mask = videos
    pixels = pixels.double()
    batched = model(pixels, mask)
    alone = model(pixels[1:, :4], mask[1:, :4])
    steps = alone.attention_mask.sum().item()
    assert_same_math(batched.last_hidden_state[1, :steps], alone.last_hidden_state[0], msg="last_hidden_state")
    assert_same_math(batched.hand_predictions[1, :4], alone.hand_predictions[0], msg="hand_predictions")

    pretraining = BeyondGlossForContrastivePretraining(config).double().eval()
    ids, text_mask = text_inputs()
    both = pretraining(pixels, mask, input_ids=ids, attention_mask=text_mask)
    single = pretraining(pixels[1:, :4], mask[1:, :4], input_ids=ids[1:, :4], attention_mask=text_mask[1:, :4])
    assert_same_math(both.video_embeds[1], single.video_embeds[0], msg="video_embeds")
    assert_same_math(both.text_embeds[1], single.text_embeds[0], msg="text_embeds")


# ---- save / load ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_save_load_exact(tmp_path, config, model_class):
    model = model_class(config)
    with torch.no_grad():  # move LoRA B off zero so that an unloaded LoRA would show
        for module in model.modules():
            if isinstance(module, LoraLayer):
                module.lora_B["default"].weight.normal_()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "modeling_beyondgloss.py").is_file() and (tmp_path / "configuration_beyondgloss.py").is_file()
    loaded = model_class.from_pretrained(tmp_path)
    assert trainable(loaded) == trainable(model)  # loading must not unfreeze the backbones
    expected, found = model.state_dict(), loaded.state_dict()
    assert expected.keys() == found.keys()
    for key in expected:
        assert torch.equal(expected[key], found[key]), key


def test_fresh_process_loads_with_trust_remote_code(tmp_path, config):
    BeyondGlossForSignTranslation(config).save_pretrained(tmp_path / "model")
    script = BLOCK_BEYONDGLOSS + f"""
import torch
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoModelForPreTraining
translation = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
ids = translation.generate(torch.randn(1, 4, 3, 28, 28), num_beams=2, max_new_tokens=3)
encoder = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
pretraining = AutoModelForPreTraining.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
print(type(translation).__module__.startswith("transformers_modules"), type(encoder).__name__,
      type(pretraining).__name__, ids.shape[0])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-4:] == ["True", "BeyondGlossModel", "BeyondGlossForContrastivePretraining", "1"]


def test_auto_classes_resolve_when_installed(tmp_path, config):
    BeyondGlossForContrastivePretraining(config).save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), BeyondGlossModel)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), BeyondGlossForContrastivePretraining)
    assert isinstance(AutoModelForSeq2SeqLM.from_pretrained(tmp_path), BeyondGlossForSignTranslation)


# ---- what trains ------------------------------------------------------------------------------------------------


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_full_size_trainable_parameter_counts():
    # The reference: backbone 15,016,736 + encoder LoRA 786,432 + 2 scalars (pre-training),
    # backbone + mBART LoRA 2,359,296 (translation). Built on the meta device: nothing is allocated.
    with torch.device("meta"):
        pretraining = BeyondGlossForContrastivePretraining(BeyondGlossConfig())
        translation = BeyondGlossForSignTranslation(BeyondGlossConfig())
    assert trainable(pretraining.sign_encoder) == 15_016_736
    assert trainable(pretraining) == 15_016_736 + 786_432 + 2 == 15_803_170
    assert trainable(translation) == 15_016_736 + 2_359_296 == 17_376_032


@pytest.mark.parametrize("tuning, vision_trainable", [("lora", "lora_only"), ("full", "all"), ("frozen", "none")])
def test_vision_tuning_modes(tuning, vision_trainable):
    model = BeyondGlossModel(tiny_config(vision_tuning=tuning))
    vision_params = [p.requires_grad for p in model.sign_encoder.frame_encoder.vision.parameters()]
    lora_params = [p.requires_grad for p in model.sign_encoder.frame_encoder.lora.parameters()]
    if vision_trainable == "lora_only":
        assert not any(vision_params) and lora_params and all(lora_params)
    elif vision_trainable == "all":
        assert all(vision_params) and not lora_params
    else:
        assert not any(vision_params) and not lora_params


def test_gradients_reach_exactly_the_trainable_parameters(config, videos):
    # Stochastic depth may drop a temporal block for the whole (2-video) batch, which zeroes its gradients by
    # chance, depending on the random state earlier tests leave behind: switched off here.
    config = copy.deepcopy(config)
    config.drop_path_rate = 0.0
    model = BeyondGlossForContrastivePretraining(config)
    with torch.no_grad():  # with B = 0 LoRA's A gets no gradient; give B a value so every path is exercised
        for module in model.modules():
            if isinstance(module, LoraLayer):
                module.lora_B["default"].weight.normal_(std=0.1)
        for lora in model.sign_encoder.frame_encoder.lora.values():
            for name, parameter in lora.named_parameters():
                if name.endswith("_B"):
                    parameter.normal_(std=0.1)
    pixels, mask = videos
    ids, text_mask = text_inputs()
    output = model(pixels, mask, input_ids=ids, attention_mask=text_mask,
                   description_embeds=torch.randn(2, config.description_dim),
                   hand_features=torch.randn(2, 7, config.hand_dim))
    output.loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"sign_encoder", "mbart", "text_encoder"}
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


# ---- losses in the wrappers -------------------------------------------------------------------------------------


# The loss tests recompute a loss by its direct formula: the same math, so both run in float64 and agree to 1e-10.


def test_pretraining_loss_combines_present_terms(config, videos):
    model = BeyondGlossForContrastivePretraining(config).double().eval()
    pixels, mask = videos
    pixels = pixels.double()
    ids, text_mask = text_inputs()
    hands = torch.randn(2, 7, config.hand_dim, dtype=torch.float64)
    descriptions = torch.randn(2, config.description_dim, dtype=torch.float64)
    full = model(pixels, mask, input_ids=ids, attention_mask=text_mask, description_embeds=descriptions,
                 hand_features=hands)
    expected = full.alignment_loss + 0.5 * full.description_loss + 0.3 * full.hand_loss
    assert_same_math(full.loss, expected, msg="loss")
    bare = model(pixels, mask, input_ids=ids, attention_mask=text_mask)
    assert bare.description_loss is None and bare.hand_loss is None
    assert torch.equal(bare.loss, full.alignment_loss)
    assert full.logits_per_video.shape == (2, 2)
    assert torch.equal(full.logits_per_text, full.logits_per_video.t())
    assert_same_math(full.video_embeds.norm(dim=-1), torch.ones(2, dtype=torch.float64), msg="embedding norms")


def test_hand_loss_uses_pre_activation_and_presence_mask(config, videos):
    pixels, mask = videos
    ids, text_mask = text_inputs()
    pixels = pixels.double()
    targets = torch.randn(2, 7, config.hand_dim, dtype=torch.float64)
    presence = mask.clone()
    presence[0, :3] = 0
    model = BeyondGlossForContrastivePretraining(config).double().eval()
    out = model(pixels, mask, input_ids=ids, attention_mask=text_mask, hand_features=targets, hand_mask=presence)
    encoder = out.encoder_output
    logits = model.sign_encoder.hand_proj(encoder.frame_features)
    assert_same_math(encoder.hand_predictions[mask.bool()], logits[mask.bool()], msg="hand_predictions")
    expected = ((logits - targets) ** 2).sum(-1)[presence.bool()].sum() / (presence.sum() * config.hand_dim)
    assert_same_math(out.hand_loss, expected, msg="hand_loss")

    compat = BeyondGlossForContrastivePretraining(tiny_config(reference_compat=True)).double()
    compat.load_state_dict(model.state_dict())
    compat.eval()
    out = compat(pixels, mask, input_ids=ids, attention_mask=text_mask, hand_features=targets, hand_mask=presence)
    activated = F.gelu(logits)
    assert_same_math(out.encoder_output.hand_predictions[mask.bool()], activated[mask.bool()], msg="compat hands")
    expected = ((activated - targets) ** 2).sum(-1)[mask.bool()].sum() / (mask.sum() * config.hand_dim)
    assert_same_math(out.hand_loss, expected, msg="compat hand_loss")  # the reference: frame mask only


def test_reference_compat_pools_over_padding_and_shares_temperature(config, videos):
    pixels, mask = videos
    pixels = pixels.double()
    ids, text_mask = text_inputs()
    descriptions = torch.randn(2, config.description_dim, dtype=torch.float64)
    compat = BeyondGlossForContrastivePretraining(tiny_config(reference_compat=True)).double().eval()
    with torch.no_grad():
        compat.logit_scale_description.fill_(0.0)
        out = compat(pixels, mask, input_ids=ids, attention_mask=text_mask, description_embeds=descriptions)
        states = compat.text_encoder(input_ids=ids, attention_mask=text_mask).last_hidden_state
    # Pads included, as the reference.
    assert_same_math(out.text_embeds, F.normalize(states.mean(1), dim=-1), msg="text_embeds")
    step = F.normalize(out.encoder_output.description_states.mean(1), dim=-1)
    expected = compat.logit_scale.exp() * step @ F.normalize(descriptions, dim=-1).t()
    # The alignment temperature, not its own.
    assert_same_math(out.logits_per_description, expected, msg="logits_per_description")

    model = BeyondGlossForContrastivePretraining(config).double().eval()
    with torch.no_grad():
        model.logit_scale_description.fill_(0.0)
        out = model(pixels, mask, input_ids=ids, attention_mask=text_mask, description_embeds=descriptions)
    # exp(0) = 1, its own temperature: the logits are cosines, at most 1 up to float64 round-off (the alignment
    # temperature would allow up to 1 / 0.07).
    assert out.logits_per_description.abs().max() <= 1.0 + SAME_MATH_RTOL


# ---- translation ------------------------------------------------------------------------------------------------


def test_translation_loss_is_label_smoothed_cross_entropy(config, videos):
    model = BeyondGlossForSignTranslation(config).double().eval()
    pixels, mask = videos
    pixels = pixels.double()
    labels = torch.tensor([[5, 6, 7, 2, 3], [8, 9, 2, 3, -100]])
    output = model(pixels, mask, labels=labels)
    expected = F.cross_entropy(output.logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.2)
    # The wrapper takes the loss on float32 logits (`.float()`, for half-precision training), also for a float64
    # model. Rounding a logit moves it by at most eps/2 of the largest |logit| and each token's smoothed
    # cross-entropy by at most twice that (log-softmax changes by at most 2 max|dz|); evaluating log-sum-exp over V
    # and averaging over N tokens in float32 adds about log2(V N) eps of the loss.
    epsilon = torch.finfo(torch.float32).eps
    tokens, vocab = int((labels != -100).sum()), output.logits.shape[-1]
    bound = epsilon * (output.logits.abs().max().item() + math.log2(vocab * tokens) * expected.item())
    assert abs(output.loss.double().item() - expected.item()) <= bound
    # mBART's shift: the language code (last real label) wraps to the front of the decoder input.
    shifted = shift_tokens_right(labels, 1)
    assert shifted[:, 0].tolist() == [3, 3]
    again = model(pixels, mask, decoder_input_ids=shifted)
    assert_same_math(again.logits, output.logits, msg="logits")


def test_generate_returns_ids_and_stops_at_eos(config, videos):
    model = BeyondGlossForSignTranslation(config).eval()
    pixels, mask = videos
    with torch.no_grad():
        # Make EOS (id 2) the certain choice after two tokens so that stopping is observable.
        model.mbart.final_logits_bias.zero_()
    greedy = model.generate(pixels, mask, num_beams=1, max_new_tokens=6)
    assert greedy.dtype == torch.long and greedy.shape[0] == 2
    assert (greedy[:, 0] == config.decoder_start_token_id).all()
    beams = model.generate(pixels, mask, num_beams=3, max_new_tokens=6, num_return_sequences=3)
    assert beams.shape[0] == 6
    with torch.no_grad():
        model.mbart.final_logits_bias[0, 2] = 1e4
    stopped = model.generate(pixels, mask, num_beams=2, max_new_tokens=6)
    assert stopped[:, 1].tolist() == [2, 2] and stopped.shape[1] == 2


def test_generate_needs_a_start_token(videos):
    model = BeyondGlossForSignTranslation(tiny_config(decoder_start_token_id=None)).eval()
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        model.generate(*videos)


def test_stage_transfer_reproduces_encoder_outputs(tmp_path, config, videos):
    pretraining = BeyondGlossForContrastivePretraining(config)
    with torch.no_grad():
        for module in pretraining.modules():
            if isinstance(module, LoraLayer):
                module.lora_B["default"].weight.normal_()
        pretraining.sign_encoder.frame_norm.running_mean.normal_()
    pretraining.eval()
    pretraining.save_pretrained(tmp_path)
    translation = BeyondGlossForSignTranslation.from_pretrained(tmp_path).eval()
    pixels, mask = videos
    transferred = translation.state_dict()
    for key, value in pretraining.state_dict().items():
        if key.startswith(("sign_encoder.", "mbart.")):
            # The pre-training decoder's q/v are plain; in stage 2 they sit under LoRA (PEFT's `base_layer`).
            key = re.sub(r"^(mbart\.model\.decoder\..*_attn\.[qv]_proj)\.", r"\1.base_layer.", key)
            assert torch.equal(value, transferred[key]), key
    assert trainable(translation) == trainable(BeyondGlossForSignTranslation(config))
    # Equal weights (above), so the same math; in float32, loaded tensors can sit at other memory alignments, which
    # changes SIMD rounding, so the outputs are compared in float64.
    pretraining.double()
    translation.double()
    with torch.no_grad():
        before = pretraining.sign_encoder(pixels.double(), mask)
        after = translation.sign_encoder(pixels.double(), mask)
        assert_same_math(before.last_hidden_state, after.last_hidden_state, msg="sign encoder")
        kwargs = dict(inputs_embeds=before.last_hidden_state, attention_mask=before.attention_mask)
        assert_same_math(pretraining.mbart.model.encoder(**kwargs).last_hidden_state,
                         translation.mbart.model.encoder(**kwargs).last_hidden_state, msg="mBART encoder")
    decoder_lora = translation.mbart.model.decoder.layers[0].self_attn.q_proj
    assert decoder_lora.lora_B.default.weight.abs().sum() == 0 and torch.isfinite(decoder_lora.lora_A.default.weight).all()


def test_from_backbones_loads_local_weights(tmp_path):
    vision = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                                      image_size=28, patch_size=14))
    text = MBartForConditionalGeneration(MBartConfig(
        vocab_size=40, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        decoder_start_token_id=2))
    vision.save_pretrained(tmp_path / "dino")
    text.save_pretrained(tmp_path / "mbart")
    model = BeyondGlossForContrastivePretraining.from_backbones(
        vision=str(tmp_path / "dino"), text=str(tmp_path / "mbart"),
        config_kwargs=dict(frame_dim=16, temporal_heads=2, temporal_ffn_dim=32, hand_dim=6, description_dim=8,
                           max_new_tokens=20))  # the decoder has 64 positions
    # Loaded weights are copies: equal bit for bit.
    assert torch.equal(model.sign_encoder.frame_encoder.vision.embeddings.cls_token, vision.embeddings.cls_token)
    assert torch.equal(model.sign_encoder.frame_encoder.vision.encoder.layer[1].mlp.fc2.weight,
                       vision.encoder.layer[1].mlp.fc2.weight)
    assert torch.equal(model.text_encoder.layers[0].fc1.weight, text.model.encoder.layers[0].fc1.weight)
    assert torch.equal(model.mbart.model.encoder.layers[0].self_attn.q_proj.weight,
                       text.model.encoder.layers[0].self_attn.q_proj.weight)
    assert torch.equal(model.mbart.model.decoder.layers[0].fc2.weight, text.model.decoder.layers[0].fc2.weight)
    assert model.config.vision_lora_layers == [0, 1]


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pixels, mask, words",
    [
        (torch.randn(7, 3, 28, 28), None, ["pixel_values_videos", "(batch, frames, 3, height, width)", "(7, 3, 28, 28)"]),
        (torch.randn(2, 5, 3, 28, 28), torch.ones(2, 4, dtype=torch.long), ["video_attention_mask", "(2, 5)", "(2, 4)"]),
        (torch.randn(2, 3, 3, 28, 28), torch.tensor([[1, 1, 1], [0, 0, 0]]), ["zero valid frames", "[1]"]),
        (torch.randn(1, 3, 3, 28, 28), torch.tensor([[1, 0, 1]]), ["real frames first"]),
    ],
)
def test_bad_video_inputs(config, pixels, mask, words):
    model = BeyondGlossModel(config).eval()
    with pytest.raises(ValueError) as error:
        model(pixels, mask)
    for word in words:
        assert word in str(error.value)


def test_bad_auxiliary_inputs(config, videos):
    model = BeyondGlossForContrastivePretraining(config).eval()
    pixels, mask = videos
    ids, text_mask = text_inputs()
    with pytest.raises(ValueError, match=r"hand_features.*\(2, 7, 6\).*\(2, 6, 6\)"):
        model(pixels, mask, input_ids=ids, attention_mask=text_mask, hand_features=torch.randn(2, 6, 6))
    with pytest.raises(ValueError, match=r"description_embeds.*\(2, 24\).*\(2, 23\)"):
        model(pixels, mask, input_ids=ids, attention_mask=text_mask, description_embeds=torch.randn(2, 23))
    with pytest.raises(ValueError, match="input_ids"):
        model(pixels, mask)


@pytest.mark.parametrize("tuning", ["lora", "full", "frozen"])
def test_text_tuning_modes(tuning):
    config = tiny_config(text_tuning=tuning)
    pretraining, translation = BeyondGlossForContrastivePretraining(config), BeyondGlossForSignTranslation(config)
    has_lora = any(isinstance(m, LoraLayer) for m in translation.modules())
    assert has_lora == (tuning == "lora")
    encoder_weight = pretraining.mbart.model.encoder.layers[0].fc1.weight
    assert encoder_weight.requires_grad == (tuning == "full")
    assert translation.mbart.model.decoder.layers[0].fc1.weight.requires_grad == (tuning == "full")
    assert not pretraining.mbart.model.decoder.layers[0].fc1.weight.requires_grad  # idle in pre-training
    assert not any(p.requires_grad for p in pretraining.text_encoder.parameters())


def test_reference_compat_uses_dinov2_legacy_position_interpolation():
    # Table for 56 px (4x4 patches), frames of 28 px (2x2 patches): the table must be resized.
    config = tiny_config(reference_compat=True, vision_config=dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14, image_size=56,
        use_mask_token=False))
    model = BeyondGlossModel(config).double().eval()  # the same math two ways: float64 (see assert_same_math)
    frames = torch.randn(3, 3, 28, 28, dtype=torch.float64)
    embeddings = model.sign_encoder.frame_encoder.vision.embeddings
    table = embeddings.position_embeddings
    grid = table[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, scale_factor=(2.1 / 4, 2.1 / 4), mode="bicubic", align_corners=False)
    expected_table = torch.cat([table[:, :1], resized.permute(0, 2, 3, 1).reshape(1, 4, 32)], dim=1)
    tokens = torch.cat([embeddings.cls_token.expand(3, -1, -1), embeddings.patch_embeddings(frames)], dim=1)
    with torch.no_grad():
        assert_same_math(model.sign_encoder.frame_encoder.embed(frames), tokens + expected_table, msg="legacy rule")
        corrected = BeyondGlossModel(tiny_config(vision_config=config.vision_config.to_dict())).double().eval()
        corrected.load_state_dict(model.state_dict())
        assert torch.equal(corrected.sign_encoder.frame_encoder.embed(frames), embeddings(frames))  # HF's rule, the same code
        difference = (corrected.sign_encoder.frame_encoder.embed(frames) - model.sign_encoder.frame_encoder.embed(frames)).abs().max()
        assert difference > 1e-3 * tokens.abs().max()  # the two rules differ by far more than round-off


def test_translation_hand_loss_is_optional(videos):
    pixels, mask = videos
    labels = torch.tensor([[5, 6, 7, 2, 3], [8, 9, 2, 3, -100]])
    pixels = pixels.double()
    hands = torch.randn(2, 7, 6, dtype=torch.float64)
    plain = BeyondGlossForSignTranslation(tiny_config()).double().eval()
    with_hands = BeyondGlossForSignTranslation(tiny_config(translation_hand_loss_weight=0.5)).double().eval()
    with_hands.load_state_dict(plain.state_dict())
    reference = plain(pixels, mask, labels=labels)
    # `.double()`: the wrapper takes the cross-entropy in float32 (see the label smoothing test), the same way here.
    assert_same_math(plain(pixels, mask, labels=labels, hand_features=hands).loss.double(), reference.loss.double(),
                     msg="loss")
    out = with_hands(pixels, mask, labels=labels, hand_features=hands)
    encoder = with_hands.sign_encoder(pixels, mask)
    hand = ((encoder.hand_predictions - hands) ** 2).sum(-1)[mask.bool()].sum() / (mask.sum() * 6)
    assert_same_math(out.loss.double(), (reference.loss + 0.5 * hand).double(), msg="loss with hands")

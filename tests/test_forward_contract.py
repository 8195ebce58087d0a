"""The models' `forward` follows transformers' contract: typed inputs, unknown inputs refused by name, hidden states and
attentions on request, tuple outputs with `return_dict=False`, and each part of the loss in the output."""

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from beyondgloss import (
    BeyondGlossConfig,
    BeyondGlossForContrastivePretraining,
    BeyondGlossForSignTranslation,
    BeyondGlossModel,
)
from beyondgloss.testing import tiny_config

MODELS = (BeyondGlossModel, BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation)


def _inputs(model_class, videos, with_hands=False):
    pixels, mask = videos
    inputs = {"pixel_values_videos": pixels, "video_attention_mask": mask}
    ids = torch.tensor([[5, 6, 7, 2, 3], [8, 9, 2, 3, 1]])
    if model_class is BeyondGlossForContrastivePretraining:
        inputs |= {"input_ids": ids, "attention_mask": (ids != 1).long()}
    elif model_class is BeyondGlossForSignTranslation:
        inputs |= {"labels": ids.masked_fill(ids == 1, -100)}
    if with_hands:
        inputs["hand_features"] = torch.randn(*mask.shape, 6, generator=torch.Generator().manual_seed(3))
    return inputs


@pytest.mark.parametrize("model_class", MODELS)
def test_unknown_inputs_are_refused_by_name(model_class, config, videos):
    model = model_class(config).eval()
    with pytest.raises(TypeError, match=r"unknown inputs \['pixel_values', 'video_mask'\].*pixel_values_videos"):
        model(**_inputs(model_class, videos), pixel_values=videos[0], video_mask=videos[1])


@pytest.mark.parametrize("model_class", MODELS)
def test_return_dict_false_gives_the_outputs_tuple(model_class, config, videos):
    torch.manual_seed(0)
    model = model_class(config).eval()
    with torch.no_grad():
        as_dict = model(**_inputs(model_class, videos))
        as_tuple = model(**_inputs(model_class, videos), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    assert torch.equal(as_tuple[0], as_dict.to_tuple()[0])


def test_the_encoder_returns_temporal_hidden_states_and_attentions(config, videos):
    model = BeyondGlossModel(config).eval()
    pixels, mask = videos
    with torch.no_grad():
        plain = model(pixels, mask)
        output = model(pixels, mask, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    blocks = sum(config.temporal_layers)
    assert len(output.hidden_states) == blocks + 1 and len(output.attentions) == blocks
    frames, steps = mask.shape[1], output.attention_mask.shape[1]
    assert output.hidden_states[0].shape == (2, frames, config.frame_dim)
    assert output.attentions[0].shape == (2, config.temporal_heads, frames, frames)
    assert output.attentions[-1].shape == (2, config.temporal_heads, steps, steps)
    # The attention weights are computed explicitly, the sequence is the one SDPA gives.
    torch.testing.assert_close(output.last_hidden_state, plain.last_hidden_state)
    # Each row is a distribution over the frames within the local window.
    torch.testing.assert_close(output.attentions[0].sum(-1), torch.ones(2, config.temporal_heads, frames))


def test_translation_output_carries_each_loss_part(videos):
    torch.manual_seed(0)
    config = tiny_config(translation_hand_loss_weight=0.5)
    model = BeyondGlossForSignTranslation(config).eval()
    with torch.no_grad():
        output = model(**_inputs(BeyondGlossForSignTranslation, videos, with_hands=True))
        without_hands = model(**_inputs(BeyondGlossForSignTranslation, videos))
    assert output.hand_loss is not None and without_hands.hand_loss is None
    torch.testing.assert_close(output.loss, output.translation_loss + 0.5 * output.hand_loss)
    torch.testing.assert_close(without_hands.loss, without_hands.translation_loss)
    torch.testing.assert_close(output.translation_loss, without_hands.translation_loss)


def test_translation_returns_mbart_hidden_states_and_eager_attentions(tmp_path, videos):
    torch.manual_seed(0)
    BeyondGlossForSignTranslation(tiny_config()).save_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    with torch.no_grad():
        output = model(**_inputs(BeyondGlossForSignTranslation, videos), output_hidden_states=True,
                       output_attentions=True)
    text = model.config.text_config
    assert len(output.decoder_hidden_states) == text.decoder_layers + 1
    assert len(output.encoder_hidden_states) == text.encoder_layers + 1
    assert output.decoder_attentions[0].shape[1] == text.decoder_attention_heads
    assert output.cross_attentions[0].shape[-1] == output.encoder_last_hidden_state.shape[1]
    assert len(output.sign_encoder_output.attentions) == sum(model.config.temporal_layers)


def test_max_new_tokens_follows_a_small_text_model():
    config = tiny_config(text_config={**tiny_config().text_config.to_dict(), "max_position_embeddings": 64},
                         max_new_tokens=None)
    assert config.max_new_tokens == 63
    assert BeyondGlossConfig().max_new_tokens == 150  # the reference's, where the positions allow it
    with pytest.raises(ValueError, match="max_new_tokens=64"):
        tiny_config(text_config={**tiny_config().text_config.to_dict(), "max_position_embeddings": 64},
                    max_new_tokens=64)

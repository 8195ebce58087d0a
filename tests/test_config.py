import math

import pytest
from transformers import AutoConfig, Dinov2Config, MBartConfig

from beyondgloss import BeyondGlossConfig
from beyondgloss.testing import tiny_config


def test_defaults_reproduce_the_paper():
    config = BeyondGlossConfig()
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (384, 12, 6)
    assert (vision.patch_size, vision.image_size) == (14, 224)
    assert (text.d_model, text.encoder_layers, text.decoder_layers, text.encoder_attention_heads) == (1024, 12, 12, 16)
    assert text.encoder_ffn_dim == 4096
    assert config.vision_lora_layers == [9, 10, 11]
    assert (config.vision_lora_rank, config.vision_lora_alpha, config.vision_lora_dropout) == (4, 4.0, 0.1)
    assert (config.text_lora_rank, config.text_lora_alpha) == (16, 32.0)
    assert (config.hand_dim, config.description_dim, config.frame_dim) == (288, 1024, 512)
    assert (config.description_loss_weight, config.hand_loss_weight) == (0.5, 0.3)
    assert config.soft_target_scale == 10.0
    assert math.isclose(config.logit_scale_init_value, math.log(1 / 0.07))
    assert config.label_smoothing == 0.2 and config.num_beams == 5 and config.max_new_tokens == 150
    assert config.vision_tuning == "lora" and config.max_frames == 300 and config.reference_compat is False
    assert config.pad_token_id == 1


def test_round_trip_keeps_sub_configs(tmp_path):
    config = tiny_config(reference_compat=True, num_beams=3, decoder_start_token_id=7)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, BeyondGlossConfig)
    assert isinstance(loaded.vision_config, Dinov2Config) and isinstance(loaded.text_config, MBartConfig)
    expected = {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k != "_name_or_path"} == expected
    assert BeyondGlossConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_from_vision_text_configs():
    vision = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2)
    text = MBartConfig(d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=50)
    config = BeyondGlossConfig.from_vision_text_configs(vision, text, frame_dim=32, temporal_heads=2)
    assert config.vision_config is vision and config.text_config is text
    assert config.vision_lora_layers == [1, 2, 3]


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"vision_tuning": "partial"}, ["vision_tuning='partial'", "lora"]),
        ({"vision_lora_layers": [0, 5]}, ["vision_lora_layers", "[5]", "0..1"]),
        ({"temporal_window": 6}, ["temporal_window=6", "odd"]),
        ({"temporal_layers": [2]}, ["temporal_layers", "[2, 2]"]),
        ({"frame_dim": 20}, ["frame_dim=20"]),
        ({"temporal_heads": 3}, ["temporal_heads=3"]),
        ({"label_smoothing": 1.5}, ["label_smoothing=1.5", "[0, 1)"]),
        ({"hand_loss_weight": -1.0}, ["hand_loss_weight=-1.0"]),
        ({"max_frames": 0}, ["max_frames=0"]),
        ({"temporal_heads": 0}, ["temporal_heads=0", "positive"]),
        ({"vision_config": {"hidden_size": -32}}, ["vision_config.hidden_size=-32", "positive"]),
        ({"text_config": {"d_model": 0}}, ["text_config.d_model=0", "positive"]),
    ],
)
def test_validation_names_value_and_fix(overrides, words):
    with pytest.raises(ValueError) as error:
        tiny_config(**overrides)
    for word in words:
        assert word in str(error.value)


def test_rejects_wrong_backbone_types():
    with pytest.raises(ValueError, match="Dinov2Config"):
        BeyondGlossConfig(vision_config={"model_type": "vit"})
    with pytest.raises(ValueError, match="MBartConfig"):
        BeyondGlossConfig(text_config={"model_type": "bart"})


def test_the_generic_token_ids_are_the_text_configs():
    # Both go through one property factory: reading gives the text config's value, writing lands there.
    config = tiny_config()
    for name, value in (("pad_token_id", 5), ("eos_token_id", 6)):
        setattr(config, name, value)
        assert getattr(config.text_config, name) == value == getattr(config, name)
    config.pad_token_id = None  # PreTrainedConfig's blanket assignment must not erase the text config's id
    assert config.text_config.pad_token_id == 5

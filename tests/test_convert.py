"""Conversion of reference-code checkpoints, against the reference's own layout table.

The full-size layout (official_checkpoint_layout.tsv) is checked key for key and shape for shape without allocating
(meta tensors); values are checked on the same layout shrunk to tiny shapes (every width scaled down, a few blocks
kept), filled with random tensors and saved as a Lightning checkpoint.
"""

import argparse
import re
from pathlib import Path

import pytest
import torch
from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer
from transformers.models.mbart.tokenization_mbart import FAIRSEQ_LANGUAGE_CODES

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from beyondgloss.convert import (
    ReferenceCheckpointError,
    convert_reference_checkpoint,
    infer_config,
    map_reference_state_dict,
    reference_layout,
)
from beyondgloss.cli.convert import convert as convert_command
from beyondgloss.temporal_encoder import sinusoidal_position_encoding
from beyondgloss.benchmark.reference_impl import ReferenceSignEncoder
from beyondgloss.testing import assert_same_math

# The reference's own table of its checkpoints' keys, shapes and dtypes (both stages, full size), kept in the repository
# so that these tests run in any clone.
LAYOUT_TSV = Path(__file__).resolve().parent / "fixtures" / "official_checkpoint_layout.tsv"

# Tiny stand-ins for the reference's sizes (DINOv2 384/1152/1536, 37x37+1 positions, frame 512, hand 288, temporal
# FFN 2048, 300 frames, head width 64 -> RoPE 32, mBART 1024/4096, vocab 2454, 1024+2 positions, LoRA ranks 4/16).
TINY = {384: 64, 1152: 192, 1536: 128, 1370: 5, 512: 16, 288: 6, 2048: 32, 300: 40, 32: 1, 1024: 32, 4096: 64,
        2454: 50, 1026: 154, 4: 2, 16: 4}  # 152 mBART positions: the default max_new_tokens (150) + start token fit
KEEP_VISION = {0: 0, 10: 1, 11: 2}  # blocks 0, 10, 11 -> 0, 1, 2 (LoRA on 10 and 11)
KEEP_MBART = {0: 0, 1: 1}
IMAGE_ENCODER = "model.model_images.trans_encoder.base_model.model."
MBART = "model.mbart.base_model.model."


def read_layout(stage: str) -> dict[str, tuple[int, ...]]:
    layout = {}
    for line in LAYOUT_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        row_stage, key, shape, _dtype, _kind = line.split("\t")
        if row_stage == stage:
            layout[key] = () if shape == "scalar" else tuple(int(size) for size in shape.split("x"))
    return layout


def tiny_layout(stage: str) -> dict[str, tuple[int, ...]]:
    tiny = {}
    for key, shape in read_layout(stage).items():
        if match := re.search(r"\.blocks\.(\d+)\.", key):
            if int(match.group(1)) not in KEEP_VISION:
                continue
            key = key.replace(match.group(0), f".blocks.{KEEP_VISION[int(match.group(1))]}.")
        elif (match := re.search(r"\.layers\.(\d+)\.", key)) and "conv_1d" not in key:
            if int(match.group(1)) not in KEEP_MBART:
                continue
        tiny[key] = tuple(size if key.endswith("patch_embed.proj.weight") and size in (3, 14) else TINY.get(size, size)
                          for size in shape)
    return tiny


def random_reference_state(stage: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the tiny layout's every key and shape, random values, and the values the reference code
    would store where they are determined (position tables, tied embeddings, BatchNorm counters)."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) for key, shape in tiny_layout(stage).items()}
    for key in state:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(17)
        elif key.endswith("running_var"):
            state[key] = state[key].abs() + 0.5
        elif key.endswith("pos_embedding.pe"):
            state[key] = sinusoidal_position_encoding(*state[key].shape)
        elif key.endswith(("rotary_emb.sin", "rotary_emb.cos")):
            length, half = state[key].shape[0], state[key].shape[-1]
            theta = torch.exp(torch.arange(0, 2 * half, 2, dtype=torch.float32) * (-torch.log(torch.tensor(1e4)) / (2 * half)))
            angle = torch.arange(length, dtype=torch.float32)[:, None] * theta
            state[key] = (angle.sin() if key.endswith("sin") else angle.cos())[:, None, None, :]
    if stage == "translation":
        for key in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
            state[MBART + key] = state[MBART + "model.shared.weight"]
    return state


def save_lightning(state: dict, path: Path, **extra) -> Path:
    torch.save({"state_dict": state, "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", **extra},
               path)
    return path


def tiny_tokenizer() -> MBartTokenizer:
    """50 tokens, as the tiny vocabulary: the 4 specials, 20 pieces, the 25 language codes and <mask>."""
    words = ["▁morgen", "▁regen", "▁sonne", "▁im", "▁norden", "▁süden", "▁es", "▁wind", "▁schnee", "▁frost"]
    characters = ["▁", "m", "o", "r", "g", "e", "n", "s", ".", "u"]
    vocab = [(token, 0.0) for token in ("<s>", "<pad>", "</s>", "<unk>")]
    vocab += [(word, -2.0 - i * 0.1) for i, word in enumerate(words)] + [(ch, -8.0) for ch in characters]
    vocab += [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    return MBartTokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="de_DE")


@pytest.fixture(scope="module")
def translation_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translation")
    state = random_reference_state("translation")
    path = save_lightning(state, folder / "best.ckpt", hyper_parameters={"lr": 4e-4, "num_beams": 5})
    tokenizer_dir = folder / "tokenizer"
    tiny_tokenizer().save_pretrained(tokenizer_dir)
    out = folder / "converted"
    convert_reference_checkpoint(path, out, tokenizer=tokenizer_dir)
    return state, path, out


@pytest.fixture(scope="module")
def pretraining_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretraining")
    state = random_reference_state("pretraining", seed=1)
    path = save_lightning(state, folder / "last.ckpt")
    # The trimmed mBART the checkpoint was trained from: same shapes and the same (frozen) token embeddings.
    backbone_config = MBartConfig(vocab_size=50, d_model=32, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                  decoder_ffn_dim=64, max_position_embeddings=152, scale_embedding=True, dropout=0.1)
    backbone = MBartForConditionalGeneration(backbone_config)
    with torch.no_grad():
        backbone.model.shared.weight.copy_(state[IMAGE_ENCODER + "embed_tokens.weight"])
        backbone.final_logits_bias.normal_()
    backbone_dir = folder / "mbart_trimmed"
    backbone.save_pretrained(backbone_dir)
    tiny_tokenizer().save_pretrained(backbone_dir)
    out = folder / "converted"
    assert convert_command([str(path), str(out), "--text_backbone", str(backbone_dir)]) == 0
    return state, path, out, backbone


def test_layout_is_the_reference_table_and_maps_onto_the_models():
    """Full size, no allocation: the layout derived from the table's shapes is the table, and the mapped keys and
    shapes are exactly those of the beyondgloss task model (plus the decoder a pre-training checkpoint lacks)."""
    for stage, model_class in (("pretraining", BeyondGlossForContrastivePretraining),
                               ("translation", BeyondGlossForSignTranslation)):
        table = read_layout(stage)
        state = {key: torch.empty(shape, device="meta") for key, shape in table.items()}
        config = infer_config(state, stage)
        assert reference_layout(config, stage) == table
        assert (config.vision_config.image_size, config.text_config.vocab_size, config.vision_lora_layers,
                config.temporal_layers, config.temporal_heads, config.text_lora_rank, config.reference_compat) == (
            518, 2454, [9, 10, 11], [2, 2], 8, 16, True)
        mapped = {key: tuple(value.shape) for key, value in map_reference_state_dict(state, config, stage).items()}
        with torch.device("meta"):
            model = model_class(config)
        expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
        if stage == "pretraining":
            absent = {key for key in expected if key.startswith("mbart.model.decoder.") or key == "mbart.final_logits_bias"}
            assert set(expected) - set(mapped) == absent - {"mbart.model.decoder.embed_tokens.weight"}
            expected = {key: shape for key, shape in expected.items() if key not in absent or key in mapped}
        assert mapped == expected


def test_translation_checkpoint_converts_tensor_for_tensor(translation_checkpoint):
    state, _, out = translation_checkpoint
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    model = BeyondGlossForSignTranslation.from_pretrained(out).eval()
    assert model.config.reference_compat
    converted = model.state_dict()
    sign, dino = "model.backbone.", "model.backbone.conv_2d.dino.spatial_model."
    # Fused qkv rows and the shared-A LoRA's fused B rows split into q, k, v (block 11 of the reference is block 2).
    qkv, qkv_bias, lora_b = (state[dino + f"blocks.2.attn.{name}"] for name in ("qkv.weight", "qkv.bias", "lora_w1_l2.weight"))
    for i, name in enumerate(("q", "k", "v")):
        attention = f"sign_encoder.frame_encoder.vision.encoder.layer.2.attention.{name}_proj."
        assert torch.equal(converted[attention + "weight"], qkv[64 * i: 64 * (i + 1)])
        assert torch.equal(converted[attention + "bias"], qkv_bias[64 * i: 64 * (i + 1)])
        assert torch.equal(converted[f"sign_encoder.frame_encoder.lora.2.{name}_B"], lora_b[64 * i: 64 * (i + 1)])
    pairs = {
        dino + "blocks.2.attn.lora_w1_l1.weight": "sign_encoder.frame_encoder.lora.2.qkv_A",
        dino + "blocks.1.mlp.lora_w2_l2.weight": "sign_encoder.frame_encoder.lora.1.fc2_B",
        dino + "blocks.0.ls1.gamma": "sign_encoder.frame_encoder.vision.encoder.layer.0.layer_scale1.lambda1",
        dino + "pos_embed": "sign_encoder.frame_encoder.vision.embeddings.position_embeddings",
        dino + "mask_token": "sign_encoder.frame_encoder.vision.embeddings.mask_token",
        sign + "conv_2d.dino.bn.running_var": "sign_encoder.frame_norm.running_var",
        sign + "hamer_mapper_1.weight": "sign_encoder.hand_proj.weight",
        sign + "mapper_1_downsample.0.weight": "sign_encoder.hand_fuse.weight",
        sign + "conv_1d.layers.3.attention.query_proj.weight": "sign_encoder.temporal.blocks.2.attention.q_proj.weight",
        sign + "conv_1d.layers.4.attention.layer_scale": "sign_encoder.temporal.blocks.3.layer_scale",
        sign + "conv_1d.layers.1.norm2.bias": "sign_encoder.temporal.blocks.1.ffn_norm.bias",
        sign + "mapper_2.weight": "sign_encoder.description_down.weight",
        MBART + "model.decoder.layers.1.encoder_attn.q_proj.lora_A.default.weight":
            "mbart.model.decoder.layers.1.encoder_attn.q_proj.lora_A.default.weight",
        MBART + "model.encoder.layers.0.self_attn.v_proj.lora_B.default.weight":
            "mbart.model.encoder.layers.0.self_attn.v_proj.lora_B.default.weight",
        MBART + "model.decoder.layers.0.self_attn.q_proj.base_layer.weight": "mbart.model.decoder.layers.0.self_attn.q_proj.base_layer.weight",
        MBART + "final_logits_bias": "mbart.final_logits_bias",
        MBART + "lm_head.weight": "mbart.lm_head.weight",
    }
    for reference_key, key in pairs.items():
        assert torch.equal(converted[key], state[reference_key]), key
    assert converted["sign_encoder.frame_norm.num_batches_tracked"].item() == 17
    # Every reference tensor landed somewhere, bit for bit (the position tables are computed, the fused ones split).
    for key, tensor in state.items():
        if "rotary_emb" in key or "pos_embedding" in key or "attn.qkv" in key or "lora_w1_l2" in key and ".attn." in key:
            continue
        assert any(value.shape == tensor.shape and torch.equal(value, tensor) for value in converted.values()), key
    # Trainability as in the reference: LoRA and the sign encoder's own parts train, DINOv2 and mBART stay frozen.
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "mbart.model.decoder.layers.0.encoder_attn.v_proj.lora_B.default.weight" in trainable
    assert "sign_encoder.frame_encoder.lora.1.qkv_A" in trainable and "sign_encoder.temporal.blocks.0.layer_scale" in trainable
    assert not any(name.startswith("sign_encoder.frame_encoder.vision.") or name == "mbart.model.shared.weight" for name in trainable)
    # It runs: a loss and a translation starting from de_DE (the tokenizer was saved with it).
    tokenizer = MBartTokenizer.from_pretrained(out)
    assert model.config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("de_DE")
    video = torch.randn(1, 5, 3, 28, 28)
    labels = tokenizer(text_target=["morgen regen"], return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(video, labels=labels).loss)
    generated = model.generate(video, num_beams=2, max_new_tokens=4)
    assert generated[0, 0].item() == model.config.decoder_start_token_id


# The reference's DINOv2 and frame projection names (vision_transformer.py, `lin`, `bn`) -> ReferenceSignEncoder's.
REFERENCE_FRAME_ENCODER_NAMES = [
    (r"^spatial_model\.patch_embed\.proj\.", "patch_embed."),
    (r"^spatial_model\.", ""),
    (r"\.attn\.lora_w1_l1\.weight$", ".qkv.lora_A"), (r"\.attn\.lora_w1_l2\.weight$", ".qkv.lora_B"),
    (r"\.attn\.lora_w2_l1\.weight$", ".proj.lora_A"), (r"\.attn\.lora_w2_l2\.weight$", ".proj.lora_B"),
    (r"\.mlp\.lora_w1_l1\.weight$", ".fc1.lora_A"), (r"\.mlp\.lora_w1_l2\.weight$", ".fc1.lora_B"),
    (r"\.mlp\.lora_w2_l1\.weight$", ".fc2.lora_A"), (r"\.mlp\.lora_w2_l2\.weight$", ".fc2.lora_B"),
    (r"\.attn\.(qkv|proj)\.", r".\1."), (r"\.mlp\.(fc\d)\.", r".\1."), (r"\.(ls\d)\.gamma$", r".\1"),
    (r"^lin\.", "frame_proj."), (r"^bn\.", "frame_norm."),
]


def test_converted_frame_encoder_computes_what_the_checkpoint_computes(translation_checkpoint):
    """The converted frame encoder (fused qkv and its fused LoRA B split into q, k, v; each LoRA moved to its layer;
    the optimised path folds them back) computes what the reference's own modules compute from the checkpoint's
    tensors under the reference's names: the same math, so both in float64 and held to 1e-10 (assert_same_math).
    A LoRA landing on another layer of the same shape (attention output and fc1 A are both 4 x 64) shows here."""
    state, _, out = translation_checkpoint
    model = BeyondGlossForSignTranslation.from_pretrained(out).double().eval()
    reference = ReferenceSignEncoder(model.config).double().eval()
    prefix = "model.backbone.conv_2d.dino."
    renamed = {}
    for key, tensor in state.items():
        if key.startswith(prefix) and not key.endswith("mask_token"):
            name = key[len(prefix):]
            for pattern, replacement in REFERENCE_FRAME_ENCODER_NAMES:
                name = re.sub(pattern, replacement, name)
            renamed[name] = tensor.double() if tensor.is_floating_point() else tensor
    missing, unexpected = reference.load_state_dict(renamed, strict=False)
    assert not unexpected and all(name.startswith(("temporal.", "hand_", "description_")) for name in missing), missing
    frames = torch.randn(5, 3, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.frame_norm(reference.frame_proj(reference.encode_frames(frames)))
        converted = model.sign_encoder(frames[None]).frame_features[0]
    assert_same_math(converted, expected, msg="frame features")


def test_pretraining_checkpoint_converts_with_the_text_backbone_decoder(pretraining_checkpoint):
    state, _, out, backbone = pretraining_checkpoint
    model = BeyondGlossForContrastivePretraining.from_pretrained(out).eval()
    converted = model.state_dict()
    assert converted["logit_scale_description"].item() == state["model.logit_scale_desc"].item()
    assert torch.equal(converted["text_encoder.layers.1.fc2.weight"], state["model.model_txt.model_txt.layers.1.fc2.weight"])
    assert torch.equal(converted["mbart.model.encoder.layers.1.self_attn.q_proj.lora_A.default.weight"],
                       state[IMAGE_ENCODER + "layers.1.self_attn.q_proj.lora_A.default.weight"])
    assert torch.equal(converted["mbart.model.shared.weight"], state[IMAGE_ENCODER + "embed_tokens.weight"])
    assert torch.equal(converted["mbart.model.decoder.layers.1.fc1.weight"], backbone.model.decoder.layers[1].fc1.weight)
    assert torch.equal(converted["mbart.final_logits_bias"], backbone.final_logits_bias)
    tokenizer = MBartTokenizer.from_pretrained(out)
    text = tokenizer(text_target=["morgen regen", "wind im norden"], padding=True, return_tensors="pt")
    output = model(torch.randn(2, 4, 3, 28, 28), input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                   description_embeds=torch.randn(2, 32), hand_features=torch.randn(2, 4, 6))
    assert torch.isfinite(output.loss)
    # Stage 2 starts from it, as in the reference: the sign encoder and the image-side encoder with its LoRA carry over.
    translation = BeyondGlossForSignTranslation.from_pretrained(out)
    assert torch.equal(translation.mbart.model.encoder.layers[0].self_attn.v_proj.lora_B.default.weight,
                       state[IMAGE_ENCODER + "layers.0.self_attn.v_proj.lora_B.default.weight"])
    assert torch.equal(translation.sign_encoder.description_proj.weight, state["model.model_images.model.mapper_1.weight"])


def test_pretraining_checkpoint_needs_a_decoder_choice(pretraining_checkpoint, tmp_path, caplog):
    _, path, _, _ = pretraining_checkpoint
    with pytest.raises(ReferenceCheckpointError, match="text_backbone"):
        convert_reference_checkpoint(path, tmp_path / "out")
    config_overrides = {"text_config": {"encoder_attention_heads": 2, "decoder_attention_heads": 2}}
    with caplog.at_level("WARNING"):
        model = convert_reference_checkpoint(path, None, random_decoder=True, config_overrides=config_overrides)
    assert "RANDOMLY INITIALISED" in caplog.text
    assert model.config.text_config.decoder_layers == 2 and model.config.text_config.encoder_attention_heads == 2
    assert not any(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("defect", ["unexpected", "missing", "shape", "table"])
def test_a_checkpoint_of_another_layout_is_refused_with_its_keys(defect, tmp_path):
    state = random_reference_state("translation")
    key = "model.backbone.conv_1d.layers.3.ffn.linear1.weight"
    if defect == "unexpected":
        state["model.backbone.conv_1d.layers.3.attention.gate.weight"] = torch.zeros(16)
        message = re.escape("unexpected keys (1): model.backbone.conv_1d.layers.3.attention.gate.weight")
    elif defect == "missing":
        del state[key]
        message = re.escape(f"missing keys (1): {key}")
    elif defect == "shape":
        state[key] = torch.zeros(48, 16)
        message = re.escape(f"{key} (48, 16) (expected (32, 16))")
    else:
        state["model.backbone.conv_1d.pos_embedding.pe"] += 0.01
        message = "pos_embedding.pe differs"
    path = save_lightning(state, tmp_path / "odd.ckpt")
    with pytest.raises(ReferenceCheckpointError, match=message):
        convert_reference_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_inputs_are_refused_clearly(tmp_path, capsys):
    state = random_reference_state("translation")
    pickled = save_lightning(state, tmp_path / "pickled.ckpt", hyper_parameters=argparse.Namespace(lr=4e-4))
    with pytest.raises(ReferenceCheckpointError, match=r"weights_only=True\) refuses .*argparse"):
        convert_reference_checkpoint(pickled, tmp_path / "out")
    foreign = save_lightning({"encoder.weight": torch.zeros(2)}, tmp_path / "foreign.ckpt")
    with pytest.raises(ReferenceCheckpointError, match="unknown checkpoint layout"):
        convert_reference_checkpoint(foreign, tmp_path / "out")
    # A well-formed command line whose input cannot be used: one error line, exit 1, no usage block.
    assert convert_command([str(tmp_path / "absent.ckpt"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.ckpt: no such checkpoint file" in err and "usage:" not in err
    # A malformed command line gets argparse's usage message and exit 2.
    assert convert_command([str(pickled), str(tmp_path / "out"), "--stage", "finetuning"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: beyondgloss convert") and "beyondgloss convert: error: argument --stage" in err


def _config_only_backbone(folder: Path, **changes) -> Path:
    """A folder holding only the mBART config.json the pre-training checkpoint was trained with (no weights, no
    tokenizer), with `changes` to settings that shapes cannot tell, so that a test can see they were taken."""
    settings = dict(vocab_size=50, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=152,
                    scale_embedding=True, dropout=0.1)
    config = MBartConfig(**{**settings, **changes})
    folder.mkdir(parents=True)
    config.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    return folder


def _saved_keys(folder: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return set(handle.keys())


def test_convert_replaces_only_its_own_earlier_output(pretraining_checkpoint, tmp_path, capsys):
    from beyondgloss.cli.output_dir import RUN_MARKER

    _, path, out, backbone = pretraining_checkpoint
    backbone_dir = path.parent / "mbart_trimmed"
    # A folder of the user's own files is never written, whatever the flags.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    for extra in ([], ["--overwrite_output_dir"]):
        assert convert_command([str(path), str(mine), "--text_backbone", str(backbone_dir), *extra]) == 1
        assert "did not write (config.json)" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (mine / "config.json").read_text() == '{"mine": true}'
    # The fixture's converted folder: refused without the flag, replaced with it.
    assert '"convert"' in (out / RUN_MARKER).read_text()
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert convert_command([str(path), str(out), "--text_backbone", str(backbone_dir)]) == 1
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    copy = tmp_path / "copy"
    assert convert_command([str(path), str(copy), "--text_backbone", str(backbone_dir)]) == 0
    assert convert_command([str(path), str(copy), "--text_backbone", str(backbone_dir), "--overwrite_output_dir"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or replaced folder left


def test_pretraining_checkpoint_with_a_config_only_text_backbone(pretraining_checkpoint, tmp_path, caplog):
    """A config-only mBART folder gives the settings; the decoder is built from them, randomly initialised, said in a
    warning, and not saved (the pre-training stage never runs it)."""
    state, path, _, _ = pretraining_checkpoint
    backbone = _config_only_backbone(tmp_path / "mbart_config", decoder_layers=3, decoder_ffn_dim=48)
    out = tmp_path / "converted"
    with caplog.at_level("WARNING"):
        assert convert_command([str(path), str(out), "--text_backbone", str(backbone), "--target_language", "7"]) == 0
    assert "RANDOMLY INITIALISED" in caplog.text and "holds a configuration but no weights" in caplog.text
    saved = _saved_keys(out)
    assert not any(key.startswith("mbart.model.decoder.") for key in saved) and "mbart.final_logits_bias" not in saved
    assert "mbart.model.encoder.layers.1.self_attn.q_proj.lora_A.default.weight" in saved
    model = BeyondGlossForContrastivePretraining.from_pretrained(out).eval()
    text = model.config.text_config
    assert (text.decoder_layers, text.decoder_ffn_dim, model.config.decoder_start_token_id) == (3, 48, 7)
    assert torch.equal(model.mbart.model.encoder.layers[1].self_attn.q_proj.lora_A.default.weight,
                       state[IMAGE_ENCODER + "layers.1.self_attn.q_proj.lora_A.default.weight"])
    output = model(torch.randn(2, 4, 3, 28, 28), input_ids=torch.tensor([[5, 6, 2, 3], [7, 2, 3, 1]]),
                   attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert torch.isfinite(output.loss)
    # Stage 2 from it: the decoder is random (and finite), the encoder side carries over; generate() has its start.
    translation = BeyondGlossForSignTranslation.from_pretrained(out).eval()
    assert all(torch.isfinite(p).all() for p in translation.mbart.model.decoder.parameters())
    ids = translation.generate(torch.randn(1, 4, 3, 28, 28), num_beams=1, max_new_tokens=3)
    assert ids[0, 0].item() == 7


def test_random_decoder_with_a_text_backbone_takes_its_config_not_its_weights(pretraining_checkpoint, tmp_path):
    state, path, _, backbone = pretraining_checkpoint
    weights_dir = tmp_path / "mbart"
    changed = MBartForConditionalGeneration(MBartConfig(**{**backbone.config.to_dict(), "dropout": 0.25}))
    with torch.no_grad():
        changed.model.shared.weight.copy_(state[IMAGE_ENCODER + "embed_tokens.weight"])
    changed.save_pretrained(weights_dir)
    model = convert_reference_checkpoint(path, tmp_path / "out", text_backbone=weights_dir, random_decoder=True)
    assert model.config.text_config.dropout == 0.25
    assert not torch.equal(model.mbart.model.decoder.layers[0].fc1.weight, changed.model.decoder.layers[0].fc1.weight)
    assert not any(key.startswith("mbart.model.decoder.") for key in _saved_keys(tmp_path / "out"))


def test_target_language_sets_the_decoder_start_token(translation_checkpoint, tmp_path, caplog, capsys):
    _, path, out = translation_checkpoint
    tokenizer = MBartTokenizer.from_pretrained(out)
    # With a tokenizer, de_DE by default (the reference's); another code when asked.
    assert BeyondGlossForSignTranslation.from_pretrained(out).generation_config.decoder_start_token_id == \
        tokenizer.convert_tokens_to_ids("de_DE")
    model = convert_reference_checkpoint(path, None, tokenizer=out, target_language="zh_CN")
    assert model.config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("zh_CN")
    # Without a tokenizer: an id works; a code cannot be resolved (one error line); nothing given warns.
    # (--target-language: the dashed spelling of older scripts, a hidden alias of --target_language)
    assert convert_command([str(path), str(tmp_path / "by_id"), "--target-language", "9"]) == 0
    loaded = BeyondGlossForSignTranslation.from_pretrained(tmp_path / "by_id").eval()
    assert loaded.generate(torch.randn(1, 4, 3, 28, 28), num_beams=1, max_new_tokens=3)[0, 0].item() == 9
    capsys.readouterr()
    assert convert_command([str(path), str(tmp_path / "by_code"), "--target_language", "de_DE"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tokenizer" in err and not (tmp_path / "by_code").exists()
    assert convert_command([str(path), str(tmp_path / "too_big"), "--target_language", "50"]) == 1
    assert "outside the vocabulary (0..49)" in capsys.readouterr().err
    with caplog.at_level("WARNING"):
        assert convert_reference_checkpoint(path, None).config.decoder_start_token_id is None
    assert "--target_language" in caplog.text


def test_generation_length_fits_a_small_decoder():
    """The reference generates at most 150 tokens; a trimmed decoder with fewer positions gets what fits."""
    state = {key: torch.empty(shape, device="meta") for key, shape in read_layout("translation").items()}
    assert infer_config(state, "translation").max_new_tokens == 150
    for key in [key for key in state if key.endswith("embed_positions.weight")]:
        state[key] = torch.empty(66, 1024, device="meta")  # 64 positions (mBART stores 2 more)
    assert infer_config(state, "translation").max_new_tokens == 63

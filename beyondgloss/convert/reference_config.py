# Copyright 2026 The beyondgloss authors. MIT license.
"""The [`BeyondGlossConfig`] of a reference checkpoint, derived from its tensor shapes ([`infer_config`])."""

import math
import re
from collections import Counter

import torch

from ..configuration_beyondgloss import BeyondGlossConfig
from .reference_names import DINO, IMAGE_ENCODER, MBART, SIGN_PREFIX, STAGES, ReferenceCheckpointError

__all__ = ["infer_config"]

# mBART-large-cc25 settings that shapes cannot tell (the reference trims mBART-large-cc25 and keeps its defaults; see
# docs/reference_differences.md).
_CC25_SETTINGS = {
    "scale_embedding": True,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "activation_function": "gelu",
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "forced_eos_token_id": 2,
}
# LoRA scalings of the reference (alpha / rank): DINOv2 4/4, mBART 32/16; kept when a checkpoint has other ranks.
_VISION_LORA_SCALING = 1.0
_TEXT_LORA_SCALING = 2.0
_REFERENCE_MAX_NEW_TOKENS = 150
# Width of one attention head in DINOv2 (ViT-S/B/L/g: 384/6, 768/12, 1024/16, 1536/24) and mBART-large (1024/16).
_HEAD_WIDTH = 64


class _Shapes:
    """Shape look-ups that report a missing anchor key as a layout error."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.state = state

    def __call__(self, key: str) -> tuple[int, ...]:
        if key not in self.state:
            raise ReferenceCheckpointError(f"unknown checkpoint layout: missing key {key!r}.")
        return tuple(self.state[key].shape)

    def indices(self, pattern: str) -> list[int]:
        """Sorted distinct block indices `(\\d+)` of the keys matching `pattern`."""
        regex = re.compile(pattern)
        return sorted({int(match.group(1)) for key in self.state if (match := regex.match(key))})

    def common(self, pattern: str, axis: int) -> int:
        """The most frequent size along `axis` of the tensors whose keys match `pattern` (so that one wrongly
        shaped block is reported as the odd one out rather than taken as the reference)."""
        regex = re.compile(pattern)
        sizes = Counter(self.state[key].shape[axis] for key in self.state if regex.match(key))
        if not sizes:
            raise ReferenceCheckpointError(f"unknown checkpoint layout: no key matches {pattern!r}.")
        return sizes.most_common(1)[0][0]


def _stack_settings(shapes: _Shapes, prefix: str, side: str) -> dict:
    """Layer count and FFN width of an mBART encoder or decoder stored under `prefix`."""
    layers = shapes.indices(re.escape(prefix) + r"layers\.(\d+)\.")
    if not layers:
        raise ReferenceCheckpointError(f"unknown checkpoint layout: no mBART layers under {prefix!r}.")
    ffn = shapes.common(re.escape(prefix) + r"layers\.\d+\.fc1\.weight$", 0)
    return {f"{side}_layers": layers[-1] + 1, f"{side}_ffn_dim": ffn}


def _merge(settings: dict, overrides: dict | None) -> dict:
    """`settings` updated by `overrides`, merging the `vision_config`/`text_config` dicts one level deep."""
    merged = dict(settings)
    for key, value in (overrides or {}).items():
        if key in ("vision_config", "text_config") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _vision_settings(shapes: _Shapes, sign: str) -> dict:
    """DINOv2's `vision_config` and its LoRA settings, from the tensors below `sign + DINO`."""
    dino = sign + DINO
    hidden = shapes(dino + "cls_token")[-1]
    patch = shapes(dino + "patch_embed.proj.weight")[-1]
    positions = shapes(dino + "pos_embed")[1] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise ReferenceCheckpointError(
            f"unknown checkpoint layout: {dino}pos_embed has {positions} patch positions, not a square grid.")
    blocks = shapes.indices(re.escape(dino) + r"blocks\.(\d+)\.")
    if not blocks:
        raise ReferenceCheckpointError(f"unknown checkpoint layout: no DINOv2 blocks under {dino!r}.")
    mlp = shapes.common(re.escape(dino) + r"blocks\.\d+\.mlp\.fc1\.weight$", 0)
    if mlp % hidden:
        raise ReferenceCheckpointError(
            f"unknown checkpoint layout: DINOv2 MLP width {mlp} is not a multiple of its width {hidden}.")
    lora_pattern = re.escape(dino) + r"blocks\.(\d+)\.attn\.lora_w1_l1\.weight$"
    lora_layers = shapes.indices(lora_pattern)
    vision_rank = shapes.common(lora_pattern, 0) if lora_layers else 4
    return {
        "vision_config": {
            "hidden_size": hidden,
            "num_hidden_layers": blocks[-1] + 1,
            "num_attention_heads": max(1, hidden // _HEAD_WIDTH),
            "mlp_ratio": mlp // hidden,
            "patch_size": patch,
            "image_size": grid * patch,
            "num_channels": shapes(dino + "patch_embed.proj.weight")[1],
            "layer_norm_eps": 1e-6,
            "use_mask_token": True,  # the reference keeps DINOv2's (unused) mask token
        },
        "vision_tuning": "lora" if lora_layers else "frozen",
        "vision_lora_layers": lora_layers or None,
        "vision_lora_rank": vision_rank,
        "vision_lora_alpha": _VISION_LORA_SCALING * vision_rank,
    }


def _sign_head_settings(shapes: _Shapes, sign: str) -> dict:
    """Widths of the frame, hand and description heads and the temporal encoder's settings."""
    frame_dim = shapes(sign + "conv_2d.dino.lin.weight")[0]
    temporal = shapes.indices(re.escape(sign) + r"conv_1d\.layers\.(\d+)\.")
    gaps = [i for i in range(temporal[-1] + 1) if i not in temporal] if temporal else []
    if len(gaps) != 1:
        raise ReferenceCheckpointError(
            f"unknown checkpoint layout: the temporal encoder ({sign}conv_1d.layers.N) should have blocks around "
            f"one parameter-free downsampler index, found block indices {temporal}.")
    first_block = f"{sign}conv_1d.layers.{temporal[0]}.attention."
    head_dim = 2 * shapes(first_block + "rotary_emb.sin")[-1]
    return {
        "frame_dim": frame_dim,
        "hand_dim": shapes(sign + "hamer_mapper_1.weight")[0],
        "description_dim": shapes(sign + "mapper_1.weight")[0],
        "temporal_layers": [gaps[0], temporal[-1] - gaps[0]],
        "temporal_heads": max(1, frame_dim // head_dim),
        "temporal_ffn_dim": shapes.common(re.escape(sign) + r"conv_1d\.layers\.\d+\.ffn\.linear1\.weight$", 0),
        "max_frames": shapes(sign + "conv_1d.pos_embedding.pe")[0],
    }


def _text_settings(shapes: _Shapes, stage: str, text_config) -> dict:
    """mBART's `text_config` and LoRA settings: shapes first, then `text_config` (which must agree with them) or
    the mBART-large-cc25 defaults."""
    if stage == "pretraining":
        encoder, decoder = IMAGE_ENCODER, None
    else:
        encoder, decoder = MBART + "model.encoder.", MBART + "model.decoder."
    vocab, d_model = shapes(encoder + "embed_tokens.weight")
    text = {"vocab_size": vocab, "d_model": d_model,
            "max_position_embeddings": shapes(encoder + "embed_positions.weight")[0] - 2}
    text.update(_stack_settings(shapes, encoder, "encoder"))
    if decoder is not None:
        text.update(_stack_settings(shapes, decoder, "decoder"))
    text_rank = shapes.common(r".*\.q_proj\.lora_A\.default\.weight$", 0)

    if text_config is not None:
        text_settings = text_config.to_dict()
        conflicts = {k: (text_settings.get(k), v) for k, v in text.items() if text_settings.get(k) != v}
        if conflicts:
            detail = ", ".join(f"{k}: text backbone {a} vs checkpoint {b}" for k, (a, b) in conflicts.items())
            raise ReferenceCheckpointError(
                f"the text backbone's configuration does not fit the checkpoint ({detail}); pass the trimmed mBART "
                "the checkpoint was trained from.")
    else:
        heads = max(1, d_model // _HEAD_WIDTH)
        text_settings = {**_CC25_SETTINGS, "encoder_attention_heads": heads, "decoder_attention_heads": heads,
                         "decoder_layers": text["encoder_layers"], "decoder_ffn_dim": text["encoder_ffn_dim"]}
    text_settings = {**text_settings, **text, "model_type": "mbart"}
    text_settings.pop("architectures", None)
    return {
        "text_config": text_settings,
        "text_lora_rank": text_rank,
        "text_lora_alpha": _TEXT_LORA_SCALING * text_rank,
        # The reference generates at most 150 tokens; a decoder with fewer positions (a small trimmed model) generates
        # what fits, start token included.
        "max_new_tokens": min(_REFERENCE_MAX_NEW_TOKENS, text["max_position_embeddings"] - 1),
    }


def infer_config(
    state: dict[str, torch.Tensor],
    stage: str,
    text_config=None,
    config_overrides: dict | None = None,
) -> BeyondGlossConfig:
    r"""Derives the [`BeyondGlossConfig`] of a reference checkpoint from its tensor shapes.

    Shapes give every width, depth, rank, vocabulary size and table length. What they cannot give comes from the
    reference: DINOv2 and mBART heads of width 64, LayerNorm eps 1e-6, the LoRA scalings (1.0 for DINOv2, 2.0 for
    mBART) and the mBART-large-cc25 settings (`scale_embedding=True`, dropouts 0.1/0.0/0.0, ...), or the settings of
    `text_config` when given. `reference_compat` is on. The pre-training stage has no decoder: its depth and width
    come from `text_config`, else they mirror the encoder.

    Args:
        state (`dict[str, torch.Tensor]`): the reference state dict.
        stage (`str`): `"pretraining"` or `"translation"`.
        text_config ([`MBartConfig`], *optional*): the configuration of the trimmed mBART the checkpoint was trained
            from; its shapes must agree with the checkpoint's.
        config_overrides (`dict`, *optional*): [`BeyondGlossConfig`] arguments applied last (`vision_config` and
            `text_config` dicts are merged), e.g. `{"vision_config": {"num_attention_heads": 1}}`.

    Returns:
        [`BeyondGlossConfig`] with `reference_compat=True` and `vision_config.image_size` set to the size the
        stored position table was made for (518 px for the reference; the model interpolates to the input size).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; choose one of {STAGES}.")
    shapes = _Shapes(state)
    sign = SIGN_PREFIX[stage]
    settings = {
        **_vision_settings(shapes, sign),
        **_sign_head_settings(shapes, sign),
        **_text_settings(shapes, stage, text_config),
        "reference_compat": True,
    }
    settings = _merge(settings, config_overrides)
    try:
        return BeyondGlossConfig(**settings)
    except (ValueError, TypeError) as error:
        raise ReferenceCheckpointError(
            f"the architecture derived from the checkpoint's shapes is not a valid BeyondGloss configuration: "
            f"{error} Use config_overrides to set what shapes cannot tell (e.g. attention heads).") from error

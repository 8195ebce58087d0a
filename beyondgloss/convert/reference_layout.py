# Copyright 2026 The beyondgloss authors. MIT license.
"""The tensor layout that a configuration implies for a reference checkpoint of each stage (every name and shape),
and the check of a checkpoint against it, naming the first missing, unexpected and wrongly shaped keys."""

import torch

from ..configuration_beyondgloss import BeyondGlossConfig
from .reference_names import (
    DINO,
    IMAGE_ENCODER,
    MBART,
    SIGN_PREFIX,
    STAGES,
    TEXT_ENCODER,
    ReferenceCheckpointError,
    temporal_reference_indices,
)

__all__ = ["check_reference_layout", "reference_layout"]


def _mbart_stack_layout(prefix: str, config, layers: int, ffn: int, lora_rank: int | None, cross: bool) -> dict:
    """Keys and shapes of an mBART encoder (`cross=False`) or decoder stored under `prefix`; with `lora_rank`, the
    q_proj/v_proj of every attention are PEFT LoRA layers (`base_layer`, `lora_A.default`, `lora_B.default`)."""
    d = config.d_model
    layout = {prefix + "embed_tokens.weight": (config.vocab_size, d),
              prefix + "embed_positions.weight": (config.max_position_embeddings + 2, d)}
    for i in range(layers):
        block = f"{prefix}layers.{i}."
        for attention in ("self_attn", "encoder_attn") if cross else ("self_attn",):
            for projection in ("k_proj", "v_proj", "q_proj", "out_proj"):
                name = f"{block}{attention}.{projection}."
                if lora_rank and projection in ("q_proj", "v_proj"):
                    layout[name + "base_layer.weight"], layout[name + "base_layer.bias"] = (d, d), (d,)
                    layout[name + "lora_A.default.weight"] = (lora_rank, d)
                    layout[name + "lora_B.default.weight"] = (d, lora_rank)
                else:
                    layout[name + "weight"], layout[name + "bias"] = (d, d), (d,)
            for parameter in ("weight", "bias"):
                layout[f"{block}{attention}_layer_norm.{parameter}"] = (d,)
        layout.update({block + "fc1.weight": (ffn, d), block + "fc1.bias": (ffn,),
                       block + "fc2.weight": (d, ffn), block + "fc2.bias": (d,)})
        for parameter in ("weight", "bias"):
            layout[f"{block}final_layer_norm.{parameter}"] = (d,)
    for norm in ("layernorm_embedding", "layer_norm"):
        for parameter in ("weight", "bias"):
            layout[f"{prefix}{norm}.{parameter}"] = (d,)
    return layout


def _linear(name: str, out_features: int, in_features: int) -> dict:
    return {name + ".weight": (out_features, in_features), name + ".bias": (out_features,)}


def _norm(name: str, width: int) -> dict:
    return {name + ".weight": (width,), name + ".bias": (width,)}


def _sign_encoder_layout(prefix: str, config: BeyondGlossConfig) -> dict:
    vision = config.vision_config
    h, p = vision.hidden_size, vision.patch_size
    m = int(h * vision.mlp_ratio)
    r = config.vision_lora_rank
    lora = set(config.vision_lora_layers) if config.vision_tuning == "lora" else set()
    dino = prefix + DINO
    layout = {
        dino + "cls_token": (1, 1, h),
        dino + "pos_embed": (1, (vision.image_size // p) ** 2 + 1, h),
        dino + "mask_token": (1, h),
        dino + "patch_embed.proj.weight": (h, vision.num_channels, p, p),
        dino + "patch_embed.proj.bias": (h,),
    }
    for i in range(vision.num_hidden_layers):
        block = f"{dino}blocks.{i}."
        layout.update(_norm(block + "norm1", h))
        layout.update(_linear(block + "attn.qkv", 3 * h, h))
        layout.update(_linear(block + "attn.proj", h, h))
        if i in lora:
            layout.update({block + "attn.lora_w1_l1.weight": (r, h), block + "attn.lora_w1_l2.weight": (3 * h, r),
                           block + "attn.lora_w2_l1.weight": (r, h), block + "attn.lora_w2_l2.weight": (h, r)})
        layout[block + "ls1.gamma"] = (h,)
        layout.update(_norm(block + "norm2", h))
        layout.update(_linear(block + "mlp.fc1", m, h))
        layout.update(_linear(block + "mlp.fc2", h, m))
        if i in lora:
            layout.update({block + "mlp.lora_w1_l1.weight": (r, h), block + "mlp.lora_w1_l2.weight": (m, r),
                           block + "mlp.lora_w2_l1.weight": (r, m), block + "mlp.lora_w2_l2.weight": (h, r)})
        layout[block + "ls2.gamma"] = (h,)
    layout.update(_norm(dino + "norm", h))

    f, hand, desc = config.frame_dim, config.hand_dim, config.description_dim
    layout.update(_linear(prefix + "conv_2d.dino.lin", f, h))
    layout.update({prefix + f"conv_2d.dino.bn.{name}": (f,) for name in ("weight", "bias", "running_mean", "running_var")})
    layout[prefix + "conv_2d.dino.bn.num_batches_tracked"] = ()
    layout.update(_linear(prefix + "hamer_mapper_1", hand, f))
    layout.update(_linear(prefix + "hamer_mapper_2", f, hand))
    layout.update(_linear(prefix + "mapper_1_downsample.0", f, 2 * f))
    layout[prefix + "conv_1d.pos_embedding.pe"] = (config.max_frames, f)
    head_dim = f // config.temporal_heads
    for j in temporal_reference_indices(config.temporal_layers):
        block = f"{prefix}conv_1d.layers.{j}."
        layout[block + "attention.layer_scale"] = (f,)
        for name in ("query_proj", "key_proj", "value_proj", "out_proj"):
            layout.update(_linear(f"{block}attention.{name}", f, f))
        layout[block + "attention.rotary_emb.sin"] = (config.max_frames, 1, 1, head_dim // 2)
        layout[block + "attention.rotary_emb.cos"] = (config.max_frames, 1, 1, head_dim // 2)
        layout.update(_linear(block + "ffn.linear1", config.temporal_ffn_dim, f))
        layout.update(_linear(block + "ffn.linear2", f, config.temporal_ffn_dim))
        layout.update(_norm(block + "norm1", f))
        layout.update(_norm(block + "norm2", f))
    layout.update(_linear(prefix + "conv_1d.output_proj", f, f))
    layout.update(_linear(prefix + "mapper_1", desc, f))
    layout.update(_linear(prefix + "mapper_2", f, desc))
    return layout


def reference_layout(config: BeyondGlossConfig, stage: str) -> dict[str, tuple[int, ...]]:
    """Every key of a reference checkpoint of `stage` built with `config`'s shapes, with its shape (`()` for scalars).

    For the reference settings (`infer_config` of a reference checkpoint) this is the layout of the reference's own
    checkpoints, key for key and shape for shape (the tests check it against a table of them).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; choose one of {STAGES}.")
    text = config.text_config
    layout = _sign_encoder_layout(SIGN_PREFIX[stage], config)
    if stage == "pretraining":
        layout.update({"model.logit_scale": (), "model.logit_scale_desc": ()})
        layout.update(_mbart_stack_layout(TEXT_ENCODER, text, text.encoder_layers, text.encoder_ffn_dim, None, False))
        layout.update(_mbart_stack_layout(IMAGE_ENCODER, text, text.encoder_layers, text.encoder_ffn_dim,
                                          config.text_lora_rank, False))
    else:
        rank = config.text_lora_rank
        layout[MBART + "final_logits_bias"] = (1, text.vocab_size)
        layout[MBART + "model.shared.weight"] = (text.vocab_size, text.d_model)
        layout.update(_mbart_stack_layout(MBART + "model.encoder.", text, text.encoder_layers, text.encoder_ffn_dim,
                                          rank, False))
        layout.update(_mbart_stack_layout(MBART + "model.decoder.", text, text.decoder_layers, text.decoder_ffn_dim,
                                          rank, True))
        layout[MBART + "lm_head.weight"] = (text.vocab_size, text.d_model)
    return layout


def check_reference_layout(state: dict[str, torch.Tensor], layout: dict[str, tuple[int, ...]], limit: int = 5) -> None:
    """Raises [`ReferenceCheckpointError`] naming the first missing, unexpected and wrongly shaped keys of `state`
    against `layout` (at most `limit` of each)."""
    missing = [key for key in layout if key not in state]
    unexpected = [key for key in state if key not in layout]
    wrong = [f"{key} {tuple(state[key].shape)} (expected {shape})"
             for key, shape in layout.items() if key in state and tuple(state[key].shape) != shape]
    problems = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            problems.append(f"{title} ({len(items)}): " + ", ".join(items[:limit]) + more)
    if problems:
        raise ReferenceCheckpointError(
            "the checkpoint does not have the reference layout (see official_checkpoint_layout.tsv): "
            + "; ".join(problems) + ".")

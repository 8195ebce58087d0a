# Copyright 2026 The beyondgloss authors. MIT license.
"""Mapping the tensors of a reference checkpoint onto beyondgloss's names, after checking the values that the model
computes instead of storing (the sinusoidal and rotary tables)."""

import math
import re

import torch

from ..configuration_beyondgloss import BeyondGlossConfig
from ..temporal_encoder import sinusoidal_position_encoding
from .reference_names import (
    DINO,
    IMAGE_ENCODER,
    MBART,
    SIGN_HEAD_NAMES,
    SIGN_PREFIX,
    TEMPORAL_BLOCK_NAMES,
    TEXT_ENCODER,
    ReferenceCheckpointError,
    dino_names,
    temporal_reference_indices,
)

__all__ = ["check_reference_values", "map_reference_state_dict"]


# The reference stores its sinusoidal and rotary tables; they must equal the ones the model computes.
_BUFFER_TOLERANCE = 1e-4
_TEMPORAL = re.compile(r"conv_1d\.layers\.(\d+)\.(.+)$")
# Tables the model computes instead of storing; checked against the computed ones, then dropped.
_COMPUTED = re.compile(r"conv_1d\.(pos_embedding\.pe|layers\.\d+\.attention\.rotary_emb\.(sin|cos))$")


def _map_sign_encoder(state: dict, prefix: str, config: BeyondGlossConfig) -> dict[str, torch.Tensor]:
    """The sign video encoder's tensors under `prefix`, keyed as in [`BeyondGlossSignEncoder`].

    A fused tensor of the reference (DINOv2's `qkv`, its LoRA B) splits row-wise into the tensors `dino_names`
    lists; the temporal blocks renumber around the downsampler's index."""
    lora_blocks = config.vision_lora_layers if config.vision_tuning == "lora" else ()
    dino = dino_names(config.vision_config.num_hidden_layers, lora_blocks)
    before = config.temporal_layers[0]
    mapped = {}
    for key, tensor in state.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if _COMPUTED.match(rest):
            continue
        if rest.startswith(DINO) and rest[len(DINO):] in dino:
            targets = dino[rest[len(DINO):]]
            parts = (tensor,) if len(targets) == 1 else (part.clone() for part in tensor.chunk(len(targets), dim=0))
            mapped.update(zip(targets, parts))
        elif rest in SIGN_HEAD_NAMES:
            mapped[SIGN_HEAD_NAMES[rest]] = tensor
        elif (match := _TEMPORAL.match(rest)) and match.group(2) in TEMPORAL_BLOCK_NAMES:
            index = int(match.group(1))
            block = index if index < before else index - 1  # the downsampler holds reference index `before`
            mapped[f"temporal.blocks.{block}.{TEMPORAL_BLOCK_NAMES[match.group(2)]}"] = tensor
        else:
            raise ReferenceCheckpointError(f"no mapping for {key!r}.")
    return mapped


def _map_peft(state: dict, prefix: str, target: str) -> dict[str, torch.Tensor]:
    """An mBART (sub-)model under `prefix`, keyed under `target`. The PEFT LoRA names of its q/v projections
    (`base_layer`, `lora_A.default`) are beyondgloss's too (its mBART LoRA is peft's) and stay as they are; the
    frozen text encoder has none ([`reference_layout`] checked that)."""
    return {target + key[len(prefix):]: tensor for key, tensor in state.items() if key.startswith(prefix)}


def check_reference_values(state: dict[str, torch.Tensor], config: BeyondGlossConfig, stage: str) -> None:
    """Checks the tensors the converted model does not store separately. The reference stores its sinusoidal
    position table and RoPE sin/cos tables, which beyondgloss computes, and (translation) copies of the tied mBART
    embeddings. A checkpoint whose tables differ from the computed ones, or whose tied copies differ, was made by
    different code: refuse it."""
    prefix = SIGN_PREFIX[stage]
    f, length = config.frame_dim, config.max_frames
    expected = {prefix + "conv_1d.pos_embedding.pe": sinusoidal_position_encoding(length, f)}
    head_dim = f // config.temporal_heads
    theta = torch.exp(torch.arange(0, head_dim, 2, dtype=torch.float32) * (-math.log(10000.0) / head_dim))
    angle = (torch.arange(length, dtype=torch.float32)[:, None] * theta)[:, None, None, :]
    for j in temporal_reference_indices(config.temporal_layers):
        block = f"{prefix}conv_1d.layers.{j}.attention.rotary_emb."
        expected[block + "sin"], expected[block + "cos"] = angle.sin(), angle.cos()
    for key, table in expected.items():
        difference = (state[key].float() - table).abs().max().item()
        if difference > _BUFFER_TOLERANCE:
            raise ReferenceCheckpointError(
                f"{key} differs from the table beyondgloss computes (max difference {difference:.3g}); this "
                "checkpoint's temporal encoder is not the reference's (sinusoidal PE and interleaved RoPE).")
    if stage == "translation":
        shared = state[MBART + "model.shared.weight"]
        for key in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
            if not torch.equal(state[MBART + key], shared):
                raise ReferenceCheckpointError(
                    f"{MBART}{key} differs from {MBART}model.shared.weight; mBART ties them, and beyondgloss cannot "
                    "hold untied copies.")


def map_reference_state_dict(
    state: dict[str, torch.Tensor], config: BeyondGlossConfig, stage: str
) -> dict[str, torch.Tensor]:
    """Maps a reference state dict (already checked against [`reference_layout`]) to the state dict of the
    beyondgloss task model of `stage`, tied embeddings included. The pre-training stage's mBART decoder and
    `final_logits_bias` are not in the reference checkpoint and are not returned.

    DINOv2's fused `qkv` weight and bias and the fused LoRA B of the shared-A qkv LoRA split row-wise into q, k, v;
    the temporal blocks renumber around the downsampler; the mBART LoRA keeps PEFT's names (`base_layer`,
    `lora_A.default`), which are beyondgloss's; the computed position tables are dropped.
    """
    mapped = {"sign_encoder." + key: value
              for key, value in _map_sign_encoder(state, SIGN_PREFIX[stage], config).items()}
    if stage == "pretraining":
        # 0-d in the reference, (1,) in beyondgloss (FSDP2 shards no 0-d parameter).
        mapped["logit_scale"] = state["model.logit_scale"].reshape(1)
        mapped["logit_scale_description"] = state["model.logit_scale_desc"].reshape(1)
        mapped.update(_map_peft(state, TEXT_ENCODER, "text_encoder."))
        mapped.update(_map_peft(state, IMAGE_ENCODER, "mbart.model.encoder."))
        shared = mapped["mbart.model.encoder.embed_tokens.weight"]
    else:
        mapped.update(_map_peft(state, MBART, "mbart."))
        shared = mapped["mbart.model.shared.weight"]
    for key in ("mbart.model.shared.weight", "mbart.model.encoder.embed_tokens.weight",
                "mbart.model.decoder.embed_tokens.weight", "mbart.lm_head.weight"):
        mapped[key] = shared
    return mapped

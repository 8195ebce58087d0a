# Copyright 2026 The beyondgloss authors. MIT license.
"""The frame encoder of BeyondGloss: DINOv2 with the reference's LoRA in its top blocks, run by the fast path of
`dinov2_fast_path.py`, with an optional cache of its output for frozen-backbone training. Packed frames
`(N, 3, H, W)` in, layer-normed CLS features `(N, hidden_size)` out.

Shipped in checkpoints beside `modeling_beyondgloss.py` (imports only torch, transformers and siblings).
"""

import math
from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import Dinov2Model

from .configuration_beyondgloss import BeyondGlossConfig
from .dinov2_fast_path import (
    BeyondGlossVisionLoRA,
    Dinov2LayerParts,
    block_weights,
    check_dinov2_layout,
    dinov2_layer_parts,
    vision_block,
)
from .feature_cache import FrozenFeatureCache, weights_stamp

__all__ = ["BeyondGlossFrameEncoder"]


class BeyondGlossFrameEncoder(nn.Module):
    r"""
    DINOv2 (`vision`, a transformers `Dinov2Model`, kept for its weights, checkpoint names and embeddings) with the
    reference's LoRA (`lora`, one [`BeyondGlossVisionLoRA`] per adapted block, keyed by the block's index).

    The blocks are run by the fast path (fused q/k/v, folded LoRA and LayerScale, reused buffers): frames go through in
    chunks of `config.frame_chunk_size`, the blocks below the first trainable one without autograd, the last block for
    the CLS row only. `gradient_checkpointing` (set by `model.gradient_checkpointing_enable()`) keeps only each chunk's
    input to the trainable blocks and recomputes them in the backward.

    Two settings change how it runs, never what it computes beyond round-off: `compute_dtype` (bfloat16 GEMMs in
    inference, set by [`~BeyondGlossPreTrainedModel.set_inference_precision`]) and `feature_cache` (a
    [`FrozenFeatureCache`], see [`enable_feature_cache`]).

    In eval mode without autograd the blocks' fused operands (`block_operands`) are prepared once and kept, for as
    long as every parameter of the frame encoder is the same tensor, unchanged (`weights_stamp`: loading, an optimizer
    step or any in-place edit makes them again) and the compute type is the same: a frame-by-frame caller (live
    captions) then pays only for the frames. They hold one fused copy of the blocks' weights (about 88 MB for ViT-S in
    float32); `train()` drops them.
    """

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        self.config = config
        vision = config.vision_config
        self.vision = Dinov2Model(vision)
        check_dinov2_layout(self.vision)
        mlp_size = int(vision.hidden_size * vision.mlp_ratio)
        lora_layers = config.vision_lora_layers if config.vision_tuning == "lora" else []
        self.lora = nn.ModuleDict({
            str(i): BeyondGlossVisionLoRA(vision.hidden_size, mlp_size, config.vision_lora_rank,
                                          config.vision_lora_alpha, config.vision_lora_dropout)
            for i in lora_layers
        })
        self.gradient_checkpointing = False
        self.compute_dtype: torch.dtype | None = None  # None: the weights' own type
        self.feature_cache: FrozenFeatureCache | None = None
        self._operands = None  # (stamp, parameters kept alive for the stamp, operands of every block); not state

    def train(self, mode: bool = True):
        self._operands = None
        return super().train(mode)

    def set_trainable(self) -> None:
        """DINOv2 trains whole only with `vision_tuning="full"` (the LoRA, when present, trains)."""
        self.vision.requires_grad_(self.config.vision_tuning == "full")

    def enable_feature_cache(self, max_megabytes: float = 1024.0) -> FrozenFeatureCache:
        r"""Caches each video's CLS features while no DINOv2 or LoRA weight trains (`vision_tuning="frozen"`), so that
        later epochs skip the frame encoder for videos seen before. See [`FrozenFeatureCache`]."""
        self.feature_cache = FrozenFeatureCache(max_megabytes)
        return self.feature_cache

    def disable_feature_cache(self) -> None:
        self.feature_cache = None

    def forward(self, frames: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        r"""
        Args:
            frames (`torch.FloatTensor` of shape `(N, 3, height, width)`): the real frames of a batch, packed.
            lengths (`list[int]`, *optional*): frames per video, summing to N; lets the feature cache look videos up.

        Returns:
            `torch.FloatTensor` of shape `(N, hidden_size)`: DINOv2's layer-normed CLS features.
        """
        cache = self.feature_cache
        if cache is not None and lengths is not None and cache.usable(self):
            return cache.encode(frames, lengths, self.encode, self)
        return self.encode(frames)

    def first_trainable_block(self) -> int:
        """Blocks below this index (and the embeddings) have no trainable weight and run without autograd."""
        if self.config.vision_tuning == "full" and any(p.requires_grad for p in self.vision.parameters()):
            return 0
        depth = self.config.vision_config.num_hidden_layers
        trainable = [int(i) for i in self.lora]
        trainable += [i for i in range(depth)
                      if any(p.requires_grad for p in self.vision.encoder.layer[i].parameters())]
        return min(trainable, default=depth)

    def block_operands(self, indices, dtype: torch.dtype | None = None) -> list[tuple[Dinov2LayerParts, dict]]:
        """The parts and GEMM operands (see `block_weights`) of the blocks at `indices`."""
        operands = []
        for index in indices:
            parts = dinov2_layer_parts(self.vision.encoder.layer[index], f"vision.encoder.layer.{index}")
            lora = self.lora[str(index)] if str(index) in self.lora else None
            operands.append((parts, block_weights(parts, lora, dtype)))
        return operands

    def _inference_operands(self) -> list[tuple[Dinov2LayerParts, dict]]:
        """Every block's operands in the compute type, made again only when a weight or the type changed."""
        read = self._operand_tensors()
        stamp = (self.compute_dtype, *weights_stamp(self), *read[1])
        if self._operands is None or self._operands[0] != stamp:
            self._operands = None  # frees the stale copy before the new one is made
            operands = self.block_operands(range(self.config.vision_config.num_hidden_layers), self.compute_dtype)
            self._operands = (stamp, [*self.parameters(), *read[0]], operands)
        return self._operands[2]

    def _operand_tensors(self) -> tuple[list, tuple]:
        """The tensors `block_operands` reads, as it resolves them (a PEFT wrapper around a LoRA entry answers with its
        active adapter's), and what identifies them and the LoRA scalings: switching adapters changes no parameter of
        this module, only which tensors are read."""
        tensors, settings = [], []
        for index in range(self.config.vision_config.num_hidden_layers):
            parts = dinov2_layer_parts(self.vision.encoder.layer[index], f"vision.encoder.layer.{index}")
            for name in ("q", "k", "v", "out", "fc1", "fc2"):
                tensors += [getattr(parts, name).weight, getattr(parts, name).bias]
            if str(index) in self.lora:
                lora = self.lora[str(index)]
                tensors += [getattr(lora, f"{name}_B") for name in ("q", "k", "v", "out", "fc1", "fc2")]
                tensors += [getattr(lora, f"{name}_A") for name in ("qkv", "out", "fc1", "fc2")]
                settings.append((lora.scaling, lora.dropout.training, lora.dropout.p))
        tensors = [t for t in tensors if t is not None]
        return tensors, (*((id(t), t.data_ptr(), t._version) for t in tensors), *settings)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Packed frames -> CLS features through the fast path, without the cache."""
        depth = self.config.vision_config.num_hidden_layers
        first_trainable = self.first_trainable_block()
        split = min(first_trainable, depth - 1)
        prefix_grad = torch.is_grad_enabled() and first_trainable == 0
        # Reduced precision applies to inference only: with autograd, the model's own type.
        if not (self.training or torch.is_grad_enabled()):
            operands = self._inference_operands()
            prefix, top = operands[:split], operands[split:]
        else:
            reduced = None if torch.is_grad_enabled() else self.compute_dtype
            with torch.set_grad_enabled(prefix_grad):
                prefix = self.block_operands(range(split), reduced)
            top = self.block_operands(range(split, depth), reduced)
        inplace_gelu = self.config.vision_config.hidden_act == "gelu"
        workspace = {}

        def encode_top(hidden_states):
            for index, (parts, weights) in enumerate(top, start=split):
                hidden_states = vision_block(parts, hidden_states, weights, index == depth - 1, workspace, inplace_gelu)
            return self.vision.layernorm(hidden_states[:, 0])

        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        checkpoint = getattr(self, "_gradient_checkpointing_func", None) or partial(
            torch.utils.checkpoint.checkpoint, use_reentrant=False)
        outputs = []
        for chunk in frames.split(self.config.frame_chunk_size):
            with torch.set_grad_enabled(prefix_grad):
                hidden_states = self.embed(chunk)
                for parts, weights in prefix:
                    hidden_states = vision_block(parts, hidden_states, weights, False, workspace, inplace_gelu)
            # Checkpointing keeps the chunk's input and recomputes the top blocks (same dropout masks: the RNG
            # state is restored) in the backward, so training memory no longer grows with the frames' activations.
            outputs.append(checkpoint(encode_top, hidden_states) if checkpointed else encode_top(hidden_states))
        return torch.cat(outputs)

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        r"""DINOv2 patch and CLS embeddings with position embeddings, `(N, 3, H, W)` -> `(N, 1 + patches, hidden)`.

        The position table is resized to the frame's patch grid with HF's rule (`size=grid`), or under
        `reference_compat` with the original DINOv2 rule the reference uses (`scale_factor=((rows + 0.1) / side,
        (columns + 0.1) / side)` for a square table of `side` x `side`); the two differ slightly."""
        embeddings = self.vision.embeddings
        if not self.config.reference_compat:
            return embeddings(frames)
        patches = embeddings.patch_embeddings(frames)
        tokens = torch.cat([embeddings.cls_token.expand(frames.shape[0], -1, -1), patches], dim=1)
        table = embeddings.position_embeddings
        side = math.isqrt(table.shape[1] - 1)
        patch = embeddings.patch_embeddings.patch_size
        rows, columns = frames.shape[-2] // patch[0], frames.shape[-1] // patch[1]
        if (rows, columns) != (side, side):
            # Bicubic resampling in half precision shifts the table: at least float32 (float64 stays float64).
            grid = table[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = grid.to(torch.promote_types(table.dtype, torch.float32))
            # The reference's interpolate_pos_encoding takes (rows + 0.1) / M and (columns + 0.1) / M, in the order of
            # the interpolated grid's axes (it names the frame's height `w`).
            grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (columns + 0.1) / side), mode="bicubic",
                                 align_corners=False)
            grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])
            table = torch.cat([table[:, :1], grid], dim=1)
        return embeddings.dropout(tokens + table)

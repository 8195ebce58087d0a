# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss models: the sign video encoder and its pre-training and translation wrappers.

Imports only torch, transformers and siblings (relatively), so `save_pretrained` copies it into a checkpoint
that loads with `trust_remote_code=True` where beyondgloss is not installed; peft (the mBART LoRA) only where a
model uses it, so a `text_tuning="full"` checkpoint loads without it.
"""

import copy
import hashlib
import importlib
import math
import os
import re
import shutil
import sys
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import Dinov2Model, GenerationConfig, MBartForConditionalGeneration, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput
from transformers.models.mbart.modeling_mbart import MBartEncoder, shift_tokens_right
from transformers.utils import logging

from .configuration_beyondgloss import BeyondGlossConfig
from .losses import gather_with_grad, masked_l2_loss, masked_mean, symmetric_contrastive_loss

__all__ = [
    "BeyondGlossModelOutput",
    "BeyondGlossPretrainingOutput",
    "BeyondGlossPreTrainedModel",
    "BeyondGlossModel",
    "BeyondGlossForContrastivePretraining",
    "BeyondGlossForSignTranslation",
    "text_lora_config",
    "FrozenFeatureCache",
]


# --------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class BeyondGlossModelOutput(ModelOutput):
    r"""
    Output of [`BeyondGlossModel`], the sign video encoder.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, steps, 2 * frame_dim)`):
            the video sequence at half the frame rate (temporal features concatenated with the description
            branch); the `inputs_embeds` of the mBART encoder.
        attention_mask (`torch.LongTensor` of shape `(batch_size, steps)`): 1 for real steps.
        hand_predictions (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`): predicted per-frame
            hand features (zero on padded frames; under `reference_compat` the head's output on a zero feature, as
            in the reference).
        description_states (`torch.FloatTensor` of shape `(batch_size, steps, description_dim)`): per-step
            vectors whose time mean is aligned with the description embedding.
        frame_features (`torch.FloatTensor` of shape `(batch_size, frames, frame_dim)`): DINOv2 CLS features after
            the projection and BatchNorm (zero on padded frames).
    """

    last_hidden_state: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hand_predictions: torch.FloatTensor | None = None
    description_states: torch.FloatTensor | None = None
    frame_features: torch.FloatTensor | None = None


@dataclass
class BeyondGlossPretrainingOutput(ModelOutput):
    r"""
    Output of [`BeyondGlossForContrastivePretraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `return_loss=True`):
            `alignment_loss + description_loss_weight * description_loss + hand_loss_weight * hand_loss`,
            the terms whose inputs are absent left out.
        alignment_loss (`torch.FloatTensor` of shape `()`): video-sentence contrastive loss.
        description_loss (`torch.FloatTensor` of shape `()`, *optional*): video-description contrastive loss.
        hand_loss (`torch.FloatTensor` of shape `()`, *optional*): masked L2 of the hand distillation.
        logits_per_video (`torch.FloatTensor` of shape `(batch_size, batch_size)`): scaled video-text similarities.
        logits_per_text (`torch.FloatTensor` of shape `(batch_size, batch_size)`): their transpose.
        logits_per_description (`torch.FloatTensor` of shape `(batch_size, batch_size)`, *optional*): scaled
            video-description similarities (video rows).
        video_embeds (`torch.FloatTensor` of shape `(batch_size, d_model)`): L2-normalised pooled video embeddings.
        text_embeds (`torch.FloatTensor` of shape `(batch_size, d_model)`): L2-normalised pooled sentence embeddings.
        encoder_output ([`BeyondGlossModelOutput`]): the sign video encoder's output.
    """

    loss: torch.FloatTensor | None = None
    alignment_loss: torch.FloatTensor | None = None
    description_loss: torch.FloatTensor | None = None
    hand_loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    logits_per_description: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    encoder_output: BeyondGlossModelOutput | None = None

    def to_tuple(self):
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


# --------------------------------------------------------------------------------------------------------------
# LoRA


TEXT_LORA_TARGETS = ("q_proj", "v_proj")
TEXT_LORA_ADAPTER = "default"


def is_text_lora(module: nn.Module) -> bool:
    """Whether `module` is a PEFT LoRA layer (told by its attributes, so that this file imports peft only where LoRA
    is used)."""
    return isinstance(getattr(module, "lora_A", None), nn.ModuleDict) and hasattr(module, "base_layer")


def text_lora_config(config: BeyondGlossConfig):
    """The PEFT `LoraConfig` of the mBART q_proj/v_proj LoRA a config asks for (`text_lora_rank`, `_alpha`,
    `_dropout`)."""
    from peft import LoraConfig  # lazily: only LoRA models need peft

    return LoraConfig(r=config.text_lora_rank, lora_alpha=config.text_lora_alpha,
                      lora_dropout=config.text_lora_dropout, target_modules=list(TEXT_LORA_TARGETS))


def add_lora_to_mbart(module: nn.Module, config: BeyondGlossConfig) -> None:
    """Puts PEFT's LoRA (adapter `"default"`) on every q_proj and v_proj of `module` (an mBART encoder or
    encoder-decoder) when `config.text_tuning == "lora"`. The layers are peft's own (`base_layer`,
    `lora_A.default`, `lora_B.default`), so peft's and transformers' adapter functions find them."""
    if config.text_tuning != "lora":
        return
    from peft import inject_adapter_in_model

    # peft's layers draw other random numbers than beyondgloss's earlier LoRA layer did (an nn.Linear of the
    # projection's shape, then A): they are made apart from the global generator, and the earlier layer's draws
    # replayed, so that a seeded model keeps the weights it had (seeded tests and results keep their values).
    with torch.random.fork_rng(devices=[]):
        inject_adapter_in_model(text_lora_config(config), module, adapter_name=TEXT_LORA_ADAPTER)
    for sub in module.modules():
        if is_text_lora(sub):
            base = sub.base_layer
            nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device=base.weight.device,
                      dtype=base.weight.dtype)
            for name in sub.lora_A:
                init.kaiming_uniform_(sub.lora_A[name].weight, a=math.sqrt(5))
                init.zeros_(sub.lora_B[name].weight)
    # inject_adapter_in_model leaves its config on the module; the BeyondGloss config is the only source of truth.
    if "peft_config" in vars(module):
        del module.peft_config


def reset_text_lora(module: nn.Module) -> None:
    """PEFT's default LoRA init (A Kaiming-uniform, B zero) on every LoRA layer in `module`; through transformers'
    init functions, which leave tensors loaded from a checkpoint untouched."""
    for sub in module.modules():
        if is_text_lora(sub):
            for name in sub.lora_A:
                init.kaiming_uniform_(sub.lora_A[name].weight, a=math.sqrt(5))
                init.zeros_(sub.lora_B[name].weight)


def text_lora_key_mapping(text_tuning: str, scope: str) -> dict[str, str]:
    """`key_mapping` for `from_pretrained`: the state-dict names of beyondgloss's earlier hand-written LoRA layer
    (`...q_proj.weight`, `...q_proj.lora_A`) and of plain mBART q/v projections (a pre-training checkpoint's idle
    decoder) to PEFT's (`...q_proj.base_layer.weight`, `...q_proj.lora_A.default.weight`), for the modules under
    `scope` (a regex prefix) that carry LoRA. Empty unless `text_tuning == "lora"`."""
    if text_tuning != "lora":
        return {}
    # transformers' renaming substitutes one group, \1, so each suffix has its own entry.
    projection = rf"^({scope}.*\.(?:q_proj|v_proj))"
    return {
        projection + r"\.weight$": r"\1.base_layer.weight",
        projection + r"\.bias$": r"\1.base_layer.bias",
        projection + r"\.lora_A$": rf"\1.lora_A.{TEXT_LORA_ADAPTER}.weight",
        projection + r"\.lora_B$": rf"\1.lora_B.{TEXT_LORA_ADAPTER}.weight",
    }


ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."  # how PEFT names a model's tensors in adapter files
_LORA_ADAPTER_NAME = re.compile(rf"\.(lora_[AB])\.{TEXT_LORA_ADAPTER}\.weight$")  # PEFT's files drop the adapter name
_LORA_WEIGHT = re.compile(r"\.(lora_[AB])\.weight$")


def _adapter_base(path, **hub) -> str | None:
    """The base checkpoint named by `path` when it is an adapter (a folder without a config.json of its own, or a
    hub repo, holding an adapter_config.json), else None; as transformers decides it in `from_pretrained`."""
    import json

    from transformers.utils import find_adapter_config_file

    if os.path.isfile(os.path.join(str(path), "config.json")):
        return None
    try:
        found = find_adapter_config_file(str(path), **hub)
    except (OSError, ValueError):
        return None
    if found is None:
        return None
    with open(found, encoding="utf-8") as file:
        return json.load(file).get("base_model_name_or_path")


def set_text_trainable(module: nn.Module, text_tuning: str) -> None:
    """`"full"`: every weight of `module` trains; otherwise it is frozen except its LoRA matrices (if any)."""
    module.requires_grad_(text_tuning == "full")
    for sub in module.modules():
        if is_text_lora(sub):
            sub.lora_A.requires_grad_(True)
            sub.lora_B.requires_grad_(True)


class BeyondGlossVisionLoRA(nn.Module):
    r"""The reference's LoRA of one DINOv2 block: one A shared by q, k and v with separate B blocks, and LoRA on
    the attention output, fc1 and fc2. Init A ~ N(0, 0.02), B = 0 (`rng_init=False`)."""

    def __init__(self, hidden_size: int, mlp_size: int, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)
        self._scratch = {}  # the dropout's random draws, reused (not state: nothing is saved)
        self.qkv_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.q_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.k_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.v_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.out_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.out_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.fc1_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.fc1_B = nn.Parameter(torch.zeros(mlp_size, rank))
        self.fc2_A = nn.Parameter(torch.empty(rank, mlp_size))
        self.fc2_B = nn.Parameter(torch.zeros(hidden_size, rank))

    def low_rank(self, hidden_states, name: str):
        """`scaling * A(dropout(x))`; in training the dropout mask comes from [`dropout_keep_mask`] and its
        `1 / keep_probability` is folded into the scaling of the rank-r output instead of a pass over `x`."""
        weight = getattr(self, f"{name}_A")
        if not (self.training and self.dropout.p > 0):
            return F.linear(hidden_states, weight) * self.scaling
        keep, keep_probability = dropout_keep_mask(hidden_states, self.dropout.p, self._scratch)
        return F.linear(torch.where(keep, hidden_states, 0.0), weight) * (self.scaling / keep_probability)


def dropout_keep_mask(reference: torch.Tensor, p: float, scratch: dict | None = None) -> tuple[torch.Tensor, float]:
    r"""A Bernoulli keep mask shaped like `reference` that drops each entry with probability `p`, and its keep
    probability.

    On the CPU, `torch.bernoulli_` costs about 12 ns per entry; the DINOv2 LoRA dropout of one pre-training step
    (B=2 x T=32 frames) masks 88 M entries. Here every 64-bit draw of torch's generator gives three 16-bit
    uniform integers (its top 16 bits hold the always-zero sign bit and are skipped), about 3x fewer generator
    calls: `p` is rounded to a multiple of 2^-16 (0.1 -> 0.1000061) and the returned keep probability is the exact
    one of the mask, so the dropout stays unbiased. The draws go into `scratch["draws"]` when given, a buffer
    reused from call to call (a fresh one pays a page fault per 4 KB). Other devices draw `torch.rand >= p`."""
    if reference.device.type != "cpu":
        return torch.rand(reference.shape, device=reference.device) >= p, 1.0 - p
    dropped = min(round(p * 65536), 65535)
    numel = reference.numel()
    count = (numel + 2) // 3
    draws = None if scratch is None else scratch.get("draws")
    if draws is None or draws.numel() < count:
        draws = torch.empty(count, dtype=torch.int64)
        if scratch is not None:
            scratch["draws"] = draws
    lanes = draws[:count].random_().view(torch.int16).view(-1, 4)
    lanes = lanes[:, :3] if sys.byteorder == "little" else lanes[:, 1:]
    keep = (lanes >= dropped - 32768).view(-1)[:numel].view(reference.shape)
    return keep, 1.0 - dropped / 65536


# --------------------------------------------------------------------------------------------------------------
# Temporal encoder


def sinusoidal_position_encoding(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """`pe[p, 0::2] = sin(p * 10000^(-2i/dim))`, `pe[p, 1::2] = cos(...)`, shape `(length, dim)`."""
    # At least float32 (as the reference) for half-precision models; float64 models get a float64 table.
    precision = torch.promote_types(dtype or torch.float32, torch.float32)
    position = torch.arange(length, device=device, dtype=precision)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=precision) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device, dtype=precision)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding.to(dtype or torch.float32)


def apply_rotary(states: torch.Tensor) -> torch.Tensor:
    r"""Interleaved (GPT-J style) RoPE over positions `0..T-1` on `(B, H, T, D)`; `theta_k = 10000^(-2k/D)`.

    The reference outputs a de-interleaved layout, but applies the same permutation to q and k, so their dot
    products, and the attention, are identical.
    """
    _, _, length, dim = states.shape
    precision = torch.promote_types(states.dtype, torch.float32)  # float32 angles for half precision, as the reference
    theta = torch.exp(torch.arange(0, dim, 2, device=states.device, dtype=precision) * (-math.log(10000.0) / dim))
    angle = torch.arange(length, device=states.device, dtype=precision)[:, None] * theta
    cos, sin = angle.cos().to(states.dtype), angle.sin().to(states.dtype)
    even, odd = states[..., 0::2], states[..., 1::2]
    return torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)


class BandMaskCache:
    """Local-attention band masks `|i - j| <= window // 2`, built once per (length, device)."""

    def __init__(self, window: int):
        self.half_window = window // 2
        self._masks = {}

    def __call__(self, length: int, device) -> torch.Tensor:
        key = (length, str(device))
        if key not in self._masks:
            index = torch.arange(length, device=device)
            self._masks[key] = (index[:, None] - index[None, :]).abs() <= self.half_window
        return self._masks[key]


def drop_path(hidden_states: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (timm's DropPath)."""
    if rate == 0.0 or not training:
        return hidden_states
    keep = 1.0 - rate
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)
    return hidden_states * hidden_states.new_empty(shape).bernoulli_(keep) / keep


class BeyondGlossTemporalAttention(nn.Module):
    """Multi-head local self-attention with RoPE on q and k, scores scaled by 1/sqrt(head_dim)."""

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        dim = config.frame_dim
        self.num_heads = config.temporal_heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        batch, length, dim = hidden_states.shape

        def heads(states):
            return states.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

        query = apply_rotary(heads(self.q_proj(hidden_states)))
        key = apply_rotary(heads(self.k_proj(hidden_states)))
        value = heads(self.v_proj(hidden_states))
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_bias)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, dim))


class BeyondGlossTemporalBlock(nn.Module):
    """Post-LN block: `x = LN1(x + DropPath(gamma * Drop(Attn(x))))`, `x = LN2(x + DropPath(FFN(x)))`."""

    def __init__(self, config: BeyondGlossConfig, drop_path_rate: float):
        super().__init__()
        dim = config.frame_dim
        self.attention = BeyondGlossTemporalAttention(config)
        self.attention_dropout = nn.Dropout(config.temporal_dropout)
        self.layer_scale = nn.Parameter(torch.full((dim,), config.layer_scale_init))
        self.attention_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, config.temporal_ffn_dim)
        self.ffn_dropout = nn.Dropout(config.temporal_dropout)
        self.ffn_out = nn.Linear(config.temporal_ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden_states, attention_bias):
        attended = self.layer_scale * self.attention_dropout(self.attention(hidden_states, attention_bias))
        hidden_states = self.attention_norm(hidden_states + drop_path(attended, self.drop_path_rate, self.training))
        fed = self.ffn_out(self.ffn_dropout(F.gelu(self.ffn_in(hidden_states))))
        return self.ffn_norm(hidden_states + drop_path(fed, self.drop_path_rate, self.training))


class BeyondGlossTemporalEncoder(nn.Module):
    r"""Sinusoidal PE, `temporal_layers[0]` blocks, x2 average-pool downsampling, `temporal_layers[1]` blocks and
    an output projection. Input `(B, T, frame_dim)` with mask `(B, T)`; output `(B, ceil(T/2), frame_dim)` and
    its mask (`ceil(L/2)` steps for a video of L frames; the reference rule under `reference_compat`)."""

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        depth = sum(config.temporal_layers)
        rates = [config.drop_path_rate * k / max(depth - 1, 1) for k in range(depth)]
        self.blocks = nn.ModuleList(BeyondGlossTemporalBlock(config, rate) for rate in rates)
        self.blocks_before_downsampling = config.temporal_layers[0]
        self.output_proj = nn.Linear(config.frame_dim, config.frame_dim)
        self.band_masks = BandMaskCache(config.temporal_window)
        self.reference_compat = config.reference_compat

    def attention_bias(self, mask: torch.Tensor) -> torch.Tensor:
        """`(B, 1, T, T)` boolean: inside the band, to a real key, or the diagonal (so no row is empty)."""
        length = mask.shape[1]
        band = self.band_masks(length, mask.device)
        allowed = band[None] & mask.bool()[:, None, :]
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=mask.device)[None]
        return allowed[:, None]

    def downsample(self, hidden_states, mask):
        if self.reference_compat:
            pooled = F.avg_pool1d(hidden_states.transpose(1, 2), 3, 2, 1).transpose(1, 2)
            new_mask = F.avg_pool1d(mask[:, None].float(), 3, 2, 1, count_include_pad=False)[:, 0] > 0
            new_mask[:, 0] = True
            return pooled, new_mask.long()
        # Padded steps are zeroed so that they weigh exactly like the pool's own zero padding: a video's output
        # is the same alone and next to a longer one. Step j is real when its centre frame 2j is.
        zeroed = hidden_states * mask[..., None].to(hidden_states.dtype)
        pooled = F.avg_pool1d(zeroed.transpose(1, 2), 3, 2, 1).transpose(1, 2)
        lengths = (mask.sum(dim=1) + 1) // 2
        new_mask = torch.arange(pooled.shape[1], device=mask.device)[None] < lengths[:, None]
        return pooled, new_mask.long()

    def forward(self, hidden_states, mask):
        hidden_states = hidden_states + sinusoidal_position_encoding(
            hidden_states.shape[1], hidden_states.shape[2], hidden_states.device, hidden_states.dtype)
        bias = self.attention_bias(mask)
        for index, block in enumerate(self.blocks):
            if index == self.blocks_before_downsampling:
                hidden_states, mask = self.downsample(hidden_states, mask)
                bias = self.attention_bias(mask)
            hidden_states = block(hidden_states, bias)
        return self.output_proj(hidden_states), mask


# --------------------------------------------------------------------------------------------------------------
# Frozen-feature cache


class FrozenFeatureCache:
    r"""Per-video cache of the frame encoder's output (DINOv2 CLS features, `(frames, hidden_size)`), for when
    DINOv2 does not train (`vision_tuning="frozen"`): without augmentation a video then encodes to the same features
    every epoch, and a hit skips the whole ViT.

    Keys are content digests (BLAKE2b of the frames' bytes, plus shape, dtype and autocast state), computed here
    rather than given by the caller: a video id cannot prove that the pixels are the same (augmentation, another
    crop or frame rate), a digest can, and hashing costs about 1% of encoding the frames. With augmentation on,
    videos simply miss. Entries are dropped when any DINOv2 or LoRA weight changes in place or is replaced
    (optimizer steps, `load_state_dict`), and the least recently used ones when the cache exceeds `max_megabytes`
    (CLS features are small: 300 frames of ViT-S take 0.45 MB). Only the CLS output is cached: the hidden states
    below a LoRA block would take 257 x more memory than the frames they save.
    """

    def __init__(self, max_megabytes: float = 1024.0):
        if max_megabytes <= 0:
            raise ValueError(f"max_megabytes={max_megabytes} must be positive.")
        self.max_bytes = int(max_megabytes * 2**20)
        self.hits = self.misses = 0
        self._entries = OrderedDict()
        self._bytes = 0
        self._weights_stamp = None

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    @staticmethod
    def usable(model) -> bool:
        """Only when nothing in the frame encoder trains (cached features carry no autograd graph) and it is
        deterministic (no DINOv2 dropout or drop path active)."""
        parameters = list(model.vision.parameters()) + list(model.vision_lora.parameters())
        vision = model.config.vision_config
        stochastic = model.training and (vision.drop_path_rate > 0 or vision.hidden_dropout_prob > 0)
        return not stochastic and not any(p.requires_grad for p in parameters)

    @staticmethod
    def _stamp(model) -> tuple:
        parameters = list(model.vision.parameters()) + list(model.vision_lora.parameters())
        return tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in parameters)

    @staticmethod
    def _key(video: torch.Tensor) -> tuple:
        device = video.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        data = video.detach().contiguous().cpu()
        digest = hashlib.blake2b(data.view(torch.uint8).numpy().data, digest_size=20).hexdigest()
        return digest, tuple(video.shape), video.dtype, str(video.device), autocast

    def encode(self, frames: torch.Tensor, lengths: list[int], encoder, model) -> torch.Tensor:
        """Features of packed `frames` `(N, 3, H, W)` of videos of `lengths`; misses are encoded together by
        `encoder` (packed frames -> features) and stored."""
        stamp = self._stamp(model)
        if stamp != self._weights_stamp:
            self.clear()
            self._weights_stamp = stamp
        videos = frames.split([int(n) for n in lengths])
        keys = [self._key(video) for video in videos]
        missing = [i for i, key in enumerate(keys) if key not in self._entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        computed = {}
        if missing:
            with torch.no_grad():
                encoded = encoder(torch.cat([videos[i] for i in missing]))
            computed = dict(zip(missing, encoded.split([len(videos[i]) for i in missing])))
        features = []
        for index, key in enumerate(keys):
            if index in computed:
                self._store(key, computed[index])
                features.append(computed[index])
            else:
                self._entries.move_to_end(key)
                features.append(self._entries[key])
        return torch.cat(features)

    def _store(self, key, value: torch.Tensor) -> None:
        value = value.detach().clone()
        self._entries[key] = value
        self._bytes += value.numel() * value.element_size()
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()


# --------------------------------------------------------------------------------------------------------------
# Models


logger = logging.get_logger(__name__)

SIGN_TRANSLATION_TASK = "sign-translation"
# What `config.json` says about the pipeline (transformers' `custom_pipelines` entry), as Pipeline.save_pretrained
# writes it.
SIGN_TRANSLATION_PIPELINE = {
    "impl": "pipeline_sign_translation.SignTranslationPipeline",
    "pt": ["AutoModelForSeq2SeqLM"],
    "type": "multimodal",
}


class BeyondGlossPreTrainedModel(PreTrainedModel):
    config: BeyondGlossConfig
    config_class = BeyondGlossConfig
    base_model_prefix = "sign_encoder"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    # forward takes **kwargs but returns per-batch mean losses: Trainer must scale for gradient accumulation itself.
    accepts_loss_kwargs = False
    _supports_sdpa = True
    _no_split_modules = ["BeyondGlossTemporalBlock", "Dinov2Layer", "MBartEncoderLayer", "MBartDecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, BeyondGlossTemporalEncoder):
            # The reference's Transformer._init_weights: every Linear N(0, 0.02), bias 0; LayerNorm (1, 0); the
            # attention output projections (weight and bias) redrawn from N(0, 0.02 / sqrt(2 * depth)).
            depth = len(module.blocks)
            for name, sub in module.named_modules():
                if isinstance(sub, nn.Linear):
                    init.normal_(sub.weight, std=std)
                    init.zeros_(sub.bias)
                elif isinstance(sub, nn.LayerNorm):
                    init.ones_(sub.weight)
                    init.zeros_(sub.bias)
            for block in module.blocks:
                init.normal_(block.attention.out_proj.weight, std=std / math.sqrt(2 * depth))
                init.normal_(block.attention.out_proj.bias, std=std / math.sqrt(2 * depth))
                init.constant_(block.layer_scale, self.config.layer_scale_init)
        elif isinstance(module, BeyondGlossVisionLoRA):
            for name in ("qkv_A", "out_A", "fc1_A", "fc2_A"):
                init.normal_(getattr(module, name), std=0.02)
            for name in ("q_B", "k_B", "v_B", "out_B", "fc1_B", "fc2_B"):
                init.zeros_(getattr(module, name))
        elif isinstance(module, (BeyondGlossForContrastivePretraining,)):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
            init.constant_(module.logit_scale_description, self.config.logit_scale_init_value)
        elif isinstance(module, nn.Linear):
            # The heads keep PyTorch's default init, as in the reference.
            if not getattr(module.weight, "_is_hf_initialized", False):
                module.reset_parameters()
        elif isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
            super()._init_weights(module)

    def initialize_weights(self):
        # LoRA inside the mBART sub-models is visited by mBART's own init, which does not know it (it would draw
        # N(0, 0.02) for A and B): it is kept away from it, then given LoRA's init. The init functions leave tensors
        # loaded from a checkpoint untouched.
        lora = [layer.weight for module in self.modules() if is_text_lora(module)
                for layers in (module.lora_A, module.lora_B) for layer in layers.values()]
        fresh = [weight for weight in lora if not getattr(weight, "_is_hf_initialized", False)]
        for weight in fresh:
            weight._is_hf_initialized = True
        try:
            super().initialize_weights()
        finally:
            for weight in fresh:
                weight._is_hf_initialized = False
        with torch.no_grad():
            # beyondgloss's earlier LoRA layer was a module new to this pass, so mBART's init drew its q/v weight
            # again; so here, in the same order, that seeded models keep their weights (loaded tensors are skipped).
            mbart = getattr(self, "mbart", None)
            if mbart is not None:
                for module in mbart.modules():
                    if is_text_lora(module):
                        mbart._init_weights(module.base_layer)
            reset_text_lora(self)

    def set_trainable(self) -> None:
        """Sets `requires_grad` to what the method trains (frozen backbones, trainable LoRA and heads)."""

    # A regex of the state-dict prefix under which the mBART q/v projections carry LoRA (None: no text LoRA).
    _text_lora_scope = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        if cls._text_lora_scope is not None and kwargs.get("key_mapping") is None:
            # Checkpoints of beyondgloss < 0.2 (its own LoRA layer) and pre-training checkpoints (a plain decoder)
            # name the LoRA projections differently; which names to map depends on the config's text_tuning.
            config = kwargs.get("config")
            if not isinstance(config, PretrainedConfig):  # (remote code has its own BeyondGlossConfig class)
                hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "proxies", "local_files_only", "token",
                                              "revision", "subfolder") if k in kwargs}
                source = config or _adapter_base(pretrained_model_name_or_path, **hub) or pretrained_model_name_or_path
                config = cls.config_class.from_pretrained(source, **hub)
            text_tuning = kwargs.get("text_tuning", config.text_tuning)  # a from_pretrained override wins
            kwargs["key_mapping"] = text_lora_key_mapping(text_tuning, cls._text_lora_scope) or None
        # Loading replaces parameters, which resets requires_grad; the frozen parts must be frozen again.
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        lora_names = set(text_lora_key_mapping("lora", cls._text_lora_scope)) if cls._text_lora_scope else set()
        if lora_names and getattr(model, "_weight_conversions", None):
            # transformers reverses the load-time renamings when saving; the old names are only read, never written.
            model._weight_conversions = [
                c for c in model._weight_conversions
                if not set(getattr(c, "_original_source_patterns", None) or []) & lora_names
            ]
        model.set_trainable()
        return model

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What fine-tuning changes: every trainable parameter (the mBART LoRA, the DINOv2 LoRA, the temporal encoder
        and heads) and the buffers of the modules holding them (BatchNorm statistics), keyed as in `state_dict()`."""
        if self.config.text_tuning == "full" or self.config.vision_tuning == "full":
            raise ValueError(
                f"text_tuning={self.config.text_tuning!r}, vision_tuning={self.config.vision_tuning!r}: a whole "
                "backbone trains, so an adapter would hold it all; save the model with save_pretrained instead."
            )
        state = {}
        for module_name, module in self.named_modules():
            own = dict(module.named_parameters(recurse=False))
            trainable = {name: p for name, p in own.items() if p.requires_grad}
            if not trainable:
                continue
            prefix = f"{module_name}." if module_name else ""
            state.update({prefix + name: p.detach() for name, p in trainable.items()})
            state.update({prefix + name: b.detach() for name, b in module.named_buffers(recurse=False)})
        return state

    def save_adapter(self, save_directory: str | os.PathLike, base_model_name_or_path: str | None = None) -> Path:
        r"""
        Saves what fine-tuning changed ([`adapter_state_dict`]) as an adapter of the checkpoint it started from:
        `adapter_config.json` (PEFT's LoRA config of the mBART q/v LoRA, `base_model_name_or_path`, the other
        trained modules as `modules_to_save`) and `adapter_model.safetensors` (PEFT's key names,
        `base_model.model.<name>`, LoRA without the adapter name). About 70 MB for the full-size translation model,
        against gigabytes for the whole model.

        `BeyondGlossForSignTranslation.from_pretrained(<adapter folder>)` loads the base checkpoint and then the
        adapter; so does `model.load_adapter(<adapter folder>)` on a loaded base model. The adapter holds no config:
        fine-tuning must not change the architecture (sizes, text_tuning) of the base checkpoint.

        Args:
            save_directory: the folder to write (created if needed).
            base_model_name_or_path: the hub id or folder of the base checkpoint; default: where this model was
                loaded from.
        """
        from peft import LoraConfig  # noqa: F401 (a clear ImportError here when peft is missing)
        from safetensors.torch import save_file

        base = base_model_name_or_path or getattr(self.config, "_name_or_path", None)
        if not base:
            raise ValueError("This model was not loaded from a checkpoint: pass base_model_name_or_path, the hub id or "
                             "folder of the checkpoint it was fine-tuned from.")
        state = self.adapter_state_dict()
        lora = sorted({name.rsplit(".lora_", 1)[0] for name in state if ".lora_A." in name})
        # PEFT's modules_to_save: the outermost modules (outside LoRA layers) that train whole.
        modules_to_save = []
        for name, module in self.named_modules():
            parameters = list(module.parameters())
            if (name and parameters and all(p.requires_grad for p in parameters) and ".lora_" not in name
                    and not any(name.startswith(kept + ".") for kept in modules_to_save)):
                modules_to_save.append(name)
        if self.config.text_tuning == "lora":
            peft_config = text_lora_config(self.config)
            # Exactly the LoRA layers this model has (peft matches a string target_modules as a full regex).
            peft_config.target_modules = "|".join(re.escape(name) for name in lora)
        else:
            from peft import LoraConfig

            peft_config = LoraConfig(target_modules=[])
        peft_config.modules_to_save = modules_to_save
        peft_config.base_model_name_or_path = str(base)
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        peft_config.save_pretrained(str(save_directory))
        tensors = {_PEFT_PREFIX + _LORA_ADAPTER_NAME.sub(r".\1.weight", name): tensor.contiguous()
                   for name, tensor in state.items()}
        save_file(tensors, str(save_directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
        return save_directory

    def load_adapter(self, peft_model_id: str | os.PathLike, adapter_name: str | None = None, load_config=None,
                     adapter_kwargs: dict | None = None, **kwargs) -> None:
        r"""
        Loads an adapter written by [`save_adapter`] (a folder or a hub repo) into this model, which must have the
        architecture of its base checkpoint. Called by `from_pretrained(<adapter folder>)` after it loaded the
        base checkpoint named in `adapter_config.json`.

        BeyondGloss models carry their mBART LoRA as part of the architecture (one adapter, `"default"`); loading
        several named adapters, `add_adapter`, `set_adapter` and `PeftModel`/`get_peft_model` are not supported: most
        of what fine-tuning trains (the temporal encoder, heads and DINOv2 LoRA) is not LoRA.
        """
        from safetensors.torch import load_file
        from transformers.utils import cached_file

        if adapter_name not in (None, TEXT_LORA_ADAPTER):
            raise ValueError(f"adapter_name={adapter_name!r}: BeyondGloss models hold one adapter, "
                             f"{TEXT_LORA_ADAPTER!r}; leave adapter_name unset.")
        download = dict(getattr(load_config, "download_kwargs", None) or {})
        download.update({k: v for k, v in (adapter_kwargs or {}).items() if k in ("token", "revision", "cache_dir")})
        download.update({k: v for k, v in kwargs.items() if k in ("token", "revision", "cache_dir")})
        path = cached_file(str(peft_model_id), ADAPTER_WEIGHTS_NAME, **download)
        loaded = load_file(path)
        self.set_trainable()  # from_pretrained calls this before it restores requires_grad
        expected = self.adapter_state_dict()
        state = {}
        for key, tensor in loaded.items():
            if not key.startswith(_PEFT_PREFIX):
                raise ValueError(f"{path}: key {key!r} does not start with {_PEFT_PREFIX!r}; not an adapter written "
                                 "by save_adapter.")
            name = _LORA_WEIGHT.sub(rf".\1.{TEXT_LORA_ADAPTER}.weight", key[len(_PEFT_PREFIX):])
            if name not in expected or expected[name].shape != tensor.shape:
                found = "no such tensor" if name not in expected else f"shape {tuple(expected[name].shape)}"
                raise ValueError(
                    f"{path}: {name!r} {tuple(tensor.shape)} does not fit this model ({found}); load the adapter into "
                    "the base checkpoint named in its adapter_config.json."
                )
            state[name] = tensor
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ValueError(f"{path}: the adapter lacks {missing[:5]} ({len(missing)} tensors) that this model trains;"
                             " it was saved from a model of another configuration.")
        with torch.no_grad():
            current = self.state_dict()
            for name, tensor in state.items():
                current[name].copy_(tensor)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Every task class loads from every checkpoint (the encoder from a translation model, stage 2 from stage 1),
        # so the saved auto_map names all of them, not only the class that saved.
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.update({
            "AutoConfig": f"{module.replace('modeling_', 'configuration_')}.BeyondGlossConfig",
            "AutoModel": f"{module}.BeyondGlossModel",
            "AutoModelForPreTraining": f"{module}.BeyondGlossForContrastivePretraining",
            "AutoModelForSeq2SeqLM": f"{module}.BeyondGlossForSignTranslation",
        })
        self.config.auto_map = auto_map
        # The translation model's checkpoint names its pipeline and holds its file. Any other (a stage-1 model whose
        # config came from a translation checkpoint, or a copy of the code without the pipeline file) must not name it.
        pipeline_files = self._pipeline_files()
        named = self.config.__dict__.get("_custom_pipelines") or {}  # the config property's storage
        saved = {task: info for task, info in named.items() if task != SIGN_TRANSLATION_TASK}
        if pipeline_files:
            saved[SIGN_TRANSLATION_TASK] = SIGN_TRANSLATION_PIPELINE
        self.config.custom_pipelines = saved
        main_process = kwargs.get("is_main_process", True)
        # save_pretrained(push_to_hub=True) uploads inside transformers' save, before the pipeline file and the card
        # below exist: the upload happens here instead, after them, of what this call wrote (as transformers does).
        push = kwargs.pop("push_to_hub", False) and main_process
        hub = {name: kwargs.pop(name) for name in ("repo_id", "commit_message", "create_pr", "private") if name in kwargs}
        if push:
            from transformers.utils.hub import hf_api

            Path(save_directory).mkdir(parents=True, exist_ok=True)
            repo_id = hf_api().create_repo(hub.get("repo_id", Path(save_directory).name), exist_ok=True,
                                           private=hub.get("private"), token=kwargs.get("token")).repo_id
            timestamps = self._get_files_timestamps(save_directory)
        try:
            result = super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.custom_pipelines = named
        if main_process:
            for file in pipeline_files:
                shutil.copy(file, Path(save_directory) / Path(file).name)
            self._write_default_card(Path(save_directory))
        if push:
            self._upload_modified_files(save_directory, repo_id, timestamps, commit_message=hub.get("commit_message"),
                                        token=kwargs.get("token"), create_pr=hub.get("create_pr", False))
        return result

    def _pipeline_files(self) -> list[str]:
        """The "sign-translation" pipeline's file and the siblings it imports, for a model that translates; empty
        otherwise, or when neither this copy of the code nor the checkpoint it was loaded from has the pipeline."""
        if not self.can_generate():
            return []
        from transformers.dynamic_module_utils import get_cached_module_file, get_relative_import_files
        from transformers.utils import HF_MODULES_CACHE

        name = "pipeline_sign_translation.py"
        pipeline_file = Path(sys.modules[type(self).__module__].__file__).with_name(name)
        if not pipeline_file.is_file() and self.name_or_path:
            # Loaded with trust_remote_code: transformers caches each module of a checkpoint in its own folder, so
            # the pipeline is fetched from the checkpoint the model came from (a local folder or the Hub cache).
            try:
                pipeline_file = Path(HF_MODULES_CACHE) / get_cached_module_file(self.name_or_path, name)
            except (OSError, ValueError) as error:
                logger.warning("%s of %s cannot be fetched (%s)", name, self.name_or_path, error)
        if not pipeline_file.is_file():
            logger.warning("No %s next to %s: the saved checkpoint will not name the %r pipeline", name,
                           type(self).__module__, SIGN_TRANSLATION_TASK)
            return []
        return [str(pipeline_file), *get_relative_import_files(os.fspath(pipeline_file))]

    def _write_default_card(self, folder) -> None:
        # The card template lives in the beyondgloss package, not in checkpoints: a copy of this file loaded with
        # trust_remote_code saves without a card. An existing README.md (a card written by a callback or by hand)
        # is kept. The module is found by name, not imported with a relative import statement, so that transformers
        # does not count it among the files a checkpoint needs.
        if (folder / "README.md").exists():
            return
        try:
            model_card = importlib.import_module(".model_card", __package__)
            model_card.write_model_card(model_card.SignTranslationCardData(), folder, model=self)
        except ImportError as error:
            logger.info("No model card written into %s (%s)", folder, error)

    def _check_video_inputs(self, pixel_values_videos, video_attention_mask):
        if pixel_values_videos is None:
            raise ValueError("pixel_values_videos is required: a (batch, frames, 3, height, width) tensor.")
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                "pixel_values_videos must have shape (batch, frames, 3, height, width); "
                f"got a tensor of shape {tuple(pixel_values_videos.shape)}."
            )
        batch, frames = pixel_values_videos.shape[:2]
        if video_attention_mask is None:
            return torch.ones(batch, frames, dtype=torch.long, device=pixel_values_videos.device)
        if tuple(video_attention_mask.shape) != (batch, frames):
            raise ValueError(
                f"video_attention_mask must have shape (batch, frames) = ({batch}, {frames}) to match "
                f"pixel_values_videos; got {tuple(video_attention_mask.shape)}."
            )
        lengths = video_attention_mask.long().sum(dim=1)
        if (lengths == 0).any():
            empty = torch.nonzero(lengths == 0).flatten().tolist()
            raise ValueError(f"video_attention_mask: videos {empty} of the batch have zero valid frames.")
        prefix = torch.arange(frames, device=lengths.device)[None] < lengths[:, None]
        if not torch.equal(prefix, video_attention_mask.bool()):
            raise ValueError("video_attention_mask must mark each video's real frames first, then padding "
                             "(ones then zeros per row).")
        return video_attention_mask.long()


class BeyondGlossModel(BeyondGlossPreTrainedModel):
    r"""
    The BeyondGloss sign video encoder: frames -> DINOv2 (LoRA in the top blocks) -> CLS -> Linear + BatchNorm over
    the real frames -> hand head and fusion -> local-attention temporal encoder (x2 downsampling) -> description head
    and fusion -> a `(B, ceil(T/2), 2 * frame_dim)` sequence for the mBART encoder.

    Padding costs no compute: the real frames of the batch are packed before DINOv2 and encoded in chunks of
    `config.frame_chunk_size`.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossConfig, BeyondGlossModel
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossModel(tiny_config()).eval()
    >>> video = torch.randn(2, 6, 3, 28, 28)
    >>> mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    >>> output = model(video, mask)
    >>> output.last_hidden_state.shape, output.attention_mask.sum(1).tolist()
    (torch.Size([2, 3, 32]), [3, 2])
    ```
    """

    # Loading the encoder out of a task checkpoint: the task parts are not needed.
    _keys_to_ignore_on_load_unexpected = [r"^mbart\.", r"^text_encoder\.", r"^logit_scale"]

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        vision = config.vision_config
        self.vision = Dinov2Model(vision)
        mlp_size = int(vision.hidden_size * vision.mlp_ratio)
        lora_layers = config.vision_lora_layers if config.vision_tuning == "lora" else []
        self.vision_lora = nn.ModuleDict({
            str(i): BeyondGlossVisionLoRA(vision.hidden_size, mlp_size, config.vision_lora_rank,
                                          config.vision_lora_alpha, config.vision_lora_dropout)
            for i in lora_layers
        })
        self.frame_proj = nn.Linear(vision.hidden_size, config.frame_dim)
        self.frame_norm = nn.BatchNorm1d(config.frame_dim)
        self.hand_proj = nn.Linear(config.frame_dim, config.hand_dim)
        self.hand_up = nn.Linear(config.hand_dim, config.frame_dim)
        self.hand_fuse = nn.Linear(2 * config.frame_dim, config.frame_dim)
        self.temporal = BeyondGlossTemporalEncoder(config)
        self.description_proj = nn.Linear(config.frame_dim, config.description_dim)
        self.description_down = nn.Linear(config.description_dim, config.frame_dim)
        self.head_dropout = nn.Dropout(config.head_dropout)
        # `activation_checkpointing_enable()` (or `TrainingArguments(activation_checkpointing=True)`) sets this: the
        # trainable top of DINOv2 then keeps only each chunk's input for the backward and recomputes the rest.
        self.gradient_checkpointing = False
        self.set_trainable()
        self.post_init()

    def set_trainable(self) -> None:
        self.vision.requires_grad_(self.config.vision_tuning == "full")

    # ---- frame encoder -------------------------------------------------------------------------------------

    def _block_weights(self, index: int) -> dict:
        """The GEMM operands of DINOv2 block `index`, prepared once per `_encode_frames` call and shared by its
        chunks: `(weight, bias)` of "qkv", "out", "fc1" and "fc2", and the block's LoRA ("lora", or None) with its B
        matrices ("lora_B").

        - q, k and v are concatenated into one weight (and their LoRA B into one), so that one GEMM makes all
          three, or k and v alone under `cls_only`: one pass over the tokens instead of three, here and in the
          backward.
        - When the LoRA needs neither gradients nor dropout (inference), it is folded into the frozen weights,
          `W + scaling * B A`, the same linear map.
        - LayerScale is folded into the output and fc2 weights, biases and LoRA B, `diag(l) (W x + b + B a) =
          (diag(l) W) x + l b + (diag(l) B) a`: no elementwise pass over the activations (the products stay
          differentiable for whatever trains)."""
        layer = self.vision.encoder.layer[index]
        attention, mlp = layer.attention, layer.mlp
        lora = self.vision_lora[str(index)] if str(index) in self.vision_lora else None
        weights = {name: (module.weight, module.bias) for name, module in (
            ("q", attention.q_proj), ("k", attention.k_proj), ("v", attention.v_proj), ("out", attention.o_proj),
            ("fc1", mlp.fc1), ("fc2", mlp.fc2))}
        if lora is not None and not torch.is_grad_enabled() and not (lora.dropout.training and lora.dropout.p > 0):
            for name, a_name in (("q", "qkv"), ("k", "qkv"), ("v", "qkv"), ("out", "out"), ("fc1", "fc1"), ("fc2", "fc2")):
                weight, bias = weights[name]
                update = getattr(lora, f"{name}_B") @ getattr(lora, f"{a_name}_A")
                weights[name] = (weight + lora.scaling * update.to(weight.dtype), bias)
            lora = None
        lora_B = None if lora is None else {
            "qkv": torch.cat([lora.q_B, lora.k_B, lora.v_B]), "out": lora.out_B, "fc1": lora.fc1_B, "fc2": lora.fc2_B}
        for name, scale in (("out", layer.layer_scale1.lambda1), ("fc2", layer.layer_scale2.lambda1)):
            weight, bias = weights[name]
            weights[name] = (weight * scale[:, None], bias * scale)
            if lora_B is not None:
                lora_B[name] = lora_B[name] * scale[:, None]
        weights["qkv"] = tuple(torch.cat([weights[p][i] for p in ("q", "k", "v")]) for i in range(2))
        return {"qkv": weights["qkv"], "out": weights["out"], "fc1": weights["fc1"], "fc2": weights["fc2"],
                "lora": lora, "lora_B": lora_B}

    def _vision_block(self, index: int, hidden_states: torch.Tensor, cls_only: bool, weights: dict,
                      workspace: dict | None = None) -> torch.Tensor:
        """One DINOv2 block with the reference LoRA, on the operands of [`_block_weights`]; with `cls_only` only
        the CLS row of the output is computed (its keys and values still come from every token).

        Fresh large tensors are few: on the CPU a new 20-25 MB tensor costs a page fault per 4 KB page at its first
        write, which took more time than GELU itself. So the LoRA term is accumulated into the output of the
        frozen GEMM in place (`addmm_`), the residual sums are in place, and without autograd GELU is in place and
        the two widest outputs (q/k/v and fc1) go into `workspace` buffers that every block and chunk of one call
        reuses."""
        layer = self.vision.encoder.layer[index]
        lora, lora_B = weights["lora"], weights["lora_B"]
        grad = torch.is_grad_enabled()
        buffered = not grad and workspace is not None and not torch.is_autocast_enabled(hidden_states.device.type)

        def project(states, weight, bias, name=None, low=None, low_weight=None):
            """`states W^T + b (+ low B^T)` over the rows of `(..., features)` states, as a 2-D tensor."""
            rows = states.reshape(-1, states.shape[-1])
            if buffered and name:
                size = rows.shape[0] * weight.shape[0]
                store = workspace.get(name)
                if store is None or store.numel() < size or store.dtype != rows.dtype:
                    store = workspace[name] = rows.new_empty(size)
                output = torch.addmm(bias, rows, weight.t(), out=store[:size].view(-1, weight.shape[0]))
            else:
                output = F.linear(rows, weight, bias)
            if low is not None:  # the output of a GEMM is not saved for its backward: accumulate in place
                output = output.addmm_(low.reshape(-1, low.shape[-1]), low_weight.t())
            return output

        def project_with_lora(states, weight, bias, name, buffer=None):
            """The output, fc1 and fc2 projections, each with its own LoRA A."""
            if lora is None:
                return project(states, weight, bias, buffer)
            return project(states, weight, bias, buffer, lora.low_rank(states, name), lora_B[name])

        qkv_weight, qkv_bias = weights["qkv"]
        normed = layer.norm1(hidden_states)
        batch, tokens, width = normed.shape
        shared = lora.low_rank(normed, "qkv") if lora is not None else None  # one A, one dropout mask for q, k, v
        if cls_only:  # the rows of k and v (and of their LoRA B) are a contiguous slice of the fused weight
            fused = project(normed, qkv_weight[width:], qkv_bias[width:], "qkv", shared,
                            None if lora is None else lora_B["qkv"][width:])
            key, value = fused.view(batch, tokens, 2 * width).split(width, dim=-1)
            query = project(normed[:, :1], qkv_weight[:width], qkv_bias[:width], None,
                            None if lora is None else shared[:, :1], None if lora is None else lora_B["qkv"][:width])
            query = query.view(batch, 1, width)
        else:
            fused = project(normed, qkv_weight, qkv_bias, "qkv", shared, None if lora is None else lora_B["qkv"])
            query, key, value = fused.view(batch, tokens, 3 * width).split(width, dim=-1)
        heads = layer.attention.num_attention_heads

        def split(states):
            return states.reshape(batch, -1, heads, width // heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(query), split(key), split(value))
        attended = attended.transpose(1, 2).reshape(batch, -1, width)
        output = project_with_lora(attended, *weights["out"], "out")
        output = layer.drop_path(output.view(batch, -1, width))
        hidden_states = output.add_(hidden_states[:, :1] if cls_only else hidden_states)

        normed = layer.norm2(hidden_states)
        inner = project_with_lora(normed, *weights["fc1"], "fc1", buffer="fc1")
        if not grad and self.config.vision_config.hidden_act == "gelu":
            inner = torch.ops.aten.gelu_(inner)
        else:
            inner = layer.mlp.activation_fn(inner)
        output = project_with_lora(inner, *weights["fc2"], "fc2")
        output = layer.drop_path(output.view(batch, -1, width))
        return output.add_(hidden_states)

    def _first_trainable_block(self) -> int:
        """Blocks below this index (and the embeddings) have no trainable weight and run without autograd."""
        if self.config.vision_tuning == "full" and any(p.requires_grad for p in self.vision.parameters()):
            return 0
        depth = self.config.vision_config.num_hidden_layers
        trainable = [int(i) for i in self.vision_lora]
        trainable += [i for i in range(depth)
                      if any(p.requires_grad for p in self.vision.encoder.layer[i].parameters())]
        return min(trainable, default=depth)

    def encode_frames(self, frames: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        r"""DINOv2 layer-normed CLS features of packed frames `(N, 3, H, W)` -> `(N, hidden_size)`.

        `lengths` (frames per video, summing to N) lets the frozen-feature cache (see
        [`enable_frozen_feature_cache`]) look videos up; without it, or without a cache, every frame is encoded."""
        cache = getattr(self, "_frozen_feature_cache", None)
        if cache is not None and lengths is not None and cache.usable(self):
            return cache.encode(frames, lengths, self._encode_frames, self)
        return self._encode_frames(frames)

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        depth = self.config.vision_config.num_hidden_layers
        first_trainable = self._first_trainable_block()
        split = min(first_trainable, depth - 1)
        prefix_grad = torch.is_grad_enabled() and first_trainable == 0
        with torch.set_grad_enabled(prefix_grad):
            prefix = [self._block_weights(index) for index in range(split)]
        top = [self._block_weights(index) for index in range(split, depth)]

        def encode_top(hidden_states):
            for index, weights in enumerate(top, start=split):
                hidden_states = self._vision_block(index, hidden_states, index == depth - 1, weights, workspace)
            return self.vision.layernorm(hidden_states[:, 0])

        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        checkpoint = getattr(self, "_gradient_checkpointing_func", None) or partial(
            torch.utils.checkpoint.checkpoint, use_reentrant=False)
        outputs, workspace = [], {}
        for chunk in frames.split(self.config.frame_chunk_size):
            with torch.set_grad_enabled(prefix_grad):
                hidden_states = self.embed_frames(chunk)
                for index, weights in enumerate(prefix):
                    hidden_states = self._vision_block(index, hidden_states, False, weights, workspace)
            # Checkpointing keeps the chunk's input and recomputes the top blocks (same dropout masks: the RNG
            # state is restored) in the backward, so training memory no longer grows with the frames' activations.
            outputs.append(checkpoint(encode_top, hidden_states) if checkpointed else encode_top(hidden_states))
        return torch.cat(outputs)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
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

    def enable_frozen_feature_cache(self, max_megabytes: float = 1024.0) -> "FrozenFeatureCache":
        r"""Caches each video's DINOv2 CLS features while no DINOv2 or LoRA weight trains (`vision_tuning="frozen"`),
        so that later epochs skip the frame encoder for videos seen before. See [`FrozenFeatureCache`]."""
        self._frozen_feature_cache = FrozenFeatureCache(max_megabytes)
        return self._frozen_feature_cache

    def disable_frozen_feature_cache(self) -> None:
        self._frozen_feature_cache = None

    # ---- forward -----------------------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        **kwargs,
    ) -> BeyondGlossModelOutput:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`):
                normalised frames, zero-padded after each video's end (see [`BeyondGlossVideoProcessor`]).
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*):
                1 for real frames (first), 0 for padding. All frames are real when omitted.

        Returns:
            [`BeyondGlossModelOutput`].
        """
        mask = self._check_video_inputs(pixel_values_videos, video_attention_mask)
        batch, frames = mask.shape
        real = mask.bool()
        packed = pixel_values_videos[real]  # (N, 3, H, W): only real frames reach DINOv2

        features = self.frame_norm(self.frame_proj(self.encode_frames(packed, mask.sum(dim=1).tolist())))  # BN over real frames

        def unpack(values):
            padded = values.new_zeros(batch, frames, values.shape[-1])
            padded[real] = values
            return padded

        compat = self.config.reference_compat
        if compat:
            # The reference pads right after the BatchNorm and runs the hand head and the fusion on the padded tensor:
            # a padded frame reaches the temporal encoder as the heads' output on a zero feature, which the x2 pooling
            # then mixes into the last real step (docs/reference_differences.md). By default the heads see real frames
            # only and padding is zeros, so that a video's output does not depend on the batch it is in.
            features = unpack(features)
        hand_logits = self.hand_proj(features)
        hand_activated = F.gelu(hand_logits)
        hand_back = self.head_dropout(self.hand_up(hand_activated))
        fused = F.gelu(self.hand_fuse(torch.cat([features, hand_back], dim=-1)))
        # The reference compares the post-GELU output with HaMeR (it cannot go below -0.17); the loss here takes
        # the pre-activation, while GELU still feeds the fusion.
        hand_predictions = hand_activated if compat else hand_logits
        if not compat:
            features, fused, hand_predictions = unpack(features), unpack(fused), unpack(hand_predictions)

        temporal, step_mask = self.temporal(fused, mask)
        description_states = F.gelu(self.description_proj(temporal))
        description_back = self.head_dropout(self.description_down(description_states))
        sequence = torch.cat([temporal, description_back], dim=-1)
        return BeyondGlossModelOutput(
            last_hidden_state=sequence,
            attention_mask=step_mask,
            hand_predictions=hand_predictions,
            description_states=description_states,
            frame_features=features,
        )


class _BackboneLoadingMixin:
    """`from_backbones`: build a model around pretrained DINOv2 and mBART weights."""

    @classmethod
    def from_backbones(cls, vision: str, text: str, config_kwargs: dict | None = None, **load_kwargs):
        r"""
        Builds the model from a DINOv2 checkpoint and an mBART checkpoint (any local directory or hub id);
        everything BeyondGloss adds starts from its own initialisation.

        ```python
        >>> model = BeyondGlossForContrastivePretraining.from_backbones(
        ...     vision="facebook/dinov2-small", text="facebook/mbart-large-cc25")  # doctest: +SKIP
        ```
        """
        vision_model = Dinov2Model.from_pretrained(vision, **load_kwargs)
        text_model = MBartForConditionalGeneration.from_pretrained(text, **load_kwargs)
        config = BeyondGlossConfig.from_vision_text_configs(vision_model.config, text_model.config,
                                                            **(config_kwargs or {}))
        if config.decoder_start_token_id is None:
            config.decoder_start_token_id = text_model.config.decoder_start_token_id
        model = cls(config)
        model.load_backbone_weights(vision_model.state_dict(), text_model.state_dict())
        return model

    def load_backbone_weights(self, vision_state: dict, text_state: dict) -> None:
        missing, unexpected = self.sign_encoder.vision.load_state_dict(vision_state, strict=False)
        if missing or unexpected:
            raise ValueError(f"DINOv2 weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if hasattr(self, "mbart"):
            # mBART's q/v weights go under the `base_layer` of the LoRA layers wrapping them.
            lora = {name for name, module in self.mbart.named_modules() if is_text_lora(module)}
            text_state_here = {
                (f"{k.rsplit('.', 1)[0]}.base_layer.{k.rsplit('.', 1)[1]}" if k.rsplit(".", 1)[0] in lora else k): v
                for k, v in text_state.items()
            }
            missing, _ = self.mbart.load_state_dict(text_state_here, strict=False)
            if any(".base_layer." in name for name in missing):
                raise ValueError(f"mBART weights do not fit: missing {[n for n in missing if '.base_layer.' in n][:5]}")
        if hasattr(self, "text_encoder"):
            encoder_state = {k[len("model.encoder."):]: v for k, v in text_state.items() if k.startswith("model.encoder.")}
            self.text_encoder.load_state_dict(encoder_state, strict=False)


def _check_hand_inputs(hand_features, hand_mask, video_attention_mask, hand_dim):
    batch, frames = video_attention_mask.shape
    if hand_features.dim() != 3 or tuple(hand_features.shape) != (batch, frames, hand_dim):
        raise ValueError(
            f"hand_features must have shape (batch, frames, hand_dim) = ({batch}, {frames}, {hand_dim}), one row per "
            f"frame of pixel_values_videos; got {tuple(hand_features.shape)}."
        )
    if hand_mask is not None and tuple(hand_mask.shape) != (batch, frames):
        raise ValueError(f"hand_mask must have shape (batch, frames) = ({batch}, {frames}); got {tuple(hand_mask.shape)}.")


class BeyondGlossForContrastivePretraining(_BackboneLoadingMixin, BeyondGlossPreTrainedModel):
    r"""
    Stage 1 of BeyondGloss: the sign video encoder feeds an mBART encoder with LoRA (the image side); its pooled
    output is aligned CLIP-style with a frozen mBART encoder's pooled embedding of the target sentence, the pooled
    description states with the description embedding, and the hand head is distilled from HaMeR features.

    `loss = alignment_loss + description_loss_weight * description_loss + hand_loss_weight * hand_loss`; a term whose
    inputs are absent is left out, so datasets without descriptions or hand features train too.

    The image-side mBART is kept whole (`self.mbart`, its decoder idle), so that
    `BeyondGlossForSignTranslation.from_pretrained(<this checkpoint>)` finds the encoder with its LoRA and the
    decoder in place.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossForContrastivePretraining
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossForContrastivePretraining(tiny_config())
    >>> out = model(pixel_values_videos=torch.randn(2, 4, 3, 28, 28), input_ids=torch.tensor([[5, 6, 2], [7, 2, 1]]),
    ...             attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), return_loss=True)
    >>> out.loss.shape, out.logits_per_video.shape
    (torch.Size([]), torch.Size([2, 2]))
    ```
    """

    _text_lora_scope = r"mbart\.model\.encoder\."

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        self.sign_encoder = BeyondGlossModel(config)
        self.mbart = MBartForConditionalGeneration(config.text_config)
        add_lora_to_mbart(self.mbart.model.encoder, config)
        self.text_encoder = MBartEncoder(config.text_config)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.logit_scale_description = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.set_trainable()
        self.post_init()

    def set_trainable(self) -> None:
        self.sign_encoder.set_trainable()
        self.mbart.requires_grad_(False)  # the decoder is idle in pre-training
        set_text_trainable(self.mbart.model.encoder, self.config.text_tuning)
        self.mbart.model.encoder.embed_tokens.requires_grad_(False)  # unused: the encoder reads inputs_embeds
        self.text_encoder.requires_grad_(False)

    def _pool(self, states, mask):
        return states.mean(dim=1) if self.config.reference_compat else masked_mean(states, mask)

    def encode_video(self, encoder_output: BeyondGlossModelOutput) -> torch.Tensor:
        """Pooled, L2-normalised video embedding `(B, d_model)` from the image-side mBART encoder."""
        states = self.mbart.model.encoder(
            inputs_embeds=encoder_output.last_hidden_state, attention_mask=encoder_output.attention_mask
        ).last_hidden_state
        return F.normalize(self._pool(states, encoder_output.attention_mask), dim=-1)

    def encode_text(self, input_ids, attention_mask=None) -> torch.Tensor:
        """Pooled, L2-normalised sentence embedding `(B, d_model)` from the frozen text-side encoder."""
        states = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(self._pool(states, attention_mask), dim=-1)

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        description_embeds: torch.FloatTensor | None = None,
        hand_features: torch.FloatTensor | None = None,
        hand_mask: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        **kwargs,
    ) -> BeyondGlossPretrainingOutput:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`),
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`): the videos, see [`BeyondGlossModel`].
            input_ids (`torch.LongTensor` of shape `(batch_size, tokens)`), attention_mask: the target sentences,
                tokenized in target mode (`tokens, </s>, language code`).
            description_embeds (`torch.FloatTensor` of shape `(batch_size, description_dim)`, *optional*):
                embeddings of the hand-motion descriptions; without them the description term is left out.
            hand_features (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`, *optional*): HaMeR targets,
                one row per frame; without them the hand term is left out.
            hand_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*): 1 where a hand target exists
                (the reference uses the frame mask only; so does `reference_compat`).
            return_loss (`bool`, *optional*): compute the losses (default: when `input_ids` is given).
        """
        if input_ids is None:
            raise ValueError("input_ids (the tokenized target sentences) are required for contrastive pre-training.")
        video_attention_mask = self._check_video_inputs(pixel_values_videos, video_attention_mask)
        return_loss = True if return_loss is None else return_loss
        batch = pixel_values_videos.shape[0]
        if input_ids.shape[0] != batch:
            raise ValueError(f"input_ids has {input_ids.shape[0]} rows but there are {batch} videos.")
        if description_embeds is not None and tuple(description_embeds.shape) != (batch, self.config.description_dim):
            raise ValueError(
                f"description_embeds must have shape (batch, description_dim) = ({batch}, {self.config.description_dim}); "
                f"got {tuple(description_embeds.shape)}."
            )
        if hand_features is not None:
            _check_hand_inputs(hand_features, hand_mask, video_attention_mask, self.config.hand_dim)

        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask)
        video_embeds = self.encode_video(encoder_output)
        text_embeds = self.encode_text(input_ids, attention_mask)

        gather = self.config.gather_distributed_negatives
        all_video, offset = gather_with_grad(video_embeds) if gather else (video_embeds, 0)
        all_text, _ = gather_with_grad(text_embeds) if gather else (text_embeds, 0)
        alignment_loss, logits_per_video = symmetric_contrastive_loss(
            video_embeds, text_embeds, self.logit_scale, self.config.soft_target_scale, all_video, all_text, offset)
        loss = alignment_loss

        description_loss = logits_per_description = None
        if description_embeds is not None:
            step_description = F.normalize(self._pool(encoder_output.description_states, encoder_output.attention_mask), dim=-1)
            description = F.normalize(description_embeds.to(step_description.dtype), dim=-1)
            all_steps, offset_d = gather_with_grad(step_description) if gather else (step_description, 0)
            all_desc, _ = gather_with_grad(description) if gather else (description, 0)
            scale = self.logit_scale if self.config.reference_compat else self.logit_scale_description
            description_loss, logits_per_description = symmetric_contrastive_loss(
                step_description, description, scale, self.config.soft_target_scale, all_steps, all_desc, offset_d)
            loss = loss + self.config.description_loss_weight * description_loss

        hand_loss = None
        if hand_features is not None:
            frame_mask = video_attention_mask
            if hand_mask is not None and not self.config.reference_compat:
                frame_mask = frame_mask * hand_mask.to(frame_mask.dtype)
            hand_loss = masked_l2_loss(encoder_output.hand_predictions, hand_features.to(encoder_output.hand_predictions.dtype), frame_mask)
            loss = loss + self.config.hand_loss_weight * hand_loss

        return BeyondGlossPretrainingOutput(
            loss=loss if return_loss else None,
            alignment_loss=alignment_loss,
            description_loss=description_loss,
            hand_loss=hand_loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t() if not gather else None,
            logits_per_description=logits_per_description,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            encoder_output=encoder_output,
        )


class BeyondGlossForSignTranslation(_BackboneLoadingMixin, BeyondGlossPreTrainedModel):
    r"""
    Stage 2 of BeyondGloss: the sign video encoder feeds `inputs_embeds` to a frozen mBART encoder-decoder with LoRA
    on every q_proj/v_proj; trained with label-smoothed cross-entropy (computed here), decoded by beam search.

    `BeyondGlossForSignTranslation.from_pretrained(<pre-training checkpoint>)` takes over the sign video encoder and
    the image-side mBART (encoder with its LoRA, and the decoder); the decoder's LoRA starts fresh, as in the
    reference.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossForSignTranslation
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossForSignTranslation(tiny_config()).eval()
    >>> ids = model.generate(torch.randn(1, 4, 3, 28, 28), num_beams=2, max_new_tokens=5)
    >>> ids.shape[0]
    1
    ```
    """

    # Loading a pre-training checkpoint: its text side and temperatures are not needed, the decoder LoRA starts fresh.
    _keys_to_ignore_on_load_unexpected = [r"^text_encoder\.", r"^logit_scale"]
    _keys_to_ignore_on_load_missing = [r"^mbart\.model\.decoder\..*\.lora_[AB]\.default\.weight$"]
    _text_lora_scope = r"mbart\."

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        self.sign_encoder = BeyondGlossModel(config)
        self.mbart = MBartForConditionalGeneration(config.text_config)
        add_lora_to_mbart(self.mbart, config)
        self.set_trainable()
        self.post_init()
        # As transformers' generative models: a mutable attribute, saved to and loaded from generation_config.json;
        # the config only gives its initial values.
        self.generation_config = self.generation_config_from(config)

    def set_trainable(self) -> None:
        self.sign_encoder.set_trainable()
        set_text_trainable(self.mbart, self.config.text_tuning)

    @staticmethod
    def generation_config_from(config: BeyondGlossConfig) -> GenerationConfig:
        """The generation settings a config implies: beam search with `config.num_beams` beams, at most
        `config.max_new_tokens` tokens, starting at `config.decoder_start_token_id` (the target language code), and
        mBART's special tokens."""
        text = config.text_config
        return GenerationConfig(
            num_beams=config.num_beams,
            max_new_tokens=config.max_new_tokens,
            decoder_start_token_id=config.decoder_start_token_id,
            bos_token_id=text.bos_token_id,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.pad_token_id,
            forced_eos_token_id=text.forced_eos_token_id,
        )

    def _with_special_tokens(self, generation_config: GenerationConfig) -> GenerationConfig:
        # A generation config made elsewhere (a Seq2SeqTrainingArguments file, a `generation_config=` argument) may
        # lack the special tokens: they are this model's, from its generation config, else from its config.
        sources = (getattr(self, "generation_config", None), self.generation_config_from(self.config))
        for name in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id", "forced_eos_token_id"):
            for source in sources:
                if getattr(generation_config, name, None) is None and source is not None:
                    setattr(generation_config, name, getattr(source, name, None))
        return generation_config

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path,
                             cache_dir=None, force_download=False, proxies=None, local_files_only=False, token=None,
                             revision=None, subfolder="", **kwargs):
        # PreTrainedModel.from_pretrained calls this hook (GenerationMixin's) on models that can generate. As there:
        # a `generation_config=` argument wins, then the checkpoint's generation_config.json; a checkpoint without
        # one (a pre-training checkpoint) keeps the settings __init__ derived from the config.
        if generation_config is not None:
            self.generation_config = self._with_special_tokens(copy.deepcopy(generation_config))
            return
        if pretrained_model_name_or_path is None:
            return
        try:
            self.generation_config = GenerationConfig.from_pretrained(
                pretrained_model_name_or_path, cache_dir=cache_dir, force_download=force_download, proxies=proxies,
                local_files_only=local_files_only, token=token, revision=revision, subfolder=subfolder,
                _from_auto=from_auto_class, _from_pipeline=from_pipeline,
            )
        except OSError:
            pass

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        hand_features: torch.FloatTensor | None = None,
        hand_mask: torch.LongTensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`),
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`): see [`BeyondGlossModel`].
            labels (`torch.LongTensor` of shape `(batch_size, tokens)`, *optional*): target ids in target mode
                (`tokens, </s>, language code`) with -100 on padding; the decoder input is mBART's right shift
                (the language code wraps to the front).
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, tokens)`, *optional*): instead of labels.
            hand_features (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`, *optional*), hand_mask:
                hand targets; used only when `config.translation_hand_loss_weight > 0` (not in the reference).

        Returns:
            [`~transformers.modeling_outputs.Seq2SeqLMOutput`] with the label-smoothed loss when labels are given (plus
            the weighted hand term when it is switched on).
        """
        video_attention_mask = self._check_video_inputs(pixel_values_videos, video_attention_mask)
        if labels is None and decoder_input_ids is None:
            raise ValueError("Give labels (training) or decoder_input_ids; to translate, call generate().")
        if labels is not None and labels.shape[0] != pixel_values_videos.shape[0]:
            raise ValueError(f"labels has {labels.shape[0]} rows but there are {pixel_values_videos.shape[0]} videos.")
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.text_config.pad_token_id)
        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask)
        outputs = self.mbart(
            inputs_embeds=encoder_output.last_hidden_state,
            attention_mask=encoder_output.attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            return_dict=True,
        )
        loss = None
        if labels is not None:
            logits = outputs.logits.flatten(0, 1)  # at least float32 for the loss; float64 stays float64
            loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels.flatten(),
                                   ignore_index=-100, label_smoothing=self.config.label_smoothing)
            if hand_features is not None and self.config.translation_hand_loss_weight > 0:
                _check_hand_inputs(hand_features, hand_mask, video_attention_mask, self.config.hand_dim)
                frame_mask = video_attention_mask if hand_mask is None else video_attention_mask * hand_mask.long()
                loss = loss + self.config.translation_hand_loss_weight * masked_l2_loss(
                    encoder_output.hand_predictions, hand_features.to(encoder_output.hand_predictions.dtype), frame_mask)
        return Seq2SeqLMOutput(loss=loss, logits=outputs.logits, encoder_last_hidden_state=encoder_output.last_hidden_state)

    @torch.inference_mode()
    def generate(self, pixel_values_videos=None, video_attention_mask=None, generation_config=None, **kwargs):
        r"""
        Translates videos: beam search over the mBART decoder, settings from [`generation_config`] overridden by
        keyword arguments (`num_beams`, `max_new_tokens`, ...).

        Returns:
            `torch.LongTensor` of shape `(batch_size, tokens)`: generated ids, starting with the target language code.
        """
        video_attention_mask = self._check_video_inputs(pixel_values_videos, video_attention_mask)
        generation_config = self._with_special_tokens(copy.deepcopy(generation_config or self.generation_config))
        kwargs = generation_config.update(**kwargs)  # returns the arguments that are not generation settings
        if generation_config.decoder_start_token_id is None:
            raise ValueError(
                "No decoder start token: set model.generation_config.decoder_start_token_id to the target language "
                "code id, e.g. tokenizer.convert_tokens_to_ids('de_DE')."
            )
        for key in ("input_ids", "attention_mask", "labels"):
            kwargs.pop(key, None)
        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask)
        return self.mbart.generate(
            inputs_embeds=encoder_output.last_hidden_state,
            attention_mask=encoder_output.attention_mask,
            generation_config=generation_config,
            **kwargs,
        )

# Copyright 2026 The beyondgloss authors. MIT license.
"""The temporal encoder of BeyondGloss: local-attention Transformer blocks with rotary positions over the frame
features, and the x2 temporal downsampling (shipped in checkpoints)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_beyondgloss import BeyondGlossConfig

__all__ = [
    "BandMaskCache",
    "BeyondGlossTemporalAttention",
    "BeyondGlossTemporalBlock",
    "BeyondGlossTemporalEncoder",
    "apply_rotary",
    "drop_path",
    "sinusoidal_position_encoding",
]


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
    an output projection. Input `(B, T, frame_dim)` with mask `(B, T)`; output `(B, ceil(T/2), frame_dim)`, its mask
    (`ceil(L/2)` steps for a video of L frames; the reference rule under `reference_compat`) and, when asked for, the
    hidden states (the input with positions, then each block's output), else None."""

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

    def forward(self, hidden_states, mask, output_hidden_states: bool = False):
        hidden_states = hidden_states + sinusoidal_position_encoding(
            hidden_states.shape[1], hidden_states.shape[2], hidden_states.device, hidden_states.dtype)
        all_hidden_states = [hidden_states] if output_hidden_states else None
        bias = self.attention_bias(mask)
        for index, block in enumerate(self.blocks):
            if index == self.blocks_before_downsampling:
                hidden_states, mask = self.downsample(hidden_states, mask)
                bias = self.attention_bias(mask)
            hidden_states = block(hidden_states, bias)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
        return self.output_proj(hidden_states), mask, None if all_hidden_states is None else tuple(all_hidden_states)

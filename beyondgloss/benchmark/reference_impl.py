# Copyright 2026 The beyondgloss authors. MIT license.
"""The reference's sign video encoder, computed the way the authors' code computes it.

This is the straightforward path that [`BeyondGlossModel`] optimises: the baseline of `beyondgloss benchmark` and
the oracle of the equivalence and fidelity tests. It is written from the authors' code, not from the package's
code path (what the authors do and where beyondgloss differs: `docs/reference_differences.md`):

- DINOv2 as the authors' vendored `vision_transformer.py`: a fused `qkv` Linear whose LoRA has one A shared by q, k
  and v and a fused B; the position table resized with scale factors `(rows + 0.1, columns + 0.1) / side` (the
  reference's `interpolate_pos_encoding`); plain softmax attention (`q @ k^T`, softmax, `@ v`, no SDPA); every token
  of every block, the last one included; all real frames of the batch in one pass (no chunking); autograd
  wherever a tensor requires it (so through the LoRA blocks and above).
- The authors' order of operations: Linear + BatchNorm over the packed real frames, then split by length and
  zero-padded, then the hand head and the fusion on the padded tensor, then the temporal encoder, so a padded frame
  enters it as the heads' output on a zero feature.
- The temporal encoder as the authors' `Transformer`: plain attention with the local band rebuilt by a Python loop
  (`local_1d_pattern`) at every call, `-inf` masking, the de-interleaved RoPE output layout, and the `Downsampler`
  (unmasked average pooling, the mask pooled separately).

With `config.reference_compat=False` it computes the package's corrected function from that same order, by masking
rather than packing: the padded frames' head outputs are replaced by zeros before the temporal encoder, the
downsampling pools zeroed steps, the table follows transformers' DINOv2 rule. It loads a [`BeyondGlossModel`]'s
weights with [`ReferenceSignEncoder.from_beyondgloss`], so outputs and gradients can be compared. Not meant for
training: it is slow on purpose of fidelity.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN

from ..configuration_beyondgloss import BeyondGlossConfig
from ..convert.reference_names import DINO_LORA_TARGETS, dino_names
from ..modeling_beyondgloss import BeyondGlossModel, BeyondGlossModelOutput
from ..sign_encoder import BeyondGlossSignEncoder

__all__ = ["ReferenceSignEncoder", "local_1d_pattern"]


def local_1d_pattern(length: int, window_size: int) -> torch.Tensor:
    """`models/utils.py:local_1d_pattern`: `(length, length)` boolean band `|i - j| <= window_size // 2`, built
    element by element in Python as the reference does on every attention call."""
    half = window_size // 2
    pattern = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(max(0, i - half), min(length, i + half + 1)):
            pattern[i, j] = True
    return pattern


def _own_name(theirs: str) -> str:
    """This module's name for a tensor of the authors' DINOv2 (below `conv_2d.dino.spatial_model.`): a layer goes
    by its last name (`blocks.0.attn.qkv.weight` -> `blocks.0.qkv.weight`, `patch_embed.proj.weight` ->
    `patch_embed.weight`), a LoRA factor sits on the layer it adapts (`blocks.0.attn.lora_w1_l2.weight` ->
    `blocks.0.qkv.lora_B`), LayerScale is a bare parameter (`blocks.0.ls1.gamma` -> `blocks.0.ls1`)."""
    if theirs.startswith("patch_embed.proj."):
        return "patch_embed." + theirs.rsplit(".", 1)[1]
    if not theirs.startswith("blocks."):
        return theirs
    _, index, rest = theirs.split(".", 2)
    if rest.endswith(".gamma"):
        return f"blocks.{index}.{rest.removesuffix('.gamma')}"
    lora, _, level = rest.removesuffix(".weight").rpartition("_l")
    if lora in DINO_LORA_TARGETS:
        return f"blocks.{index}.{DINO_LORA_TARGETS[lora].rsplit('.', 1)[1]}.lora_{'AB'[int(level) - 1]}"
    return f"blocks.{index}.{rest.split('.', 1)[1] if rest.startswith(('attn.', 'mlp.')) else rest}"


class _LoRALinear(nn.Linear):
    """`attention.py` / `mlp.py` LoRA: a frozen Linear plus `scaling * B(A(dropout(x)))` (rank 0 = no LoRA)."""

    def __init__(self, in_features: int, out_features: int, rank: int, scaling: float, dropout: float):
        super().__init__(in_features, out_features)
        self.scaling = scaling
        self.lora_A = nn.Parameter(torch.zeros(rank, in_features)) if rank else None
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank)) if rank else None
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = super().forward(x)
        if self.lora_A is not None:
            out = out + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scaling
        return out


class _ViTBlock(nn.Module):
    """`block.py:Block`: `x + ls1(attn(norm1(x)))`, then `x + ls2(mlp(norm2(x)))`, plain softmax attention."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float, act, rank: int, scaling: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.qkv = _LoRALinear(dim, 3 * dim, rank, scaling, dropout)
        self.proj = _LoRALinear(dim, dim, rank, scaling, dropout)
        self.fc1 = _LoRALinear(dim, mlp_dim, rank, scaling, dropout)
        self.fc2 = _LoRALinear(mlp_dim, dim, rank, scaling, dropout)
        self.ls1, self.ls2 = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))
        self.act = act

    def forward(self, x):
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (dim // self.heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        attended = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + self.ls1 * self.proj(attended)
        return x + self.ls2 * self.fc2(self.act(self.fc1(self.norm2(x))))


def _rope_reference(x: torch.Tensor) -> torch.Tensor:
    """`RotaryPositionalEmbedding`: interleaved pairs in, half-split layout out, positions `0..T-1`."""
    _, _, length, dim = x.shape
    precision = torch.promote_types(x.dtype, torch.float32)  # the reference's float32, float64 for a float64 model
    theta = 10000.0 ** (-torch.arange(0, dim, 2, dtype=precision, device=x.device) / dim)
    angle = torch.arange(length, dtype=precision, device=x.device)[:, None] * theta
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.cat([even * cos - odd * sin, odd * cos + even * sin], dim=-1)


class _TemporalAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, key_valid):
        batch, length, dim = x.shape
        head_dim = dim // self.heads

        def heads(states):
            return states.view(batch, length, self.heads, head_dim).transpose(1, 2)

        q, k, v = _rope_reference(heads(self.q_proj(x))), _rope_reference(heads(self.k_proj(x))), heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        allowed = local_1d_pattern(length, self.window).to(x.device)[None] & key_valid[:, None, :]
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=x.device)[None]
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class _TemporalBlock(nn.Module):
    def __init__(self, config: BeyondGlossConfig, drop_path_rate: float):
        super().__init__()
        dim = config.frame_dim
        self.attention = _TemporalAttention(dim, config.temporal_heads, config.temporal_window)
        self.attention_dropout = nn.Dropout(config.temporal_dropout)
        self.layer_scale = nn.Parameter(torch.full((dim,), config.layer_scale_init))
        self.attention_norm, self.ffn_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, config.temporal_ffn_dim)
        self.ffn_dropout = nn.Dropout(config.temporal_dropout)
        self.ffn_out = nn.Linear(config.temporal_ffn_dim, dim)
        self.drop_path_rate = drop_path_rate

    def _drop_path(self, x):
        if self.drop_path_rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_path_rate
        return x * x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep) / keep

    def forward(self, x, key_valid):
        attended = self.layer_scale * self.attention_dropout(self.attention(x, key_valid))
        x = self.attention_norm(x + self._drop_path(attended))
        fed = self.ffn_out(self.ffn_dropout(F.gelu(self.ffn_in(x))))
        return self.ffn_norm(x + self._drop_path(fed))


class _TemporalEncoder(nn.Module):
    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        depth = sum(config.temporal_layers)
        self.blocks = nn.ModuleList(
            _TemporalBlock(config, config.drop_path_rate * k / max(depth - 1, 1)) for k in range(depth))
        self.before_downsampling = config.temporal_layers[0]
        self.output_proj = nn.Linear(config.frame_dim, config.frame_dim)
        self.reference_compat = config.reference_compat
        self.max_frames = config.max_frames

    def _position_encoding(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """`PositionalEncoding`'s table: a float32 buffer of `max_frames` rows in the reference, built here per call
        at float32 or, for a float64 model, float64 precision, so that float64 comparisons are not held to float32's
        round-off of the table."""
        precision = torch.promote_types(like.dtype, torch.float32)
        dim = like.shape[-1]
        position = torch.arange(self.max_frames, dtype=precision, device=like.device)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=precision, device=like.device) * (-math.log(10000.0) / dim))
        pe = torch.zeros(self.max_frames, dim, dtype=precision, device=like.device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
        return pe[:length].to(like.dtype)

    def forward(self, x, mask):
        x = x + self._position_encoding(x.shape[1], x)
        for index, block in enumerate(self.blocks):
            if index == self.before_downsampling:
                if self.reference_compat:  # `Downsampler`
                    x = F.avg_pool1d(x.transpose(1, 2), 3, 2, 1).transpose(1, 2)
                    mask = F.avg_pool1d(mask[:, None].float(), 3, 2, 1, count_include_pad=False)[:, 0] > 0
                    mask[:, 0] = True
                else:  # the package's documented fix: padded steps zeroed, ceil(L/2) real steps
                    x = F.avg_pool1d((x * mask[..., None].to(x.dtype)).transpose(1, 2), 3, 2, 1).transpose(1, 2)
                    lengths = (mask.long().sum(dim=1) + 1) // 2
                    mask = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
            x = block(x, mask.bool())
        return self.output_proj(x), mask.long()


class ReferenceSignEncoder(nn.Module):
    r"""
    The reference frame encoder (DINOv2 with fused-qkv LoRA), heads and temporal encoder, computed as the authors'
    code does. Same inputs and output type as [`BeyondGlossModel`]; build it from one with `from_beyondgloss` so
    that both compute the same function.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss.modeling_beyondgloss import BeyondGlossModel
    >>> from beyondgloss.benchmark.reference_impl import ReferenceSignEncoder
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossModel(tiny_config()).double().eval()  # float64: round-off cannot hide a difference
    >>> reference = ReferenceSignEncoder.from_beyondgloss(model).eval()
    >>> video = torch.randn(1, 4, 3, 28, 28, dtype=torch.float64)
    >>> torch.allclose(model(video).last_hidden_state, reference(video).last_hidden_state, rtol=1e-10, atol=1e-10)
    True
    ```
    """

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        self.config = config
        vision = config.vision_config
        dim, depth = vision.hidden_size, vision.num_hidden_layers
        lora_layers = set(config.vision_lora_layers) if config.vision_tuning == "lora" else set()
        scaling = config.vision_lora_alpha / config.vision_lora_rank
        act = ACT2FN[vision.hidden_act]
        self.patch_embed = nn.Conv2d(vision.num_channels, dim, vision.patch_size, vision.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (vision.image_size // vision.patch_size) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(
            _ViTBlock(dim, vision.num_attention_heads, int(dim * vision.mlp_ratio), vision.layer_norm_eps, act,
                      config.vision_lora_rank if i in lora_layers else 0, scaling, config.vision_lora_dropout)
            for i in range(depth))
        self.norm = nn.LayerNorm(dim, eps=vision.layer_norm_eps)
        # The same heads as BeyondGlossModel's, under the same names (weights are copied by name), declared again so
        # that the oracle shares no code with the model it checks.
        self.frame_proj = nn.Linear(dim, config.frame_dim)
        self.frame_norm = nn.BatchNorm1d(config.frame_dim)
        self.hand_proj = nn.Linear(config.frame_dim, config.hand_dim)
        self.hand_up = nn.Linear(config.hand_dim, config.frame_dim)
        self.hand_fuse = nn.Linear(2 * config.frame_dim, config.frame_dim)
        self.temporal = _TemporalEncoder(config)
        self.description_proj = nn.Linear(config.frame_dim, config.description_dim)
        self.description_down = nn.Linear(config.description_dim, config.frame_dim)
        self.head_dropout = nn.Dropout(config.head_dropout)

    # ---- weights shared with BeyondGlossModel ---------------------------------------------------------------

    def _fused_names(self) -> dict[str, list[str]]:
        """Reference parameter name -> the parameters of BeyondGlossModel's sign encoder concatenated (dim 0) to form it.

        DINOv2's names come from the converter's table of the authors' names (`dino_names`), under this module's
        names for them (`_own_name`); the heads and the temporal encoder share the package's module names."""
        lora_blocks = [i for i, block in enumerate(self.blocks) if block.qkv.lora_A is not None]
        names = {_own_name(theirs): list(ours) for theirs, ours in dino_names(len(self.blocks), lora_blocks).items()}
        mine = [name for name, _ in list(self.named_parameters()) + list(self.named_buffers())]
        names = {name: sources for name, sources in names.items() if name in mine}
        for name in mine:
            names.setdefault(name, [name])
        return names

    @classmethod
    def from_beyondgloss(cls, model: "BeyondGlossModel | BeyondGlossSignEncoder") -> "ReferenceSignEncoder":
        """A reference encoder holding a copy of the weights of `model` (any BeyondGloss model, or its sign encoder), in
        their dtype, with the same parameters trainable."""
        encoder = model.sign_encoder if isinstance(model, PreTrainedModel) else model
        weight = next(encoder.parameters())
        reference = cls(encoder.config).to(device=weight.device, dtype=weight.dtype)
        theirs = dict(encoder.named_parameters()) | dict(encoder.named_buffers())
        mine = dict(reference.named_parameters()) | dict(reference.named_buffers())
        with torch.no_grad():
            for name, sources in reference._fused_names().items():
                mine[name].copy_(torch.cat([theirs[s] for s in sources]) if len(sources) > 1 else theirs[sources[0]])
                if isinstance(mine[name], nn.Parameter):
                    mine[name].requires_grad_(any(theirs[s].requires_grad for s in sources))
        reference.train(encoder.training)
        return reference

    def to_beyondgloss_names(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Maps tensors keyed by this module's parameter names (e.g. gradients) to the names of [`BeyondGlossModel`]'s
        sign encoder (without `sign_encoder.`), splitting the fused qkv tensors."""
        mapped = {}
        for name, sources in self._fused_names().items():
            if name in tensors and tensors[name] is not None:
                for source, part in zip(sources, tensors[name].chunk(len(sources))):
                    mapped[source] = part
        return mapped

    # ---- forward ---------------------------------------------------------------------------------------------

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """`x_norm_clstoken` of packed frames `(N, 3, H, W)` -> `(N, hidden_size)`, all frames in one pass."""
        x = self.patch_embed(frames).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        patch = self.patch_embed.kernel_size
        x = x + self._position_embedding(frames.shape[-2] // patch[0], frames.shape[-1] // patch[1])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def _position_embedding(self, rows: int, columns: int) -> torch.Tensor:
        """The position table for a `rows` x `columns` patch grid.

        Under `reference_compat`, the authors' `interpolate_pos_encoding` (which unpacks the frame shape as
        `B, nc, w, h`, so its `w` is the height): bicubic with `scale_factor=((rows + 0.1) / side, (columns + 0.1) /
        side)`, in float32 (float64 for a float64 model). Otherwise transformers' DINOv2 rule, `size=(rows,
        columns)` in float32."""
        stored = self.pos_embed.shape[1] - 1
        side = int(math.sqrt(stored))
        if rows * columns == stored and rows == columns:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if self.config.reference_compat:
            grid = grid.to(torch.promote_types(grid.dtype, torch.float32))
            grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (columns + 0.1) / side), mode="bicubic")
        else:
            grid = F.interpolate(grid.to(torch.float32), size=(rows, columns), mode="bicubic", align_corners=False)
        if tuple(grid.shape[-2:]) != (rows, columns):
            raise AssertionError(f"position table resized to {tuple(grid.shape[-2:])}, not {(rows, columns)}")
        grid = grid.to(self.pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, rows * columns, -1)
        return torch.cat([self.pos_embed[:, :1], grid], dim=1)

    def forward(self, pixel_values_videos: torch.Tensor, video_attention_mask: torch.Tensor | None = None,
                **kwargs) -> BeyondGlossModelOutput:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`),
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*): as for
                [`BeyondGlossModel`].
        """
        batch, frames = pixel_values_videos.shape[:2]
        if video_attention_mask is None:
            video_attention_mask = torch.ones(batch, frames, dtype=torch.long, device=pixel_values_videos.device)
        lengths = video_attention_mask.long().sum(dim=1).tolist()
        # The collate packs the real frames of the batch; DINOv2, the Linear and the BatchNorm see only them.
        packed = torch.cat([pixel_values_videos[b, :n] for b, n in enumerate(lengths)])
        packed_features = self.frame_norm(self.frame_proj(self.encode_frames(packed)))
        # `dino_adaptor_model.py:Model.forward`: split by length, zero-pad each video to the frame count, mask.
        features = torch.stack([
            torch.cat([part, part.new_zeros(frames - len(part), part.shape[-1])])
            for part in packed_features.split(lengths)
        ])
        mask = torch.stack([torch.arange(frames, device=features.device) < n for n in lengths])
        # `FeatureExtracter.forward`: the hand head and the fusion run on the padded tensor.
        hand_activated = F.gelu(self.hand_proj(features))
        fused = F.gelu(self.hand_fuse(torch.cat([features, self.head_dropout(self.hand_up(hand_activated))], -1)))
        if self.config.reference_compat:
            hand = hand_activated
        else:
            # beyondgloss: the loss takes the pre-activation, and padded frames are zeros (with the mask) before the
            # temporal encoder and in the outputs.
            real = mask[..., None].to(features.dtype)
            hand, fused = self.hand_proj(features) * real, fused * real
        temporal, step_mask = self.temporal(fused, mask)
        description_states = F.gelu(self.description_proj(temporal))
        sequence = torch.cat([temporal, self.head_dropout(self.description_down(description_states))], dim=-1)
        return BeyondGlossModelOutput(last_hidden_state=sequence, attention_mask=step_mask, hand_predictions=hand,
                                      description_states=description_states, frame_features=features,
                                      video_attention_mask=mask.long())

# Copyright 2026 The beyondgloss authors. MIT license.
"""The sign video encoder of BeyondGloss: the frame encoder, the frame projection, the hand head and its fusion, the
temporal encoder and the description head, from padded videos to the sequence the mBART encoder reads; and, when the
config asks for it, the signing gate on that sequence.

Shipped in checkpoints beside `modeling_beyondgloss.py` (imports only torch, transformers and siblings).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_beyondgloss import BeyondGlossConfig
from .frame_encoder import BeyondGlossFrameEncoder
from .losses import masked_mean
from .outputs_beyondgloss import BeyondGlossModelOutput
from .temporal_encoder import BeyondGlossTemporalEncoder

__all__ = ["BeyondGlossSignEncoder", "BeyondGlossSigningGate", "check_video_inputs"]


def check_video_inputs(pixel_values_videos, video_attention_mask, config: BeyondGlossConfig) -> torch.LongTensor:
    """Validates a batch of videos once per call; returns its frame mask (all ones when none is given)."""
    if pixel_values_videos is None:
        raise ValueError("pixel_values_videos is required: a (batch, frames, 3, height, width) tensor.")
    if pixel_values_videos.dim() != 5:
        raise ValueError(
            "pixel_values_videos must have shape (batch, frames, 3, height, width); "
            f"got a tensor of shape {tuple(pixel_values_videos.shape)}."
        )
    batch, frames = pixel_values_videos.shape[:2]
    if frames > config.max_frames:
        raise ValueError(
            f"pixel_values_videos has {frames} frames per video, more than config.max_frames={config.max_frames}: "
            "pass the videos through the model's processor (it subsamples longer videos to max_frames), or raise "
            "max_frames in the config."
        )
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


class BeyondGlossSigningGate(nn.Module):
    r"""
    The signing gate (issue 27; not in the paper): whether a video holds signing, from the sign encoder's output.

    The mean and the maximum of `last_hidden_state` over the valid steps (the maximum sees a sign that fills only part
    of a window, the mean how much of it is signing) -> `Linear(4 * frame_dim, frame_dim)` -> GELU ->
    `Linear(frame_dim, 1)`: one logit per video, `sigmoid(logit)` the probability of signing.
    """

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        width = 2 * config.frame_dim
        self.proj = nn.Linear(2 * width, config.frame_dim)
        self.out = nn.Linear(config.frame_dim, 1)

    def forward(self, states: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
        r"""`states` `(B, steps, 2 * frame_dim)` and their `step_mask` `(B, steps)` (ones then zeros) -> logits `(B,)`."""
        valid = step_mask.bool()[..., None]
        peak = states.masked_fill(~valid, torch.finfo(states.dtype).min).amax(dim=1)
        pooled = torch.cat([masked_mean(states, step_mask), peak], dim=-1)
        return self.out(F.gelu(self.proj(pooled))).squeeze(-1)


class BeyondGlossSignEncoder(nn.Module):
    r"""
    The BeyondGloss sign video encoder: frames -> frame encoder (DINOv2 with LoRA in its top blocks) -> CLS ->
    Linear + BatchNorm over the real frames -> hand head and fusion -> local-attention temporal encoder (x2
    downsampling) -> description head and fusion -> a `(B, ceil(T/2), 2 * frame_dim)` sequence for the mBART encoder;
    with `config.signing_gate`, the [`BeyondGlossSigningGate`]'s logit on that sequence.

    Padding costs no compute: the real frames of the batch are packed before DINOv2 and encoded in chunks of
    `config.frame_chunk_size`. Architecture only: the losses are the task models'.
    """

    def __init__(self, config: BeyondGlossConfig):
        super().__init__()
        self.config = config
        self.frame_encoder = BeyondGlossFrameEncoder(config)
        vision = config.vision_config
        self.frame_proj = nn.Linear(vision.hidden_size, config.frame_dim)
        self.frame_norm = nn.BatchNorm1d(config.frame_dim)
        self.hand_proj = nn.Linear(config.frame_dim, config.hand_dim)
        self.hand_up = nn.Linear(config.hand_dim, config.frame_dim)
        self.hand_fuse = nn.Linear(2 * config.frame_dim, config.frame_dim)
        self.temporal = BeyondGlossTemporalEncoder(config)
        self.description_proj = nn.Linear(config.frame_dim, config.description_dim)
        self.description_down = nn.Linear(config.description_dim, config.frame_dim)
        self.head_dropout = nn.Dropout(config.head_dropout)
        # Built last and only when asked for: without it the module holds the same weights, drawn in the same order.
        self.signing_gate = BeyondGlossSigningGate(config) if config.signing_gate else None

    def set_trainable(self) -> None:
        """The frame encoder's rule (see [`BeyondGlossFrameEncoder.set_trainable`]); everything else trains."""
        self.frame_encoder.set_trainable()

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BeyondGlossModelOutput:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`):
                normalised frames, zero-padded after each video's end (see [`BeyondGlossVideoProcessor`]).
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*):
                1 for real frames (first), 0 for padding. All frames are real when omitted.
            output_hidden_states (`bool`, defaults to `False`): also return the temporal encoder's hidden states.
            output_attentions (`bool`, defaults to `False`): also return its attention weights.

        Returns:
            [`BeyondGlossModelOutput`].
        """
        mask = check_video_inputs(pixel_values_videos, video_attention_mask, self.config)
        packed = pixel_values_videos[mask.bool()]  # (N, 3, H, W): only real frames reach DINOv2
        features = self.frame_features(packed, mask.sum(dim=1).tolist())
        return self.forward_features(features, mask, output_hidden_states, output_attentions)

    def frame_features(self, frames: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        r"""The per-frame part: packed real frames `(N, 3, H, W)` -> frame encoder -> projection -> BatchNorm (over the
        real frames only; in eval mode its running statistics make each frame's features its own) -> `(N, frame_dim)`.
        `lengths` (frames per video) lets the frame encoder's cache look videos up."""
        return self.frame_norm(self.frame_proj(self.frame_encoder(frames, lengths)))

    def forward_features(self, features: torch.Tensor, mask: torch.LongTensor, output_hidden_states: bool = False,
                         output_attentions: bool = False) -> BeyondGlossModelOutput:
        r"""The per-video part, from [`frame_features`] of the real frames `(N, frame_dim)` and the batch's frame mask
        `(B, T)` (ones then zeros per row, N ones in all): hand head and fusion, temporal encoder, description head.
        A stream of frames computes `frame_features` once per frame and this once per window."""
        batch, frames = mask.shape
        real = mask.bool()

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

        temporal, step_mask, hidden_states, attentions = self.temporal(fused, mask, output_hidden_states,
                                                                       output_attentions)
        description_states = F.gelu(self.description_proj(temporal))
        description_back = self.head_dropout(self.description_down(description_states))
        last_hidden_state = torch.cat([temporal, description_back], dim=-1)
        return BeyondGlossModelOutput(
            last_hidden_state=last_hidden_state,
            attention_mask=step_mask,
            signing_logits=None if self.signing_gate is None else self.signing_gate(last_hidden_state, step_mask),
            hand_predictions=hand_predictions,
            description_states=description_states,
            frame_features=features,
            video_attention_mask=mask,
            hidden_states=hidden_states,
            attentions=attentions,
        )

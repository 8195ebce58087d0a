# Copyright 2026 The beyondgloss authors. MIT license.
"""The typed outputs of the BeyondGloss models, every field with its shape. Shipped in checkpoints beside
`modeling_beyondgloss.py` (imports only torch and transformers)."""

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput

__all__ = ["BeyondGlossModelOutput", "BeyondGlossPretrainingOutput", "BeyondGlossSignTranslationOutput"]


@dataclass
class BeyondGlossModelOutput(ModelOutput):
    r"""
    Output of the sign video encoder ([`BeyondGlossSignEncoder`], [`BeyondGlossModel`]).

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, steps, 2 * frame_dim)`):
            the video sequence at half the frame rate (temporal features concatenated with the description
            branch); the `inputs_embeds` of the mBART encoder.
        attention_mask (`torch.LongTensor` of shape `(batch_size, steps)`): 1 for real steps.
        signing_logits (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): the signing gate's logit per video
            (`sigmoid` gives the probability that it holds signing); `None` for a model without a gate.
        hand_predictions (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`): predicted per-frame
            hand features (zero on padded frames; under `reference_compat` the head's output on a zero feature, as
            in the reference).
        description_states (`torch.FloatTensor` of shape `(batch_size, steps, description_dim)`): per-step
            vectors whose time mean is aligned with the description embedding.
        frame_features (`torch.FloatTensor` of shape `(batch_size, frames, frame_dim)`): DINOv2 CLS features after
            the projection and BatchNorm (zero on padded frames).
        video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`): 1 for real frames (all ones when
            the input came without a mask).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`): the
            temporal encoder's input `(batch_size, frames, frame_dim)` and the output of each of its blocks
            (`(batch_size, frames or steps, frame_dim)`).
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`): each temporal
            block's attention weights, `(batch_size, temporal_heads, frames or steps, frames or steps)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hand_predictions: torch.FloatTensor | None = None
    description_states: torch.FloatTensor | None = None
    frame_features: torch.FloatTensor | None = None
    video_attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    signing_logits: torch.FloatTensor | None = None


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


@dataclass
class BeyondGlossSignTranslationOutput(Seq2SeqLMOutput):
    r"""
    Output of [`BeyondGlossForSignTranslation`]: transformers' `Seq2SeqLMOutput` (`loss`, `logits`, and mBART's
    hidden states and attentions when asked for; `encoder_last_hidden_state` is the sign video encoder's sequence),
    with the parts of the loss.

    Args:
        translation_loss (`torch.FloatTensor` of shape `()`, *optional*): the label-smoothed cross-entropy.
        hand_loss (`torch.FloatTensor` of shape `()`, *optional*): the hand distillation term, unweighted (computed when
            hand features are given and `config.translation_hand_loss_weight > 0`); `loss = translation_loss +
            translation_hand_loss_weight * hand_loss`.
        signing_logits (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): the signing gate's logit per video
            (with `config.signing_gate`); `sigmoid` gives the probability that the video holds signing.
        signing_loss (`torch.FloatTensor` of shape `()`, *optional*): the gate's binary cross-entropy against the
            `signing` labels, unweighted (when they are given); `loss` adds `signing_loss_weight` times it.
        sign_encoder_output ([`BeyondGlossModelOutput`], *optional*): the sign video encoder's output, with its
            hidden states and attentions when asked for.
    """

    translation_loss: torch.FloatTensor | None = None
    hand_loss: torch.FloatTensor | None = None
    signing_logits: torch.FloatTensor | None = None
    signing_loss: torch.FloatTensor | None = None
    sign_encoder_output: BeyondGlossModelOutput | None = None

    def to_tuple(self):
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())

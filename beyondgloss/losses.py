# Copyright 2026 The beyondgloss authors. MIT license.
"""The objectives of BeyondGloss, as pure functions.

Imports only torch, so the modeling file can use it inside a checkpoint loaded with `trust_remote_code=True`.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "hand_distillation_loss",
    "soft_target_contrastive_loss",
    "symmetric_contrastive_loss",
    "masked_l2_loss",
    "signing_gate_loss",
    "translation_losses",
    "without_idle_clips",
    "masked_mean",
    "gather_with_grad",
]


def soft_target_contrastive_loss(
    logits: torch.Tensor, positives: torch.Tensor | None = None, target_scale: float = 10.0
) -> torch.Tensor:
    r"""Cross-entropy of `logits` against the reference's soft targets, row-wise.

    The reference computes `B * KLDivLoss(mean)(log_softmax(S), softmax(10 * I))`, that is
    `(1/B) sum_i sum_j P_ij (log P_ij - log softmax(S_i)_j)` with `P = softmax(target_scale * I)` per row:
    `P_ii = e^s / (e^s + N - 1)` and `P_ij = 1 / (e^s + N - 1)`. This computes the same value in closed form.

    Args:
        logits (`torch.Tensor` of shape `(B, N)`): similarity logits of B queries against N candidates.
        positives (`torch.Tensor` of shape `(B,)`, *optional*): column of each row's positive; `arange(B)` by
            default (N == B, in-batch negatives). With gathered negatives the local rows point into the global columns.
        target_scale (`float`): the `10` of `softmax(10 * I)`.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    rows, columns = logits.shape
    if positives is None:
        if rows != columns:
            raise ValueError(f"logits of shape {tuple(logits.shape)} are not square; pass `positives`.")
        positives = torch.arange(rows, device=logits.device)
    log_probs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    scale = torch.tensor(float(target_scale), dtype=log_probs.dtype, device=logits.device)
    normaliser = torch.logaddexp(scale, torch.log(torch.tensor(columns - 1.0, dtype=log_probs.dtype, device=logits.device)))
    log_p_positive = scale - normaliser
    log_p_negative = -normaliser
    p_positive, p_negative = log_p_positive.exp(), log_p_negative.exp()
    positive_log_q = log_probs.gather(1, positives[:, None]).squeeze(1)
    negative_log_q_sum = log_probs.sum(dim=1) - positive_log_q
    entropy_term = p_positive * log_p_positive + (columns - 1) * p_negative * log_p_negative
    per_row = entropy_term - p_positive * positive_log_q - p_negative * negative_log_q_sum
    return per_row.mean()


def symmetric_contrastive_loss(
    query_embeds: torch.Tensor,
    key_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    target_scale: float = 10.0,
    all_query_embeds: torch.Tensor | None = None,
    all_key_embeds: torch.Tensor | None = None,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""CLIP-style loss in both directions, `(L(q->k) + L(k->q)) / 2`, with the soft targets above.

    Args:
        query_embeds, key_embeds (`torch.Tensor` of shape `(B, D)`): L2-normalised local embeddings.
        logit_scale (`torch.Tensor`): the log temperature; logits are `exp(logit_scale) * q k^T`.
        all_query_embeds, all_key_embeds (`torch.Tensor` of shape `(N, D)`, *optional*): embeddings gathered from
            every process (see [`gather_with_grad`]); local rows are `offset : offset + B` of them.

    Returns:
        `(loss, logits_q_to_k)`: the scalar loss and the `(B, N)` query-to-key logits.
    """
    scale = logit_scale.exp()
    all_keys = key_embeds if all_key_embeds is None else all_key_embeds
    all_queries = query_embeds if all_query_embeds is None else all_query_embeds
    logits_q = scale * query_embeds @ all_keys.t()
    logits_k = scale * key_embeds @ all_queries.t()
    positives = torch.arange(query_embeds.shape[0], device=query_embeds.device) + offset
    loss = 0.5 * (
        soft_target_contrastive_loss(logits_q, positives, target_scale)
        + soft_target_contrastive_loss(logits_k, positives, target_scale)
    )
    return loss, logits_q


def masked_l2_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Per-element mean squared error over the masked-in frames (the reference's hand loss).

    `sum_{b,t} m_bt * ||p_bt - y_bt||^2 / (D * sum_{b,t} m_bt)`.

    Args:
        predictions, targets (`torch.Tensor` of shape `(B, T, D)`).
        mask (`torch.Tensor` of shape `(B, T)`): 1 for frames that count.

    Returns:
        `torch.Tensor`: scalar loss (0 when the mask is empty).
    """
    mask = mask.to(predictions.dtype)
    squared = (predictions - targets).pow(2).sum(dim=-1)
    denominator = mask.sum() * predictions.shape[-1]
    return (squared * mask).sum() / denominator.clamp(min=1.0)


def hand_distillation_loss(predictions: torch.Tensor, hand_features: torch.Tensor, video_attention_mask: torch.Tensor,
                           hand_mask: torch.Tensor | None = None, reference_compat: bool = False) -> torch.Tensor:
    r"""The hand distillation term of both training stages: [`masked_l2_loss`] between the predicted `(B, T, hand_dim)`
    and the HaMeR features `hand_features` `(B, T, hand_dim)` over the real frames (`video_attention_mask` `(B, T)`)
    that have a hand target (`hand_mask` `(B, T)`; the reference uses the frame mask only, and so does
    `reference_compat`). Shapes are checked first, naming the input."""
    batch, frames = video_attention_mask.shape
    hand_dim = predictions.shape[-1]
    if hand_features.dim() != 3 or tuple(hand_features.shape) != (batch, frames, hand_dim):
        raise ValueError(
            f"hand_features must have shape (batch, frames, hand_dim) = ({batch}, {frames}, {hand_dim}), one row per "
            f"frame of pixel_values_videos; got {tuple(hand_features.shape)}."
        )
    if hand_mask is not None and tuple(hand_mask.shape) != (batch, frames):
        raise ValueError(f"hand_mask must have shape (batch, frames) = ({batch}, {frames}); got {tuple(hand_mask.shape)}.")
    frame_mask = video_attention_mask
    if hand_mask is not None and not reference_compat:
        frame_mask = frame_mask * hand_mask.to(frame_mask.dtype)
    return masked_l2_loss(predictions, hand_features.to(predictions.dtype), frame_mask)


def signing_gate_loss(logits: torch.Tensor, signing: torch.Tensor) -> torch.Tensor:
    r"""The signing gate's binary cross-entropy, mean over the batch:
    `-(1/B) sum_b [y_b log sigmoid(z_b) + (1 - y_b) log(1 - sigmoid(z_b))]`, in at least float32.

    Args:
        logits (`torch.Tensor` of shape `(B,)`): the gate's logits `z`.
        signing (`torch.Tensor` of shape `(B,)`): the labels `y`, 1 for a clip that holds signing, 0 for an idle one.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    if tuple(signing.shape) != tuple(logits.shape):
        raise ValueError(f"signing must have shape (batch,) = {tuple(logits.shape)}, one label per video; got "
                         f"{tuple(signing.shape)}.")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return F.binary_cross_entropy_with_logits(logits.to(dtype), signing.to(dtype))


def without_idle_clips(labels: torch.Tensor, signing: torch.Tensor) -> torch.Tensor:
    r"""`labels` `(B, L)` with every row of an idle clip (`signing` `(B,)` is 0) set to -100, the ignored index: an idle
    clip has no sentence, so its translation term is left out rather than trained toward an empty one."""
    if tuple(signing.shape) != (labels.shape[0],):
        raise ValueError(f"signing must have shape (batch,) = ({labels.shape[0]},), one label per video; got "
                         f"{tuple(signing.shape)}.")
    return labels.masked_fill(~signing.bool()[:, None], -100)


def translation_losses(logits, encoder_output, labels, signing, hand_features, hand_mask, config) -> dict:
    """The translation model's `loss` and its parts (`translation_loss`, `hand_loss`, `signing_loss`), each None where
    not computed: label-smoothed cross-entropy over the clips that hold signing, plus the weighted hand term when
    `config.translation_hand_loss_weight > 0`, plus the weighted gate term when `signing` labels reach a gated model."""
    translation_loss = hand_loss = signing_loss = None
    if signing is not None and encoder_output.signing_logits is not None:
        signing_loss = signing_gate_loss(encoder_output.signing_logits, signing)
    if labels is not None:
        if signing is not None:
            labels = without_idle_clips(labels, signing)
        flat = logits.flatten(0, 1)  # at least float32 for the loss; float64 stays float64
        if signing is not None and not bool((labels != -100).any()):
            translation_loss = flat.sum() * 0.0  # a batch of idle clips only (keeps the graph whole)
        else:
            translation_loss = F.cross_entropy(
                flat.to(torch.promote_types(flat.dtype, torch.float32)), labels.flatten(), ignore_index=-100,
                label_smoothing=config.label_smoothing)
        if hand_features is not None and config.translation_hand_loss_weight > 0:
            hand_loss = hand_distillation_loss(encoder_output.hand_predictions, hand_features,
                                               encoder_output.video_attention_mask, hand_mask,
                                               config.reference_compat)
    loss = translation_loss
    if hand_loss is not None:
        loss = loss + config.translation_hand_loss_weight * hand_loss
    if signing_loss is not None:
        loss = config.signing_loss_weight * signing_loss + (0.0 if loss is None else loss)
    return {"loss": loss, "translation_loss": translation_loss, "hand_loss": hand_loss, "signing_loss": signing_loss}


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    r"""Mean over time of `(B, T, D)` states, counting only steps where `mask` `(B, T)` is set."""
    if mask is None:
        return hidden_states.mean(dim=1)
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def gather_with_grad(embeds: torch.Tensor) -> tuple[torch.Tensor, int]:
    r"""All-gathers `(B, D)` embeddings from every process, differentiably.

    The backward pass sends each process the gradient of every process's loss with respect to its embeddings, so
    with DDP's gradient averaging the update equals the one of the joined batch. Every process must hold the same
    B. Returns the `(world * B, D)` concatenation and the row offset of this process's embeddings in it. Without an
    initialised process group it returns `(embeds, 0)`.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeds, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(embeds.contiguous()), dim=0), dist.get_rank() * embeds.shape[0]

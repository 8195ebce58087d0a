"""What the pre-training trainer reports besides the loss: each loss part, logged between logging steps and
averaged over processes ([`LossPartsTracker`]), and the parts with video-text retrieval recall over the evaluation set
([`RetrievalMetrics`])."""

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["LOSS_PARTS", "LossPartsTracker", "RetrievalMetrics"]

# Loss components of `BeyondGlossPretrainingOutput`, logged under these names (`eval_` prefixed in evaluation).
LOSS_PARTS = ("alignment_loss", "description_loss", "hand_loss")


class LossPartsTracker:
    """Sums loss parts between logging steps; `averages` reduces them over processes and resets.

    Parts absent from a batch (no description embeddings, no hand features) are not counted for that batch.
    """

    def __init__(self, names: Sequence[str] = LOSS_PARTS):
        self.names = tuple(names)
        self.totals = torch.zeros(2 * len(self.names), dtype=torch.float64)

    def add(self, outputs) -> None:
        # Summed on the loss's device: no host synchronisation per step, only at logging steps.
        for index, name in enumerate(self.names):
            value = getattr(outputs, name, None)
            if value is not None:
                self.totals = self.totals.to(value.device)
                self.totals[2 * index] += value.detach().double()
                self.totals[2 * index + 1] += 1

    def averages(self, accelerator=None) -> dict[str, float]:
        totals = self.totals
        if accelerator is not None and accelerator.num_processes > 1:
            # Every process calls this at the same logging step, so the collective always pairs up.
            totals = accelerator.reduce(totals.to(accelerator.device), reduction="sum")
        totals = totals.cpu()
        self.totals = torch.zeros_like(self.totals)
        result = {}
        for index, name in enumerate(self.names):
            total, count = float(totals[2 * index]), float(totals[2 * index + 1])
            if count > 0:
                result[name] = total / count
        return result


class RetrievalMetrics:
    """`compute_metrics` of [`BeyondGlossPretrainingTrainer`]: loss parts and retrieval recall over the eval set.

    Receives `EvalPrediction(predictions=(video_embeds (N, D), text_embeds (N, D)), label_ids=parts (N, 3))`,
    gathered by the Trainer over every batch and process, where `parts` holds each sample's batch value of
    `LOSS_PARTS` (NaN where a part was not computed). A video's rank is 1 + the number of sentences scored strictly
    higher than its own, so identical sentences elsewhere in the set (same embedding) do not count against it.

    Args:
        ks (`Sequence[int]`, defaults to `(1, 5)`): recall@k values to report.

    Returns (from `__call__`):
        `dict[str, float]`: the parts' means, `video_to_text_recall@k` and `text_to_video_recall@k` (percent) and
        `video_to_text_median_rank`.
    """

    def __init__(self, ks: Sequence[int] = (1, 5)):
        self.ks = tuple(ks)

    @staticmethod
    def ranks(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """0-based rank of each query's own key `keys[i]` among all keys, by dot product."""
        scores = queries.astype(np.float64) @ keys.astype(np.float64).T
        positive = np.diag(scores)[:, None]
        return (scores > positive).sum(axis=1)

    def __call__(self, eval_prediction) -> dict[str, float]:
        video, text = eval_prediction.predictions
        parts = np.asarray(eval_prediction.label_ids, dtype=np.float64).reshape(len(video), -1)
        metrics = {}
        for index, name in enumerate(LOSS_PARTS[: parts.shape[1]]):
            column = parts[:, index]
            if np.isfinite(column).any():
                metrics[name] = float(np.nanmean(column))
        video_ranks, text_ranks = self.ranks(video, text), self.ranks(text, video)
        for k in self.ks:
            metrics[f"video_to_text_recall@{k}"] = 100.0 * float((video_ranks < k).mean())
            metrics[f"text_to_video_recall@{k}"] = 100.0 * float((text_ranks < k).mean())
        metrics["video_to_text_median_rank"] = float(np.median(video_ranks) + 1)
        return metrics

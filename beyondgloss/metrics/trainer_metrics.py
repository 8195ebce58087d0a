"""`compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: decode, then score under a convention."""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .scoring import compute_translation_metrics

__all__ = ["TranslationComputeMetrics", "make_compute_metrics"]

logger = logging.getLogger(__name__)

# Trainer logs every returned value as a scalar; the strings (signatures, convention) go to `last_result`.
NUMERIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf")


class TranslationComputeMetrics:
    """Scores generated token ids against references; pass an instance as `Trainer(compute_metrics=...)`.

    Args:
        tokenizer: a tokenizer with `batch_decode` and a `pad_token_id` (the one that made the labels).
        language, convention, dataset, char_level: as in `compute_translation_metrics`.
        references (`Sequence[str]` or `Sequence[Sequence[str]]`, *optional*): the evaluation dataset's raw
            reference texts (or a list of reference texts per sample), in dataset order. When given they are scored instead of the decoded `label_ids`, because a tokenizer round
            trip can drop or alter pieces of the reference (docs/metrics.md, "Evaluation hygiene").

    After each call, `last_result` holds the full result of `compute_translation_metrics` (signatures,
    convention, warnings) and `last_predictions` the decoded hypotheses.

    Example:

    ```python
    >>> from beyondgloss.metrics import make_compute_metrics
    >>> compute_metrics = make_compute_metrics(tokenizer, dataset="phoenix14t", references=eval_dataset["text"])
    >>> trainer = Seq2SeqTrainer(..., args=Seq2SeqTrainingArguments(..., predict_with_generate=True,
    ...     metric_for_best_model="bleu4"), compute_metrics=compute_metrics)
    ```
    """

    def __init__(
        self,
        tokenizer,
        *,
        language: str | None = None,
        convention: str | None = None,
        dataset: str | None = None,
        char_level: bool | None = None,
        references: Sequence[str] | Sequence[Sequence[str]] | None = None,
    ):
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "The tokenizer has no pad token, so -100 padding in predictions and labels cannot be decoded; "
                "give the tokenizer a pad token (e.g. tokenizer.pad_token = tokenizer.eos_token)."
            )
        self.tokenizer = tokenizer
        self.scoring_kwargs = {
            "language": language,
            "convention": convention,
            "dataset": dataset,
            "char_level": char_level,
        }
        self.references = None if references is None else list(references)
        self.last_result: dict[str, Any] | None = None
        self.last_predictions: list[str] | None = None

    def decode(self, token_ids, name: str) -> list[str]:
        """Token ids (N, L), padded with -100 or the pad id, to N stripped texts without special tokens."""
        if isinstance(token_ids, tuple):
            # Models that return extra outputs hand the Trainer a tuple whose first entry holds the tokens.
            token_ids = token_ids[0]
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 2:
            raise ValueError(
                f"EvalPrediction.{name} has shape {token_ids.shape}, expected token ids of shape (num_samples, "
                "length). Logits (3 dimensions) mean the evaluation ran without generation: set "
                "`predict_with_generate=True` in Seq2SeqTrainingArguments (reported scores come from beam search)."
            )
        token_ids = np.where(token_ids < 0, self.tokenizer.pad_token_id, token_ids).astype(np.int64)
        texts = self.tokenizer.batch_decode(token_ids.tolist(), skip_special_tokens=True)
        return [text.strip() for text in texts]

    def __call__(self, eval_prediction) -> dict[str, float | int]:
        """Scores one evaluation run.

        Args:
            eval_prediction (`transformers.EvalPrediction`): `predictions` are generated ids (N, L) and
                `label_ids` the labels (N, L') with -100 padding.

        Returns:
            `dict[str, float | int]`: ``bleu1``..``bleu4``, ``rouge_l``, ``chrf`` (floats) and ``num_samples``.
        """
        hypotheses = self.decode(eval_prediction.predictions, "predictions")
        if self.references is not None:
            if len(self.references) != len(hypotheses):
                raise ValueError(
                    f"make_compute_metrics got {len(self.references)} reference texts but the evaluation produced "
                    f"{len(hypotheses)} predictions; pass the reference column of the same evaluation dataset, in "
                    "its order."
                )
            references = self.references
        elif eval_prediction.label_ids is None:
            raise ValueError(
                "EvalPrediction has no label_ids and no `references` were given to make_compute_metrics; pass "
                "`references=` (the raw reference texts) or keep `labels` in the evaluation dataset."
            )
        else:
            references = self.decode(eval_prediction.label_ids, "label_ids")
        result = compute_translation_metrics(hypotheses, references, **self.scoring_kwargs)
        logger.info(
            "Scored %d samples: convention %s (%s), unit %s, BLEU %s, chrF %s, %s",
            result["num_samples"],
            result["convention"],
            result["convention_description"],
            result["unit"],
            result["signature"],
            result["chrf_signature"],
            result["rouge_l_signature"],
        )
        self.last_result = result
        self.last_predictions = hypotheses
        metrics = {key: result[key] for key in NUMERIC_KEYS}
        metrics["num_samples"] = result["num_samples"]
        return metrics


def make_compute_metrics(tokenizer, **kwargs) -> TranslationComputeMetrics:
    """A `compute_metrics` callable for `Seq2SeqTrainer`; keyword arguments as in `TranslationComputeMetrics`."""
    return TranslationComputeMetrics(tokenizer, **kwargs)

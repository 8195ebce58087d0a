# Copyright 2026 The beyondgloss authors. MIT license.
"""The "sign-translation" pipeline's outputs (see `pipeline_sign_translation.py`): where each generated sequence ends,
its score, and the records the pipeline returns (text, token ids, score; a caption's record in streaming mode).

Travels with checkpoints beside the pipeline: imports only torch, transformers and siblings (relatively).
"""

from collections.abc import Iterable, Iterator

import torch

from .sign_translation_inputs import SignTranslationInputError
from .video_io import VideoReadError

__all__ = ["caption_record", "caption_records", "kept_positions", "sequence_scores", "translation_records"]


def kept_positions(sequences: torch.Tensor, eos_token_id) -> torch.Tensor:
    """`(N, L)` bool: each sequence's positions through its first end-of-sentence token (`eos_token_id`: an id, a
    list of ids or `None`) after the decoder start token (all of them when it has none); what follows is the padding
    of a batch."""
    eos = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    is_eos = torch.isin(sequences, torch.tensor(eos, dtype=sequences.dtype, device=sequences.device)).long()
    is_eos[:, 0] = 0  # the decoder start token (mBART's configuration may start with </s>)
    return (is_eos.cumsum(dim=1) - is_eos) == 0


def sequence_scores(output, kept: torch.Tensor, length_penalty: float | None) -> torch.Tensor:
    """Per sequence of a `generate()` `output`, the sum of its generated tokens' log-probabilities (over the `kept`
    positions) divided by `length ** length_penalty`."""
    if getattr(output, "sequences_scores", None) is not None:  # beam search
        return output.sequences_scores.float()
    steps = output.scores  # greedy search or sampling: the processed scores of each step
    generated = output.sequences[:, -len(steps):]
    log_probs = torch.stack(
        [
            step.float().gather(-1, generated[:, t, None]).squeeze(-1) - step.float().logsumexp(dim=-1)
            for t, step in enumerate(steps)
        ],
        dim=1,
    )
    counted = kept[:, -len(steps):]
    total = torch.where(counted, log_probs, torch.zeros_like(log_probs)).sum(dim=1)
    return total / counted.sum(dim=1).float() ** (1.0 if length_penalty is None else length_penalty)


def translation_records(result: dict, tokenizer, return_text: bool, return_tensors: bool,
                        skip_special_tokens: bool = True, clean_up_tokenization_spaces=None) -> list[dict]:
    """One input's records, one per returned sequence, best first: `translation_text` (`return_text`),
    `translation_token_ids` (`return_tensors`; without the batch's padding) and `score` (when `result` has scores).

    Args:
        result (`dict`): the input's `sequences` `(num_return_sequences, tokens)`, `lengths` and `scores` (or `None`).
        tokenizer: decodes the ids (`batch_decode`, with `skip_special_tokens` and `clean_up_tokenization_spaces`).
    """
    ids = [row[:length] for row, length in zip(result["sequences"].tolist(), result["lengths"].tolist())]
    records = [{} for _ in ids]
    if return_text:
        texts = tokenizer.batch_decode(
            ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=clean_up_tokenization_spaces
        )
        for record, text in zip(records, texts):
            record["translation_text"] = text
    if return_tensors:
        for record, row in zip(records, ids):
            record["translation_token_ids"] = row
    if result["scores"] is not None:
        for record, score in zip(records, result["scores"].tolist()):
            record["score"] = score
    return records


def caption_record(caption) -> dict:
    """A streamed caption (`streaming.Caption`) as the pipeline gives it: `start` and `end` (seconds of the stream),
    `text`, `confidence` (mean log-probability of its tokens, at most 0), `signing_probability` (the signing gate's,
    or `None` for a model without one) and `latency` (seconds per stage, and `total`)."""
    return {"start": caption.start, "end": caption.end, "text": caption.text, "confidence": caption.confidence,
            "signing_probability": caption.signing_probability, "latency": dict(caption.latency)}


def caption_records(captions: Iterable, label: str) -> Iterator[dict]:
    """The [`caption_record`] of each caption of a stream (`label` names it); a frame that does not decode midway
    raises [`SignTranslationInputError`] after the captions before it were given."""
    try:
        for caption in captions:
            yield caption_record(caption)
    except VideoReadError as error:
        raise SignTranslationInputError(f"{label} cannot be streamed further: {error}") from error

"""Collators that turn dataset rows into model inputs, for both training stages.

A row is a dict as the builders yield it: the video (`video`: a torchcodec `VideoDecoder`, a path, a
`{"path", "bytes"}` dict; or `frames`: a list of frame image paths), `text`, and optionally `hand_features`
(T, hand_dim) with `hand_mask` (T,) and `description_embedding` (description_dim,).

The batch holds only model inputs (the names of `BeyondGlossModel`'s forward):

- `pixel_values_videos` (B, T, 3, S, S) float and `video_attention_mask` (B, T) long, from the processor's
  video processor (real frames first, zero padding);
- pre-training: `input_ids` / `attention_mask` (B, L) of the target sentence (the text side of the contrastive
  loss); translation: `labels` (B, L) with -100 at padding;
- `hand_features` (B, T, hand_dim) float and `hand_mask` (B, T) long, when rows carry hand features. The
  hand rows are taken at the very frames the video processor kept (its `frame_indices`), so subsampled
  videos keep frames and hand targets aligned; `hand_mask` is the row's hand-presence mask (ones if it
  has none) at those frames, zero on padding;
- `description_embeds` (B, description_dim) float, when rows carry description embeddings.
- translation: `signing` (B,) long, 1 for a clip that holds signing and 0 for an idle one, when rows carry a
  `signing` column (SynthSign with idle clips); the model leaves idle clips out of the translation loss and trains
  its signing gate on the labels. Contrastive pre-training needs a sentence per clip and refuses idle rows.

Sample ids and raw sentences are not model inputs. With `return_metadata=True` the batch also holds
`ids` and `texts` (lists of str), for evaluation loops that score against the raw text; whoever passes
such a batch to a model pops them first (the beyondgloss trainers do).
"""

import numpy as np
import torch

from ..video_io import row_video

__all__ = ["SignCollator", "PretrainingCollator", "TranslationCollator"]


def _as_tensor(value, dtype=torch.float32) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype)


class SignCollator:
    """Collates sign dataset rows for one training stage.

    Args:
        processor (`BeyondGlossProcessor`): its `video_processor` makes the pixel values, the processor itself
            tokenizes target sentences (in the dataset's target language).
        stage (`str`): "pretraining" (`input_ids` / `attention_mask` of the target sentence) or "translation"
            (`labels` with -100 at padding).
        training (`bool`, defaults to `True`): passed to the video processor (random crop and augmentation);
            use `False` for evaluation.
        max_target_length (`int`, defaults to 128): longest target in tokens (the reference's `max_words`).
        return_metadata (`bool`, defaults to `False`): add `ids` and `texts` to the batch (not model inputs).

    Example:

    ```python
    >>> collator = TranslationCollator(processor, training=True)
    >>> loader = torch.utils.data.DataLoader(dataset["train"], batch_size=4, collate_fn=collator, num_workers=2)
    >>> batch = next(iter(loader))
    >>> batch["pixel_values_videos"].shape, batch["labels"].shape
    ```
    """

    STAGES = ("pretraining", "translation")

    def __init__(self, processor, stage: str = "translation", training: bool = True, max_target_length: int = 128,
                 return_metadata: bool = False):
        if stage not in self.STAGES:
            raise ValueError(f"stage={stage!r}: use one of {self.STAGES}")
        self.processor = processor
        self.stage = stage
        self.training = training
        self.max_target_length = max_target_length
        self.return_metadata = return_metadata

    def __call__(self, rows: list) -> dict:
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        ids = [str(row.get("id", position)) for position, row in enumerate(rows)]
        videos = [row_video(row, f"batch row {position} (id {row.get('id', '?')!r})")
                  for position, row in enumerate(rows)]
        video = self.processor.video_processor(videos, training=self.training, return_frame_indices=True,
                                               return_tensors="pt")
        batch = {"pixel_values_videos": video["pixel_values_videos"],
                 "video_attention_mask": video["video_attention_mask"].long()}
        texts = [row["text"] for row in rows]
        batch.update(self._tokenize(texts))
        signing = self._signing(rows, ids)
        if signing is not None:
            batch["signing"] = signing
        if any(row.get("hand_features") is not None for row in rows):
            batch.update(self._hand_inputs(rows, ids, video["frame_indices"], batch["video_attention_mask"]))
        # Stage 2 has no description term: the translation model takes no description embeddings.
        if self.stage == "pretraining" and any(row.get("description_embedding") is not None for row in rows):
            missing = [i for i, row in zip(ids, rows) if row.get("description_embedding") is None]
            if missing:
                raise ValueError(f"samples {missing} have no description embedding while others in the batch do; "
                                 "build the dataset with a description store that covers every sample")
            batch["description_embeds"] = torch.stack(
                [_as_tensor(row["description_embedding"]).reshape(-1) for row in rows])
        if self.return_metadata:
            batch["ids"] = ids
            batch["texts"] = texts
        return batch

    def _signing(self, rows: list, ids: list) -> torch.Tensor | None:
        """The rows' `signing` labels (B,) long (a missing value counts as signing), or None without the column."""
        if all(row.get("signing") is None for row in rows):
            return None
        labels = torch.tensor([0 if row.get("signing") is False else 1 for row in rows], dtype=torch.long)
        if self.stage == "pretraining":
            if not labels.all():
                idle = [i for i, label in zip(ids, labels.tolist()) if not label]
                raise ValueError(f"samples {idle[:10]} are idle clips (signing false, no sentence); contrastive "
                                 "pre-training aligns each clip with its sentence: leave them out of its dataset, e.g. "
                                 "dataset.filter(lambda row: row['signing'])")
            return None
        return labels

    def _tokenize(self, texts: list) -> dict:
        options = dict(padding=True, truncation=True, max_length=self.max_target_length, return_tensors="pt")
        if self.stage == "translation":
            return {"labels": self.processor(text_target=texts, **options)["labels"]}
        encoded = self.processor(text=texts, **options)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @staticmethod
    def _hand_inputs(rows: list, ids: list, frame_indices: list, video_mask: torch.Tensor) -> dict:
        """Hand rows at the kept frames: features (B, T, hand_dim) zero-padded, mask (B, T) long."""
        batch_size, frames = video_mask.shape
        features, mask = None, torch.zeros(batch_size, frames, dtype=torch.long)
        for position, (row, sample_id, kept) in enumerate(zip(rows, ids, frame_indices)):
            if row.get("hand_features") is None:
                raise ValueError(f"sample {sample_id!r} has no hand features while others in the batch do; build the "
                                 "dataset with a hand-feature store that covers every sample")
            hands = _as_tensor(row["hand_features"])
            kept = torch.as_tensor(list(kept), dtype=torch.long)
            if hands.ndim != 2 or (len(kept) and int(kept.max()) >= hands.shape[0]):
                raise ValueError(
                    f"sample {sample_id!r}: hand features of shape {tuple(hands.shape)} do not cover the video's frames "
                    f"(frame {int(kept.max()) if len(kept) else 0} was kept); hand features need one row per frame"
                )
            if features is None:
                features = torch.zeros(batch_size, frames, hands.shape[1])
            features[position, : len(kept)] = hands[kept]
            presence = row.get("hand_mask")
            mask[position, : len(kept)] = (_as_tensor(presence)[kept] > 0).long() if presence is not None else 1
        return {"hand_features": features, "hand_mask": mask * video_mask}


class PretrainingCollator(SignCollator):
    """`SignCollator` for stage 1, contrastive pre-training: the target sentence as `input_ids`/`attention_mask`."""

    def __init__(self, processor, training: bool = True, **kwargs):
        super().__init__(processor, stage="pretraining", training=training, **kwargs)


class TranslationCollator(SignCollator):
    """`SignCollator` for stage 2, translation: the target sentence as `labels` (-100 at padding)."""

    def __init__(self, processor, training: bool = True, **kwargs):
        super().__init__(processor, stage="translation", training=training, **kwargs)

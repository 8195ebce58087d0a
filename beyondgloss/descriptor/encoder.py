"""Encoding refined descriptions into the description embeddings that pre-training aligns with.

The reference encodes each refined sentence offline with mBART-large-50 into a 1024-d vector
(docs/method.md, "Sign Video Descriptor"); its script is not public and the pooling is not stated. This
encoder takes the mean of the encoder's last hidden state over the real (non-padding) tokens, the pooling
the reference uses for its other text embeddings (docs/method.md, "Contrastive pre-training").
"""

from collections.abc import Iterable, Sequence

import torch

from ._models import move_to_model
from .loading import PretrainedWrapper

__all__ = ["DescriptionEncoder"]


class DescriptionEncoder(PretrainedWrapper):
    """Mean-pooled sentence embeddings from any transformers text encoder.

    For an encoder-decoder checkpoint (mBART-large-50, the reference's choice, d_model 1024) only the
    encoder runs (`get_encoder()`); an encoder-only checkpoint (BERT, XLM-R, ...) runs whole.

    Args:
        model (`PreTrainedModel`): an encoder or an encoder-decoder model.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer.
        max_length (`int`): longer descriptions are truncated to this many tokens.
        batch_size (`int`): sentences per forward pass.
        src_lang (`str`, *optional*): language code for multilingual tokenizers that take one (mBART-50:
            `"en_XX"`, the language the describer writes in).

    `from_pretrained(model_id, device_map=None, dtype="auto", trust_remote_code=False, **kwargs)` loads an
    encoder (`AutoModel`) and its tokenizer.

    ```python
    >>> encoder = DescriptionEncoder.from_pretrained("facebook/mbart-large-50")
    >>> encoder.encode(["The flat right hand rises from the chest."]).shape
    torch.Size([1, 1024])
    ```
    """

    auto_model = "AutoModel"
    auto_preprocessor = "AutoTokenizer"

    def __init__(self, model, tokenizer, max_length: int = 256, batch_size: int = 16, src_lang: str | None = None):
        if model.config.is_encoder_decoder:
            model = model.get_encoder()
        self.model = model.eval()
        self.tokenizer = tokenizer
        if src_lang is not None:
            if not hasattr(tokenizer, "src_lang"):
                raise ValueError(f"src_lang={src_lang!r} was given but {type(tokenizer).__name__} takes no language code")
            tokenizer.src_lang = src_lang
        self.max_length = max_length
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """The embedding width (the encoder's hidden size)."""
        return self.model.config.get_text_config().hidden_size

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeds sentences.

        Args:
            texts (`Sequence[str]`): the sentences.

        Returns:
            `torch.FloatTensor` of shape `(len(texts), hidden_size)`, on the CPU, float32.
        """
        embeddings = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            batch = move_to_model(batch, self.model)
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            embeddings.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
        return torch.cat(embeddings) if embeddings else torch.zeros(0, self.dim)

    def encode_to_store(self, items: Iterable[tuple[str, str]], store, progress: bool = True) -> int:
        """Embeds `(sample_id, sentence)` pairs and writes each `(hidden_size,)` vector to a `FeatureStore`.

        Args:
            items (`Iterable[tuple[str, str]]`): sample ids and their sentences.
            store (`beyondgloss.data.feature_store.FeatureStore`): where the embeddings go, keyed by sample id.
            progress (`bool`): show a progress bar.

        Returns:
            `int`: how many embeddings were written.
        """
        from tqdm.auto import tqdm

        items = list(items)
        written = 0
        with tqdm(total=len(items), desc="encoding descriptions", unit="text", disable=not progress) as bar:
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                for (sample_id, _), embedding in zip(chunk, self.encode([text for _, text in chunk])):
                    store.write(sample_id, embedding)
                    written += 1
                bar.update(len(chunk))
        return written

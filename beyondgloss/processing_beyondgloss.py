# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss processor: the video processor and the mBART tokenizer behind one call.

Imports only transformers and siblings, so `save_pretrained` can copy it into a checkpoint that loads with
`trust_remote_code=True` where beyondgloss is not installed.
"""

import inspect

from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.video_processing_utils import VideoProcessorMixin

from .video_processing_beyondgloss import BeyondGlossVideoProcessor

__all__ = ["BeyondGlossProcessor", "language_code_id"]

def language_code_id(tokenizer, code: str) -> int:
    """The token id of the mBART language code `code` (e.g. "de_DE") in `tokenizer`: the decoder start token of
    translation into that language. The one check every caller (processor, pipeline, command line, converter) uses: a
    ValueError names the code and the tokenizer's own codes when it does not hold it."""
    token_id = tokenizer.convert_tokens_to_ids(code)
    if token_id is None or token_id == tokenizer.unk_token_id:
        codes = [token for token in getattr(tokenizer, "additional_special_tokens", None) or [] if "_" in token]
        raise ValueError(f"language code {code!r} is not in the tokenizer's vocabulary (its language codes: "
                         f"{codes[:30]}); use one of them: a model translates only into languages it was trained on")
    return token_id


# The language code the reference forces for every dataset (also Chinese CSL-Daily): trim.py, Finetune_Model.py.
REFERENCE_LANGUAGE = "de_DE"


class BeyondGlossProcessor(ProcessorMixin):
    r"""
    Prepares sign videos and target sentences for the BeyondGloss models.

    Videos go through [`BeyondGlossVideoProcessor`] (`pixel_values_videos`, `video_attention_mask`). Sentences are
    tokenized by the mBART tokenizer in target mode, `[tokens..., </s>, <language code>]`, with the dataset's
    language code (`target_language`), at most `max_target_length` tokens (128, as the reference), truncating:
    `text_target` gives `labels` for translation (padding is -100, ignored by the loss); `text` gives
    `input_ids` / `attention_mask` for the text side of contrastive pre-training, encoded the same way as the reference
    encodes it.

    Args:
        video_processor ([`BeyondGlossVideoProcessor`]): frames to pixel values.
        tokenizer ([`MBartTokenizer`]): an mBART tokenizer (the model's, trimmed or not, or one from
            [`~beyondgloss.data.train_sign_tokenizer`]).
        target_language (`str`, *optional*): the dataset's mBART language code (`"de_DE"` for Phoenix14T, `"zh_CN"`
            for CSL-Daily); defaults to the tokenizer's `tgt_lang`.
        reference_compat (`bool`, defaults to `False`): use `de_DE` for every dataset, as the reference code does
            (also for Chinese); needed for converted reference checkpoints.
        max_target_length (`int`, defaults to 128): the longest tokenized sentence (the reference's `max_words`).

    Example:

    ```python
    >>> from transformers import AutoProcessor
    >>> processor = AutoProcessor.from_pretrained("path/to/checkpoint", trust_remote_code=True)
    >>> batch = processor(videos=["a.mp4", "frames_dir/"], text_target=["Morgen regnet es.", "Es schneit."])
    >>> sorted(batch.keys())
    ['labels', 'pixel_values_videos', 'video_attention_mask']
    ```
    """

    def __init__(
        self,
        video_processor=None,
        tokenizer=None,
        target_language: str | None = None,
        reference_compat: bool = False,
        max_target_length: int = 128,
        **kwargs,
    ):
        super().__init__(video_processor, tokenizer, **kwargs)
        self.target_language = target_language if target_language is not None else self._tokenizer_language()
        self.reference_compat = bool(reference_compat)
        self.max_target_length = int(max_target_length)
        language_code_id(self.tokenizer, self.language_code)  # target_language must be one of its codes

    def _tokenizer_language(self) -> str:
        language = getattr(self.tokenizer, "tgt_lang", None) or getattr(self.tokenizer, "src_lang", None)
        if language is None:
            raise ValueError("pass target_language: the tokenizer has no tgt_lang or src_lang to take it from")
        return language

    def check_argument_for_proper_class(self, argument_name, argument):
        # transformers resolves the base class by name from its top level, where video processors only exist with
        # torchvision installed; check against the mixin directly.
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                raise TypeError(
                    f"video_processor must be a video processor such as BeyondGlossVideoProcessor, got "
                    f"{type(argument).__name__}"
                )
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)

    @property
    def language_code(self) -> str:
        """The language code sentences are tokenized with: `de_DE` under `reference_compat`, else `target_language`."""
        return REFERENCE_LANGUAGE if self.reference_compat else self.target_language

    @property
    def language_code_id(self) -> int:
        """Token id of `language_code`: the decoder start token (`config.decoder_start_token_id`)."""
        return language_code_id(self.tokenizer, self.language_code)

    def __call__(
        self,
        videos=None,
        text: str | list[str] | None = None,
        text_target: str | list[str] | None = None,
        training: bool = False,
        return_tensors: str | None = "pt",
        return_frame_indices: bool = False,
        generator=None,
        videos_kwargs: dict | None = None,
        text_kwargs: dict | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Processes videos and/or sentences.

        Args:
            videos: one video or a batch, in any form [`BeyondGlossVideoProcessor`] accepts.
            text (`str` or `list[str]`, *optional*): sentences for the pre-training text encoder ->
                `input_ids`, `attention_mask` `(B, L)`.
            text_target (`str` or `list[str]`, *optional*): target sentences -> `labels` `(B, L)`, -100 at padding.
            training (`bool`, defaults to `False`): random crop and augmentation of the videos.
            return_tensors (`str`, defaults to `"pt"`): `"pt"`, `"np"`, or `None` for lists (`labels` and
                `input_ids` lists of ids, `pixel_values_videos` one tensor per video, not padded; see
                [`~BeyondGlossVideoProcessor.preprocess`]).
            return_frame_indices (`bool`, defaults to `False`): also return the kept source frames per video.
            generator (`torch.Generator`, *optional*): random source of the video augmentation.
            videos_kwargs, text_kwargs (`dict`, *optional*): settings for the video processor / tokenizer for this
                call, grouped as in transformers' processors.
            kwargs: video processor settings for this call (`size`, `crop_size`, `num_frames`, `max_frames`, `fps`,
                ...; see [`BeyondGlossVideoProcessor`]), its options `return_metadata` (adds `video_metadata`) and
                `device`, and tokenizer arguments (`max_length`, `padding`, ...), told apart by name.

        Returns:
            [`BatchFeature`] with the keys of the inputs given.

        Raises:
            `TypeError`: a keyword that is neither a video setting nor an argument of the tokenizer (or a tokenizer
                argument with no text to tokenize).
        """
        if videos is None and text is None and text_target is None:
            raise ValueError("BeyondGlossProcessor needs videos, text or text_target")
        video_settings, text_settings = self._split_kwargs(kwargs)
        video_settings.update(videos_kwargs or {})
        text_settings.update(text_kwargs or {})
        if text_settings and text is None and text_target is None:
            raise TypeError(
                f"BeyondGlossProcessor got tokenizer arguments {sorted(text_settings)} but no text to tokenize"
            )
        data = {}
        if videos is not None:
            data.update(
                self.video_processor(
                    videos,
                    training=training,
                    return_tensors=return_tensors,
                    return_frame_indices=return_frame_indices,
                    generator=generator,
                    **video_settings,
                )
            )
        if text is not None:
            encoded = self._tokenize_targets(text, **text_settings)
            data.update(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
        if text_target is not None:
            encoded = self._tokenize_targets(text_target, **text_settings)
            data["labels"] = [
                [token if keep else -100 for token, keep in zip(ids, mask)]
                for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])
            ]
        unconverted = ["frame_indices", "video_metadata"]  # lists of lists and of VideoMetadata
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=unconverted)

    def _split_kwargs(self, kwargs: dict) -> tuple[dict, dict]:
        """Video settings and tokenizer arguments among `kwargs`; anything else is a `TypeError` naming it."""
        video_names = set(getattr(self.video_processor, "valid_kwargs", dict).__annotations__)
        text_names = {
            name
            for name, parameter in inspect.signature(self.tokenizer.__call__).parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        } - {"text", "text_pair", "text_target", "text_pair_target", "return_tensors"}
        video = {key: value for key, value in kwargs.items() if key in video_names}
        text = {key: value for key, value in kwargs.items() if key in text_names and key not in video}
        unknown = sorted(set(kwargs) - set(video) - set(text))
        if unknown:
            raise TypeError(
                f"BeyondGlossProcessor got unknown keyword arguments {unknown}: pass video processor settings "
                f"{sorted(video_names)} or tokenizer arguments {sorted(text_names)}"
            )
        return video, text

    def _tokenize_targets(self, sentences, **kwargs):
        if isinstance(sentences, str):
            sentences = [sentences]
        kwargs.setdefault("max_length", self.max_target_length)
        kwargs.setdefault("truncation", True)
        kwargs.setdefault("padding", True)
        # Target mode appends </s> and the language code, as the reference's as_target_tokenizer() call.
        self.tokenizer.tgt_lang = self.language_code
        return self.tokenizer(text_target=list(sentences), **kwargs)

    def batch_decode(self, sequences, skip_special_tokens: bool = True, **kwargs) -> list[str]:
        """Decodes generated ids or `labels` (their -100 padding is skipped) to sentences."""
        return self.tokenizer.batch_decode(self._unmask(sequences), skip_special_tokens=skip_special_tokens, **kwargs)

    def decode(self, token_ids, skip_special_tokens: bool = True, **kwargs) -> str:
        """Decodes one sequence of ids (or labels with -100) to a sentence."""
        return self.tokenizer.decode(self._unmask(token_ids), skip_special_tokens=skip_special_tokens, **kwargs)

    def _unmask(self, ids):
        if hasattr(ids, "masked_fill"):
            return ids.masked_fill(ids < 0, self.tokenizer.pad_token_id)
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if ids and isinstance(ids[0], (list, tuple)):
            return [self._unmask(row) for row in ids]
        return [self.tokenizer.pad_token_id if i < 0 else i for i in ids]

    @property
    def model_input_names(self) -> list[str]:
        return list(BeyondGlossVideoProcessor.model_input_names) + ["input_ids", "attention_mask"]


# Saving copies this file and its siblings next to the config (see video_processing_beyondgloss.py).
BeyondGlossProcessor.register_for_auto_class("AutoProcessor")

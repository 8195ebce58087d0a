# Copyright 2026 The beyondgloss authors. MIT license.
"""The "sign-translation" pipeline: sign language videos in, spoken-language sentences out.

Imports only torch, transformers and siblings (relatively), so `save_pretrained` copies it into a checkpoint folder
whose config names it in `custom_pipelines`; `pipeline("sign-translation", model=folder, trust_remote_code=True)`
then works where beyondgloss is not installed.
"""

import inspect
import sys
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, GenerationMixin
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import logging
from transformers.utils.logging import tqdm

from .video_io import ROW_VIDEO_KEYS, row_video

__all__ = [
    "TASK",
    "SignTranslationInputError",
    "SignTranslationPipeline",
    "collate_videos",
    "pad_videos",
    "register_pipeline",
]

logger = logging.get_logger(__name__)

TASK = "sign-translation"
ERROR_MODES = ("raise", "skip")
# Everything `generate()` takes: the GenerationConfig fields plus its own arguments.
_GENERATE_ARGUMENTS = (
    {key for key in vars(GenerationConfig()) if not key.startswith("_")}
    | set(inspect.signature(GenerationMixin.generate).parameters)
) - {"self", "inputs", "kwargs", "model_kwargs"}


class SignTranslationInputError(ValueError):
    """An input of the pipeline cannot be read; the message names the input (its position and what it is) and why."""


@dataclass
class _Numbered:
    """One input with its position in the call, so that an error can say which input it is."""

    index: int | None
    value: Any
    total: int | None = None


class _NumberedInputs(Dataset):
    """A sized, indexable collection of inputs (list, `datasets.Dataset`, `KeyDataset`) seen as `_Numbered` items."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return _Numbered(index, self.items[index], len(self.items))


def _is_hf_dataset(inputs) -> bool:
    # datasets is not imported here: a `datasets.Dataset` input means the caller already imported it.
    module = sys.modules.get("datasets")
    return module is not None and isinstance(inputs, (module.Dataset, module.IterableDataset))


def _describe(value) -> str:
    """A short name of an input for error messages."""
    if isinstance(value, dict) and any(key in value for key in ROW_VIDEO_KEYS):
        return f"the dataset row with id {value['id']!r}" if "id" in value else "a dataset row"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} frames" + (f" starting with {value[0]}" if value else "")
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return str(value.get("path") or "a video dict")
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes of video"
    return str(value) if isinstance(value, str) or hasattr(value, "__fspath__") else type(value).__name__


def _video_of(value):
    """The video of a `datasets` row (its `video` or `frames` entry); any other input is a video itself."""
    if isinstance(value, dict) and any(key in value for key in ROW_VIDEO_KEYS):
        return row_video(value, f"the dataset row with id {value['id']!r}" if "id" in value else "the dataset row")
    return value


def collate_videos(items: list[dict]) -> dict:
    """Joins preprocessed inputs into one batch: their videos and errors, one entry per input, in order.

    Args:
        items (`list[dict]`): outputs of [`SignTranslationPipeline.preprocess`].

    Returns:
        `dict` with `videos` (a float tensor `(T, 3, H, W)` per input, `None` where the input failed) and `errors`
        (`None` per readable input). Videos are padded in time, per frame size, by [`pad_videos`].
    """
    return {
        "videos": [video for item in items for video in item["videos"]],
        "errors": [error for item in items for error in item["errors"]],
    }


def pad_videos(videos: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads videos of one frame size in time.

    Args:
        videos (`list[torch.Tensor]`): float videos `(T_i, 3, H, W)`.

    Returns:
        `pixel_values_videos` `(N, T_max, 3, H, W)`, zero after each video's end, and `video_attention_mask`
        `(N, T_max)`.
    """
    length = max(video.shape[0] for video in videos)
    pixels = videos[0].new_zeros((len(videos), length, *videos[0].shape[1:]))
    mask = torch.zeros(len(videos), length, dtype=torch.long, device=videos[0].device)
    for row, video in enumerate(videos):
        pixels[row, : video.shape[0]] = video
        mask[row, : video.shape[0]] = 1
    return pixels, mask


def _sized_video_processor(video_processor, model):
    """The video processor, or one that brings frames to the model's image size when it neither resizes nor crops.

    Checkpoints whose processor has no frame size (`size=None, crop_size=None`, as the first SynthSign demos) would
    otherwise give the model frames at their recorded size (a 720x540 video costs ten times the time and memory of
    the size the model was trained at) and could not batch videos of different sizes.
    """
    sized = getattr(video_processor, "size", 0) is not None or getattr(video_processor, "crop_size", 0) is not None
    if sized or not hasattr(video_processor, "with_default_size"):
        return video_processor
    size = model.config.vision_config.image_size
    logger.info("The video processor has no frame size; frames are brought to the model's %d x %d", size, size)
    return video_processor.with_default_size(size)


class SignTranslationPipeline(Pipeline):
    r"""
    Translates sign language videos into spoken-language sentences with a [`BeyondGlossForSignTranslation`] model and
    its [`BeyondGlossProcessor`].

    Inputs, alone or in a list (a list of image paths is one video, its frames):

    - a video file path (mp4, webm, ...), a folder of frame images, a list of frame image paths;
    - an array or tensor of frames `(T, H, W, C)` / `(T, C, H, W)` (uint8, or float in [0, 1]);
    - a torchcodec `VideoDecoder`, a `{"path", "bytes"}` dict;
    - a `datasets` row: a dict with a `video` (a `datasets.Video` value) or `frames` (a folder or image paths) entry;
    - a `datasets.Dataset` or `KeyDataset` of such rows/videos (the result is then a lazy iterator).

    Frames are brought to the processor's size; a processor without one (`size=None, crop_size=None`) gets the
    model's `vision_config.image_size` (shorter side resized to it, centre square cropped). Videos that still differ
    in frame size are translated in one group per size.

    Call arguments:

    - `batch_size` (`int`, defaults to 1): videos translated together (padded in time);
    - generation settings as keyword arguments (`num_beams`, `max_new_tokens`, `min_new_tokens`, `length_penalty`,
      `num_return_sequences`, ...), on top of the model's `generation_config`;
    - `target_language` (`str`, *optional*): the language code to start decoding with (multilingual models only;
      the model's `decoder_start_token_id` by default);
    - `errors` (`str`, defaults to `"raise"`): what an unreadable input does. `"raise"` raises
      [`SignTranslationInputError`] naming the input and why; `"skip"` translates the other inputs and gives
      `{"translation_text": None, "error": "<why>"}` for that one;
    - `progress` (`bool`, *optional*): a progress bar (tqdm, on stderr). By default there is one for a list or
      dataset of several inputs and for a long video (at least 128 frames after sampling); `False` turns it off, as
      does transformers' `transformers.utils.logging.disable_progress_bar()`. Also accepted by the constructor.

    Returns:
        As transformers' `translation` pipeline: for one input, a list of `num_return_sequences` (by default 1)
        `{"translation_text": str}`; for a list of inputs, one such dict per input, or one list of them per input
        when `num_return_sequences > 1`; for a dataset or generator, an iterator of per-input lists.

    Example:

    ```python
    >>> import beyondgloss  # registers the pipeline; without it pass trust_remote_code=True
    >>> from transformers import pipeline
    >>> translator = pipeline("sign-translation", model="path/to/checkpoint")
    >>> translator("signing.mp4")
    [{'translation_text': 'am tag sonne im süden'}]
    >>> translator(["a.mp4", "frames_dir/"], num_beams=5, batch_size=2)
    [{'translation_text': '...'}, {'translation_text': '...'}]
    >>> translator("signing.mp4", num_beams=4, num_return_sequences=2)
    [{'translation_text': '...'}, {'translation_text': '...'}]
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = True

    # A single video with at least this many frames (after sampling) gets a progress bar: below, it translates in
    # about a second on a CPU and a bar would only flicker.
    LONG_VIDEO_FRAMES = 128

    def __init__(self, *args, progress: bool | None = None, **kwargs):
        self.progress = progress
        super().__init__(*args, **kwargs)
        if self.processor is not None:
            self.video_processor = getattr(self.processor, "video_processor", None) or self.video_processor
            self.tokenizer = self.tokenizer or getattr(self.processor, "tokenizer", None)
        if self.video_processor is None or self.tokenizer is None:
            raise ValueError(
                "SignTranslationPipeline needs a BeyondGlossProcessor (processor=...), or both video_processor=... "
                "and tokenizer=...; a checkpoint holds the processor when it was saved with processor.save_pretrained "
                "(Trainer.save_model does this when given processing_class=processor)"
            )
        if getattr(self.model, "main_input_name", None) != "pixel_values_videos" or not self.model.can_generate():
            raise ValueError(
                f"SignTranslationPipeline needs a sign translation model (BeyondGlossForSignTranslation, loaded with "
                f"AutoModelForSeq2SeqLM); got {type(self.model).__name__}"
            )
        self.video_processor = _sized_video_processor(self.video_processor, self.model)

    def __call__(self, inputs, progress: bool | None = None, **kwargs):
        """Translates one input or each of a list of inputs (see the class docstring for forms and arguments)."""
        from .video_io import is_single_video  # the video reader loads on first use, not at `import beyondgloss`

        progress = self.progress if progress is None else progress
        if isinstance(inputs, (list, tuple)) and not is_single_video(inputs):
            if not inputs:
                return []
            outputs = super().__call__(_NumberedInputs(list(inputs)), **kwargs)
            results = list(self._with_progress(outputs, len(inputs), progress))
            # As transformers' translation pipeline: one dict per input unless several sequences were asked for.
            return [result[0] for result in results] if all(len(r) == 1 for r in results) else results
        if isinstance(inputs, Dataset) or (_is_hf_dataset(inputs) and isinstance(inputs, Sized)):
            return self._with_progress(super().__call__(_NumberedInputs(inputs), **kwargs), len(inputs), progress)
        if _is_hf_dataset(inputs) or inspect.isgenerator(inputs):
            outputs = super().__call__((_Numbered(i, value) for i, value in enumerate(inputs)), **kwargs)
            return self._with_progress(outputs, None, progress)
        self._single_progress = progress
        try:
            return super().__call__(_Numbered(None, inputs), **kwargs)
        finally:
            self._single_progress = None

    def _with_progress(self, outputs, total: int | None, progress: bool | None):
        if progress is False or (progress is None and total is not None and total < 2):
            return outputs
        return tqdm(outputs, total=total, desc=TASK, unit="video")

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        # As Pipeline.run_single, with a two-step progress bar (read, translate) for a long video.
        model_inputs = self.preprocess(inputs, **preprocess_params)
        video = model_inputs["videos"][0]
        progress = getattr(self, "_single_progress", None)
        show = progress or (progress is None and video is not None and video.shape[0] >= self.LONG_VIDEO_FRAMES)
        bar = tqdm(total=2, desc=TASK, unit="step", disable=not show)
        bar.update(1)
        model_outputs = self.forward(model_inputs, **forward_params)
        bar.update(1)
        bar.close()
        return self.postprocess(model_outputs, **postprocess_params)

    def _sanitize_parameters(
        self, errors=None, target_language=None, skip_special_tokens=None, clean_up_tokenization_spaces=None,
        **generate_kwargs,
    ):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if errors is not None:
            if errors not in ERROR_MODES:
                raise ValueError(f"errors={errors!r} is not one of {ERROR_MODES}")
            preprocess_params["errors"] = errors
        unknown = sorted(set(generate_kwargs) - _GENERATE_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"SignTranslationPipeline got unknown arguments {unknown}: it takes batch_size, num_workers, errors, "
                "progress, target_language, skip_special_tokens, clean_up_tokenization_spaces and generation settings "
                "(GenerationConfig fields such as num_beams, max_new_tokens, min_new_tokens)"
            )
        forward_params.update(generate_kwargs)
        if target_language is not None:
            forward_params["decoder_start_token_id"] = self._language_code_id(target_language)
        if skip_special_tokens is not None:
            postprocess_params["skip_special_tokens"] = skip_special_tokens
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, forward_params, postprocess_params

    def _language_code_id(self, language: str) -> int:
        # Pipeline.__init__ sanitizes its arguments before it takes the tokenizer from the processor.
        tokenizer = self.tokenizer or getattr(self.processor, "tokenizer", None)
        token_id = tokenizer.convert_tokens_to_ids(language)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"target_language={language!r} is not a language code of the tokenizer; use one of its codes such "
                "as 'de_DE', 'zh_CN' or 'en_XX' (a model only translates into languages it was trained on)"
            )
        return token_id

    def preprocess(self, inputs, errors: str = "raise") -> dict:
        """Decodes and normalises one video.

        Args:
            inputs: one input (see the class docstring), as wrapped by `__call__`.
            errors (`str`, defaults to `"raise"`): `"raise"` or `"skip"` (keep the error for the output).

        Returns:
            `dict`: a batch of one for [`collate_videos`]: `videos` `[float (T, 3, H, W)]` and `errors` `[None]`; or,
            for an unreadable input under `errors="skip"`, `videos` `[None]` and `errors` `[<why>]`.
        """
        item = inputs if isinstance(inputs, _Numbered) else _Numbered(None, inputs)
        try:
            features = self.video_processor(_video_of(item.value), training=False, return_tensors="pt")
        except (ValueError, OSError) as error:
            where = "the input" if item.index is None else f"input [{item.index}]"
            if item.total is not None:
                where += f" of {item.total}"
            message = f"{where} ({_describe(item.value)}) cannot be translated: {error}"
            if errors == "raise":
                raise SignTranslationInputError(
                    f"{message}. Fix or remove it, or pass errors='skip' to translate the other inputs"
                ) from error
            return {"videos": [None], "errors": [message]}
        length = int(features["video_attention_mask"][0].sum())
        return {"videos": [features["pixel_values_videos"][0, :length]], "errors": [None]}

    def _forward(self, model_inputs: dict, **generate_kwargs) -> dict:
        """Generates token ids for the readable videos of a batch, one `generate()` call per frame size.

        Returns:
            `dict` with `sequences` (per input, a LongTensor `(num_return_sequences, tokens)` of generated ids, `None`
            where the input failed) and `errors` (per input).
        """
        videos, errors = model_inputs["videos"], model_inputs["errors"]
        sequences = [None] * len(videos)
        groups: dict[tuple, list[int]] = {}
        for position, video in enumerate(videos):
            if video is not None:
                groups.setdefault(tuple(video.shape[1:]), []).append(position)
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        for positions in groups.values():
            pixels, mask = pad_videos([videos[position] for position in positions])
            generated = self.model.generate(pixel_values_videos=pixels, video_attention_mask=mask, **generate_kwargs)
            # generate() returns each input's sequences together: rows [i * n, (i + 1) * n) belong to input i.
            per_input = generated.reshape(len(positions), -1, generated.shape[-1])
            for position, rows in zip(positions, per_input):
                sequences[position] = rows
        return {"sequences": sequences, "errors": errors}

    def postprocess(
        self, model_outputs: dict, skip_special_tokens: bool = True, clean_up_tokenization_spaces=None
    ) -> list[dict]:
        """Decodes one input's generated ids.

        Returns:
            `list[dict]`: `{"translation_text": str}` per returned sequence, or `[{"translation_text": None, "error":
            str}]` for an input skipped under `errors="skip"`.
        """
        sequences, error = model_outputs["sequences"], model_outputs["errors"]
        # The loader hands each input over as a batch of one: lists of one entry, or tensors with a leading 1.
        if isinstance(error, list):
            sequences, error = sequences[0], error[0]
        if error is not None:
            return [{"translation_text": None, "error": error}]
        texts = self.tokenizer.batch_decode(
            sequences.reshape(-1, sequences.shape[-1]).tolist(),
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
        )
        return [{"translation_text": text} for text in texts]

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # As Pipeline.get_iterator, with a collate function that keeps each input's video and error (transformers'
        # pad_collate_fn pads token sequences and needs every item to have the same keys).
        if isinstance(inputs, Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)  # an iterable cannot be split between workers
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_videos)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def save_pretrained(self, save_directory, **kwargs):
        """Saves the model with `custom_pipelines` in its config, this file and its siblings, and the processor."""
        if not hasattr(self, "_registered_impl"):
            # A pipeline loaded with trust_remote_code was never registered in this process; record it as
            # register_pipeline() does, so the saved config still names it.
            self._registered_impl = {TASK: _task_impl(type(self))}
        super().save_pretrained(save_directory, **kwargs)
        if self.processor is not None:
            self.processor.save_pretrained(save_directory)


def _task_impl(pipeline_class: type) -> dict:
    return {"impl": pipeline_class, "pt": (AutoModelForSeq2SeqLM,), "type": "multimodal"}


def register_pipeline() -> None:
    """Registers [`SignTranslationPipeline`] as transformers' `"sign-translation"` task (idempotent)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if registered is not None and registered["impl"] is SignTranslationPipeline:
        return
    impl = _task_impl(SignTranslationPipeline)
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=impl["impl"], pt_model=impl["pt"], type=impl["type"]
    )

# Copyright 2026 The beyondgloss authors. MIT license.
"""The "sign-translation" pipeline: sign language videos in, spoken-language sentences out.

Imports only torch, transformers and siblings (relatively), so `save_pretrained` copies it into a checkpoint folder
whose config names it in `custom_pipelines`; `pipeline("sign-translation", model=folder, trust_remote_code=True)`
then works where beyondgloss is not installed. Its siblings `sign_translation_inputs.py` (finding and reading the
inputs' videos) and `sign_translation_outputs.py` (sequence ends, scores, the returned records) travel with it.
"""

import functools
import inspect
from collections.abc import Iterator, Sized
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, GenerationMixin
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import logging
from transformers.utils.logging import tqdm

from .sign_translation_inputs import (
    ERROR_MODES,
    NumberedInput,
    NumberedInputs,
    SignTranslationInputError,
    collate_videos,
    describe_input,
    input_error,
    is_hf_dataset,
    streamed_frames,
    video_of,
)
from .sign_translation_outputs import caption_records, kept_positions, sequence_scores, translation_records
from .processing_beyondgloss import language_code_id
from .streaming import StreamingTranslator
from .video_io import is_single_video

__all__ = [
    "TASK",
    "SignTranslationInputError",
    "SignTranslationPipeline",
    "collate_videos",
    "register_pipeline",
]

logger = logging.get_logger(__name__)

TASK = "sign-translation"
# Everything `generate()` takes: the GenerationConfig fields plus its own arguments.
_GENERATE_ARGUMENTS = (
    {key for key in vars(GenerationConfig()) if not key.startswith("_")}
    | set(inspect.signature(GenerationMixin.generate).parameters)
) - {"self", "inputs", "kwargs", "model_kwargs"}


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
    its [`BeyondGlossProcessor`] (or a video processor and a tokenizer).

    Inputs, alone or in a list (a list of image paths is one video, its frames):

    - a video file path (mp4, webm, ...), an http(s) URL of a video file, a folder of frame images, a list of frame
      image paths;
    - an array or tensor of frames `(T, H, W, C)` / `(T, C, H, W)` (uint8, or float in [0, 1]);
    - a torchcodec `VideoDecoder`, a `{"path", "bytes"}` dict;
    - a `datasets` row: a dict with a `video` (a `datasets.Video` value) or `frames` (a folder or image paths) entry;
    - a `datasets.Dataset`, `IterableDataset` (e.g. `load_sign_dataset(..., streaming=True)["test"]`), `KeyDataset`
      or generator of such rows/videos (the result is then a lazy iterator).

    Frames are brought to the processor's size; a processor without one (`size=None, crop_size=None`) gets the
    model's `vision_config.image_size` (shorter side resized to it, centre square cropped). The videos of a batch are
    read and padded once, by the video processor; videos that still differ in frame size are translated in one
    group per size.

    Call arguments:

    - `batch_size` (`int`, defaults to 1): videos translated together (padded in time);
    - generation settings, as keyword arguments or in `generate_kwargs={...}` (not both for one setting):
      `num_beams`, `max_new_tokens`, `min_new_tokens`, `length_penalty`, `num_return_sequences`, `do_sample`, ...,
      on top of the model's `generation_config` (or a `generation_config=`);
    - `return_text` (`bool`, defaults to `True` unless `return_tensors=True`): the translation as text,
      `translation_text`;
    - `return_tensors` (`bool`, defaults to `False`): the generated token ids, `translation_token_ids` (a list of
      ints from the decoder start token, the target language code, through the end-of-sentence token, without the
      padding that batching adds). Alone it replaces the text, as in transformers' text2text pipelines; with
      `return_text=True` both are given;
    - `return_scores` (`bool`, defaults to `False`): a `score` (float) per sequence: the sum of the log-probabilities
      of its generated tokens (through the end-of-sentence token) divided by `length ** length_penalty`, each token's
      probability taken from the distribution `generate()` picked it from (after the logits processors, so an
      end-of-sentence token forced at the length limit counts as probability 1). Under beam search it is
      `generate()`'s `sequences_scores`; under greedy search and sampling it is computed the same way from
      `generate()`'s per-step `scores`. Higher is better; the sequences of one input come best first;
    - `skip_special_tokens` (`bool`, defaults to `True`), `clean_up_tokenization_spaces` (`bool`, *optional*): as
      the tokenizer's `decode`;
    - `target_language` (`str`, *optional*): the language code to start decoding with (multilingual models only;
      the model's `decoder_start_token_id` by default);
    - `errors` (`str`, defaults to `"raise"`): what an unreadable input does. `"raise"` raises
      [`SignTranslationInputError`] naming the input and why; `"skip"` translates the other inputs and gives
      `{"translation_text": None, "error": "<why>"}` for that one;
    - `progress` (`bool`, *optional*): a progress bar (tqdm, on stderr). By default there is one for a list or
      dataset of several inputs and for a long video (at least 128 frames after sampling); `False` turns it off, as
      does transformers' `transformers.utils.logging.disable_progress_bar()`. Also accepted by the constructor;
    - `streaming=True`: live captions of one stream of frames or one video, as [`~SignTranslationPipeline.stream`]
      (which takes the other arguments).

    Returns:
        As transformers' text2text (translation) pipelines:

        - one input: a list of `num_return_sequences` (by default 1) dicts, best first: `[{"translation_text": str}]`;
        - a list of inputs: one dict per input, `[{...}, {...}]`; when `num_return_sequences > 1`, one such list per
          input, `[[{...}, {...}], [{...}, {...}]]`;
        - a dataset or generator: an iterator of one list per input (as for one input).

        Each dict holds `translation_text`, `translation_token_ids` and `score` as asked for above. An input skipped
        under `errors="skip"` gets `{"translation_text": None, "error": str}` in place of its dict (a list of that
        one dict where a list per input is given).

    Example:

    ```python
    >>> import beyondgloss  # registers the pipeline; without it pass trust_remote_code=True
    >>> from transformers import pipeline
    >>> translator = pipeline("sign-translation", model="path/to/checkpoint")
    >>> translator("signing.mp4")
    [{'translation_text': 'am tag sonne im süden'}]
    >>> translator(["a.mp4", "frames_dir/"], num_beams=5, batch_size=2)
    [{'translation_text': '...'}, {'translation_text': '...'}]
    >>> translator("signing.mp4", num_beams=4, num_return_sequences=2, return_scores=True)
    [{'translation_text': '...', 'score': ...}, {'translation_text': '...', 'score': ...}]
    ```
    """

    # The processor is loaded from the model's folder when there is one; a model object comes with processor=... or
    # video_processor=... and tokenizer=... (transformers' pipeline() otherwise refuses a model object).
    _load_processor = None
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
            self.video_processor = self.video_processor or getattr(self.processor, "video_processor", None)
            self.tokenizer = self.tokenizer or getattr(self.processor, "tokenizer", None)
        if self.video_processor is None or self.tokenizer is None:
            source = getattr(self.model, "name_or_path", "") or "the model"
            raise ValueError(
                "SignTranslationPipeline needs a BeyondGlossProcessor (processor=...), or both video_processor=... "
                f"and tokenizer=...; none was given, and no processor could be loaded from {source} (a checkpoint "
                "holds the processor when it was saved with processor.save_pretrained, as Trainer.save_model does "
                "when given processing_class=processor; AutoProcessor.from_pretrained(folder) shows why it fails)"
            )
        if getattr(self.model, "main_input_name", None) != "pixel_values_videos" or not self.model.can_generate():
            raise ValueError(
                f"SignTranslationPipeline needs a sign translation model (BeyondGlossForSignTranslation, loaded with "
                f"AutoModelForSeq2SeqLM); got {type(self.model).__name__}"
            )
        self._given_video_processor = self.video_processor
        self.video_processor = _sized_video_processor(self.video_processor, self.model)

    def __call__(self, inputs, progress: bool | None = None, streaming: bool = False, **kwargs):
        """Translates one input or each of a list of inputs (see the class docstring for forms and arguments);
        `streaming=True`: [`stream`]."""
        if streaming:
            return self.stream(inputs, **kwargs)
        progress = self.progress if progress is None else progress
        if isinstance(inputs, (list, tuple)) and not is_single_video(inputs):
            if not inputs:
                return []
            outputs = super().__call__(NumberedInputs(list(inputs)), **kwargs)
            results = list(self._with_progress(outputs, len(inputs), progress))
            # As transformers' text2text pipelines: one dict per input unless several sequences were asked for.
            return results if self._sequences_per_input(kwargs) > 1 else [result[0] for result in results]
        is_dataset = isinstance(inputs, Dataset) or is_hf_dataset(inputs)  # also streamed (iterable) datasets
        if is_dataset and isinstance(inputs, Sized):
            return self._with_progress(super().__call__(NumberedInputs(inputs), **kwargs), len(inputs), progress)
        if is_dataset or inspect.isgenerator(inputs):
            outputs = super().__call__((NumberedInput(i, value) for i, value in enumerate(inputs)), **kwargs)
            return self._with_progress(outputs, None, progress)
        self._single_progress = progress
        try:
            return super().__call__(NumberedInput(None, inputs), **kwargs)
        finally:
            self._single_progress = None

    def stream(self, frames, window_seconds: float = 4.0, stride_seconds: float | None = None,
               fps: float | None = None, agreement: int = 2, target_language: str | None = None,
               generate_kwargs: dict | None = None, segmentation: str = "auto", gate_seconds: float | None = None,
               gate_patience: int = 3, **kwargs) -> Iterator[dict]:
        r"""Live captions: translates a stream of frames as it arrives and yields each caption as soon as it is
        decided: a model with a signing gate translates each stretch of signing once it ends; without one, a sliding
        window is translated every stride and a caption confirmed by `agreement` consecutive windows
        (`streaming.StreamingTranslator`, docs/streaming.md).

        Args:
            frames: an iterable (a generator) of frames as they arrive, uint8 RGB `(3, H, W)` tensors or `(H, W, 3)`
                arrays, or `(timestamp_seconds, frame)` pairs; or one video to stream: a file path, a frame folder, a
                URL FFmpeg reads (http(s), rtsp, ...) or a torchcodec `VideoDecoder`, decoded a few frames at a time
                and sampled to the video processor's `fps`.
            window_seconds (`float`, defaults to 4.0), stride_seconds (`float`, *optional*): the longest span
                translated at once, and how often the translator decides (0.2 s with the gate, 1 s for agreement by
                default).
            fps (`float`, *optional*): frame rate of frames without timestamps (25 by default); a video's own rate
                is used for a video.
            agreement (`int`, defaults to 2): consecutive windows that must agree on a text (`"agreement"`).
            segmentation (`str`, defaults to `"auto"`): `"gate"`, `"agreement"` or `"auto"` (`"gate"` for a model
                with a signing gate).
            gate_seconds (`float`, *optional*), gate_patience (`int`, defaults to 3): the tail the gate looks at
                every stride, and the idle decisions in a row that end a stretch of signing (`"gate"`).
            target_language, generate_kwargs, generation settings: as for a call of the pipeline.

        Returns:
            A generator of dicts, one per caption: `start`, `end` (seconds of the stream), `text`, `confidence` (mean
            log-probability of its tokens, at most 0), `signing_probability` (the signing gate's, `None` for a model
            without one) and `latency` (seconds per stage: `decode`, `frame_encoder`, `temporal_encoder`, `decoder`,
            `total`).

        Raises:
            [`SignTranslationInputError`]: a video that cannot be opened (at the call) or a frame that cannot be
                decoded (when the generator reaches it); `ValueError` / `TypeError`: a bad setting, at the call.

        Example:

        ```python
        >>> for caption in translator.stream("signing.mp4", window_seconds=4, stride_seconds=1):
        ...     print(caption["start"], caption["end"], caption["text"], caption["confidence"])
        ```
        """
        unknown = sorted(set(kwargs) - _GENERATE_ARGUMENTS)
        if unknown:
            raise TypeError(f"SignTranslationPipeline.stream got unknown arguments {unknown}: it takes window_seconds, "
                            "stride_seconds, fps, agreement, segmentation, gate_seconds, gate_patience, "
                            "target_language, "
                            "generate_kwargs and generation settings "
                            "(GenerationConfig fields such as num_beams, max_new_tokens)")
        settings = self._sanitize_parameters(target_language=target_language, generate_kwargs=generate_kwargs,
                                             **kwargs)[1]
        if "generation_config" in settings or "return_scores" in settings:
            raise TypeError("SignTranslationPipeline.stream takes generation settings one by one (num_beams=..., "
                            "max_new_tokens=...), not a generation_config")
        label = describe_input(frames)
        frames, fps = streamed_frames(frames, fps, self.video_processor.fps)
        parts = SimpleNamespace(video_processor=self.video_processor, tokenizer=self.tokenizer)
        translator = StreamingTranslator(self.model, parts, window_seconds, stride_seconds, fps, agreement, settings,
                                         segmentation=segmentation, gate_seconds=gate_seconds,
                                         gate_patience=gate_patience)
        return caption_records(translator(frames), label)

    def _with_progress(self, outputs, total: int | None, progress: bool | None):
        if progress is False or (progress is None and total is not None and total < 2):
            return outputs
        return tqdm(outputs, total=total, desc=TASK, unit="video")

    def _generation_setting(self, generate_kwargs: dict, name: str):
        """A generation setting as `generate()` will see it: the call's, else its `generation_config`'s, else the
        model's."""
        if name in generate_kwargs:
            return generate_kwargs[name]
        return getattr(generate_kwargs.get("generation_config") or self.model.generation_config, name, None)

    def _sequences_per_input(self, call_kwargs: dict) -> int:
        call_kwargs = {key: value for key, value in call_kwargs.items() if key not in ("batch_size", "num_workers")}
        forward_params = {**self._forward_params, **self._sanitize_parameters(**call_kwargs)[1]}
        forward_params.pop("return_scores", None)
        return self._generation_setting(self._prepare_generate_kwargs(forward_params), "num_return_sequences") or 1

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        # As Pipeline.run_single, with a two-step progress bar (read, translate) for a long video.
        model_inputs = collate_videos([self.preprocess(inputs, **preprocess_params)], self.video_processor)
        groups = model_inputs["groups"]
        frames = groups[0]["pixel_values_videos"].shape[1] if groups else 0
        progress = getattr(self, "_single_progress", None)
        show = progress or (progress is None and frames >= self.LONG_VIDEO_FRAMES)
        bar = tqdm(total=2, desc=TASK, unit="step", disable=not show)
        bar.update(1)
        model_outputs = self.forward(model_inputs, **forward_params)
        bar.update(1)
        bar.close()
        return self.postprocess(model_outputs, **postprocess_params)

    def _sanitize_parameters(
        self, errors=None, target_language=None, return_text=None, return_tensors=None, return_scores=None,
        skip_special_tokens=None, clean_up_tokenization_spaces=None, generate_kwargs=None, **kwargs,
    ):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if errors is not None:
            if errors not in ERROR_MODES:
                raise ValueError(f"errors={errors!r} is not one of {ERROR_MODES}")
            preprocess_params["errors"] = errors
        unknown = sorted(set(kwargs) - _GENERATE_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"SignTranslationPipeline got unknown arguments {unknown}: it takes batch_size, num_workers, errors, "
                "progress, target_language, return_text, return_tensors, return_scores, skip_special_tokens, "
                "clean_up_tokenization_spaces, generate_kwargs and generation settings (GenerationConfig fields such "
                "as num_beams, max_new_tokens, min_new_tokens)"
            )
        if generate_kwargs is not None:
            if not isinstance(generate_kwargs, dict):
                raise TypeError(f"generate_kwargs must be a dict of generate() arguments, got {generate_kwargs!r}")
            twice = sorted(set(kwargs) & set(generate_kwargs))
            if twice:
                raise ValueError(f"{twice} given both as arguments and in generate_kwargs; pass each setting once")
            forward_params.update(generate_kwargs)
        forward_params.update(kwargs)
        if target_language is not None:
            forward_params["decoder_start_token_id"] = self._language_code_id(target_language)
        if return_scores is not None:
            forward_params["return_scores"] = bool(return_scores)
        if return_text is False and return_tensors is False:
            raise ValueError("return_text=False and return_tensors=False leave nothing to return; ask for one")
        if return_tensors is not None:
            postprocess_params["return_tensors"] = bool(return_tensors)
            if return_text is None:  # as transformers' text2text pipelines: token ids instead of the text
                postprocess_params["return_text"] = not return_tensors
        if return_text is not None:
            postprocess_params["return_text"] = bool(return_text)
        for name, value in (("skip_special_tokens", skip_special_tokens),
                            ("clean_up_tokenization_spaces", clean_up_tokenization_spaces)):
            if value is not None:
                postprocess_params[name] = value
        return preprocess_params, forward_params, postprocess_params

    def _language_code_id(self, language: str) -> int:
        # Pipeline.__init__ sanitizes its arguments before it takes the tokenizer from the processor.
        tokenizer = self.tokenizer or getattr(self.processor, "tokenizer", None)
        try:
            return language_code_id(tokenizer, language)
        except ValueError as error:
            raise ValueError(f"target_language={language!r}: {error}") from None

    def preprocess(self, inputs, errors: str = "raise") -> dict:
        """Finds one input's video: a dataset row's `video` or `frames`, the bytes of an http(s) URL, or the input.

        Its frames are read by [`collate_videos`], a batch at a time, with the video processor.

        Args:
            inputs: one input (see the class docstring), as wrapped by `__call__`.
            errors (`str`, defaults to `"raise"`): `"raise"` or `"skip"` (keep the error for the output).

        Returns:
            `dict` with `video` (`None` when it cannot be found), `error` (`None`, or why under `errors="skip"`),
            `label` (how messages name the input) and `on_error` (`errors`).
        """
        item = inputs if isinstance(inputs, NumberedInput) else NumberedInput(None, inputs)
        where = "the input" if item.index is None else f"input [{item.index}]"
        if item.total is not None:
            where += f" of {item.total}"
        found = {"video": None, "error": None, "label": f"{where} ({describe_input(item.value)})", "on_error": errors}
        try:
            found["video"] = video_of(item.value)
        except (ValueError, OSError) as error:  # OSError: also an unreachable URL or one that answers with an error
            found["error"] = input_error(found, error)
        return found

    def _forward(self, model_inputs: dict, return_scores: bool = False, **generate_kwargs) -> dict:
        """One `generate()` call per group of the batch (one group unless frame sizes differ).

        Returns:
            `dict` with `results` (per input: `sequences`, a LongTensor `(num_return_sequences, tokens)` of generated
            ids, `lengths` (each sequence's length without the batch's padding) and `scores` (`None` unless
            `return_scores`); `None` where the input failed) and `errors` (per input).
        """
        scores_asked = {"return_dict_in_generate": True, "output_scores": True} if return_scores else {}
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs, **scores_asked)
        results = [None] * len(model_inputs["errors"])
        for group in model_inputs["groups"]:
            output = self.model.generate(
                pixel_values_videos=group["pixel_values_videos"],
                video_attention_mask=group["video_attention_mask"],
                **generate_kwargs,
            )
            sequences = output if isinstance(output, torch.Tensor) else output.sequences
            kept = kept_positions(sequences, self._generation_setting(generate_kwargs, "eos_token_id"))
            length_penalty = self._generation_setting(generate_kwargs, "length_penalty")
            scores = sequence_scores(output, kept, length_penalty) if return_scores else None
            lengths = kept.sum(dim=1)
            # generate() returns each input's sequences together: rows [i * n, (i + 1) * n) belong to input i.
            per_input = sequences.shape[0] // len(group["positions"])
            for i, position in enumerate(group["positions"]):
                rows = slice(i * per_input, (i + 1) * per_input)
                results[position] = {
                    "sequences": sequences[rows],
                    "lengths": lengths[rows],
                    "scores": None if scores is None else scores[rows],
                }
        return {"results": results, "errors": model_inputs["errors"]}

    def postprocess(
        self, model_outputs: dict, return_text: bool = True, return_tensors: bool = False,
        skip_special_tokens: bool = True, clean_up_tokenization_spaces=None,
    ) -> list[dict]:
        """Decodes one input's generated ids.

        Returns:
            `list[dict]`: per returned sequence, best first, `translation_text` (`return_text`),
            `translation_token_ids` (`return_tensors`) and `score` (`return_scores`); or `[{"translation_text":
            None, "error": str}]` for an input skipped under `errors="skip"`.
        """
        if not (return_text or return_tensors):
            raise ValueError("return_text=False and return_tensors=False leave nothing to return; ask for one")
        result, error = model_outputs["results"], model_outputs["errors"]
        # The loader hands a batch of one over as it is: lists of one entry.
        if isinstance(error, list):
            result, error = result[0], error[0]
        if error is not None:
            return [{"translation_text": None, "error": error}]
        return translation_records(result, self.tokenizer, return_text, return_tensors,
                                   skip_special_tokens=skip_special_tokens,
                                   clean_up_tokenization_spaces=clean_up_tokenization_spaces)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # As Pipeline.get_iterator, with a collate function that reads the batch's videos with the video processor
        # (transformers' pad_collate_fn pads token sequences and needs every item to have the same keys).
        if isinstance(inputs, Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)  # an iterable cannot be split between workers
        collate = functools.partial(collate_videos, video_processor=self.video_processor)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def save_pretrained(self, save_directory, **kwargs):
        """Saves the model with `custom_pipelines` in its config, this file and its siblings, and the processor (one
        made of the video processor and the tokenizer the pipeline was given, when it was given no processor)."""
        if not hasattr(self, "_registered_impl"):
            # A pipeline loaded with trust_remote_code was never registered in this process; record it as
            # register_pipeline() does, so the saved config still names it.
            self._registered_impl = {TASK: _task_impl(type(self))}
        super().save_pretrained(save_directory, **kwargs)
        (self.processor or self._processor_from_parts()).save_pretrained(save_directory)

    def _processor_from_parts(self):
        """The processor of a pipeline given a video processor and a tokenizer: its target language is the model's
        decoder start token (a language code)."""
        from .processing_beyondgloss import BeyondGlossProcessor

        start = self._generation_setting({}, "decoder_start_token_id")
        language = None if start is None else self.tokenizer.convert_ids_to_tokens(start)
        return BeyondGlossProcessor(self._given_video_processor, self.tokenizer, target_language=language)


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

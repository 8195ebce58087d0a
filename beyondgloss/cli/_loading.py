"""Loading for the training commands and `translate`: the dataset, the processor, the model, a saved folder.

Each failure the user can fix (an unknown split, a language the tokenizer lacks, a torn config) is a [`CommandError`]
naming the file or flag and the fix.
"""

import json
from pathlib import Path

from huggingface_hub.errors import StrictDataclassError
from transformers import TrainingArguments

from ..training.arguments import DataArguments, ModelArguments
from ._arguments import config_overrides
from ._common import CommandError, UsageError
from ._guards import check_remote_code, require_complete_weights, require_finite_weights, require_trained_decoder

__all__ = ["build_model", "check_frame_capacity", "check_generation_length", "load_dataset_splits", "load_processor", "load_saved",
           "load_translation_model", "require_tokenizer_files", "target_language"]


def load_dataset_splits(data: DataArguments, args: TrainingArguments, splits: list):
    from ..data import load_sign_dataset

    if not data.dataset:
        raise UsageError("--dataset is required: a dataset name (phoenix14t, csl_daily, synthsign, sign_video_folder) "
                         "or a folder with a metadata.jsonl")
    try:
        options = json.loads(data.dataset_options) if data.dataset_options else {}
    except json.JSONDecodeError as error:
        raise UsageError(f"--dataset_options is not a JSON object: {error}") from error
    # One process builds (or generates) the dataset, the others then read it from the cache.
    with args.main_process_first(desc="building the dataset"):
        try:
            dataset = load_sign_dataset(data.dataset, data_dir=data.data_dir, cache_dir=data.cache_dir,
                                        hand_features=data.hand_features, descriptions=data.descriptions,
                                        skip_bad_samples=data.skip_bad_samples, **options)
        except (ValueError, FileNotFoundError) as error:
            raise CommandError(f"could not load dataset {data.dataset!r}: {error}") from error
    selected = {}
    for split, limit in splits:
        if split is None:
            continue
        if split not in dataset:
            raise CommandError(f"dataset {data.dataset!r} has no split {split!r}; it has {sorted(dataset)}")
        part = dataset[split]
        if "text" not in part.column_names:
            raise CommandError(
                f"split {split!r} of dataset {data.dataset!r} has no `text` column (columns: {part.column_names}); "
                "training and scoring need the target sentence of every sample in a `text` column"
            )
        if limit is not None:
            part = part.select(range(min(limit, len(part))))
        selected[split] = part
    return selected


def _feature_width(dataset, column: str) -> int | None:
    """The width D of a feature column: an `Array2D` (T, D) or a list of fixed-size lists of D (per frame, as
    `beyondgloss preprocess` stores them), or a fixed-size list of D (per sample); None when the schema has none."""
    feature = dataset.features.get(column) if dataset is not None else None
    if feature is None:
        return None
    shape = getattr(feature, "shape", None)
    if shape is not None:
        return int(shape[-1])
    inner = getattr(feature, "feature", None)
    if hasattr(inner, "length"):  # a list of lists: the width is the inner list's
        feature = inner
    length = getattr(feature, "length", -1)
    return int(length) if length and length > 0 else None


def target_language(model_args: ModelArguments, dataset) -> str:
    from ..data import dataset_language_code

    if model_args.target_language:
        return model_args.target_language
    fix = "pass --target_language (e.g. de_DE, zh_CN, en_XX), or give every sample a `language` in the metadata"
    if "language" not in dataset.column_names:
        raise CommandError(f"the dataset has no `language` column; {fix}")
    if "" in dataset.unique("language"):
        raise CommandError(f"the dataset's `language` column is empty for some samples (its metadata file has no "
                           f"language for them); {fix}")
    try:
        return dataset_language_code(dataset)
    except ValueError as error:  # several languages, or one without a known mBART code
        raise CommandError(f"the dataset's target language: {error}; or {fix}") from error


def _check_language(tokenizer, code: str, source: str) -> None:
    from ..processing_beyondgloss import language_code_id

    try:
        language_code_id(tokenizer, code)
    except ValueError as error:
        raise CommandError(f"the target language of {source}: {error}; pass --target_language with one of them, or a "
                           "tokenizer that has this code") from None


def load_processor(model_args: ModelArguments, data: DataArguments, train_texts, target: str):
    """The processor: saved with the model, from --processor_name_or_path, or built around a tokenizer."""
    from ..processing_beyondgloss import BeyondGlossProcessor
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor

    saved = model_args.processor_name_or_path or model_args.model_name_or_path
    if saved:
        check_remote_code(saved, model_args.trust_remote_code)
    if saved and (Path(saved) / "processor_config.json").is_file():
        require_tokenizer_files(Path(saved))
        processor = load_saved(BeyondGlossProcessor, Path(saved), "the processor")
        source = saved
    else:
        tokenizer_source = model_args.tokenizer_name or model_args.text_backbone
        if model_args.processor_name_or_path:
            raise CommandError(f"--processor_name_or_path {saved} holds no processor_config.json; give a folder saved "
                               "by BeyondGlossProcessor.save_pretrained (every beyondgloss model folder has one)")
        if tokenizer_source:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
            source = tokenizer_source
        else:
            if train_texts is None:
                raise CommandError("no processor: pass --model_name_or_path of a folder with a saved processor, or "
                                   "--processor_name_or_path")
            from ..data import train_sign_tokenizer

            tokenizer = train_sign_tokenizer(train_texts, vocab_size=model_args.tokenizer_vocab_size,
                                             language_codes=[target], language=target)
            source = "the tokenizer trained on the training sentences"
        _check_language(tokenizer, target, source)
        processor = BeyondGlossProcessor(video_processor=BeyondGlossVideoProcessor(), tokenizer=tokenizer,
                                         target_language=target, max_target_length=data.max_target_length)
    _check_language(processor.tokenizer, target, source)
    processor.target_language = target
    settings = data.video_settings()
    if settings:
        try:
            processor.video_processor = processor.video_processor.with_settings(**settings)
        except ValueError as error:  # e.g. a --crop_size larger than the saved processor's size
            flags = " ".join(f"--{name} {value}" for name, value in settings.items())
            raise UsageError(f"{flags}: {error}") from error
    return processor


def load_saved(kind, folder: Path, what: str, **kwargs):
    """`kind.from_pretrained(folder, **kwargs)`, with a bad saved file (a config value of the wrong type, a missing or
    torn file) reported as an error naming the folder, not a traceback."""
    from safetensors import SafetensorError

    try:
        return kind.from_pretrained(str(folder), **kwargs)
    except SafetensorError as error:
        raise CommandError(f"{_unreadable_weights(folder)} is truncated or not a safetensors file ({error}); copy "
                           "it again from where it was saved") from error
    except (OSError, TypeError, ValueError, StrictDataclassError) as error:  # the last: a config field of a wrong type
        raise CommandError(f"could not load {what} from {folder}: {error}") from error


def _unreadable_weights(folder) -> str:
    """The first `.safetensors` file of `folder` whose header does not read (else the folder's weights, by name)."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError):
            return str(path)
    return f"a .safetensors weights file of {folder}"


def load_translation_model(folder, options):
    """The translation model of a saved folder, for `translate` and `evaluate`, after the checks that keep garbage
    out (`beyondgloss.cli._guards`): no foreign code (unless `options.trust_remote_code`), a decoder trained to
    translate (unless `options.allow_untrained_decoder`), every weight in the checkpoint (unless
    `options.allow_missing_weights`), finite weights."""
    from ..adapters_beyondgloss import adapter_base
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation

    folder = Path(folder)
    check_remote_code(folder, options.trust_remote_code)
    require_trained_decoder(folder, options.allow_untrained_decoder)
    if adapter_base(folder) is not None:
        # An adapter folder: its base loads whole, and loading the adapter refuses one that lacks a tensor.
        model = load_saved(BeyondGlossForSignTranslation, folder, "the model")
    else:
        model, loading_info = load_saved(BeyondGlossForSignTranslation, folder, "the model", output_loading_info=True)
        if not options.allow_missing_weights:
            require_complete_weights(loading_info, folder)
    require_finite_weights(model, folder)
    return model


def load_translation_folder(options, command: str) -> tuple:
    """The translation model and processor of the saved folder `options.model_name_or_path`, after the checks that
    name what is wrong with the folder (no processor, no tokenizer file, more frames than the model reads), for the
    commands that run a saved model (`translate`, `caption`)."""
    from ..processing_beyondgloss import BeyondGlossProcessor

    folder = Path(options.model_name_or_path)
    if not (folder / "processor_config.json").is_file():
        raise CommandError(f"{folder} has no saved processor (processor_config.json); {command} needs a model folder "
                           "written by `beyondgloss finetune` or saved with its processor")
    require_tokenizer_files(folder)
    model = load_translation_model(folder, options)
    processor = load_saved(BeyondGlossProcessor, folder, "the processor")
    check_frame_capacity(model.config, processor.video_processor,
                         f"lower max_frames in {folder / 'processor_config.json'}")
    return model, processor


def require_tokenizer_files(folder: Path) -> None:
    """Refuses a saved processor whose tokenizer file is missing: the tokenizer would load from `tokenizer_config.json`
    alone with only its special tokens, and every translation would silently come out empty."""
    if not (folder / "tokenizer.json").is_file() and not (folder / "sentencepiece.bpe.model").is_file():
        raise CommandError(
            f"{folder} has a processor_config.json but no tokenizer.json (nor sentencepiece.bpe.model): the tokenizer "
            "of the model's processor is missing, so its vocabulary cannot be read. Copy tokenizer.json and "
            "tokenizer_config.json from the run that trained this model into the folder"
        )


def check_frame_capacity(config, video_processor, fix: str) -> None:
    """Refuses a `num_frames` or `max_frames` whose video sequence is longer than the text encoder's position table.

    The temporal encoder halves the frame sequence (ceil(T / 2) steps), and mBART's learned positions hold
    `text_config.max_position_embeddings` of them; a longer video fails deep inside the encoder with an IndexError.
    """
    positions = config.text_config.max_position_embeddings
    name = "num_frames" if video_processor.num_frames is not None else "max_frames"
    frames = getattr(video_processor, name)
    if frames is not None and frames > 2 * positions:
        raise CommandError(
            f"the video processor keeps {name}={frames} frames, more than the model reads: the video sequence is halved to {-(-frames // 2)} steps, but its "
            f"text encoder has {positions} positions (text_config.max_position_embeddings), so at most "
            f"{2 * positions} frames; {fix}"
        )


def check_generation_length(config, args) -> None:
    """Refuses a `--generation_max_length` longer than the decoder's position table (it counts the start token):
    beam search would index past mBART's learned positions."""
    positions = config.text_config.max_position_embeddings
    length = getattr(args, "generation_max_length", None)
    if length is not None and length > positions:
        raise CommandError(f"--generation_max_length {length}: the model's decoder has {positions} positions "
                           f"(text_config.max_position_embeddings, the start token included); use at most {positions}")


def _tiny_config_for(processor, overrides: dict):
    """The tiny config (`--tiny`) for the processor's frames: its crop as the image size, and positions enough for its
    frames (`num_frames`, else `max_frames`: the tiny text encoder's 128 positions hold 256 frames; the processor keeps
    300 by default)."""
    from ..testing import tiny_config

    video = processor.video_processor
    crop = video.crop_size or video.size or 28
    if isinstance(crop, dict):  # a size dict ({"height", "width"} or {"shortest_edge"}) of the processor
        crop = crop.get("height", crop.get("shortest_edge"))
    config = tiny_config(vocab_size=len(processor.tokenizer), image_size=crop, **overrides)
    frames = video.num_frames or video.max_frames
    if frames is not None:
        text = config.text_config
        text.max_position_embeddings = max(text.max_position_embeddings, -(-frames // 2))
    return config


def build_model(model_class, model_args: ModelArguments, processor, train_dataset):
    """A model from a checkpoint, a config file, two backbones, or the tiny config; fitted to the processor."""
    from ..configuration_beyondgloss import BeyondGlossConfig

    sources = [name for name in ("model_name_or_path", "config_name", "tiny") if getattr(model_args, name)]
    if model_args.vision_backbone or model_args.text_backbone:
        if not (model_args.vision_backbone and model_args.text_backbone):
            raise UsageError("--vision_backbone and --text_backbone go together (a DINOv2 and an mBART checkpoint)")
        sources.append("vision_backbone/text_backbone")
    if len(sources) != 1:
        raise UsageError(f"give exactly one model source (--model_name_or_path, --config_name, --tiny, or "
                         f"--vision_backbone with --text_backbone); got {sources or 'none'}")
    overrides = config_overrides(model_args.config_overrides)
    if model_args.model_name_or_path:
        check_remote_code(model_args.model_name_or_path, model_args.trust_remote_code)
    else:
        # New heads take the width of the dataset's hand features and description embeddings.
        for column, name in (("hand_features", "hand_dim"), ("description_embedding", "description_dim")):
            width = _feature_width(train_dataset, column)
            if width is not None:
                overrides.setdefault(name, width)
    tokenizer = processor.tokenizer
    try:
        if model_args.model_name_or_path:
            model = model_class.from_pretrained(model_args.model_name_or_path, **overrides)
        elif model_args.config_name:
            config = BeyondGlossConfig.from_pretrained(model_args.config_name, **overrides)
            model = model_class(config)
        elif model_args.tiny:
            model = model_class(_tiny_config_for(processor, overrides))
        else:
            model = model_class.from_backbones(model_args.vision_backbone, model_args.text_backbone,
                                               config_kwargs=overrides)
    except (OSError, TypeError, ValueError, StrictDataclassError) as error:
        named = [f"{key}={value}" for key, value in config_overrides(model_args.config_overrides).items()
                 if key in str(error)]
        if named:  # a value of --config_overrides the config refuses: the command line is wrong
            raise UsageError(f"--config_overrides {','.join(named)}: {error}") from error
        raise CommandError(f"could not build the model from {sources[0]}: {error}") from error
    vocab = model.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise CommandError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary has {vocab}; use the "
                           "model's own tokenizer (or an mBART trimmed to the same vocabulary)")
    model.config.decoder_start_token_id = processor.language_code_id
    model.config.gather_distributed_negatives = bool(model_args.gather_negatives)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        # A checkpoint's generation_config.json wins over its config on loading (as in transformers); the command's
        # own settings win over both.
        generation.decoder_start_token_id = processor.language_code_id
        for name in ("num_beams", "max_new_tokens"):
            if name in overrides:
                setattr(generation, name, overrides[name])
    return model

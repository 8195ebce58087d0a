"""The training commands of the `beyondgloss` console script: `pretrain`, `finetune`, `evaluate`, `translate`.

Each takes its argument list (`beyondgloss.cli` passes what follows the command name), parsed by
`transformers.HfArgumentParser` from flags or from a single `.yaml`/`.json` file of the same names. The reference's
optimisation settings (`presets.py`) are the defaults; every flag or file key overrides them. The commands run
unchanged under `torchrun` and `accelerate launch` (the Trainer picks the process group up from the environment).

```
beyondgloss pretrain --dataset synthsign --data_dir synthsign --tiny --output_dir runs/pretrain
beyondgloss finetune --dataset synthsign --data_dir synthsign --model_name_or_path runs/pretrain --output_dir runs/ft
beyondgloss evaluate --dataset synthsign --data_dir synthsign --model_name_or_path runs/ft --output_dir runs/ft-test
beyondgloss translate --model_name_or_path runs/ft --videos a.mp4 frames_dir/
```
"""

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..utils.import_utils import require
from .arguments import DataArguments, ModelArguments, RunArguments, TranslateArguments
from .callbacks import LogFileCallback
from .presets import PRETRAINING_PRESET, TRANSLATION_PRESET

__all__ = ["CommandError", "pretrain", "finetune", "evaluate", "translate"]

logger = logging.getLogger(__name__)

PRETRAINING_ARCHITECTURE = "BeyondGlossForContrastivePretraining"
TRANSLATION_ARCHITECTURE = "BeyondGlossForSignTranslation"
# What a finished run leaves in its output folder besides checkpoints: the model, its config, the processor.
_RUN_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "trainer_state.json",
              "all_results.json", "log_history.jsonl")


class CommandError(ValueError):
    """A bad argument or input of a command; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------------------------
# Parsing


def _parse(argv: list, dataclass_types: tuple, preset: dict | None = None, command: str = "beyondgloss"):
    """Parses flags, or a single YAML/JSON file, into the dataclasses; `preset` supplies defaults under both."""
    parser = HfArgumentParser(dataclass_types, prog=f"beyondgloss {command}")
    preset = dict(preset or {})
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0])
        if not path.is_file():
            raise CommandError(f"configuration file {path} does not exist")
        if path.suffix == ".json":
            values = json.loads(path.read_text(encoding="utf-8"))
        else:
            values = require("yaml", "Reading a YAML configuration").safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise CommandError(f"{path} must hold a mapping of argument names to values, not a {type(values).__name__}")
        try:
            return parser.parse_dict({**preset, **values}, allow_extra_keys=False)
        except ValueError as error:
            raise CommandError(f"{path}: {error}") from error
    parser.set_defaults(**preset)
    return parser.parse_args_into_dataclasses(args=argv)


def _config_overrides(text: str | None) -> dict:
    """'a=1,b=true,c=x' -> {'a': 1, 'b': True, 'c': 'x'} (values read as JSON when they parse, else strings)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise CommandError(f"--config_overrides item {item!r} is not of the form name=value")
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = json.loads(value.lower() if value.lower() in ("true", "false", "null") else value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _setup_logging(args: TrainingArguments) -> None:
    import transformers

    level = logging.INFO if args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level, stream=sys.stderr)
    logging.getLogger("beyondgloss").setLevel(level)
    transformers.utils.logging.set_verbosity(logging.WARNING)


# --------------------------------------------------------------------------------------------------------------
# Output folder


def _folder_model(folder: Path) -> str | None:
    """The architecture named by `folder/config.json`, or None."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "an unreadable config.json"
    if data.get("model_type") != "beyondgloss":
        return f"a {data.get('model_type', 'unknown')} model"
    return (data.get("architectures") or ["BeyondGlossModel"])[0]


def prepare_output_dir(args: TrainingArguments, run: RunArguments, architecture: str) -> str | None:
    """Checks `args.output_dir` before a run writes anything, and resolves `--resume_from_checkpoint`.

    A folder holding an earlier run (checkpoints, a model, its logs) is used only to resume that run
    (`--resume_from_checkpoint last` or a checkpoint path) or, with `--overwrite_output_dir`, replaced (its checkpoints
    are deleted so they cannot mix with the new run's). A folder holding another kind of model is refused unless
    overwritten.

    Returns:
        `str` or `None`: the checkpoint to resume from.
    """
    folder = Path(args.output_dir)
    resume = args.resume_from_checkpoint
    checkpoints = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir()) if folder.is_dir() else []
    previous = [name for name in _RUN_FILES if (folder / name).exists()] + checkpoints
    if run.overwrite_output_dir:
        if resume:
            raise CommandError("--overwrite_output_dir and --resume_from_checkpoint contradict each other: one replaces "
                               f"the run in {folder}, the other continues it; pass one of them")
        if args.should_save:
            for name in checkpoints:
                shutil.rmtree(folder / name)
            if previous:
                logger.warning("--overwrite_output_dir: replacing the earlier run in %s (%s)", folder, ", ".join(previous))
        return None
    held = _folder_model(folder)
    if held is not None and held != architecture:
        raise CommandError(
            f"--output_dir {folder} holds {held}, not a {architecture} run; choose another --output_dir, or pass "
            "--overwrite_output_dir to replace it"
        )
    if resume:
        if str(resume).lower() in ("last", "true", "1", "yes"):
            last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
            if last is None:
                raise CommandError(f"--resume_from_checkpoint {resume}: {folder} has no checkpoint-* folder to resume "
                                   "from; start without --resume_from_checkpoint")
            return last
        if not Path(resume).is_dir():
            raise CommandError(f"--resume_from_checkpoint {resume} is not a checkpoint folder")
        return str(resume)
    if previous:
        raise CommandError(
            f"--output_dir {folder} already holds an earlier run ({', '.join(previous[:6])}). Pass "
            "--resume_from_checkpoint last to continue it, --overwrite_output_dir to replace it, or choose another "
            "--output_dir"
        )
    return None


# --------------------------------------------------------------------------------------------------------------
# Data


def _load_dataset(data: DataArguments, args: TrainingArguments, splits: list):
    from ..data import load_sign_dataset

    if not data.dataset:
        raise CommandError("--dataset is required: a dataset name (phoenix14t, csl_daily, synthsign, sign_video_folder) "
                           "or a folder with a metadata.jsonl")
    try:
        options = json.loads(data.dataset_options) if data.dataset_options else {}
    except json.JSONDecodeError as error:
        raise CommandError(f"--dataset_options is not a JSON object: {error}") from error
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
    feature = dataset.features.get(column) if dataset is not None else None
    if feature is None:
        return None
    shape = getattr(feature, "shape", None)
    if shape is not None:
        return int(shape[-1])
    length = getattr(feature, "length", -1)
    return int(length) if length and length > 0 else None


def _target_language(model_args: ModelArguments, dataset) -> str:
    from ..data import dataset_language_code

    if model_args.target_language:
        return model_args.target_language
    if "language" not in dataset.column_names:
        raise CommandError("the dataset has no `language` column; pass --target_language (e.g. de_DE, zh_CN, en_XX)")
    return dataset_language_code(dataset)


def _check_language(tokenizer, code: str, source: str) -> None:
    token_id = tokenizer.convert_tokens_to_ids(code)
    if token_id is None or token_id == tokenizer.unk_token_id:
        codes = [t for t in getattr(tokenizer, "additional_special_tokens", []) if "_" in t]
        raise CommandError(
            f"the target language {code!r} is not in the tokenizer of {source} (its language codes: {codes[:30]}); "
            "pass --target_language with one of them, or a tokenizer that has this code"
        )


def _load_processor(model_args: ModelArguments, data: DataArguments, train_texts, target: str):
    """The processor: saved with the model, from --processor_name_or_path, or built around a tokenizer."""
    from ..processing_beyondgloss import BeyondGlossProcessor
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor

    saved = model_args.processor_name_or_path or model_args.model_name_or_path
    if saved and (Path(saved) / "processor_config.json").is_file():
        processor = BeyondGlossProcessor.from_pretrained(saved)
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
            from ..tokenization import train_sign_tokenizer

            tokenizer = train_sign_tokenizer(train_texts, vocab_size=model_args.tokenizer_vocab_size,
                                             language_codes=[target], language=target)
            source = "the tokenizer trained on the training sentences"
        _check_language(tokenizer, target, source)
        processor = BeyondGlossProcessor(video_processor=BeyondGlossVideoProcessor(), tokenizer=tokenizer,
                                         target_language=target, max_target_length=data.max_target_length)
    _check_language(processor.tokenizer, target, source)
    processor.target_language = target
    video = processor.video_processor
    for name in ("max_frames", "resize_size", "crop_size", "augment"):
        if getattr(data, name) is not None:
            setattr(video, name, getattr(data, name))
    if video.resize_size is not None and video.crop_size is not None and video.crop_size > video.resize_size:
        video.resize_size = video.crop_size
    video._validate()
    return processor


# --------------------------------------------------------------------------------------------------------------
# Model


def _build_model(model_class, model_args: ModelArguments, processor, train_dataset):
    """A model from a checkpoint, a config file, two backbones, or the tiny config; fitted to the processor."""
    from ..configuration_beyondgloss import BeyondGlossConfig
    from ..testing import tiny_config

    sources = [name for name in ("model_name_or_path", "config_name", "tiny") if getattr(model_args, name)]
    if model_args.vision_backbone or model_args.text_backbone:
        if not (model_args.vision_backbone and model_args.text_backbone):
            raise CommandError("--vision_backbone and --text_backbone go together (a DINOv2 and an mBART checkpoint)")
        sources.append("vision_backbone/text_backbone")
    if len(sources) != 1:
        raise CommandError(f"give exactly one model source (--model_name_or_path, --config_name, --tiny, or "
                           f"--vision_backbone with --text_backbone); got {sources or 'none'}")
    overrides = _config_overrides(model_args.config_overrides)
    if not model_args.model_name_or_path:
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
            crop = processor.video_processor.crop_size or processor.video_processor.resize_size or 28
            model = model_class(tiny_config(vocab_size=len(tokenizer), image_size=crop, **overrides))
        else:
            model = model_class.from_backbones(model_args.vision_backbone, model_args.text_backbone,
                                               config_kwargs=overrides)
    except (OSError, TypeError) as error:
        raise CommandError(f"could not build the model from {sources[0]}: {error}") from error
    vocab = model.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise CommandError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary has {vocab}; use the "
                           "model's own tokenizer (or an mBART trimmed to the same vocabulary)")
    model.config.decoder_start_token_id = processor.language_code_id
    model.config.gather_distributed_negatives = bool(model_args.gather_negatives)
    return model


# --------------------------------------------------------------------------------------------------------------
# Summary


def _summary(title: str, lines: list) -> None:
    width = max(len(title), *(len(line) for line in lines)) if lines else len(title)
    print("\n" + "=" * width + f"\n{title}\n" + "-" * width)
    for line in lines:
        print(line)
    print("=" * width, flush=True)


def _score_lines(metrics: dict, keys: tuple) -> list:
    lines = []
    for key in keys:
        if key in metrics:
            value = metrics[key]
            lines.append(f"  {key:<34} {value:.4f}" if isinstance(value, float) else f"  {key:<34} {value}")
    return lines


_PRETRAINING_SCORES = ("eval_loss", "eval_alignment_loss", "eval_description_loss", "eval_hand_loss",
                       "eval_video_to_text_recall@1", "eval_video_to_text_recall@5")
_TRANSLATION_SCORES = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf", "loss", "num_samples")


# --------------------------------------------------------------------------------------------------------------
# Commands


def _run_training(argv: list, stage: str):
    pretraining = stage == "pretrain"
    arguments_class = TrainingArguments if pretraining else Seq2SeqTrainingArguments
    preset = PRETRAINING_PRESET if pretraining else TRANSLATION_PRESET
    model_args, data, run, args = _parse(argv, (ModelArguments, DataArguments, RunArguments, arguments_class),
                                         preset, stage)
    _setup_logging(args)
    architecture = PRETRAINING_ARCHITECTURE if pretraining else TRANSLATION_ARCHITECTURE
    resume = prepare_output_dir(args, run, architecture)

    test_split = None if pretraining or (data.test_split or "").lower() in ("", "none") else data.test_split
    splits = _load_dataset(data, args, [(data.train_split, data.max_train_samples),
                                        (data.eval_split, data.max_eval_samples), (test_split, data.max_eval_samples)])
    train_dataset, eval_dataset = splits[data.train_split], splits.get(data.eval_split)
    target = _target_language(model_args, train_dataset)
    processor = _load_processor(model_args, data, train_dataset["text"], target)

    from ..data import PretrainingCollator, TranslationCollator
    from .trainers import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer

    if pretraining:
        from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining as model_class
    else:
        from ..modeling_beyondgloss import BeyondGlossForSignTranslation as model_class
    model = _build_model(model_class, model_args, processor, train_dataset)
    collator_class = PretrainingCollator if pretraining else TranslationCollator
    train_collator = collator_class(processor, training=True, max_target_length=data.max_target_length)
    eval_collator = collator_class(processor, training=False, max_target_length=data.max_target_length)
    if eval_dataset is None and args.eval_strategy != "no":
        raise CommandError(f"no evaluation split {data.eval_split!r}; pass --eval_split, or --eval_strategy no "
                           "--load_best_model_at_end false")
    common = dict(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                  data_collator=train_collator, eval_data_collator=eval_collator, processing_class=processor,
                  callbacks=[LogFileCallback()], decay_all_parameters=model_args.decay_all_parameters)
    if pretraining:
        trainer = BeyondGlossPretrainingTrainer(**common)
    else:
        trainer = BeyondGlossTranslationTrainer(**common, compute_metrics=_translation_metrics(processor, data,
                                                                                               train_dataset))

    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    lines = [f"model      {os.path.abspath(args.output_dir)}", f"steps      {trainer.state.global_step}"]
    if trainer.state.best_model_checkpoint:
        lines.append(f"best       {trainer.state.best_model_checkpoint} ({args.metric_for_best_model} = "
                     f"{trainer.state.best_metric:.4f})")
    metrics = {}
    if eval_dataset is not None:
        metrics = trainer.evaluate(eval_dataset, metric_key_prefix="eval")
        trainer.save_metrics("eval", metrics)
        lines.append(f"{data.eval_split}:")
        lines += _score_lines(metrics, _PRETRAINING_SCORES if pretraining else tuple(f"eval_{k}" for k in _TRANSLATION_SCORES))
    if test_split is not None:
        test_metrics = trainer.evaluate(splits[test_split], metric_key_prefix="test")
        trainer.save_metrics("test", test_metrics)
        metrics.update(test_metrics)
        lines.append(f"{test_split}:")
        lines += _score_lines(test_metrics, tuple(f"test_{k}" for k in _TRANSLATION_SCORES))
        lines.append(f"predictions {os.path.abspath(os.path.join(args.output_dir, 'test_predictions.jsonl'))}")
    if args.should_save:
        _summary(f"beyondgloss {stage}: done", lines)
    return metrics


def _translation_metrics(processor, data: DataArguments, dataset):
    from ..metrics import make_compute_metrics

    language = None
    if dataset is not None and "language" in dataset.column_names and len(dataset):
        language = dataset[0]["language"]
    return make_compute_metrics(processor.tokenizer, language=language or processor.target_language,
                                convention=data.scoring_convention)


def pretrain(argv: list) -> int:
    """`beyondgloss pretrain`: stage 1, contrastive pre-training (flags: `beyondgloss pretrain --help`)."""
    return _guarded(_run_training, argv, "pretrain")


def finetune(argv: list) -> int:
    """`beyondgloss finetune`: stage 2, translation fine-tuning, then scoring on the test split."""
    return _guarded(_run_training, argv, "finetune")


def _guarded(function, argv, name):
    try:
        function(list(argv), name)
    except CommandError as error:
        print(f"beyondgloss {name}: error: {error}", file=sys.stderr)
        return 2
    return 0


# `evaluate` trains nothing: no periodic evaluation or checkpoints; results go next to the model unless told.
_EVALUATION_ONLY = {"output_dir": None, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}


def _run_evaluate(argv: list, name: str):
    model_args, data, run, args = _parse(argv, (ModelArguments, DataArguments, RunArguments, Seq2SeqTrainingArguments),
                                         {**TRANSLATION_PRESET, **_EVALUATION_ONLY}, name)
    _setup_logging(args)
    if not model_args.model_name_or_path:
        raise CommandError("--model_name_or_path (a trained model folder) is required")
    split = data.test_split if (data.test_split or "").lower() not in ("", "none") else data.eval_split
    if args.output_dir in (None, "trainer_output"):
        args.output_dir = os.path.join(model_args.model_name_or_path, f"evaluation-{split}")
    held = [p.name for p in Path(args.output_dir).glob(f"{split}_*")] if Path(args.output_dir).is_dir() else []
    if held and not run.overwrite_output_dir:
        raise CommandError(f"{args.output_dir} already holds results of an evaluation on {split!r} ({', '.join(held)}); "
                           "pass --overwrite_output_dir to replace them, or choose another --output_dir")
    splits = _load_dataset(data, args, [(split, data.max_eval_samples)])
    dataset = splits[split]
    from transformers import AutoConfig

    from .trainers import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer

    architecture = (AutoConfig.from_pretrained(model_args.model_name_or_path).architectures or [""])[0]
    target = _target_language(model_args, dataset)
    processor = _load_processor(model_args, data, None, target)
    from ..data import PretrainingCollator, TranslationCollator

    if architecture == PRETRAINING_ARCHITECTURE:
        from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining as model_class

        model = model_class.from_pretrained(model_args.model_name_or_path)
        trainer = BeyondGlossPretrainingTrainer(
            model=model, args=args, data_collator=PretrainingCollator(processor, training=False),
            processing_class=processor)
        keys = tuple(key.replace("eval_", f"{split}_") for key in _PRETRAINING_SCORES)
    else:
        from ..modeling_beyondgloss import BeyondGlossForSignTranslation as model_class

        model = model_class.from_pretrained(model_args.model_name_or_path)
        trainer = BeyondGlossTranslationTrainer(
            model=model, args=args, data_collator=TranslationCollator(processor, training=False),
            processing_class=processor, compute_metrics=_translation_metrics(processor, data, dataset))
        keys = tuple(f"{split}_{k}" for k in _TRANSLATION_SCORES)
    metrics = trainer.evaluate(dataset, metric_key_prefix=split)
    trainer.save_metrics(split, metrics, combined=False)
    if args.should_save:
        lines = [f"model       {os.path.abspath(model_args.model_name_or_path)}", f"split       {split} "
                 f"({len(dataset)} samples)", *_score_lines(metrics, keys),
                 f"results     {os.path.abspath(args.output_dir)}"]
        _summary("beyondgloss evaluate", lines)
    return metrics


def evaluate(argv: list) -> int:
    """`beyondgloss evaluate`: score a model on a dataset split (translation: BLEU/ROUGE/chrF; pre-training: recall)."""
    return _guarded(_run_evaluate, argv, "evaluate")


def _run_translate(argv: list, name: str):
    (options,) = _parse(argv, (TranslateArguments,), None, name)
    if not options.videos:
        raise CommandError("--videos: give at least one video file or frame folder")
    missing = [video for video in options.videos if not Path(video).exists()]
    if missing:
        raise CommandError(f"these videos do not exist: {missing}")
    if options.output_file and Path(options.output_file).exists() and not options.overwrite_output_file:
        raise CommandError(f"--output_file {options.output_file} exists; pass --overwrite_output_file to replace it")
    from tqdm.auto import tqdm

    from ..modeling_beyondgloss import BeyondGlossForSignTranslation
    from ..processing_beyondgloss import BeyondGlossProcessor

    folder = Path(options.model_name_or_path)
    if not (folder / "processor_config.json").is_file():
        raise CommandError(f"{folder} has no saved processor (processor_config.json); translate needs a model folder "
                           "written by `beyondgloss finetune` or saved with its processor")
    processor = BeyondGlossProcessor.from_pretrained(str(folder))
    model = BeyondGlossForSignTranslation.from_pretrained(str(folder)).to(options.device).eval()
    generation = {key: value for key, value in (("num_beams", options.num_beams),
                                                 ("max_new_tokens", options.max_new_tokens)) if value is not None}
    results = []
    batches = range(0, len(options.videos), options.batch_size)
    for start in tqdm(batches, desc="translating", unit="batch", disable=len(batches) < 2):
        videos = options.videos[start:start + options.batch_size]
        inputs = processor(videos=videos, training=False)
        with torch.inference_mode():
            ids = model.generate(pixel_values_videos=inputs["pixel_values_videos"].to(options.device),
                                 video_attention_mask=inputs["video_attention_mask"].to(options.device), **generation)
        for video, text in zip(videos, processor.batch_decode(ids, skip_special_tokens=True)):
            results.append({"video": video, "translation": text.strip()})
            print(f"{video}\t{text.strip()}", flush=True)
    if options.output_file:
        with open(options.output_file, "w", encoding="utf-8") as handle:
            for record in results:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return results


def translate(argv: list) -> int:
    """`beyondgloss translate`: print the translation of each video (tab-separated: video, translation)."""
    return _guarded(_run_translate, argv, "translate")

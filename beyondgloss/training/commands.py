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

Nothing a user wrote is replaced or deleted: a command writes a run only into a new or empty `--output_dir`, or into
one it created before (it marks those with a `.beyondgloss_run` file); `--overwrite_output_dir` replaces only such a
run. Checkpoints, results, predictions and logs are written atomically, so an interrupted run resumes
(`--resume_from_checkpoint last`) from its last complete checkpoint, naming any incomplete one it passes over.
"""

import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from transformers import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..utils.import_utils import require
from ..utils.logging_utils import setup_logging
from .arguments import DataArguments, ModelArguments, RunArguments, TranslateArguments
from .callbacks import LogFileCallback, write_atomically
from .presets import PRETRAINING_PRESET, TRANSLATION_PRESET

__all__ = ["CommandError", "RUN_MARKER", "claim_output_dir", "checkpoint_problem", "last_complete_checkpoint",
           "prepare_output_dir", "open_output_dir", "pretrain", "finetune", "evaluate", "translate"]

logger = logging.getLogger(__name__)

PRETRAINING_ARCHITECTURE = "BeyondGlossForContrastivePretraining"
TRANSLATION_ARCHITECTURE = "BeyondGlossForSignTranslation"
# Written into every output folder a command creates; only such folders are ever resumed into or overwritten.
RUN_MARKER = ".beyondgloss_run"
# The checkpoint folders Trainer writes and resumes from (`transformers.trainer_utils.get_last_checkpoint`'s pattern).
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class CommandError(ValueError):
    """A bad argument or input of a command; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------------------------
# Parsing


def _parse(argv: list, dataclass_types: tuple, preset: dict | None = None, command: str = "beyondgloss",
           description: str | None = None):
    """Parses flags, or a single YAML/JSON file, into the dataclasses; `preset` supplies defaults under both.

    A file's keys become flags and go through the same parser, so that a file and the command line accept the same
    values with the same checks: `"no"` is false in both, and a bad value is an error naming its key and its source
    (never a traceback).
    """
    parser = HfArgumentParser(dataclass_types, prog=f"beyondgloss {command}", description=description)
    parser.set_defaults(**dict(preset or {}))
    source = "argument"
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0])
        if not path.is_file():
            raise CommandError(f"configuration file {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                values = json.loads(text)
            else:
                values = require("yaml", "Reading a YAML configuration").safe_load(text)
        except (UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
            raise CommandError(f"{path} is not a readable {path.suffix[1:].upper()} file: {error}") from error
        except Exception as error:  # yaml.YAMLError, whose module is imported only here
            if type(error).__module__.split(".")[0] != "yaml":
                raise
            raise CommandError(f"{path} is not a readable YAML file: {error}") from error
        if not isinstance(values, dict):
            raise CommandError(f"{path} must hold a mapping of argument names to values, not a {type(values).__name__}")
        source = str(path)
        argv = _values_to_flags(values, parser, dataclass_types, path)

    def fail(message):
        raise CommandError(f"{source}: {message}" if source != "argument" else message)

    parser.error = fail  # argparse would print usage and exit; the command reports it as its other errors
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except (ValueError, TypeError) as error:
        # Raised by the dataclasses' own checks (TrainingArguments.__post_init__, the argument classes here); a JSON
        # error there does not say which flag held the text, so name the flags whose JSON does not parse.
        message = str(error)
        if isinstance(error, json.JSONDecodeError):
            message = f"{_bad_json_flags(argv)}: not valid JSON ({error})"
        fail(message)
    for arguments in parsed:
        if isinstance(arguments, TrainingArguments):
            # Counts TrainingArguments accepts at any value and the Trainer later divides by.
            for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
                value = getattr(arguments, name)
                if value < 1:
                    fail(f"--{name} {value}: must be a positive integer (1 or more)")
    return parsed


def _bad_json_flags(argv: list) -> str:
    flags = []
    for flag, value in zip(argv, argv[1:]):
        if flag.startswith("--") and value.lstrip()[:1] in ("{", "["):
            try:
                json.loads(value)
            except json.JSONDecodeError:
                flags.append(f"{flag} {value}")
    return ", ".join(flags) or "a JSON value"


def _values_to_flags(values: dict, parser, dataclass_types: tuple, path: Path) -> list:
    """The flags that say what a configuration file's mapping says, for the command line's parser."""
    import dataclasses
    import difflib

    names = {field.name for kind in dataclass_types for field in dataclasses.fields(kind) if field.init}
    actions = {action.dest: action for action in parser._actions}
    flags = []
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CommandError(f"{path}: unknown key {key!r}{hint}; the keys are the command's flag names "
                               "(see --help)")
        if value is None:
            if parser.get_default(key) is None:
                continue
            raise CommandError(f"{path}: {key}: null is not a value of this setting; give a value or leave the key out")
        if isinstance(value, list):
            if actions[key].nargs not in ("+", "*"):
                raise CommandError(f"{path}: {key} takes one value, not a list ({value!r})")
            flags += [f"--{key}", *map(_flag_value, value)]
        else:
            flags += [f"--{key}", _flag_value(value)]
    return flags


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


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


def _listing(names: list, limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def claim_output_dir(folder: Path, option: str = "--output_dir") -> bool:
    """Checks that `folder` is absent, empty, or created by beyondgloss; returns whether it already was beyondgloss's.

    A folder that holds anything (files, folders, links, hidden or special entries) and has no `RUN_MARKER` was not
    written by beyondgloss: writing a run into it would replace the user's files of the same names (a `tokenizer.json`,
    an `eval_results.json`), so it is refused, whatever the flags. An absent or empty folder is created and marked.
    """
    if os.path.lexists(folder) and not folder.is_dir():
        kind = ("a link to nothing" if folder.is_symlink() and not folder.exists()
                else "a file" if folder.is_file() else "a special file")
        raise CommandError(f"{option} {folder} is {kind}, not a folder; choose a folder path")
    try:
        entries = sorted(os.listdir(folder)) if folder.is_dir() else []
    except OSError as error:
        raise CommandError(f"{option} {folder} cannot be read ({error}); choose a folder you can write to") from error
    if RUN_MARKER in entries:
        return True
    if entries:
        raise CommandError(
            f"{option} {folder} already holds files that beyondgloss did not write ({_listing(entries)}): it has no "
            f"{RUN_MARKER} file, which beyondgloss puts in every folder it creates. A run would replace files of the "
            f"same names, so beyondgloss writes only into a new or empty folder or one of its own, and "
            f"--overwrite_output_dir does not apply here. Choose another {option}, or move these files away. (A run of "
            f"a beyondgloss version older than this marker: create an empty {RUN_MARKER} file in the folder to claim it.)"
        )
    return False


def _mark_output_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RUN_MARKER).touch()
    except OSError as error:
        raise CommandError(f"cannot create the output folder {folder}: {error}") from error


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What makes `checkpoint` unusable for resuming (a missing or torn file), or None when it is complete.

    The trainers write checkpoints atomically, so a `checkpoint-N` folder is complete by construction; this also
    covers folders written by plain `Trainer` or by an earlier version, which an interruption can leave half-written.
    """
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return "a torn trainer_state.json"
    weights = checkpoint / "model.safetensors"
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, AttributeError, UnicodeDecodeError):
            return "a torn model.safetensors.index.json"
    elif weights.is_file():
        shards = ["model.safetensors"]
    else:
        return "no model.safetensors"
    for shard in shards:
        problem = _safetensors_problem(checkpoint / shard)
        if problem:
            return f"{shard}: {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Checks a safetensors file's header and that its size is what the header says (a torn write is shorter)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length > size - 8:
                return "truncated"
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "not a readable safetensors file"
    return None if size == 8 + length + end else f"{size} bytes where its header needs {8 + length + end}"


def last_complete_checkpoint(folder: Path) -> tuple[str | None, list]:
    """The `checkpoint-N` folder with the highest N that is complete, and `(name, problem)` of those passed over."""
    numbered = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _CHECKPOINT_NAME.match(entry.name)
        if match and entry.is_dir():
            numbered.append((int(match.group(1)), entry))
    skipped = []
    for _, checkpoint in sorted(numbered, key=lambda item: item[0], reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint), skipped
        skipped.append((checkpoint.name, problem))
    return None, skipped


def open_output_dir(args: TrainingArguments, run: RunArguments) -> None:
    """Makes `args.output_dir` ready once `prepare_output_dir` has accepted it and the run is about to start: creates
    and marks a new folder, removes staging folders of interrupted checkpoint saves, and with `--overwrite_output_dir`
    deletes the earlier run's `checkpoint-N` folders (only ever in a folder beyondgloss created)."""
    folder = Path(args.output_dir)
    if not args.should_save:
        return
    if not claim_output_dir(folder):
        _mark_output_dir(folder)
        return
    _remove_staging(folder)
    if run.overwrite_output_dir:
        checkpoints = sorted(p.name for p in folder.iterdir() if _CHECKPOINT_NAME.match(p.name) and p.is_dir())
        for name in checkpoints:
            shutil.rmtree(folder / name)
        logger.warning("--overwrite_output_dir: replacing the earlier run in %s (deleted its checkpoints: %s; its other "
                       "files are replaced as the new run writes them)", folder, ", ".join(checkpoints) or "none")


def _remove_staging(folder: Path) -> None:
    """Deletes the staging folders of checkpoint saves that an interruption left behind (never a finished one)."""
    from .trainers import CHECKPOINT_STAGING_PREFIX

    for entry in folder.glob(f"{CHECKPOINT_STAGING_PREFIX}{PREFIX_CHECKPOINT_DIR}-*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
            logger.info("Removed %s, the staging folder of an interrupted checkpoint save", entry)


def prepare_output_dir(args: TrainingArguments, run: RunArguments, architecture: str) -> str | None:
    """Checks `args.output_dir` before a run writes anything, and resolves `--resume_from_checkpoint`.

    - A new or empty folder is created and marked as beyondgloss's (`RUN_MARKER`).
    - A non-empty folder without the marker is refused, with or without `--overwrite_output_dir`: nothing a user put
      there is ever replaced or deleted (see `claim_output_dir`).
    - A folder of an earlier beyondgloss run is used only to resume that run (`--resume_from_checkpoint last` takes
      the last complete checkpoint and names every incomplete one it passes over), or, with `--overwrite_output_dir`,
      replaced: its `checkpoint-N` folders are deleted so that they cannot mix with the new run's; the new run's files
      replace the earlier run's files of the same names. A folder holding another kind of model is refused unless
      overwritten.

    Returns:
        `str` or `None`: the checkpoint to resume from.
    """
    from .trainers import CHECKPOINT_STAGING_PREFIX

    folder = Path(args.output_dir)
    resume = args.resume_from_checkpoint
    owned = claim_output_dir(folder)
    if not owned:
        if resume:
            raise CommandError(f"--resume_from_checkpoint {resume}: {folder} holds no earlier run to resume; start "
                               "without --resume_from_checkpoint")
        return None
    previous = sorted(name for name in os.listdir(folder)
                      if name != RUN_MARKER and not name.startswith(CHECKPOINT_STAGING_PREFIX))
    if run.overwrite_output_dir:
        if resume:
            raise CommandError("--overwrite_output_dir and --resume_from_checkpoint contradict each other: one replaces "
                               f"the run in {folder}, the other continues it; pass one of them")
        return None
    held = _folder_model(folder)
    if held is not None and held != architecture:
        raise CommandError(
            f"--output_dir {folder} holds {held}, not a {architecture} run; choose another --output_dir, or pass "
            "--overwrite_output_dir to replace it"
        )
    if resume:
        if str(resume).lower() in ("last", "true", "1", "yes"):
            last, skipped = last_complete_checkpoint(folder)
            for name, problem in skipped:
                logger.warning("--resume_from_checkpoint %s: skipping %s, an incomplete checkpoint (%s) left by an "
                               "interrupted save; it is left as it is, and a save of the same step replaces it",
                               resume, folder / name, problem)
            if last is None:
                found = f" (incomplete: {', '.join(name for name, _ in skipped)})" if skipped else ""
                raise CommandError(f"--resume_from_checkpoint {resume}: {folder} has no complete checkpoint-* folder to "
                                   f"resume from{found}; start without --resume_from_checkpoint")
        else:
            if not Path(resume).is_dir():
                raise CommandError(f"--resume_from_checkpoint {resume} is not a checkpoint folder")
            problem = checkpoint_problem(Path(resume))
            if problem:
                raise CommandError(f"--resume_from_checkpoint {resume} is an incomplete checkpoint ({problem}); pass "
                                   "--resume_from_checkpoint last to take the last complete one")
            last = str(resume)
        return last
    if previous:
        raise CommandError(
            f"--output_dir {folder} already holds an earlier run ({_listing(previous)}). Pass "
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
        _require_tokenizer_files(Path(saved))
        processor = _load_saved(BeyondGlossProcessor, Path(saved), "the processor")
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
    video = processor.video_processor
    for name in ("max_frames", "resize_size", "crop_size", "augment"):
        if getattr(data, name) is not None:
            setattr(video, name, getattr(data, name))
    crop, size = video.crop_size, video.resize_size
    if isinstance(crop, int) and isinstance(size, int) and crop > size:
        video.resize_size = crop
    video._validate()
    return processor


def _load_saved(kind, folder: Path, what: str):
    """`kind.from_pretrained(folder)`, with a bad saved file (a config value of the wrong type, a missing or torn
    file) reported as an error naming the folder, not a traceback."""
    try:
        return kind.from_pretrained(str(folder))
    except (OSError, TypeError, ValueError) as error:
        raise CommandError(f"could not load {what} from {folder}: {error}") from error


def _require_tokenizer_files(folder: Path) -> None:
    """Refuses a saved processor whose tokenizer file is missing: the tokenizer would load from `tokenizer_config.json`
    alone with only its special tokens, and every translation would silently come out empty."""
    if not (folder / "tokenizer.json").is_file() and not (folder / "sentencepiece.bpe.model").is_file():
        raise CommandError(
            f"{folder} has a processor_config.json but no tokenizer.json (nor sentencepiece.bpe.model): the tokenizer "
            "of the model's processor is missing, so its vocabulary cannot be read. Copy tokenizer.json and "
            "tokenizer_config.json from the run that trained this model into the folder"
        )


def _check_frame_capacity(config, video_processor, fix: str) -> None:
    """Refuses a `max_frames` whose video sequence is longer than the text encoder's position table.

    The temporal encoder halves the frame sequence (ceil(T / 2) steps), and mBART's learned positions hold
    `text_config.max_position_embeddings` of them; a longer video fails deep inside the encoder with an IndexError.
    """
    positions = config.text_config.max_position_embeddings
    if video_processor.max_frames is not None and video_processor.max_frames > 2 * positions:
        raise CommandError(
            f"max_frames={video_processor.max_frames} is more than the model reads: the video sequence is halved to "
            f"{-(-video_processor.max_frames // 2)} steps, but its text encoder has {positions} positions "
            f"(text_config.max_position_embeddings), so at most {2 * positions} frames; {fix}"
        )


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
            if isinstance(crop, dict):  # a size dict ({"height", "width"} or {"shortest_edge"}) of the processor
                crop = crop.get("height", crop.get("shortest_edge"))
            model = model_class(tiny_config(vocab_size=len(tokenizer), image_size=crop, **overrides))
        else:
            model = model_class.from_backbones(model_args.vision_backbone, model_args.text_backbone,
                                               config_kwargs=overrides)
    except (OSError, TypeError, ValueError) as error:
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
    setup_logging(args.should_log)
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
    _check_frame_capacity(model.config, processor.video_processor,
                          f"pass --max_frames {2 * model.config.text_config.max_position_embeddings} or less")
    collator_class = PretrainingCollator if pretraining else TranslationCollator
    train_collator = collator_class(processor, training=True, max_target_length=data.max_target_length)
    eval_collator = collator_class(processor, training=False, max_target_length=data.max_target_length)
    if eval_dataset is None and args.eval_strategy != "no":
        raise CommandError(f"no evaluation split {data.eval_split!r}; pass --eval_split, or --eval_strategy no "
                           "--load_best_model_at_end false")
    common = dict(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                  data_collator=train_collator, eval_data_collator=eval_collator, processing_class=processor,
                  callbacks=[LogFileCallback()], decay_all_parameters=model_args.decay_all_parameters)
    try:
        if pretraining:
            trainer = BeyondGlossPretrainingTrainer(**common)
        else:
            trainer = BeyondGlossTranslationTrainer(
                **common, compute_metrics=_translation_metrics(processor, data, train_dataset),
                encoder_learning_rate_scale=model_args.encoder_learning_rate_scale)
    except ValueError as error:  # a training setting the Trainer refuses (e.g. an unknown --report_to)
        raise CommandError(f"the Trainer refused the training settings: {error}") from error

    open_output_dir(args, run)
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


def _guarded(function, argv, name) -> int:
    """Runs a command: 2 and the message on stderr for a `CommandError`, else the command's own status (0 by default)."""
    try:
        result = function(list(argv), name)
    except CommandError as error:
        print(f"beyondgloss {name}: error: {error}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# `evaluate` trains nothing: no periodic evaluation or checkpoints; results go next to the model unless told.
_EVALUATION_ONLY = {"output_dir": None, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}


def _run_evaluate(argv: list, name: str):
    model_args, data, run, args = _parse(argv, (ModelArguments, DataArguments, RunArguments, Seq2SeqTrainingArguments),
                                         {**TRANSLATION_PRESET, **_EVALUATION_ONLY}, name)
    setup_logging(args.should_log)
    if not model_args.model_name_or_path:
        raise CommandError("--model_name_or_path (a trained model folder) is required")
    split = data.test_split if (data.test_split or "").lower() not in ("", "none") else data.eval_split
    if args.output_dir in (None, "trainer_output"):
        args.output_dir = os.path.join(model_args.model_name_or_path, f"evaluation-{split}")
    folder = Path(args.output_dir)
    if claim_output_dir(folder):
        held = sorted(p.name for p in folder.glob(f"{split}_*"))
        if held and not run.overwrite_output_dir:
            raise CommandError(f"{folder} already holds results of an evaluation on {split!r} ({', '.join(held)}); "
                               "pass --overwrite_output_dir to replace them, or choose another --output_dir")

    splits = _load_dataset(data, args, [(split, data.max_eval_samples)])
    dataset = splits[split]
    from transformers import AutoConfig

    from .trainers import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer

    architecture = (_load_saved(AutoConfig, Path(model_args.model_name_or_path), "the model's config").architectures
                    or [""])[0]
    target = _target_language(model_args, dataset)
    processor = _load_processor(model_args, data, None, target)
    from ..data import PretrainingCollator, TranslationCollator

    if architecture == PRETRAINING_ARCHITECTURE:
        from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining as model_class

        model = model_class.from_pretrained(model_args.model_name_or_path)
        _check_frame_capacity(model.config, processor.video_processor, "pass a smaller --max_frames")
        trainer = BeyondGlossPretrainingTrainer(
            model=model, args=args, data_collator=PretrainingCollator(processor, training=False),
            processing_class=processor)
        keys = tuple(key.replace("eval_", f"{split}_") for key in _PRETRAINING_SCORES)
    else:
        from ..modeling_beyondgloss import BeyondGlossForSignTranslation as model_class

        model = model_class.from_pretrained(model_args.model_name_or_path)
        _check_frame_capacity(model.config, processor.video_processor, "pass a smaller --max_frames")
        trainer = BeyondGlossTranslationTrainer(
            model=model, args=args, data_collator=TranslationCollator(processor, training=False),
            processing_class=processor, compute_metrics=_translation_metrics(processor, data, dataset))
        keys = tuple(f"{split}_{k}" for k in _TRANSLATION_SCORES)
    if args.should_save and not claim_output_dir(folder):
        _mark_output_dir(folder)
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


def _run_translate(argv: list, name: str) -> int:
    (options,) = _parse(argv, (TranslateArguments,), None, name, description=TranslateArguments.__doc__)
    if not options.videos:
        raise CommandError("--videos: give at least one video file or frame folder")
    missing = [video for video in options.videos if not Path(video).exists()]
    if missing:
        raise CommandError(f"these videos do not exist: {missing}")
    if options.output_file:
        target = Path(options.output_file)
        if target.is_dir():
            raise CommandError(f"--output_file {target} is a folder; give a file path")
        if target.exists() and not options.overwrite_output_file:
            raise CommandError(f"--output_file {target} exists; pass --overwrite_output_file to replace it")
    from tqdm.auto import tqdm

    from ..modeling_beyondgloss import BeyondGlossForSignTranslation
    from ..processing_beyondgloss import BeyondGlossProcessor

    folder = Path(options.model_name_or_path)
    if not (folder / "processor_config.json").is_file():
        raise CommandError(f"{folder} has no saved processor (processor_config.json); translate needs a model folder "
                           "written by `beyondgloss finetune` or saved with its processor")
    _require_tokenizer_files(folder)
    model = _load_saved(BeyondGlossForSignTranslation, folder, "the model").to(options.device).eval()
    processor = _load_saved(BeyondGlossProcessor, folder, "the processor")
    _check_frame_capacity(model.config, processor.video_processor,
                          f"lower max_frames in {folder / 'processor_config.json'}")
    positions = model.config.text_config.max_position_embeddings
    if options.max_new_tokens is not None and options.max_new_tokens >= positions:
        raise CommandError(f"--max_new_tokens {options.max_new_tokens}: the model's decoder has {positions} positions "
                           f"(the start token included); use at most {positions - 1}")
    generation = {key: value for key, value in (("num_beams", options.num_beams),
                                                 ("max_new_tokens", options.max_new_tokens)) if value is not None}
    results, failures = [], []
    batches = range(0, len(options.videos), options.batch_size)
    for start in tqdm(batches, desc="translating", unit="batch", disable=len(batches) < 2):
        videos, inputs = _readable_batch(processor, options.videos[start:start + options.batch_size], failures)
        if not videos:
            continue
        with torch.inference_mode():
            ids = model.generate(pixel_values_videos=inputs["pixel_values_videos"].to(options.device),
                                 video_attention_mask=inputs["video_attention_mask"].to(options.device), **generation)
        for video, text in zip(videos, processor.batch_decode(ids, skip_special_tokens=True)):
            results.append({"video": video, "translation": text.strip()})
            print(f"{video}\t{text.strip()}", flush=True)
    if options.output_file:
        write_atomically(options.output_file,
                         "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in results))
    for video, reason in failures:
        print(f"beyondgloss {name}: error: {video}: {reason}", file=sys.stderr)
    if failures:
        written = f"; the other {len(results)} are in {options.output_file}" if options.output_file else ""
        print(f"beyondgloss {name}: {len(failures)} of {len(options.videos)} videos could not be translated{written}",
              file=sys.stderr)
        return 1
    return 0


def _readable_batch(processor, videos: list, failures: list) -> tuple:
    """Processes a batch of videos; a video that cannot be read goes to `failures` as (path, reason), not the batch.

    Returns `(videos kept, processor output)`. The batch is read whole first; only when that fails is each video read
    alone to find the bad ones, so a good batch is decoded once.
    """
    try:
        return videos, processor(videos=videos, training=False)
    except Exception:  # noqa: BLE001 - which video failed, and why, is found below and reported per video
        pass
    kept = []
    for video in videos:
        try:
            processor(videos=[video], training=False)
        except Exception as error:  # noqa: BLE001 - any reader error is this input's, reported with its path
            failures.append((video, f"{type(error).__name__}: {error}"))
        else:
            kept.append(video)
    return kept, (processor(videos=kept, training=False) if kept else None)


def translate(argv: list) -> int:
    """`beyondgloss translate`: print the translation of each video (tab-separated: video, translation).

    Exit status: 0 when every video was translated; 1 when some could not be read (each is named on stderr with the
    reason; the others are printed and written to `--output_file`); 2 for a bad argument (nothing translated).
    """
    return _guarded(_run_translate, argv, "translate")

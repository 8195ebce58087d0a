"""Argument dataclasses of the `beyondgloss` training commands, for `transformers.HfArgumentParser`.

Every command takes these next to `TrainingArguments` (pre-training) or `Seq2SeqTrainingArguments` (translation),
from flags or from one YAML/JSON file whose keys are the same names:

```
beyondgloss pretrain --dataset phoenix14t --data_dir PHOENIX-2014-T --text_backbone mbart-trimmed \
    --vision_backbone facebook/dinov2-small --output_dir runs/pretrain
beyondgloss finetune config.yaml
```
"""

import logging
import math
from dataclasses import dataclass, field

__all__ = ["ModelArguments", "DataArguments", "RunArguments", "TranslateArguments", "DEPRECATED_FLAGS", "VALUE_RANGES",
           "check_device", "check_values"]

logger = logging.getLogger(__name__)


def _count(low: int):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    def check(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)

    return check


_POSITIVE, _POSITIVE_TEXT = _count(1), "a positive integer (1 or more)"
_NON_NEGATIVE, _NON_NEGATIVE_TEXT = _count(0), "an integer, 0 or more"
_RATE, _RATE_TEXT = _number(0, low_open=True), "a positive, finite number"
_WEIGHT, _WEIGHT_TEXT = _number(0), "a finite number, 0 or more"
_FRACTION, _FRACTION_TEXT = _number(0, 1, high_open=True), "a number in [0, 1)"

# Every count, size, rate and weight a command reads, by flag name, with the range it must lie in: one table for
# the dataclasses of this module, TrainingArguments and the other commands' dataclasses (the command line checks
# every parsed dataclass against it, see `beyondgloss.cli._arguments`). A name means the same thing wherever it
# appears (`batch_size` of `demo` and `translate`, `learning_rate` of `demo` and the Trainer). None is "not set".
VALUE_RANGES = {
    **dict.fromkeys((
        # beyondgloss's own
        "tokenizer_vocab_size", "max_train_samples", "max_eval_samples", "num_frames", "size", "max_frames",
        "resize_size", "crop_size", "max_target_length", "num_beams", "max_new_tokens", "batch_size",
        # the demo's
        "num_train", "num_validation", "num_test", "translation_steps",
        # TrainingArguments / Seq2SeqTrainingArguments: counts they accept at any value and later divide by or loop on
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "eval_accumulation_steps", "generation_num_beams", "generation_max_length", "save_total_limit",
    ), (_POSITIVE, _POSITIVE_TEXT)),
    **dict.fromkeys(("pretraining_steps", "pipeline_examples", "threads", "dataloader_num_workers"),
                    (_NON_NEGATIVE, _NON_NEGATIVE_TEXT)),
    **dict.fromkeys(("learning_rate", "encoder_learning_rate_scale", "encoder_lr_scale", "adam_epsilon"),
                    (_RATE, _RATE_TEXT)),
    **dict.fromkeys(("weight_decay", "max_grad_norm", "translation_hand_loss", "warmup_steps"),
                    (_WEIGHT, _WEIGHT_TEXT)),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "label_smoothing_factor"), (_FRACTION, _FRACTION_TEXT)),
    "max_steps": (lambda value: value == -1 or _POSITIVE(value), "-1 (train for --num_train_epochs) or a positive "
                                                                 "integer"),
    "num_train_epochs": (_number(0, low_open=True), "a positive, finite number"),
    "warmup_ratio": (_number(0, 1), "a number in [0, 1]"),
    "seed": (lambda value: _NON_NEGATIVE(value) and value < 2**32, "an integer in [0, 2**32)"),
    "bar": (_number(0, 100), "a BLEU-4 score in [0, 100]"),
    # The Trainer reads a float below 1 as a fraction of the training steps; 0 logs/saves never, and divides by it.
    **dict.fromkeys(("logging_steps", "eval_steps", "save_steps"), (_number(0, low_open=True), "a positive number "
                                                                    "(a float below 1: a fraction of the steps)")),
}


def check_values(arguments) -> None:
    """Raises `ValueError` naming the flag, its value and the valid range for the first value of `arguments` (an
    argument dataclass) outside its range in [`VALUE_RANGES`], or a `device` this machine does not have.

    `HfArgumentParser` runs the `__post_init__` that calls this for flags and configuration files alike.
    """
    for name, (valid, text) in VALUE_RANGES.items():
        value = getattr(arguments, name, None)
        if value is not None and not valid(value):
            raise ValueError(f"--{name} {value!r}: must be {text}")
    device = getattr(arguments, "device", None)
    if isinstance(device, str):
        check_device(device)


def check_device(device: str) -> None:
    """Raises `ValueError` for a torch device that is not one (`banana`) or that this machine lacks (`cuda:1` with
    one GPU, `cuda` on a machine without CUDA), naming `--device` and the devices it has."""
    import torch

    available = ["cpu", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        available.append("mps")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r}: not a torch device; this machine has {available}") from None
    backend = getattr(torch, parsed.type, None) if parsed.type != "cpu" else None
    if parsed.type == "mps":
        present = torch.backends.mps.is_available() and parsed.index in (None, 0)
    elif parsed.type == "cpu":
        present = True
    else:
        count = backend.device_count() if hasattr(backend, "device_count") else 0
        present = count > 0 and (parsed.index or 0) < count
    if not present:
        raise ValueError(f"--device {device!r}: this machine has no such device; it has {available}")


# The earlier flag names of the video settings -> the video processor's names (docs/validation.md).
DEPRECATED_FLAGS = {"resize_size": "size"}
TRUST_REMOTE_CODE_HELP = (
    "Allow a model or processor folder whose config has an `auto_map` naming code outside beyondgloss (that code "
    "would run on this machine); without it such a folder is refused.")
ALLOW_MISSING_WEIGHTS_HELP = (
    "Use a model whose checkpoint lacks some of its weights (they stay randomly initialised); without it such a "
    "model is refused.")
ALLOW_UNTRAINED_DECODER_HELP = (
    "Translate with a model whose decoder was never trained for translation (a pre-training checkpoint, or a folder "
    "without generation_config.json); without it such a model is refused, since it writes garbage.")


@dataclass
class ModelArguments:
    """Where the model and its processor come from (exactly one model source)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved BeyondGloss model (folder or hub id). `finetune` also starts from a pre-training "
                          "checkpoint: the sign video encoder and the image-side mBART carry over."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "A BeyondGlossConfig JSON file (or folder): a new model with random weights."}
    )
    tiny: bool = field(default=False, metadata={"help": "A tiny random model (tests, quick checks)."})
    vision_backbone: str | None = field(
        default=None, metadata={"help": "DINOv2 checkpoint for a new model (with --text_backbone), e.g. facebook/dinov2-small."}
    )
    text_backbone: str | None = field(
        default=None,
        metadata={"help": "mBART checkpoint for a new model (with --vision_backbone), e.g. a vocabulary-trimmed "
                          "mBART-large-cc25 from `beyondgloss trim-mbart`; its tokenizer is used unless "
                          "--processor_name_or_path or --tokenizer_name says otherwise."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated config settings, e.g. 'hand_loss_weight=0.3,num_beams=4,reference_compat=true'."},
    )
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved BeyondGlossProcessor (video processor + tokenizer); default: the model's."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "An mBART tokenizer folder; default: the text backbone's, else one trained on "
                                        "the training sentences."}
    )
    tokenizer_vocab_size: int = field(
        default=8000, metadata={"help": "Largest vocabulary of a tokenizer trained on the training sentences."}
    )
    target_language: str | None = field(
        default=None, metadata={"help": "mBART language code of the target sentences (de_DE, zh_CN, en_XX); default: "
                                        "from the dataset's `language` column."}
    )
    gather_negatives: bool = field(
        default=False,
        metadata={"help": "Pre-training: all-gather video and text embeddings over processes so each step sees "
                          "world_size x batch negatives (gradient flows through the local part)."},
    )
    decay_all_parameters: bool = field(
        default=True,
        metadata={"help": "Weight decay on every trainable parameter, as the reference (false: HF's exclusion of "
                          "biases and norm weights)."},
    )
    encoder_learning_rate_scale: float = field(
        default=1.0,
        metadata={"help": "finetune: learning-rate multiplier for what pre-training trained and translation inherits "
                          "(the sign video encoder and the mBART encoder); the decoder keeps --learning_rate. 1.0 is "
                          "the paper's; the demo uses 0.1 (README, demo section)."},
    )

    trust_remote_code: bool = field(default=False, metadata={"help": TRUST_REMOTE_CODE_HELP})
    allow_missing_weights: bool = field(default=False, metadata={"help": ALLOW_MISSING_WEIGHTS_HELP})
    allow_untrained_decoder: bool = field(default=False, metadata={"help": ALLOW_UNTRAINED_DECODER_HELP})

    def __post_init__(self):
        check_values(self)


@dataclass
class DataArguments:
    """The dataset, its splits and how videos are turned into pixels."""

    dataset: str | None = field(
        default=None,
        metadata={"help": "phoenix14t, csl_daily, synthsign, sign_video_folder, or a folder with metadata.jsonl."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "The dataset's folder."})
    cache_dir: str | None = field(default=None, metadata={"help": "The datasets cache folder."})
    dataset_options: str | None = field(
        default=None,
        metadata={"help": "JSON object of builder options, e.g. '{\"num_train\": 3000}' for synthsign or "
                          "'{\"reference_labels\": true}' for phoenix14t."},
    )
    hand_features: str | None = field(default=None, metadata={"help": "Hand-feature store folder (per-frame targets)."})
    descriptions: str | None = field(default=None, metadata={"help": "Description-embedding store folder."})
    skip_bad_samples: bool = field(default=False, metadata={"help": "Leave out unreadable samples with a warning."})
    train_split: str = field(default="train", metadata={"help": "Training split."})
    eval_split: str = field(default="validation", metadata={"help": "Split evaluated during training (dev)."})
    test_split: str | None = field(
        default="test", metadata={"help": "Split scored after training (`finetune`) or by `evaluate`; 'none' to skip."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training samples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N samples of eval/test."})
    max_frames: int | None = field(
        default=None, metadata={"help": "Most frames kept per video; longer videos are subsampled uniformly (the video "
                                        "processor's max_frames, 300 by default)."}
    )
    num_frames: int | None = field(
        default=None, metadata={"help": "Exactly this many frames sampled uniformly from each video, as transformers' "
                                        "video processors do; a shorter video is an error (the video processor's "
                                        "num_frames). Use --max_frames to keep at most that many."}
    )
    size: int | None = field(
        default=None, metadata={"help": "Frames are resized to size x size pixels before cropping (the video "
                                        "processor's size)."}
    )
    crop_size: int | None = field(
        default=None, metadata={"help": "Frame crop, the model's input size in pixels (the video processor's "
                                        "crop_size); at most --size."}
    )
    resize_size: int | None = field(default=None, metadata={"help": "Deprecated: the earlier name of --size."})
    augment: bool | None = field(default=None, metadata={"help": "Training-time video augmentation on/off."})
    max_target_length: int = field(default=128, metadata={"help": "Longest target sentence in tokens."})
    scoring_convention: str | None = field(
        default=None,
        metadata={"help": "BLEU convention: plain, phoenix or slrt (default: by language; see docs/metrics.md)."},
    )

    def __post_init__(self):
        check_values(self)
        for old, new in DEPRECATED_FLAGS.items():
            if getattr(self, old) is None:
                continue
            if getattr(self, new) is not None:
                raise ValueError(f"--{old} {getattr(self, old)} and --{new} {getattr(self, new)}: --{old} is the "
                                 f"earlier name of --{new}; pass only --{new}")
            logger.warning("--%s is deprecated; use --%s (the video processor's name)", old, new)
            setattr(self, new, getattr(self, old))
            setattr(self, old, None)
        if self.size is not None and self.crop_size is not None and self.crop_size > self.size:
            raise ValueError(f"--crop_size {self.crop_size}: must be at most --size {self.size} (frames are resized, "
                             "then cropped)")

    def video_settings(self) -> dict:
        """The video processor settings these flags set (`max_frames`, `num_frames`, `size`, `crop_size`, `augment`)."""
        return {name: getattr(self, name) for name in ("max_frames", "num_frames", "size", "crop_size", "augment")
                if getattr(self, name) is not None}


@dataclass
class RunArguments:
    """How the run treats its output folder."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the earlier beyondgloss run in --output_dir (its checkpoint-N folders are deleted). "
                          "Only a folder beyondgloss created (it holds a .beyondgloss_run file) is ever replaced; "
                          "a non-empty folder without it is refused."},
    )
    reset_optimizer: bool = field(
        default=False,
        metadata={"help": "Resume from a checkpoint whose optimizer state (optimizer.pt, scheduler.pt) is missing or "
                          "torn, with a fresh optimizer; without it such a resume stops."},
    )


@dataclass
class TranslateArguments:
    """`beyondgloss translate`: videos in, sentences out.

    A video that cannot be read is reported on stderr (its path and the reason) and left out; the others are still
    translated and written, and the command then exits with status 1. Status 2: a bad argument, nothing translated.
    """

    model_name_or_path: str = field(metadata={"help": "A saved translation model folder (with its processor)."})
    videos: list[str] = field(
        default_factory=list, metadata={"help": "Video files or frame folders to translate."}
    )
    num_beams: int | None = field(default=None, metadata={"help": "Beam width (default: the model's, 5)."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Longest translation (default: the model's)."})
    batch_size: int = field(default=4, metadata={"help": "Videos translated at once."})
    output_file: str | None = field(default=None, metadata={"help": "Also write the translations to this JSON-lines file."})
    overwrite_output_file: bool = field(default=False, metadata={"help": "Replace an existing --output_file."})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda:0."})
    inference_precision: str = field(default="auto", metadata={
        "help": "fp32, bf16, int8 (mBART's GEMMs; CPU), or auto: what this machine runs fastest while the quality "
                "guard holds (model.set_inference_precision).", "choices": ["fp32", "bf16", "int8", "auto"]})

    trust_remote_code: bool = field(default=False, metadata={"help": TRUST_REMOTE_CODE_HELP})
    allow_missing_weights: bool = field(default=False, metadata={"help": ALLOW_MISSING_WEIGHTS_HELP})
    allow_untrained_decoder: bool = field(default=False, metadata={"help": ALLOW_UNTRAINED_DECODER_HELP})

    def __post_init__(self):
        check_values(self)

"""Argument dataclasses of the `beyondgloss` training commands, for `transformers.HfArgumentParser`.

Every command takes these next to `TrainingArguments` (pre-training) or `Seq2SeqTrainingArguments` (translation),
from flags or from one YAML/JSON file whose keys are the same names:

```
beyondgloss pretrain --dataset phoenix14t --data_dir PHOENIX-2014-T --text_backbone mbart-trimmed \
    --vision_backbone facebook/dinov2-small --output_dir runs/pretrain
beyondgloss finetune config.yaml
```
"""

from dataclasses import dataclass, field

__all__ = ["ModelArguments", "DataArguments", "RunArguments", "TranslateArguments"]


def _require_positive(arguments, names: tuple, allow_none: bool = True) -> None:
    """Raises `ValueError` naming the flag, its value and the fix when a count or size is not a positive integer.

    Called by each dataclass's `__post_init__`, which `HfArgumentParser` runs for flags and configuration files alike.
    """
    for name in names:
        value = getattr(arguments, name)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name} {value!r}: must be a positive integer (1 or more)")


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

    def __post_init__(self):
        _require_positive(self, ("tokenizer_vocab_size",))
        if not self.encoder_learning_rate_scale > 0:
            raise ValueError(f"--encoder_learning_rate_scale {self.encoder_learning_rate_scale!r}: must be a positive "
                             "number (1.0 trains both sides at --learning_rate)")


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
    max_frames: int | None = field(default=None, metadata={"help": "Frames kept per video (video processor)."})
    resize_size: int | None = field(default=None, metadata={"help": "Frame resize before cropping (pixels)."})
    crop_size: int | None = field(default=None, metadata={"help": "Frame crop, the model's input size (pixels)."})
    augment: bool | None = field(default=None, metadata={"help": "Training-time video augmentation on/off."})
    max_target_length: int = field(default=128, metadata={"help": "Longest target sentence in tokens."})
    scoring_convention: str | None = field(
        default=None,
        metadata={"help": "BLEU convention: plain, phoenix or slrt (default: by language; see docs/metrics.md)."},
    )

    def __post_init__(self):
        _require_positive(self, ("max_train_samples", "max_eval_samples", "max_frames", "resize_size", "crop_size",
                                 "max_target_length"))


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

    def __post_init__(self):
        _require_positive(self, ("num_beams", "max_new_tokens", "batch_size"))

"""`beyondgloss preprocess`: decode a corpus once into a sharded dataset of uint8 frames that training reads.

```
beyondgloss preprocess --dataset phoenix14t --data_dir PHOENIX-2014-T --output_dir prepared/phoenix14t \
    --hand_features features/hands --descriptions features/descriptions
beyondgloss pretrain --dataset preprocessed --data_dir prepared/phoenix14t --vision_backbone ... --output_dir runs/pt
```

The frames are the ones the training's video processor would decode: the same `--max_frames` / `--resize_size` /
`--crop_size` flags as `pretrain` and `finetune` (or `--processor_name_or_path` of a saved model or processor).
Run the same command again after an interruption: finished shards are kept. Exit codes: `beyondgloss.cli`.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.logging_utils import setup_logging
from ._arguments import parse_arguments
from ._common import CommandError, UsageError, run_command

__all__ = ["PreprocessArguments", "preprocess"]


@dataclass
class PreprocessArguments:
    """The corpus (as `pretrain` takes it), the video processor whose decoding is stored, and the output."""

    output_dir: str = field(metadata={"help": "Where the preprocessed dataset goes (a subfolder per corpus and "
                                              "decoding settings; several live side by side)."})
    dataset: str = field(metadata={"help": "phoenix14t, csl_daily, synthsign, sign_video_folder, or a folder with "
                                           "metadata.jsonl."})
    data_dir: str | None = field(default=None, metadata={"help": "The dataset's folder."})
    cache_dir: str | None = field(default=None, metadata={"help": "The datasets cache folder."})
    dataset_options: str | None = field(default=None, metadata={"help": "JSON object of builder options."})
    hand_features: str | None = field(default=None, metadata={"help": "Hand-feature store folder."})
    descriptions: str | None = field(default=None, metadata={"help": "Description-embedding store folder."})
    skip_bad_samples: bool = field(default=False, metadata={"help": "Leave out unreadable samples with a warning."})
    splits: list[str] = field(default_factory=list, metadata={"help": "Splits to prepare (default: all)."})
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model or processor folder whose video processor decides the frames "
                                        "(default: the training commands' default processor)."})
    max_frames: int | None = field(default=None, metadata={"help": "Frames kept per video (as pretrain's flag)."})
    resize_size: int | None = field(default=None, metadata={"help": "Frame resize in pixels (as pretrain's flag)."})
    crop_size: int | None = field(default=None, metadata={
        "help": "As pretrain's flag; it matters here only when it is larger than the resize, which it then raises."})
    shard_size: int = field(default=256, metadata={"help": "Samples per shard (the unit of resumption)."})
    max_buffer_mb: int = field(default=64, metadata={"help": "Frames held in memory before they are written (MB)."})

    def __post_init__(self):
        for name in ("max_frames", "resize_size", "crop_size", "shard_size", "max_buffer_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name} {value!r}: must be a positive integer (1 or more)")


def preprocess(argv: list) -> int:
    """`beyondgloss preprocess` (flags: `beyondgloss preprocess --help`)."""
    return run_command("preprocess", _preprocess, argv)


def video_processor_for(arguments: PreprocessArguments):
    """The video processor the training commands would build with the same flags (`cli._loading.load_processor`)."""
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor

    if arguments.processor_name_or_path:
        folder = Path(arguments.processor_name_or_path)
        if not any((folder / name).is_file() for name in ("processor_config.json", "video_preprocessor_config.json")):
            raise CommandError(f"--processor_name_or_path {folder}: no processor_config.json or "
                               "video_preprocessor_config.json there; give a saved beyondgloss model or processor")
        try:
            video = BeyondGlossVideoProcessor.from_pretrained(str(folder))
        except (OSError, TypeError, ValueError) as error:
            raise CommandError(f"could not load the video processor from {folder}: {error}") from error
    else:
        video = BeyondGlossVideoProcessor()
    for name in ("max_frames", "resize_size", "crop_size"):
        if getattr(arguments, name) is not None:
            setattr(video, name, getattr(arguments, name))
    crop, size = video.crop_size, video.resize_size
    if isinstance(crop, int) and isinstance(size, int) and crop > size:
        video.resize_size = crop
    video._validate()
    return video


def _preprocess(argv: list) -> dict:
    (arguments,) = parse_arguments(argv, (PreprocessArguments,), command="preprocess",
                                   description=__doc__.split("\n\n")[0])
    setup_logging(True)
    from ..data.preprocess import preprocess_sign_dataset

    try:
        options = json.loads(arguments.dataset_options) if arguments.dataset_options else {}
    except json.JSONDecodeError as error:
        raise UsageError(f"--dataset_options is not a JSON object: {error}") from error
    if not isinstance(options, dict):
        raise UsageError(f"--dataset_options must be a JSON object, not {arguments.dataset_options}")
    video_processor = video_processor_for(arguments)
    try:
        folder = preprocess_sign_dataset(
            arguments.dataset, arguments.output_dir, video_processor, data_dir=arguments.data_dir,
            cache_dir=arguments.cache_dir, hand_features=arguments.hand_features,
            descriptions=arguments.descriptions, skip_bad_samples=arguments.skip_bad_samples,
            splits=arguments.splits or None, shard_size=arguments.shard_size,
            max_buffer_bytes=arguments.max_buffer_mb * 2**20, **options)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise CommandError(f"could not preprocess {arguments.dataset!r}: {error}") from error
    print(f"beyondgloss preprocess: done\n  dataset  {os.path.abspath(folder)}\n  train with  --dataset preprocessed "
          f"--data_dir {os.path.abspath(folder)}", flush=True)
    return {"folder": str(folder)}

"""`beyondgloss describe`, `beyondgloss encode-descriptions` and `beyondgloss import-hands`: the two hand-centric
teachers of the pre-training (descriptions, HaMeR hand features) into feature stores.

Exit codes: `beyondgloss.cli`. The commands work through many videos or files: the good ones are done, each bad one
is named on stderr, and the status is then 1.
"""

import argparse
import logging
from pathlib import Path

from ..utils.logging_utils import setup_logging
from ._common import CommandError, UsageError, accept_dashed_spellings, command_parser, run_command

__all__ = ["describe", "encode_descriptions", "import_hands"]

logger = logging.getLogger(__name__)

_DESCRIBE = (
    "Write a hand-motion description of each video: 16-frame segments tiled into grid images are described by a "
    "vision-language model, and the segment texts are merged into one sentence by a chat model or an "
    "OpenAI-compatible endpoint. One JSON per video ({chunk_0, ..., refined}); videos with a JSON are skipped, so an "
    "interrupted run is resumed by running it again."
)
_ENCODE = (
    "Encode the refined descriptions written by `beyondgloss describe` into the description feature store that "
    "pre-training reads (one (hidden_size,) float32 vector per sample, mean over the encoder's real tokens; the "
    "reference uses mBART-large-50, 1024-d)."
)
_IMPORT_HANDS = (
    "Import the reference's HaMeR hand features ({root}/{split}/{video_id}/{video_id}.lzma, a dict with 'features' "
    "(T, 288)) into a feature store, with a per-frame hand-presence mask (all-zero rows: no hand detected). The "
    "pickles are read with a restricted unpickler that accepts plain data only. Layout: docs/hand_features.md."
)


def describe(argv: list) -> int:
    """`beyondgloss describe (INPUT... | --dataset NAME) --output_dir DIR --vlm MODEL (--refiner MODEL | ...)`."""
    return run_command("describe", _describe, argv)


def encode_descriptions(argv: list) -> int:
    """`beyondgloss encode-descriptions DESCRIPTIONS_DIR --model MODEL --store STORE_DIR`."""
    return run_command("encode-descriptions", _encode_descriptions, argv)


def import_hands(argv: list) -> int:
    """`beyondgloss import-hands HAMER_ROOT --store STORE_DIR`."""
    return run_command("import-hands", _import_hands, argv)


# --------------------------------------------------------------------------------------------------------------
# Parsers


def _add_model_loading(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device_map", default=None,
        help="where models go (accelerate device map: 'cpu', 'cuda:0', 'auto'); default: every GPU if any, else cpu",
    )
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                        help="weight dtype; 'auto' keeps the checkpoint's")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow checkpoints' own modeling code")
    parser.add_argument("--no_progress", action="store_true", help="hide progress bars")


def _describe_parser() -> argparse.ArgumentParser:
    parser = command_parser("describe", _DESCRIBE)
    parser.add_argument("inputs", nargs="*",
                        help="video files, frame folders, or folders holding video files and frame folders")
    parser.add_argument("--dataset", help=(
        "describe a sign dataset instead (phoenix14t, csl_daily, sign_video_folder, or a folder with metadata.jsonl); "
        "files are named by sample id, e.g. {output_dir}/train/{video}.json"))
    parser.add_argument("--data_dir", help="the dataset's folder (with --dataset)")
    parser.add_argument("--splits", nargs="+", help="dataset splits to describe (default: all)")
    parser.add_argument("--cache_dir", help="the datasets cache for --dataset (default: the Hugging Face one)")
    parser.add_argument("--output_dir", required=True, help="folder of the per-video JSON files")
    parser.add_argument("--vlm", required=True, help="image-text-to-text model (hub id or folder)")
    refine = parser.add_mutually_exclusive_group(required=True)
    refine.add_argument("--refiner", help="local chat model for merging (AutoModelForCausalLM, hub id or folder)")
    refine.add_argument("--refine_endpoint",
                        help="OpenAI-compatible API base for merging instead, e.g. http://localhost:8000/v1")
    parser.add_argument("--refine_endpoint_model", help="model name the endpoint expects (with --refine_endpoint)")
    parser.add_argument("--api_key_env", default="OPENAI_API_KEY",
                        help="environment variable holding the endpoint's API key (unset: no key is sent)")
    parser.add_argument("--max_retries", type=int, default=3, help="endpoint retries before a video is marked failed")
    parser.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds (doubles each time)")
    parser.add_argument("--batch_size", type=int, default=4, help="segments per vision-language generate call")
    parser.add_argument("--max_new_tokens", type=int, default=512, help="longest segment description, in tokens")
    parser.add_argument("--refine_max_new_tokens", type=int, default=256, help="longest merged sentence (local model)")
    parser.add_argument("--segment_length", type=int, default=16, help="frames per segment")
    parser.add_argument("--max_side", type=int, default=1920, help="longest side of a grid image, in pixels")
    parser.add_argument("--prompt_file", help="text file replacing the built-in segment prompt")
    parser.add_argument("--refine_prompt_file", help="text file replacing the merge prompt (needs a {paragraph} field)")
    _add_model_loading(parser)
    return accept_dashed_spellings(parser)


def _encode_parser() -> argparse.ArgumentParser:
    parser = command_parser("encode-descriptions", _ENCODE)
    parser.add_argument("descriptions",
                        help="folder written by `beyondgloss describe`; a file's path below it, without .json, is its "
                             "sample id")
    parser.add_argument("--model", required=True, help="text encoder (AutoModel; encoder-decoders use their encoder)")
    parser.add_argument("--store", required=True, help="feature store folder to write")
    parser.add_argument("--id_prefix", default="", help=(
        "prefix giving the dataset's sample id, e.g. 'train/' for a folder of one split's videos when the dataset's "
        "ids are {split}/{video_id} (descriptions made with --dataset already carry the ids)"))
    parser.add_argument("--text_key", default="refined", help="which JSON field to encode")
    parser.add_argument("--src_lang", help="language code for tokenizers that take one (mBART-50: en_XX)")
    parser.add_argument("--batch_size", type=int, default=16, help="sentences per forward pass")
    parser.add_argument("--max_length", type=int, default=256, help="longer descriptions are truncated (tokens)")
    parser.add_argument("--overwrite", action="store_true", help="re-encode samples already in the store")
    _add_model_loading(parser)
    return accept_dashed_spellings(parser)


def _import_hands_parser() -> argparse.ArgumentParser:
    from ..data.hands import HAND_FEATURE_DIM, ID_FORMATS

    parser = command_parser("import-hands", _IMPORT_HANDS)
    parser.add_argument("root", help="the reference's hamer_path folder")
    parser.add_argument("--store", required=True, help="feature store folder to write")
    parser.add_argument("--splits", nargs="+", help="split folders to import (default: all)")
    parser.add_argument("--id_format", default="split/video", choices=sorted(ID_FORMATS),
                        help="sample ids: 'split/video' = {split}/{video_id} (default), 'video' = {video_id}")
    parser.add_argument("--feature_dim", type=int, default=HAND_FEATURE_DIM, help="expected row width")
    parser.add_argument("--overwrite", action="store_true", help="replace samples already in the store")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return accept_dashed_spellings(parser)


# --------------------------------------------------------------------------------------------------------------
# Commands


def _describe(argv: list) -> int:
    from ..descriptor.runs import describe_videos, find_videos, finished_videos

    args = _describe_parser().parse_args(argv)
    setup_logging()
    if args.refine_endpoint and not args.refine_endpoint_model:
        raise UsageError("--refine_endpoint needs --refine_endpoint_model (the model name the server expects)")
    for name in ("batch_size", "max_new_tokens", "refine_max_new_tokens", "segment_length", "max_side"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if bool(args.inputs) == bool(args.dataset):
        raise UsageError("give either video inputs or --dataset")
    try:
        videos = find_videos(args.inputs) if args.inputs else _dataset_videos(args)
        finished = finished_videos(videos, args.output_dir)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(str(error)) from error
    if len(finished) == len(videos):
        logger.info("all %d videos already have descriptions in %s; nothing to do", len(videos), args.output_dir)
        return 0
    describer, refiner = _describe_models(args)
    summary = describe_videos(videos, args.output_dir, describer, refiner, progress=not args.no_progress)
    for name, error in summary.failed.items():
        logger.error("failed: %s: %s", name, error)
    return 1 if summary.failed else 0


def _describe_models(args) -> tuple:
    """The describer and the refiner; the vision-language model first, so that a wrong --vlm fails before the chat
    model is loaded."""
    from ..descriptor.describer import DESCRIBE_PROMPT, NotAnImageTextToTextModelError, SignVideoDescriber
    from ..descriptor.refiner import REFINE_PROMPT, DescriptionRefiner

    prompt = _read_prompt(args.prompt_file, "--prompt_file") or DESCRIBE_PROMPT
    refine_prompt = _read_prompt(args.refine_prompt_file, "--refine_prompt_file") or REFINE_PROMPT
    loading = dict(device_map=args.device_map, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    try:
        describer = SignVideoDescriber.from_pretrained(
            args.vlm, prompt=prompt, max_new_tokens=args.max_new_tokens, segment_length=args.segment_length,
            max_side=args.max_side, batch_size=args.batch_size, **loading,
        )
        if args.refine_endpoint:
            refiner = DescriptionRefiner.from_endpoint(
                args.refine_endpoint, args.refine_endpoint_model, api_key_env=args.api_key_env,
                prompt=refine_prompt, max_retries=args.max_retries, backoff=args.backoff,
            )
        else:
            refiner = DescriptionRefiner.from_pretrained(
                args.refiner, prompt=refine_prompt, max_new_tokens=args.refine_max_new_tokens, **loading
            )
    except (NotAnImageTextToTextModelError, ValueError, OSError) as error:
        raise CommandError(str(error)) from error
    return describer, refiner


def _read_prompt(path, flag: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{flag} {path}: cannot read the prompt file ({error}); give a UTF-8 text file") from error


def _dataset_videos(args) -> dict:
    from ..data.loading import load_sign_dataset
    from ..descriptor.runs import dataset_videos

    splits = load_sign_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)
    chosen = args.splits or list(splits)
    unknown = [name for name in chosen if name not in splits]
    if unknown:
        raise ValueError(f"dataset {args.dataset!r} has no split(s) {unknown}; it has {sorted(splits)}")
    videos = {}
    for name in chosen:
        for sample_id, media in dataset_videos(splits[name]).items():
            if sample_id in videos:
                raise ValueError(f"sample id {sample_id!r} is in more than one split; its descriptions would collide")
            videos[sample_id] = media
    return videos


def _encode_descriptions(argv: list) -> int:
    from ..data.feature_store import FeatureStore
    from ..descriptor.encoder import DescriptionEncoder
    from ..descriptor.runs import load_descriptions

    args = _encode_parser().parse_args(argv)
    setup_logging()
    try:
        items = [(f"{args.id_prefix}{name}", text) for name, text in load_descriptions(args.descriptions, args.text_key)]
        store = FeatureStore(args.store)
        encoder = DescriptionEncoder.from_pretrained(
            args.model, device_map=args.device_map, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            batch_size=args.batch_size, max_length=args.max_length, src_lang=args.src_lang,
        )
    except (FileNotFoundError, ValueError, OSError) as error:
        raise CommandError(str(error)) from error
    todo = items if args.overwrite else [(sample_id, text) for sample_id, text in items if sample_id not in store]
    written = encoder.encode_to_store(todo, store, progress=not args.no_progress)
    logger.info("encoded %d descriptions into %s (%d already there)", written, store.path, len(items) - len(todo))
    return 0


def _import_hands(argv: list) -> int:
    from ..data.feature_store import FeatureStore
    from ..data.hands import import_hamer_features

    args = _import_hands_parser().parse_args(argv)
    setup_logging()
    root = Path(args.root)
    if not root.is_dir():  # checked before the store is created, so that a typo leaves nothing behind
        problem = "is not a folder" if root.exists() else "does not exist"
        raise CommandError(f"{root} {problem}; give the reference's hamer_path folder "
                           "({root}/{split}/{video_id}/{video_id}.lzma)")
    try:
        summary = import_hamer_features(
            args.root, FeatureStore(args.store), splits=args.splits, id_format=args.id_format,
            feature_dim=args.feature_dim, overwrite=args.overwrite, progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(str(error)) from error
    logger.info("imported %d videos into %s, %d already there, %d failed",
                len(summary.written), args.store, len(summary.skipped), len(summary.failed))
    for path, error in summary.failed:
        logger.error("failed: %s: %s", path, error)
    return 1 if summary.failed else 0

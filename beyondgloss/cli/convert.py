# Copyright 2026 The beyondgloss authors. MIT license.
"""`beyondgloss convert` (a reference checkpoint into a beyondgloss one) and `beyondgloss trim-mbart`.

The work is `beyondgloss.convert` ([`convert_reference_checkpoint`], [`trim_mbart`]); these read the command line.
Each writes its output folder whole and never over anyone else's files (`beyondgloss.cli.output_dir.write_owned_folder`):
a non-empty folder is refused unless the same command wrote it, and then replaced only with `--overwrite_output_dir`.
Exit codes: `beyondgloss.cli`.
"""

import argparse
import csv
import json
import logging
from pathlib import Path

from ..utils.logging_utils import setup_logging
from ._common import CommandError, accept_dashed_spellings, command_parser, run_command
from .output_dir import write_owned_folder

__all__ = ["convert", "trim_mbart", "read_texts"]

logger = logging.getLogger(__name__)


def _add_output_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """`output_dir` and `--overwrite_output_dir`, spelt and parsed as the training commands' (`--overwrite_output_dir`
    alone or followed by true/false)."""
    from transformers.hf_argparser import string_to_bool

    parser.add_argument("output_dir", type=Path,
                        help=f"folder to write into: new, empty, or written by an earlier beyondgloss {command}")
    parser.add_argument("--overwrite_output_dir", nargs="?", const=True, default=False, type=string_to_bool,
                        help=f"replace output_dir when an earlier beyondgloss {command} wrote it (it then holds a "
                             ".beyondgloss_run file naming the command); any other non-empty folder is refused")


def _convert_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "convert",
        (
            "Convert a checkpoint of the BeyondGloss reference code (PyTorch Lightning, pre-training or translation "
            "stage) into a beyondgloss checkpoint with reference_compat=True (config.json + model.safetensors), "
            "which computes what the reference computes up to float32 round-off (docs/reference_differences.md). "
            "The checkpoint is read with torch.load(weights_only=True); a checkpoint of another layout is refused "
            "with the first mismatching keys."
        ),
    )
    parser.add_argument("checkpoint", help="the reference .ckpt (or a state dict / .safetensors with its keys)")
    _add_output_flags(parser, "convert")
    parser.add_argument("--stage", choices=["pretraining", "translation"],
                        help="checkpoint stage; detected from the keys when omitted")
    parser.add_argument(
        "--text_backbone",
        help="the trimmed mBART folder the checkpoint was trained from: its config settings, its decoder weights for "
             "a pre-training checkpoint (which has none) and its tokenizer if it holds one. A folder holding only "
             "config.json gives the settings; a pre-training checkpoint then gets a randomly initialised decoder "
             "(warned, not saved)",
    )
    parser.add_argument(
        "--random_decoder", action="store_true",
        help="pre-training checkpoint: a randomly initialised mBART decoder (built from --text_backbone's config when "
             "given, else mBART-large-cc25's settings); it is not saved",
    )
    parser.add_argument("--tokenizer", help="tokenizer folder to save with the model (default: --text_backbone's)")
    parser.add_argument("--target_language",
                        help="language code generation starts from, found in the tokenizer (default de_DE, the "
                             "reference's for every dataset, when there is a tokenizer), or its token id")
    return accept_dashed_spellings(parser)


def convert(argv: list) -> int:
    """`beyondgloss convert CHECKPOINT OUTPUT_DIR [--text_backbone DIR] [--random_decoder] [--tokenizer DIR]
    [--target_language CODE_OR_ID] [--overwrite_output_dir]`."""
    return run_command("convert", _convert, argv)


def _convert(argv: list) -> int:
    from ..convert.reference import convert_reference_checkpoint

    args = _convert_parser().parse_args(argv)
    setup_logging()

    def write(folder: Path) -> None:
        convert_reference_checkpoint(
            args.checkpoint, folder, stage=args.stage, text_backbone=args.text_backbone,
            random_decoder=args.random_decoder, tokenizer=args.tokenizer, target_language=args.target_language,
        )

    try:
        write_owned_folder(args.output_dir, "convert", args.overwrite_output_dir, write)
    except CommandError:
        raise
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from error
    logger.info("saved the converted model to %s", args.output_dir)
    return 0


def read_texts(path: str | Path, column: str = "text") -> list[str]:
    """Sentences from a text file (one per line), a `.jsonl` file or a `.csv`/`.tsv` file (`column`).

    Raises:
        ValueError: the file has no such column, or a row has no string in it (the message names file and row).
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        texts = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{path}, line {number}: not a JSON object ({error}).") from error
                    if not isinstance(row, dict) or not isinstance(row.get(column), str):
                        raise ValueError(f"{path}, line {number}: no string field {column!r}.")
                    texts.append(row[column])
        return texts
    if path.suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
            if column not in (reader.fieldnames or []):
                raise ValueError(f"{path}: no column {column!r} (columns: {reader.fieldnames}); use --text_column.")
            return [row[column] for row in reader]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _trim_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "trim-mbart",
        (
            "Trim an mBART model and tokenizer to the pieces used by a set of training sentences, plus every special "
            "token and language code, as the reference's trim.py; saves the trimmed model and tokenizer."
        ),
    )
    parser.add_argument("model", help="mBART folder (MBartForConditionalGeneration + MBartTokenizer)")
    _add_output_flags(parser, "trim-mbart")
    parser.add_argument("--texts", nargs="+", required=True,
                        help="training sentences: .txt (one per line), .jsonl or .csv/.tsv files")
    parser.add_argument("--text_column", default="text",
                        help="field or column of .jsonl/.csv/.tsv files holding the sentence")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    parser.add_argument("--keep_tokens", nargs="*", default=[],
                        help="further tokens to keep")
    return accept_dashed_spellings(parser)


def trim_mbart(argv: list) -> int:
    """`beyondgloss trim-mbart MODEL OUTPUT_DIR --texts FILE... [--text_column text] [--keep_tokens T...]
    [--overwrite_output_dir]`."""
    return run_command("trim-mbart", _trim_mbart, argv)


def _trim_mbart(argv: list) -> int:
    from transformers import AutoTokenizer, MBartForConditionalGeneration

    from ..convert.trim import trim_mbart as trim

    args = _trim_parser().parse_args(argv)
    setup_logging()
    trimmed = {}

    def write(folder: Path) -> None:
        texts = [text for path in args.texts for text in read_texts(path, args.text_column)]
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
        model = MBartForConditionalGeneration.from_pretrained(args.model)
        model, tokenizer = trim(model, tokenizer, texts, keep_tokens=args.keep_tokens)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        trimmed["model"] = model

    try:
        write_owned_folder(args.output_dir, "trim-mbart", args.overwrite_output_dir, write)
    except CommandError:
        raise
    except (ValueError, TypeError, OSError) as error:
        raise CommandError(str(error)) from error
    model = trimmed["model"]
    logger.info("saved the trimmed mBART (%d tokens) to %s", model.config.vocab_size, args.output_dir)
    return 0

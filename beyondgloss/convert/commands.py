# Copyright 2026 The beyondgloss authors. MIT license.
"""`beyondgloss convert` and `beyondgloss trim-mbart`.

Each function takes the command's own arguments (without the command name) and returns an exit code: 0 when done;
both return 1 when the input cannot be used (one line on stderr says what is wrong and what to do); a malformed
command line exits with 2 and argparse's usage message. Options are spelled with
underscores (`--text_backbone`), the project's dialect; the dashed spellings (`--text-backbone`) are accepted too.
"""

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from ..utils.logging_utils import setup_logging

__all__ = ["convert", "trim_mbart", "read_texts"]

logger = logging.getLogger(__name__)


def _fail(prog: str, error: Exception) -> int:
    """Prints `error` as one line (not argparse's usage block: the command line was well formed) and returns 1."""
    print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 1


def _convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beyondgloss convert",
        description=(
            "Convert a checkpoint of the BeyondGloss reference code (PyTorch Lightning, pre-training or translation "
            "stage) into a beyondgloss checkpoint with reference_compat=True (config.json + model.safetensors), "
            "which computes what the reference computes up to float32 round-off (docs/reference_differences.md). "
            "The checkpoint is read with torch.load(weights_only=True); a checkpoint of another layout is refused "
            "with the first mismatching keys."
        ),
    )
    parser.add_argument("checkpoint", help="the reference .ckpt (or a state dict / .safetensors with its keys)")
    parser.add_argument("output_dir", help="folder to save the converted model (and tokenizer) into")
    parser.add_argument("--stage", choices=["pretraining", "translation"],
                        help="checkpoint stage; detected from the keys when omitted")
    parser.add_argument(
        "--text_backbone", "--text-backbone", dest="text_backbone",
        help="the trimmed mBART folder the checkpoint was trained from: its config settings, its decoder weights for "
             "a pre-training checkpoint (which has none) and its tokenizer if it holds one. A folder holding only "
             "config.json gives the settings; a pre-training checkpoint then gets a randomly initialised decoder "
             "(warned, not saved)",
    )
    parser.add_argument(
        "--random_decoder", "--random-decoder", dest="random_decoder", action="store_true",
        help="pre-training checkpoint: a randomly initialised mBART decoder (built from --text_backbone's config when "
             "given, else mBART-large-cc25's settings); it is not saved",
    )
    parser.add_argument("--tokenizer", help="tokenizer folder to save with the model (default: --text_backbone's)")
    parser.add_argument("--target_language", "--target-language", dest="target_language",
                        help="language code generation starts from, found in the tokenizer (default de_DE, the "
                             "reference's for every dataset, when there is a tokenizer), or its token id")
    return parser


def convert(argv) -> int:
    """`beyondgloss convert CHECKPOINT OUTPUT_DIR [--text_backbone DIR] [--random_decoder] [--tokenizer DIR]
    [--target_language CODE_OR_ID]`."""
    from .reference import convert_reference_checkpoint

    parser = _convert_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        convert_reference_checkpoint(
            args.checkpoint, args.output_dir, stage=args.stage, text_backbone=args.text_backbone,
            random_decoder=args.random_decoder, tokenizer=args.tokenizer, target_language=args.target_language,
        )
    except (ValueError, OSError) as error:
        return _fail(parser.prog, error)
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
                    row = json.loads(line)
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
    parser = argparse.ArgumentParser(
        prog="beyondgloss trim-mbart",
        description=(
            "Trim an mBART model and tokenizer to the pieces used by a set of training sentences, plus every special "
            "token and language code, as the reference's trim.py; saves the trimmed model and tokenizer."
        ),
    )
    parser.add_argument("model", help="mBART folder (MBartForConditionalGeneration + MBartTokenizer)")
    parser.add_argument("output_dir", help="folder for the trimmed model and tokenizer")
    parser.add_argument("--texts", nargs="+", required=True,
                        help="training sentences: .txt (one per line), .jsonl or .csv/.tsv files")
    parser.add_argument("--text_column", "--text-column", dest="text_column", default="text",
                        help="field or column of .jsonl/.csv/.tsv files holding the sentence")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    parser.add_argument("--keep_tokens", "--keep-tokens", dest="keep_tokens", nargs="*", default=[],
                        help="further tokens to keep")
    return parser


def trim_mbart(argv) -> int:
    """`beyondgloss trim-mbart MODEL OUTPUT_DIR --texts FILE... [--text_column text] [--keep_tokens T...]`."""
    from transformers import AutoTokenizer, MBartForConditionalGeneration

    from .trim import trim_mbart as trim

    parser = _trim_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        texts = [text for path in args.texts for text in read_texts(path, args.text_column)]
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
        model = MBartForConditionalGeneration.from_pretrained(args.model)
        model, tokenizer = trim(model, tokenizer, texts, keep_tokens=args.keep_tokens)
    except (ValueError, TypeError, OSError) as error:
        return _fail(parser.prog, error)
    model.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    logger.info("saved the trimmed mBART (%d tokens) to %s", model.config.vocab_size, args.output_dir)
    return 0

"""`beyondgloss translate --model_name_or_path runs/ft --videos a.mp4 frames_dir/ [--output_file t.jsonl]`.

Prints one line per translated video, `<video>\\t<translation>`, as soon as its batch is done, and with
`--output_file` also writes `{"video", "translation"}` JSON lines. The translating is the "sign-translation" pipeline's
([`SignTranslationPipeline`], called with `errors="skip"`): a video that cannot be read is named on stderr with the
reason, the others are still translated and written, and the command then exits 1. Exit codes: `beyondgloss.cli`.
"""

import json
import sys
from pathlib import Path

from torch.utils.data import Dataset

from ..training.arguments import TranslateArguments
from ._arguments import parse_arguments
from ._common import CommandError, UsageError, one_line, run_command
from ._loading import check_frame_capacity, load_saved, load_translation_model, require_tokenizer_files

__all__ = ["translate"]


class _Videos(Dataset):
    """The videos as a sized dataset: the pipeline then yields each result as its batch is done, not all at the end."""

    def __init__(self, videos: list):
        self.videos = videos

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        return self.videos[index]


def translate(argv: list) -> int:
    """`beyondgloss translate`: print the translation of each video (tab-separated: video, translation).

    Exit status: 0 when every video was translated; 1 when some could not be read (each is named on stderr with the
    reason; the others are printed and written to `--output_file`) or the model folder cannot be used; 2 for a bad
    flag (nothing translated).
    """
    return run_command("translate", _translate, argv)


def _translate(argv: list) -> int:
    (options,) = parse_arguments(argv, (TranslateArguments,), None, "translate",
                                 description=TranslateArguments.__doc__)
    _check_paths(options)
    translator = _load_pipeline(options)
    generation = {key: value for key, value in (("num_beams", options.num_beams),
                                                 ("max_new_tokens", options.max_new_tokens)) if value is not None}
    results, failures = [], []
    outputs = translator(_Videos(options.videos), batch_size=options.batch_size, errors="skip", **generation)
    for video, output in zip(options.videos, outputs):
        (output,) = output  # one sequence per video: num_return_sequences is never asked for
        if output.get("error"):
            failures.append(output["error"])
            continue
        text = output["translation_text"].strip()
        results.append({"video": video, "translation": text})
        print(f"{video}\t{text}", flush=True)
    if options.output_file:
        from ..training.callbacks import write_atomically

        write_atomically(options.output_file,
                         "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in results))
    for failure in failures:
        print(f"beyondgloss translate: error: {one_line(failure)}", file=sys.stderr)
    if failures:
        written = f"; the other {len(results)} are in {options.output_file}" if options.output_file else ""
        print(f"beyondgloss translate: {len(failures)} of {len(options.videos)} videos could not be "
              f"translated{written}", file=sys.stderr)
        return 1
    return 0


def _check_paths(options: TranslateArguments) -> None:
    if not options.videos:
        raise UsageError("--videos: give at least one video file or frame folder")
    missing = [video for video in options.videos if not Path(video).exists()]
    if missing:
        raise CommandError(f"these videos do not exist: {missing}; check the --videos paths")
    if options.output_file:
        target = Path(options.output_file)
        if target.is_dir():
            raise CommandError(f"--output_file {target} is a folder; give a file path")
        if target.exists() and not options.overwrite_output_file:
            raise CommandError(f"--output_file {target} exists; pass --overwrite_output_file to replace it")


def _load_pipeline(options: TranslateArguments):
    """The pipeline of the saved model folder, after the checks that name what is wrong with the folder."""
    from ..pipeline_sign_translation import SignTranslationPipeline
    from ..processing_beyondgloss import BeyondGlossProcessor

    folder = Path(options.model_name_or_path)
    if not (folder / "processor_config.json").is_file():
        raise CommandError(f"{folder} has no saved processor (processor_config.json); translate needs a model folder "
                           "written by `beyondgloss finetune` or saved with its processor")
    require_tokenizer_files(folder)
    model = load_translation_model(folder, options)
    processor = load_saved(BeyondGlossProcessor, folder, "the processor")
    check_frame_capacity(model.config, processor.video_processor,
                         f"lower max_frames in {folder / 'processor_config.json'}")
    positions = model.config.text_config.max_position_embeddings
    if options.max_new_tokens is not None and options.max_new_tokens >= positions:
        raise CommandError(f"--max_new_tokens {options.max_new_tokens}: the model's decoder has {positions} positions "
                           f"(the start token included); use at most {positions - 1}")
    translator = SignTranslationPipeline(model=model, processor=processor, device=options.device)
    translator.model.eval().set_inference_precision(options.inference_precision)
    return translator

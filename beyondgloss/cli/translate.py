"""`beyondgloss translate --model_name_or_path runs/ft --videos a.mp4 frames_dir/ [--output_file t.jsonl]`.

Prints one line per translated video, `<video>\\t<translation>`, as soon as its batch is done, and with
`--output_file` also appends `{"video", "translation"}` JSON lines to that file, each written and flushed as it is
made, so the file holds every finished translation whenever the command stops. The translating is the
"sign-translation" pipeline's ([`SignTranslationPipeline`], called with `errors="skip"`). A video that fails (it
cannot be read, or its batch runs out of memory and it does again on its own) is named on stderr with the reason and
left out; the others are still translated, and the command then exits 1. SIGTERM and SIGINT (Ctrl-C) let the batch in
progress finish and be written, then stop (exit 1, the videos not translated counted on stderr). Exit codes:
`beyondgloss.cli`.
"""

import json
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from torch.utils.data import Dataset

from ..training.arguments import TranslateArguments
from ._arguments import parse_arguments
from ._common import CommandError, UsageError, one_line, run_command
from ._loading import load_translation_folder

__all__ = ["translate"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Videos(Dataset):
    """Videos as a dataset: a list of image paths would be one video to the pipeline, and these are each a video."""

    def __init__(self, videos: list):
        self.videos = videos

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        return self.videos[index]


def translate(argv: list) -> int:
    """`beyondgloss translate`: print the translation of each video (tab-separated: video, translation).

    Exit status: 0 when every video was translated; 1 when some could not be (each is named on stderr with the
    reason; the others are printed and written to `--output_file`), when SIGTERM or SIGINT stopped it (every finished
    translation is in `--output_file`), or when the model folder cannot be used; 2 for a bad flag (nothing
    translated).
    """
    return run_command("translate", _translate, argv)


class _Output:
    """The `--output_file`: one JSON line per translation, appended with one `write` call and flushed to the disk, so
    that an interruption at any moment (kill -9 included) leaves every finished line whole."""

    def __init__(self, path: str | None):
        self.path = path
        self.descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if path else None

    def add(self, video: str, text: str) -> None:
        if self.descriptor is not None:
            line = json.dumps({"video": video, "translation": text}, ensure_ascii=False) + "\n"
            os.write(self.descriptor, line.encode("utf-8"))
            os.fsync(self.descriptor)
        print(f"{video}\t{text}", flush=True)

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)


@contextmanager
def _stop_requests():
    """Turns SIGTERM and SIGINT into a request to stop after the batch in progress; yields the list of signals seen."""
    seen = []
    if threading.current_thread() is not threading.main_thread():
        yield seen  # signal handlers can only be set from the main thread
        return
    previous = {number: signal.getsignal(number) for number in _STOP_SIGNALS}
    for number in _STOP_SIGNALS:
        signal.signal(number, lambda received, frame: seen.append(signal.Signals(received).name))
    try:
        yield seen
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _translate(argv: list) -> int:
    (options,) = parse_arguments(argv, (TranslateArguments,), None, "translate",
                                 description=TranslateArguments.__doc__)
    _check_paths(options)
    with _stop_requests() as stop:  # from here on: a signal while the model loads stops before the first video too
        translator = _load_pipeline(options)
        videos, failures, done = options.videos, [], 0
        output = _Output(options.output_file)
        try:
            for start in range(0, len(videos), options.batch_size):
                if stop:
                    break
                done = _translate_into(output, translator, options, videos[start:start + options.batch_size], done,
                                       failures)
        finally:
            output.close()
    written = f"; the {done - len(failures)} translated are in {options.output_file}" if options.output_file else ""
    if stop:
        print(f"beyondgloss translate: stopped by {stop[0]} after {done} of {len(videos)} videos{written}",
              file=sys.stderr)
        return 1
    if failures:
        print(f"beyondgloss translate: {len(failures)} of {len(videos)} videos could not be translated{written}",
              file=sys.stderr)
        return 1
    return 0


def _translate_into(output: _Output, translator, options: TranslateArguments, batch: list, done: int,
                    failures: list) -> int:
    """Translates `batch`, writes each translation and names each failure as it comes; returns the videos done."""
    generation = {key: value for key, value in (("num_beams", options.num_beams),
                                                 ("max_new_tokens", options.max_new_tokens)) if value is not None}
    for video, result in zip(batch, _translate_batch(translator, batch, generation)):
        if result.get("error"):
            failures.append(_numbered(result["error"], done, len(options.videos)))
            print(f"beyondgloss translate: error: {one_line(failures[-1])}", file=sys.stderr)
        else:
            output.add(video, result["translation_text"].strip())
        done += 1
    return done


def _numbered(error: str, index: int, total: int) -> str:
    """The pipeline's message with the video's place among all `--videos` (it numbers videos within their batch)."""
    return re.sub(r"^input \[\d+\] of \d+", f"input [{index}] of {total}", error)


def _translate_batch(translator, batch: list, generation: dict) -> list:
    """One result per video of `batch`: `{"translation_text"}` or `{"error"}`.

    A batch that runs out of memory is translated again one video at a time, so only a video that does not fit on its
    own fails (a long one: every frame up to `max_frames` goes through the frame encoder at once).
    """
    import torch

    from ..pipeline_sign_translation import SignTranslationInputError

    try:
        outputs = translator(_Videos(batch), batch_size=len(batch), errors="skip", progress=False, **generation)
        return [output for (output,) in outputs]  # one sequence per video: num_return_sequences is never asked for
    except (torch.OutOfMemoryError, MemoryError) as error:
        if len(batch) > 1:
            return [result for video in batch for result in _translate_batch(translator, [video], generation)]
        _free_memory(translator)
        return [{"error": f"{batch[0]} cannot be translated: out of memory ({one_line(error)}); lower max_frames in "
                          "the model's processor_config.json or translate on a device with more memory"}]
    except SignTranslationInputError as error:
        return [{"error": f"{batch[0]}: {error}"}]


def _free_memory(translator) -> None:
    import gc

    import torch

    gc.collect()
    if translator.device.type == "cuda":
        torch.cuda.empty_cache()


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

    model, processor = load_translation_folder(options, "translate")
    positions = model.config.text_config.max_position_embeddings
    if options.max_new_tokens is not None and options.max_new_tokens >= positions:
        raise CommandError(f"--max_new_tokens {options.max_new_tokens}: the model's decoder has {positions} positions "
                           f"(the start token included); use at most {positions - 1}")
    translator = SignTranslationPipeline(model=model, processor=processor, device=options.device)
    translator.model.eval().set_inference_precision(options.inference_precision)
    return translator

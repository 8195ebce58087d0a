"""Callbacks: they decide *when* things happen during training; the trainers decide *what* is computed.

Also the one way the training code writes a whole file (`write_atomically`), so that an interruption leaves either
the old file or the new one, never a torn one.
"""

import json
import logging
import math
import os
import tempfile

from transformers import TrainerCallback

__all__ = ["LogFileCallback", "write_atomically"]

logger = logging.getLogger(__name__)


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same folder and a rename (atomic on POSIX and Windows).

    A process killed at any point leaves `path` as it was or completely written; the temporary file it may leave
    starts with `.` and ends with `.tmp`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class LogFileCallback(TrainerCallback):
    """Appends every log entry (training loss and its parts, evaluation scores) to a JSON-lines file as it is logged.

    `trainer_state.json` is written only with checkpoints; this file is complete up to the last logging step even when
    a run is interrupted, and is what loss curves are drawn from. Only the main process writes, one whole line per
    `write` call. A resumed run appends to the same file, first dropping entries from steps after the checkpoint it
    resumes from, so no step appears twice; a line torn by an interruption in the middle of a write (the last one) is
    dropped with a warning, and the file is rewritten atomically.

    Args:
        path (`str`, *optional*): the file; defaults to `<output_dir>/log_history.jsonl`.
    """

    def __init__(self, path: str | None = None):
        self.path = path

    def _file(self, args) -> str:
        return self.path or os.path.join(args.output_dir, "log_history.jsonl")

    def on_train_begin(self, args, state, control, **kwargs):
        path = self._file(args)
        if not state.is_world_process_zero or not os.path.isfile(path):
            return
        kept = []
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    entry = None
                if not isinstance(entry, dict):
                    logger.warning("%s line %d is not a complete JSON object (a write torn by an interruption); "
                                   "dropping it: %.80r", path, number, line)
                    continue
                # On resume, global_step is already the checkpoint's step: later entries belong to the lost part.
                if entry.get("step", 0) <= state.global_step:
                    kept.append(json.dumps(entry) + "\n")
        write_atomically(path, "".join(kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {key: value for key, value in logs.items() if not (isinstance(value, float) and not math.isfinite(value))}
        entry["step"] = state.global_step
        os.makedirs(os.path.dirname(self._file(args)) or ".", exist_ok=True)
        with open(self._file(args), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

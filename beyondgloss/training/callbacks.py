"""Callbacks: they decide *when* things happen during training; the trainers decide *what* is computed."""

import json
import math
import os

from transformers import TrainerCallback

__all__ = ["LogFileCallback"]


class LogFileCallback(TrainerCallback):
    """Appends every log entry (training loss and its parts, evaluation scores) to a JSON-lines file as it is logged.

    `trainer_state.json` is written only with checkpoints; this file is complete up to the last logging step even when
    a run is interrupted, and is what loss curves are drawn from. Only the main process writes. A resumed run appends
    to the same file, first dropping entries from steps after the checkpoint it resumes from, so no step appears
    twice.

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
        # On resume, global_step is already the checkpoint's step: later entries belong to the lost part of the run.
        with open(path, encoding="utf-8") as handle:
            kept = [line for line in handle if line.strip() and json.loads(line).get("step", 0) <= state.global_step]
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(kept)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {key: value for key, value in logs.items() if not (isinstance(value, float) and not math.isfinite(value))}
        entry["step"] = state.global_step
        os.makedirs(os.path.dirname(self._file(args)) or ".", exist_ok=True)
        with open(self._file(args), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

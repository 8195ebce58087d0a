"""Callbacks: they decide *when* things happen during training; the trainers decide *what* is computed.

Also the one way the training code writes a whole file (`write_atomically`), so that an interruption leaves either
the old file or the new one, never a torn one.
"""

import copy
import json
import logging
import math
import os
import tempfile

from transformers import TrainerCallback

from ..model_card import TRAINING_FIELDS, SignTranslationCardData, results_from_metrics, write_model_card

__all__ = ["LogFileCallback", "ModelCardCallback", "write_atomically"]

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


class ModelCardCallback(TrainerCallback):
    """Writes `README.md` (a model card) into the output directory when training ends.

    The card takes the training settings from the `TrainingArguments`, the run's length from the trainer state,
    the latest evaluation scores from the logs (with their BLEU convention and sacrebleu signature when the
    `compute_metrics` object is given), and the architecture from the model. `Trainer.push_to_hub` replaces the
    README with transformers' own card; push with `beyondgloss push <output_dir> <repo_id>` to keep this one.

    Args:
        card_data ([`SignTranslationCardData`], *optional*): dataset, language, license, ... of the run.
        compute_metrics (`TranslationComputeMetrics`, *optional*): the trainer's metric object; its `last_result`
            gives the convention and signatures of the scores.

    Example:

    ```python
    >>> trainer = Seq2SeqTrainer(..., compute_metrics=compute_metrics,
    ...     callbacks=[ModelCardCallback(SignTranslationCardData(dataset_name="phoenix14t"), compute_metrics)])
    ```
    """

    def __init__(self, card_data: SignTranslationCardData | None = None, compute_metrics=None):
        self.card_data = card_data or SignTranslationCardData()
        self.compute_metrics = compute_metrics
        self.metrics: dict[str, float] = {}
        self.signatures: dict[str, dict] = {}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        self.metrics.update(metrics)
        last_result = getattr(self.compute_metrics, "last_result", None)
        for key in metrics:
            self.signatures[key] = last_result

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not state.is_world_process_zero:
            return
        card_data = copy.deepcopy(self.card_data)
        results = [r for key, value in self.metrics.items()
                   for r in results_from_metrics({key: value}, self.signatures.get(key))]
        card_data.results = card_data.results + results
        settings = {name: getattr(args, name) for name in TRAINING_FIELDS if hasattr(args, name)}
        settings.update(
            world_size=args.world_size,
            total_train_batch_size=args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
            steps=state.global_step,
            epochs=round(state.epoch or 0.0, 2),
        )
        runtime = next((log["train_runtime"] for log in reversed(state.log_history) if "train_runtime" in log), None)
        if runtime is not None:
            settings["train_runtime_seconds"] = round(runtime, 1)
        card_data.training_settings = settings | card_data.training_settings
        path = write_model_card(card_data, args.output_dir, model=model, processor=processing_class)
        logger.info("Wrote the model card %s", path)

"""`Trainer` subclasses for the two BeyondGloss stages: they change *what* is computed, callbacks change *when*.

- [`BeyondGlossPretrainingTrainer`]: contrastive pre-training. Logs each loss part (alignment, description, hand)
  next to the total at every logging step, and evaluates the same parts plus video-to-text retrieval recall over the
  whole evaluation set.
- [`BeyondGlossTranslationTrainer`]: translation fine-tuning, evaluated by beam search (`predict_with_generate`),
  scored with `beyondgloss.metrics` against the dataset's raw reference texts, predictions written to the output
  folder next to their references.
"""

import json
import logging
import math
import os
import shutil
import tempfile
import zipfile

import torch
from transformers import Seq2SeqTrainer, Trainer
from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..checkpointing import fit_state_to_parameters
from .callbacks import write_atomically
from .cpu_distributed import enable_cpu_sharding
from .loss_parts import LOSS_PARTS, LossPartsTracker, RetrievalMetrics

__all__ = [
    "CHECKPOINT_STAGING_PREFIX",
    "FINAL_SAVE_STAGING",
    "LOSS_PARTS",
    "METADATA_KEYS",
    "LossPartsTracker",
    "RetrievalMetrics",
    "BeyondGlossPretrainingTrainer",
    "BeyondGlossTranslationTrainer",
]

logger = logging.getLogger(__name__)

# Batch entries the collators add for evaluation loops (`return_metadata=True`); they are not model inputs.
METADATA_KEYS = ("ids", "texts")
# A checkpoint is written into `<output_dir>/.incomplete-checkpoint-N/checkpoint-N` and renamed to
# `<output_dir>/checkpoint-N` once every file is in it; the staging name matches none of Trainer's checkpoint globs.
CHECKPOINT_STAGING_PREFIX = ".incomplete-"
# The final `save_model()` into the run folder is written into `<output_dir>/.incomplete-model/` first, then each file
# is renamed into the run folder: no file of the final model is ever torn.
FINAL_SAVE_STAGING = CHECKPOINT_STAGING_PREFIX + "model"


def _torch_file_problem(path: str) -> str | None:
    """What makes a `torch.save` file unreadable (absent, truncated, damaged), or None. Reads it as the zip archive
    `torch.save` writes, checking every member's CRC, without unpickling anything."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        return f"no {name}"
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return f"{name} is truncated or is not a torch.save file"
    return f"{name} is damaged ({damaged} fails its checksum)" if damaged else None


def optimizer_state_problem(checkpoint: str) -> str | None:
    """What makes the optimizer state of a checkpoint folder unusable for resuming (its `optimizer.pt` or
    `scheduler.pt` missing, truncated or damaged), or None. A checkpoint saved with `save_only_model=True` has none."""
    for name in (OPTIMIZER_NAME, SCHEDULER_NAME):
        problem = _torch_file_problem(os.path.join(checkpoint, name))
        if problem:
            return problem
    return None


def _move_files(source: str, target: str) -> None:
    """Renames every file under `source` to the same place under `target`, each after its data reached the disk;
    `config.json` goes last, so that a folder whose `config.json` is new holds every new file."""
    paths = [os.path.join(folder, name) for folder, _, names in os.walk(source) for name in names]
    paths.sort(key=lambda path: os.path.relpath(path, source) == "config.json")
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        destination = os.path.join(target, os.path.relpath(path, source))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.replace(path, destination)


def _model_inputs(inputs: dict) -> dict:
    return {key: value for key, value in inputs.items() if key not in METADATA_KEYS}


class _BeyondGlossTrainerMixin:
    """What both trainers share: the reference's weight-decay scope and the loss-normalisation contract."""

    def _setup_beyondgloss(self, decay_all_parameters: bool, eval_data_collator, reset_optimizer: bool) -> None:
        self.decay_all_parameters = decay_all_parameters
        self.eval_data_collator = eval_data_collator
        self.reset_optimizer = reset_optimizer
        # The models take **kwargs, from which Trainer infers that they normalise their loss by `num_items_in_batch`
        # across gradient-accumulation steps and devices; they return per-batch means, so Trainer must divide by
        # the accumulation steps itself (and must not multiply by the number of processes).
        self.model_accepts_loss_kwargs = False

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        enable_cpu_sharding(self)  # accelerate drops FSDP and DeepSpeed on CPU processes: the Trainer would run DDP

    def _with_eval_collator(self, make_dataloader, dataset):
        if self.eval_data_collator is None:
            return make_dataloader(dataset)
        saved, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return make_dataloader(dataset)
        finally:
            self.data_collator = saved

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_eval_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._with_eval_collator(super().get_test_dataloader, test_dataset)

    def _copy_weights_from(self, checkpoint: str, model: torch.nn.Module) -> None:
        # `save_pretrained` writes DINOv2 weights under their legacy names (transformers 5 reverts its key conversion
        # on save), and Trainer's own resume / best-model loading reads the file with a bare `load_state_dict`, which
        # leaves every renamed tensor at its fresh value with only a warning. `from_pretrained` applies the
        # conversion; copy its weights over strictly so that nothing is silently skipped.
        target = self.accelerator.unwrap_model(model)
        loaded = type(target).from_pretrained(checkpoint)
        target.load_state_dict(loaded.state_dict(), strict=True)
        del loaded

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        logger.info("Loading model weights from %s", resume_from_checkpoint)
        self._copy_weights_from(resume_from_checkpoint, model if model is not None else self.model)

    def _load_best_model(self):
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_best_model()
        logger.info("Loading the best model from %s (score: %s)", self.state.best_model_checkpoint, self.state.best_metric)
        self._copy_weights_from(self.state.best_model_checkpoint, self.model_wrapped)

    def _load_optimizer_and_scheduler(self, checkpoint):
        """As Trainer's, but a checkpoint without a usable optimizer state stops the resume with a `ValueError` naming
        the file (Trainer would silently resume with a fresh optimizer, or fail inside `torch.load` on a torn file),
        unless `reset_optimizer`: then the run resumes with a fresh optimizer, and with the checkpoint's learning-rate
        schedule where its `scheduler.pt` is readable, and says so."""
        if checkpoint is None or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_optimizer_and_scheduler(checkpoint)
        problem = optimizer_state_problem(checkpoint)
        if problem is None:
            super()._load_optimizer_and_scheduler(checkpoint)
            fit_state_to_parameters(self.optimizer)
            return
        if not self.reset_optimizer:
            raise ValueError(f"{checkpoint} has no usable optimizer state ({problem}); pass reset_optimizer=True "
                             "(--reset_optimizer) to resume its weights with a fresh optimizer, or resume from an "
                             "earlier checkpoint")
        scheduler = os.path.join(checkpoint, SCHEDULER_NAME)
        if _torch_file_problem(scheduler) is None:
            self.lr_scheduler.load_state_dict(torch.load(scheduler, map_location="cpu", weights_only=True))
            for group, rate in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr()):
                group["lr"] = rate
            kept = "the checkpoint's learning-rate schedule"
        else:
            kept = "the learning-rate schedule from its start"
        logger.warning("reset_optimizer: %s has no usable optimizer state (%s); resuming at step %d with a fresh "
                       "optimizer and %s", checkpoint, problem, self.state.global_step, kept)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """As `Trainer.save_model`, written whole: into a staging folder, then each file renamed into place.

        A checkpoint's model is already staged by `_save_checkpoint`. Any other save (the final one into the run
        folder, `push_to_hub`'s) is what a kill during `save_model()` would otherwise tear (a half-written
        `config.json` or `model.safetensors` beside complete checkpoints); here each file is either the earlier one or
        the new one, and a resumed run (`--resume_from_checkpoint last`) writes the final model again.
        """
        if getattr(self, "_checkpoint_staging", None) is not None:
            return super().save_model(output_dir, _internal_call)
        target = output_dir if output_dir is not None else self.args.output_dir
        staging = os.path.join(target, FINAL_SAVE_STAGING)
        # Only DeepSpeed and FSDP have every process write (and call this); elsewhere a barrier would hang a
        # `save_model()` called on the main process alone, which Trainer allows.
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if self.args.should_save and os.path.isdir(staging):
            shutil.rmtree(staging)  # an interrupted final save: its files never reached the run folder
        if sharded:
            self.accelerator.wait_for_everyone()
        super().save_model(staging, _internal_call=True)
        if sharded:
            self.accelerator.wait_for_everyone()
        if self.args.should_save:
            _move_files(staging, target)
            shutil.rmtree(staging)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def _get_output_dir(self, trial) -> str:
        staging = getattr(self, "_checkpoint_staging", None)
        return staging if staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """Saves a checkpoint atomically: a `checkpoint-N` folder exists only once it is complete.

        `Trainer._save_checkpoint` writes the model, optimizer, scheduler, RNG states and trainer state one file after
        another straight into `checkpoint-N`, so an interruption leaves a folder that `--resume_from_checkpoint last`
        takes for the newest checkpoint and fails on. Here it writes the same files into a staging folder (through
        `_get_output_dir`, which it asks for the run folder), and the main process renames the result into place
        after every process has written its part.
        """
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = os.path.join(run_dir, CHECKPOINT_STAGING_PREFIX + name)
        written, final = os.path.join(staging, name), os.path.join(run_dir, name)
        if self.args.should_save and os.path.isdir(staging):
            shutil.rmtree(staging)  # an interrupted save of this step: never a finished checkpoint
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging = None
        self.accelerator.wait_for_everyone()  # every process has written its part (RNG states, sharded states)
        if self.state.best_model_checkpoint == written:
            self.state.best_model_checkpoint = final
        if not self.args.should_save:
            return
        state_file = os.path.join(written, "trainer_state.json")
        if os.path.isfile(state_file):
            self.state.save_to_json(state_file)  # with the final path of the best checkpoint
        if os.path.isdir(final):
            # A folder of this step that resume passed over as incomplete, or one a resumed run saves again.
            os.replace(final, os.path.join(staging, "superseded"))
        os.replace(written, final)
        shutil.rmtree(staging)
        rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                           best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def save_metrics(self, split, metrics, combined=True):
        """As `Trainer.save_metrics` (`<split>_results.json`, merged into `all_results.json`), written atomically."""
        if not self.is_world_process_zero():
            return
        write_atomically(os.path.join(self.args.output_dir, f"{split}_results.json"),
                         json.dumps(metrics, indent=4, sort_keys=True))
        if combined:
            path = os.path.join(self.args.output_dir, "all_results.json")
            combined_metrics = {}
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as handle:
                        combined_metrics = json.load(handle)
                except ValueError:
                    logger.warning("%s is not readable JSON; starting it again with the %s results", path, split)
            combined_metrics.update(metrics)
            write_atomically(path, json.dumps(combined_metrics, indent=4, sort_keys=True))

    def save_state(self):
        """As `Trainer.save_state` (`trainer_state.json` in the output folder), written atomically."""
        if not self.is_world_process_zero():
            return
        os.makedirs(self.args.output_dir, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.args.output_dir, prefix=".trainer_state.json.", suffix=".tmp")
        os.close(handle)
        self.state.save_to_json(temporary)
        os.replace(temporary, os.path.join(self.args.output_dir, "trainer_state.json"))

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        """Every parameter with `decay_all_parameters` (the reference; docs/method.md, "Training settings"), else
        HF's bias/norm exclusion."""
        if self.decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)


class BeyondGlossPretrainingTrainer(_BeyondGlossTrainerMixin, Trainer):
    r"""
    `Trainer` for [`BeyondGlossForContrastivePretraining`].

    Training logs `loss` (the weighted total) and its parts `alignment_loss`, `description_loss`, `hand_loss`, each
    averaged over the steps since the last log and over processes. Evaluation reports `eval_loss`, the parts, and
    video-to-text / text-to-video retrieval recall@1/@5 over the whole evaluation set (embeddings of every batch and
    process are gathered first, so recall is over N candidates, not per batch). Select checkpoints with
    `metric_for_best_model="eval_loss"` (the reference) or e.g. `"video_to_text_recall@1"`.

    Contrastive negatives across processes are the model's `config.gather_distributed_negatives`; every process then
    needs the same batch size (keep `dataloader_drop_last=True` when the training set does not divide evenly).

    Args:
        decay_all_parameters (`bool`, defaults to `True`): apply weight decay to every trainable parameter as the
            reference does; `False` keeps HF's exclusion of biases and norm weights.
        eval_data_collator (*optional*): collator for evaluation and prediction batches (e.g. one built with
            `training=False`, without augmentation); `data_collator` by default.
        reset_optimizer (`bool`, defaults to `False`): resuming from a checkpoint whose `optimizer.pt` or
            `scheduler.pt` is missing or torn raises a `ValueError`; `True` resumes its weights with a fresh optimizer
            instead (with a warning). The attribute of the same name may be set after construction.
        Everything else as [`~transformers.Trainer`]; `compute_metrics` defaults to [`RetrievalMetrics`].

    Example:

    ```python
    >>> from beyondgloss.training import BeyondGlossPretrainingTrainer, pretraining_arguments
    >>> trainer = BeyondGlossPretrainingTrainer(model=model, args=pretraining_arguments("runs/pt"),
    ...     train_dataset=dataset["train"], eval_dataset=dataset["validation"],
    ...     data_collator=PretrainingCollator(processor))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    ```
    """

    def __init__(self, *args, decay_all_parameters: bool = True, eval_data_collator=None, compute_metrics=None,
                 reset_optimizer: bool = False, **kwargs):
        super().__init__(*args, compute_metrics=compute_metrics or RetrievalMetrics(), **kwargs)
        self._setup_beyondgloss(decay_all_parameters, eval_data_collator, reset_optimizer)
        self._loss_parts = LossPartsTracker()

    def get_train_dataloader(self):
        self._warn_single_sample_batch()
        return super().get_train_dataloader()

    def _warn_single_sample_batch(self) -> None:
        """Warns when every epoch ends with a 1-sample batch: a single video has no negative to be told apart from,
        so the contrastive terms of that step are exactly 0 and the step trains only the hand head."""
        dataset, args = self.train_dataset, self.args
        if args.dataloader_drop_last or dataset is None or not hasattr(dataset, "__len__"):
            return
        if self._train_batch_size < 1:
            return
        model = self.accelerator.unwrap_model(self.model)
        if args.world_size > 1 and getattr(model.config, "gather_distributed_negatives", False):
            return  # the other processes' samples are its negatives
        per_process = math.ceil(len(dataset) / args.world_size)
        if per_process % self._train_batch_size == 1:
            logger.warning(
                "The training set (%d samples%s) leaves a last batch of 1 sample in every epoch at batch size %d: its "
                "contrastive losses are 0 (one video has no negative), so that step logs alignment and description "
                "loss 0. Pass dataloader_drop_last=True (--dataloader_drop_last true) to drop it, or change the batch "
                "size.", len(dataset), f", {per_process} per process" if args.world_size > 1 else "",
                self._train_batch_size)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**_model_inputs(inputs), return_loss=True)
        if model.training:
            self._loss_parts.add(outputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training logs carry "loss"; add the parts accumulated since the previous one (sentence-transformers style).
        if "loss" in logs:
            logs.update({name: round(value, 6) for name, value in self._loss_parts.averages(self.accelerator).items()})
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Returns `(loss, (video_embeds, text_embeds), parts)`, `parts` `(B, 3)`: the batch's loss parts per sample."""
        inputs = self._prepare_inputs(_model_inputs(inputs))
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs, return_loss=True)
        loss = outputs.loss.detach()
        if prediction_loss_only:
            return loss, None, None
        batch = outputs.video_embeds.shape[0]
        parts = torch.full((batch, len(LOSS_PARTS)), float("nan"), device=loss.device)
        for index, name in enumerate(LOSS_PARTS):
            value = getattr(outputs, name)
            if value is not None:
                parts[:, index] = value.detach().float()
        return loss, (outputs.video_embeds.detach(), outputs.text_embeds.detach()), parts


def _column(dataset, name: str) -> list | None:
    """A column of a `datasets.Dataset` as a list (ignoring any transform), or None if there is none."""
    if dataset is None or name not in (getattr(dataset, "column_names", None) or []):
        return None
    return list(dataset.with_format(None)[name])


class BeyondGlossTranslationTrainer(_BeyondGlossTrainerMixin, Seq2SeqTrainer):
    r"""
    `Seq2SeqTrainer` for [`BeyondGlossForSignTranslation`], evaluated by generation.

    With `predict_with_generate=True` every evaluation translates the evaluation set by beam search (settings from
    the model's generation config: `num_beams`, `max_new_tokens`; `generation_num_beams` / `generation_max_length`
    override them) and scores the output with `compute_metrics`. A [`~beyondgloss.metrics.TranslationComputeMetrics`]
    (from `make_compute_metrics`) is pointed at the raw `text` column of whichever dataset is evaluated, so scores are
    against the dataset's references, not a tokenizer round trip of them. After each evaluation the output folder holds
    `<prefix>_predictions.jsonl` (`id`, `reference`, `prediction` per sample, dataset order) and `<prefix>_scores.json`
    (every score with its sacrebleu signature and convention). Select checkpoints with
    `metric_for_best_model="bleu4"`.

    Args:
        decay_all_parameters (`bool`, defaults to `True`), eval_data_collator, reset_optimizer: as in
            [`BeyondGlossPretrainingTrainer`].
        encoder_learning_rate_scale (`float`, defaults to 1.0): learning-rate multiplier for the parts that stage 1
            trains and stage 2 inherits (`ENCODER_SIDE_PREFIXES`: the sign video encoder and the mBART encoder); the
            decoder side keeps `learning_rate`. 1.0 is the paper's stage 2. Below 1, a decoder that starts from
            scratch cannot rewrite the inherited video representation with its first, uninformed gradients before it
            has learnt to read it (docs/demo.md has the measurement).
        Everything else as [`~transformers.Seq2SeqTrainer`].
    """

    # Parameter-name prefixes of the parts a pre-training checkpoint hands over to translation.
    ENCODER_SIDE_PREFIXES = ("sign_encoder.", "mbart.model.encoder.")

    def __init__(self, *args, decay_all_parameters: bool = True, eval_data_collator=None,
                 encoder_learning_rate_scale: float = 1.0, reset_optimizer: bool = False, **kwargs):
        if not encoder_learning_rate_scale > 0:
            raise ValueError(f"encoder_learning_rate_scale={encoder_learning_rate_scale!r}: must be a positive number "
                             "(1.0 trains both sides at learning_rate, as the paper).")
        self.encoder_learning_rate_scale = float(encoder_learning_rate_scale)
        super().__init__(*args, **kwargs)
        self._setup_beyondgloss(decay_all_parameters, eval_data_collator, reset_optimizer)

    def create_optimizer(self, model=None):
        """Trainer's optimizer, with each parameter group split into a decoder side at `learning_rate` and an encoder
        side at `learning_rate * encoder_learning_rate_scale` (schedulers scale every group's rate alike)."""
        had_optimizer = self.optimizer is not None
        optimizer = super().create_optimizer(model)
        if had_optimizer or self.encoder_learning_rate_scale == 1.0:
            return optimizer
        model = self.model if model is None else model
        encoder_side = {id(p) for name, p in model.named_parameters() if name.startswith(self.ENCODER_SIDE_PREFIXES)}
        groups = []
        for group in optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            for on_encoder_side, scale in ((False, 1.0), (True, self.encoder_learning_rate_scale)):
                params = [p for p in group["params"] if (id(p) in encoder_side) == on_encoder_side]
                if params:
                    groups.append({**settings, "params": params, "lr": group["lr"] * scale})
        optimizer.param_groups.clear()  # no step has been taken: the optimizer holds no state yet
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, _model_inputs(inputs), return_outputs=return_outputs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """Returns `(loss, generated_ids, labels)`; generation sees only the video inputs."""
        inputs = _model_inputs(inputs)
        if not self.args.predict_with_generate or prediction_loss_only:
            return Trainer.prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        if not gen_kwargs:
            gen_kwargs = dict(getattr(self, "_gen_kwargs", None) or {})
        gen_kwargs = {key: value for key, value in gen_kwargs.items() if value is not None}
        generator = self.accelerator.unwrap_model(model)
        generated = generator.generate(
            pixel_values_videos=inputs["pixel_values_videos"],
            video_attention_mask=inputs.get("video_attention_mask"),
            **gen_kwargs,
        )
        loss = None
        labels = inputs.get("labels")
        if labels is not None:
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = model(**inputs).loss.detach()
        return loss, generated, labels

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        dataset = getattr(dataloader, "dataset", None)
        scorer = self.compute_metrics
        references = _column(dataset, "text")
        uses_references = references is not None and hasattr(scorer, "references")
        if uses_references:
            saved, scorer.references = scorer.references, references
        if hasattr(scorer, "last_predictions"):
            scorer.last_predictions = None  # so that a run without scoring does not rewrite an earlier run's outputs
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                             ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            if uses_references:
                scorer.references = saved
        predictions = getattr(scorer, "last_predictions", None)
        if self.args.should_save and predictions is not None:
            self._write_predictions(metric_key_prefix, dataset, predictions, references, scorer.last_result)
        return output

    def _write_predictions(self, prefix: str, dataset, predictions: list, references: list | None, result) -> None:
        os.makedirs(self.args.output_dir, exist_ok=True)
        ids = _column(dataset, "id") or [str(i) for i in range(len(predictions))]
        references = references or [None] * len(predictions)
        path = os.path.join(self.args.output_dir, f"{prefix}_predictions.jsonl")
        lines = [json.dumps({"id": sample_id, "reference": reference, "prediction": prediction}, ensure_ascii=False)
                 + "\n" for sample_id, reference, prediction in zip(ids, references, predictions)]
        write_atomically(path, "".join(lines))
        if result is not None:
            scores = {key: value for key, value in result.items() if not (isinstance(value, float) and math.isnan(value))}
            scores["global_step"] = self.state.global_step
            write_atomically(os.path.join(self.args.output_dir, f"{prefix}_scores.json"),
                             json.dumps(scores, ensure_ascii=False, indent=2))
        logger.info("Wrote %d predictions with their references to %s", len(predictions), path)

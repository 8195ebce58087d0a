"""`beyondgloss pretrain`, `beyondgloss finetune` and `beyondgloss evaluate`.

Each parses its flags, or a single `.yaml`/`.json` file of the same names, with `transformers.HfArgumentParser`. The
reference's optimisation settings (`beyondgloss.training.presets`) are the defaults; every flag or file key overrides
them. The commands run unchanged under `torchrun` and `accelerate launch` (the Trainer picks the process group up
from the environment).

```
beyondgloss pretrain --dataset synthsign --data_dir synthsign --tiny --output_dir runs/pretrain
beyondgloss finetune --dataset synthsign --data_dir synthsign --model_name_or_path runs/pretrain --output_dir runs/ft
beyondgloss evaluate --dataset synthsign --data_dir synthsign --model_name_or_path runs/ft --output_dir runs/ft-test
```

Output folders are never someone else's (`beyondgloss.cli.output_dir`); an interrupted run resumes with
`--resume_from_checkpoint last`. Exit codes: `beyondgloss.cli`.
"""

import os
from pathlib import Path

from transformers import Seq2SeqTrainingArguments, TrainingArguments

from ..training.arguments import DataArguments, ModelArguments, RunArguments
from ..training.callbacks import LogFileCallback, ModelCardCallback
from ..training.presets import PRETRAINING_PRESET, TRANSLATION_PRESET
from ..utils.allocator import keep_freed_memory
from ..utils.logging_utils import setup_logging
from ._arguments import config_overrides, parse_arguments
from ._common import CommandError, UsageError, run_command
from ._loading import (
    build_model,
    check_frame_capacity,
    check_generation_length,
    load_dataset_splits,
    load_processor,
    load_saved,
    load_translation_model,
    target_language,
)
from ._guards import (
    PRETRAINING_ARCHITECTURE,
    TRANSLATION_ARCHITECTURE,
    check_remote_code,
    require_finite_weights,
)
from .output_dir import claim_output_dir, mark_output_dir, open_output_dir, prepare_output_dir

__all__ = ["pretrain", "finetune", "evaluate"]

_PRETRAINING_SCORES = ("eval_loss", "eval_alignment_loss", "eval_description_loss", "eval_hand_loss",
                       "eval_video_to_text_recall@1", "eval_video_to_text_recall@5")
_TRANSLATION_SCORES = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf", "loss", "num_samples")
# `evaluate` trains nothing: no periodic evaluation or checkpoints; results go next to the model unless told.
_EVALUATION_ONLY = {"output_dir": None, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}


def pretrain(argv: list) -> int:
    """`beyondgloss pretrain`: stage 1, contrastive pre-training (flags: `beyondgloss pretrain --help`)."""
    return run_command("pretrain", lambda arguments: _train(arguments, "pretrain"), argv)


def finetune(argv: list) -> int:
    """`beyondgloss finetune`: stage 2, translation fine-tuning, then scoring on the test split."""
    return run_command("finetune", lambda arguments: _train(arguments, "finetune"), argv)


def evaluate(argv: list) -> int:
    """`beyondgloss evaluate`: score a model on a dataset split (translation: BLEU/ROUGE/chrF; pre-training: recall)."""
    return run_command("evaluate", _evaluate, argv)


# --------------------------------------------------------------------------------------------------------------
# pretrain, finetune


def _train(argv: list, stage: str) -> dict:
    keep_freed_memory()  # this process trains: each step reuses the last one's freed pages
    pretraining = stage == "pretrain"
    arguments_class = TrainingArguments if pretraining else Seq2SeqTrainingArguments
    preset = PRETRAINING_PRESET if pretraining else TRANSLATION_PRESET
    model_args, data, run, args = parse_arguments(
        argv, (ModelArguments, DataArguments, RunArguments, arguments_class), preset, stage)
    config_overrides(model_args.config_overrides)  # its names are checked before anything is built
    setup_logging(args.should_log)
    resume = prepare_output_dir(args, run, PRETRAINING_ARCHITECTURE if pretraining else TRANSLATION_ARCHITECTURE)

    test_split = None if pretraining or (data.test_split or "").lower() in ("", "none") else data.test_split
    splits = load_dataset_splits(data, args, [(data.train_split, data.max_train_samples),
                                              (data.eval_split, data.max_eval_samples),
                                              (test_split, data.max_eval_samples)])
    train_dataset, eval_dataset = splits[data.train_split], splits.get(data.eval_split)
    if eval_dataset is None and args.eval_strategy != "no":
        raise UsageError(f"no evaluation split {data.eval_split!r}; pass --eval_split, or --eval_strategy no "
                         "--load_best_model_at_end false")
    processor = load_processor(model_args, data, train_dataset["text"], target_language(model_args, train_dataset))
    trainer = _make_trainer(pretraining, model_args, data, args, processor, train_dataset, eval_dataset)
    trainer.reset_optimizer = run.reset_optimizer

    open_output_dir(args, run)
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = _score_and_report(trainer, stage, data, eval_dataset, test_split, splits.get(test_split))
    if args.should_save:  # the card again, now with the scores of the test split
        card = next(c for c in trainer.callback_handler.callbacks if isinstance(c, ModelCardCallback))
        card.on_train_end(args, trainer.state, trainer.control, model=trainer.model,
                          processing_class=trainer.processing_class)
    return metrics


def _card_data(model_args: ModelArguments, data: DataArguments):
    """What the model card says of the run: the dataset, and the model it started from (a Hub id in the card's
    metadata; a local folder, which the Hub cannot link, in its notes)."""
    from ..model_card import SignTranslationCardData

    dataset = data.dataset or ""
    name = Path(dataset).name if Path(dataset).is_dir() else dataset
    sources = [s for s in (model_args.model_name_or_path, model_args.vision_backbone, model_args.text_backbone) if s]
    local = [source for source in sources if Path(source).exists()]
    hub_ids = [source for source in sources if source not in local]
    notes = [f"Trained from the local folder {', '.join(local)}."] if local else []
    if model_args.tiny:
        notes.append("A tiny random model (`--tiny`) for tests and quick checks, not a usable translator.")
    return SignTranslationCardData(dataset_name=name or None, base_model=hub_ids or None,
                                   notes=" ".join(notes) or None)


def _make_trainer(pretraining: bool, model_args, data, args, processor, train_dataset, eval_dataset):
    """The model (built or loaded, fitted to the processor) in the stage's Trainer."""
    from ..data import PretrainingCollator, TranslationCollator
    from ..training.trainers import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer

    if pretraining:
        from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining as model_class
    else:
        from ..modeling_beyondgloss import BeyondGlossForSignTranslation as model_class
    model = build_model(model_class, model_args, processor, train_dataset)
    check_frame_capacity(model.config, processor.video_processor,
                         f"pass --max_frames {2 * model.config.text_config.max_position_embeddings} or less")
    check_generation_length(model.config, args)
    collator_class = PretrainingCollator if pretraining else TranslationCollator
    compute_metrics = None if pretraining else _translation_metrics(processor, data, train_dataset)
    common = dict(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                  data_collator=collator_class(processor, training=True, max_target_length=data.max_target_length),
                  eval_data_collator=collator_class(processor, training=False,
                                                    max_target_length=data.max_target_length),
                  processing_class=processor,
                  callbacks=[LogFileCallback(), ModelCardCallback(_card_data(model_args, data), compute_metrics)],
                  decay_all_parameters=model_args.decay_all_parameters)
    try:
        if pretraining:
            return BeyondGlossPretrainingTrainer(**common)
        return BeyondGlossTranslationTrainer(
            **common, compute_metrics=compute_metrics,
            encoder_learning_rate_scale=model_args.encoder_learning_rate_scale)
    except ValueError as error:  # a training setting the Trainer refuses (e.g. an unknown --report_to)
        raise UsageError(f"the Trainer refused the training settings: {error}") from error


def _score_and_report(trainer, stage: str, data, eval_dataset, test_split, test_dataset) -> dict:
    """Scores the trained model on the evaluation and test splits, saves the scores and prints a summary."""
    args, state = trainer.args, trainer.state
    pretraining = stage == "pretrain"
    lines = [f"model      {os.path.abspath(args.output_dir)}", f"steps      {state.global_step}"]
    if state.best_model_checkpoint:
        lines.append(f"best       {state.best_model_checkpoint} ({args.metric_for_best_model} = "
                     f"{state.best_metric:.4f})")
    metrics = {}
    if eval_dataset is not None:
        metrics = trainer.evaluate(eval_dataset, metric_key_prefix="eval")
        trainer.save_metrics("eval", metrics)
        lines.append(f"{data.eval_split}:")
        lines += _score_lines(metrics, _PRETRAINING_SCORES if pretraining
                              else tuple(f"eval_{key}" for key in _TRANSLATION_SCORES))
    if test_dataset is not None:
        test_metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
        trainer.save_metrics("test", test_metrics)
        metrics.update(test_metrics)
        lines.append(f"{test_split}:")
        lines += _score_lines(test_metrics, tuple(f"test_{key}" for key in _TRANSLATION_SCORES))
        lines.append(f"predictions {os.path.abspath(os.path.join(args.output_dir, 'test_predictions.jsonl'))}")
    if args.should_save:
        _summary(f"beyondgloss {stage}: done", lines)
    return metrics


def _translation_metrics(processor, data: DataArguments, dataset):
    from ..metrics import make_compute_metrics

    language = None
    if dataset is not None and "language" in dataset.column_names and len(dataset):
        language = dataset[0]["language"]
    return make_compute_metrics(processor.tokenizer, language=language or processor.target_language,
                                convention=data.scoring_convention)


# --------------------------------------------------------------------------------------------------------------
# evaluate


def _evaluate(argv: list) -> dict:
    model_args, data, run, args = parse_arguments(
        argv, (ModelArguments, DataArguments, RunArguments, Seq2SeqTrainingArguments),
        {**TRANSLATION_PRESET, **_EVALUATION_ONLY}, "evaluate")
    setup_logging(args.should_log)
    if not model_args.model_name_or_path:
        raise UsageError("--model_name_or_path (a trained model folder) is required")
    split = data.test_split if (data.test_split or "").lower() not in ("", "none") else data.eval_split
    if args.output_dir in (None, "trainer_output"):
        args.output_dir = os.path.join(model_args.model_name_or_path, f"evaluation-{split}")
    folder = Path(args.output_dir)
    if claim_output_dir(folder):
        held = sorted(p.name for p in folder.glob(f"{split}_*"))
        if held and not run.overwrite_output_dir:
            raise CommandError(f"{folder} already holds results of an evaluation on {split!r} ({', '.join(held)}); "
                               "pass --overwrite_output_dir to replace them, or choose another --output_dir")

    dataset = load_dataset_splits(data, args, [(split, data.max_eval_samples)])[split]
    processor = load_processor(model_args, data, None, target_language(model_args, dataset))
    trainer, keys = _evaluation_trainer(model_args, data, args, processor, dataset, split)
    if args.should_save and not claim_output_dir(folder):
        mark_output_dir(folder)
    metrics = trainer.evaluate(dataset, metric_key_prefix=split)
    trainer.save_metrics(split, metrics, combined=False)
    if args.should_save:
        lines = [f"model       {os.path.abspath(model_args.model_name_or_path)}", f"split       {split} "
                 f"({len(dataset)} samples)", *_score_lines(metrics, keys),
                 f"results     {os.path.abspath(args.output_dir)}"]
        _summary("beyondgloss evaluate", lines)
    return metrics


def _evaluation_trainer(model_args, data, args, processor, dataset, split: str) -> tuple:
    """The Trainer that scores the saved model (of either stage), and the score keys its summary shows."""
    from transformers import AutoConfig

    from ..data import PretrainingCollator, TranslationCollator
    from ..training.trainers import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer

    folder = Path(model_args.model_name_or_path)
    check_remote_code(folder, model_args.trust_remote_code)
    config = load_saved(AutoConfig, folder, "the model's config", trust_remote_code=model_args.trust_remote_code)
    architecture = (config.architectures or [""])[0]
    if architecture == PRETRAINING_ARCHITECTURE:  # scored by retrieval, not by its (untrained) decoder
        from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining

        model = load_saved(BeyondGlossForContrastivePretraining, folder, "the model")
        require_finite_weights(model, folder)
    else:
        model = load_translation_model(folder, model_args)
    check_frame_capacity(model.config, processor.video_processor, "pass a smaller --max_frames")
    check_generation_length(model.config, args)
    if architecture == PRETRAINING_ARCHITECTURE:
        trainer = BeyondGlossPretrainingTrainer(
            model=model, args=args, data_collator=PretrainingCollator(processor, training=False),
            processing_class=processor)
        return trainer, tuple(key.replace("eval_", f"{split}_") for key in _PRETRAINING_SCORES)
    trainer = BeyondGlossTranslationTrainer(
        model=model, args=args, data_collator=TranslationCollator(processor, training=False),
        processing_class=processor, compute_metrics=_translation_metrics(processor, data, dataset))
    return trainer, tuple(f"{split}_{key}" for key in _TRANSLATION_SCORES)


# --------------------------------------------------------------------------------------------------------------
# Summary


def _summary(title: str, lines: list) -> None:
    width = max(len(title), *(len(line) for line in lines)) if lines else len(title)
    print("\n" + "=" * width + f"\n{title}\n" + "-" * width)
    for line in lines:
        print(line)
    print("=" * width, flush=True)


def _score_lines(metrics: dict, keys: tuple) -> list:
    lines = []
    for key in keys:
        if key in metrics:
            value = metrics[key]
            lines.append(f"  {key:<34} {value:.4f}" if isinstance(value, float) else f"  {key:<34} {value}")
    return lines

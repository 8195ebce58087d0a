"""The reference's optimisation settings as `TrainingArguments` values, each one overridable
(docs/method.md, "Training settings").

`pretraining_arguments(output_dir, **overrides)` and `translation_arguments(output_dir, **overrides)` return
ready `TrainingArguments` / `Seq2SeqTrainingArguments`; `PRETRAINING_PRESET` and `TRANSLATION_PRESET` are the same
values as plain dicts (the command line applies them as parser defaults, so every flag still wins).

What the presets reproduce, and where they differ from the reference code:

- Pre-training: AdamW, lr 3e-4, cosine decay to 1e-8 with no warmup (`cosine_with_min_lr`, `min_lr=1e-8`, stepped
  per optimizer step like the reference's `CosineAnnealingLR(eta_min=1e-8)`), weight decay 0.01, batch 16, global
  gradient-norm clipping at 1.0, 100 epochs, seed 42; the checkpoint with the lowest total eval loss is kept.
- Translation: lr 4e-4, 20% linear warmup then cosine decay (the reference's `OneCycleLR(pct_start=0.2)` also
  starts at lr/25 and cycles Adam's beta1 between 0.95 and 0.85; HF schedulers do neither), batch 16, clip 1.0,
  100 epochs, evaluation by beam search every epoch, the checkpoint with the best dev BLEU-4 kept. Label smoothing
  0.2 and 5 beams live in the model config (`label_smoothing`, `num_beams`), not here, so that a saved model
  generates the same way everywhere.
- Weight decay scope: the reference decays every trainable parameter, biases, norms and the temperature included;
  HF's Trainer excludes biases and norm weights. The beyondgloss trainers follow the reference by default
  (`decay_all_parameters=True`); pass `decay_all_parameters=False` for HF's choice.
- Precision: the reference trains in fp16 AMP on a GPU; pass `fp16=True` (or `bf16=True`) there. The presets leave
  precision at fp32 so that they also run on a CPU.
"""

from transformers import Seq2SeqTrainingArguments, TrainingArguments

__all__ = ["PRETRAINING_PRESET", "TRANSLATION_PRESET", "pretraining_arguments", "translation_arguments"]

# Settings both stages share: the reference's AdamW, clipping, batch size, epochs and seed.
_COMMON = {
    "weight_decay": 0.01,  # AdamW(weight_decay=0.01), Pretrain_Model.py / Finetune_Model.py
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "max_grad_norm": 1.0,  # configure_gradient_clipping: global L2 norm 1.0
    "per_device_train_batch_size": 16,  # scripts/pretrain.sub, scripts/finetune.sub
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 100,  # CLI default of both scripts
    "seed": 42,  # seed_everything(42)
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "logging_steps": 50,
    # The collators read raw columns (video, text, hand features); Trainer must not drop them.
    "remove_unused_columns": False,
    "report_to": "none",
}

PRETRAINING_PRESET = {
    **_COMMON,
    "learning_rate": 3e-4,  # scripts/pretrain.sub
    "lr_scheduler_type": "cosine_with_min_lr",  # --scheduler cosine: CosineAnnealingLR(eta_min=1e-8)
    "lr_scheduler_kwargs": {"min_lr": 1e-8},
    "warmup_steps": 0,  # the script's --warmup 0.05 is ignored by its cosine scheduler (docs/method.md)
    "metric_for_best_model": "eval_loss",  # ModelCheckpoint(monitor="val_total_loss", mode="min")
    "greater_is_better": False,
}

TRANSLATION_PRESET = {
    **_COMMON,
    "learning_rate": 4e-4,  # scripts/finetune.sub
    "lr_scheduler_type": "cosine",  # OneCycleLR(anneal_strategy="cos")
    "warmup_steps": 0.2,  # OneCycleLR(pct_start=0.2); a float below 1 is a fraction of the training steps
    "predict_with_generate": True,  # reported scores come from beam search, not teacher forcing
    "metric_for_best_model": "bleu4",  # SaveBestModelOnNEpochs(monitor="val_bleu", mode="max")
    "greater_is_better": True,
    "label_names": ["labels"],
}


def pretraining_arguments(output_dir: str, **overrides) -> TrainingArguments:
    """`TrainingArguments` of the reference's contrastive pre-training, with `overrides` applied on top.

    Example:

    ```python
    >>> from beyondgloss.training import pretraining_arguments
    >>> args = pretraining_arguments("runs/pretrain", num_train_epochs=10, fp16=True)  # doctest: +SKIP
    >>> args.learning_rate, args.lr_scheduler_kwargs
    (0.0003, {'min_lr': 1e-08})
    ```
    """
    return TrainingArguments(output_dir=output_dir, **{**PRETRAINING_PRESET, **overrides})


def translation_arguments(output_dir: str, **overrides) -> Seq2SeqTrainingArguments:
    """`Seq2SeqTrainingArguments` of the reference's translation fine-tuning, with `overrides` applied on top."""
    return Seq2SeqTrainingArguments(output_dir=output_dir, **{**TRANSLATION_PRESET, **overrides})

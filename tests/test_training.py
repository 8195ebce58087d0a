"""The two Trainer subclasses on tiny models and in-memory data: loss parts, retrieval, resume, generation eval."""

import json

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import EvalPrediction, TrainerCallback

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from beyondgloss.metrics import compute_translation_metrics, make_compute_metrics
from beyondgloss.testing import tiny_config
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.training import (
    PRETRAINING_PRESET,
    BeyondGlossPretrainingTrainer,
    BeyondGlossTranslationTrainer,
    RetrievalMetrics,
    pretraining_arguments,
    translation_arguments,
)

SENTENCES = ["the dog runs", "a red house", "the man sees the boat", "today it rains", "the cat sleeps",
             "a big apple", "the woman helps", "it snows tomorrow"]
HAND_DIM, DESCRIPTION_DIM, FRAMES = 6, 24, 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_sign_tokenizer(SENTENCES, language="en_XX")


def _dataset(tokenizer, count=8, seed=0):
    """Rows with model-ready tensors plus the raw `id`/`text`; frames per video vary (3 or 4)."""
    generator = torch.Generator().manual_seed(seed)
    rows = {"id": [], "text": [], "pixel_values_videos": [], "video_attention_mask": [], "hand_features": [],
            "description_embeds": []}
    for index in range(count):
        length = FRAMES - index % 2
        mask = [1] * length + [0] * (FRAMES - length)
        pixels = torch.randn(FRAMES, 3, 28, 28, generator=generator)
        pixels[length:] = 0
        rows["id"].append(f"sample-{index}")
        rows["text"].append(SENTENCES[index % len(SENTENCES)])
        rows["pixel_values_videos"].append(pixels.numpy())
        rows["video_attention_mask"].append(mask)
        rows["hand_features"].append(torch.randn(FRAMES, HAND_DIM, generator=generator).numpy())
        rows["description_embeds"].append(torch.randn(DESCRIPTION_DIM, generator=generator).numpy())
    return datasets.Dataset.from_dict(rows)


class TensorCollator:
    """Stacks the tensor columns; tokenizes `text` for the requested stage (a stand-in for the video collators)."""

    def __init__(self, tokenizer, stage):
        self.tokenizer, self.stage = tokenizer, stage

    def __call__(self, rows):
        batch = {key: torch.stack([torch.as_tensor(np.asarray(row[key])) for row in rows]).float()
                 for key in ("pixel_values_videos", "hand_features", "description_embeds")}
        batch["video_attention_mask"] = torch.tensor([row["video_attention_mask"] for row in rows])
        batch["hand_mask"] = batch["video_attention_mask"].clone()
        encoded = self.tokenizer(text_target=[row["text"] for row in rows], padding=True, return_tensors="pt")
        if self.stage == "pretraining":
            batch.update(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
        else:
            batch["labels"] = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        # Metadata the real collators add with return_metadata=True: the trainers must drop it before the model.
        batch["ids"] = [row["id"] for row in rows]
        return batch


def _config(tokenizer, **overrides):
    return tiny_config(vocab_size=len(tokenizer), hand_dim=HAND_DIM, description_dim=DESCRIPTION_DIM,
                       decoder_start_token_id=tokenizer.convert_tokens_to_ids("en_XX"), **overrides)


def _quick(**overrides):
    settings = dict(per_device_train_batch_size=4, per_device_eval_batch_size=4, max_steps=4, logging_steps=2,
                    eval_strategy="no", save_strategy="no", load_best_model_at_end=False, use_cpu=True,
                    disable_tqdm=True, dataloader_num_workers=0, seed=0)
    settings.update(overrides)
    return settings


class PartsRecorder(BeyondGlossPretrainingTrainer):
    """Keeps every training batch's loss parts, to check what the trainer logs against them."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
        if model.training:
            self.recorded = getattr(self, "recorded", []) + [
                {name: float(getattr(outputs, name).detach()) for name in ("loss", "alignment_loss", "description_loss", "hand_loss")}]
        return (loss, outputs) if return_outputs else loss


def test_presets_reproduce_the_reference_and_can_be_overridden(tmp_path):
    args = pretraining_arguments(str(tmp_path), num_train_epochs=3, use_cpu=True)
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm, args.warmup_steps) == (3e-4, 0.01, 1.0, 0)
    assert args.lr_scheduler_type == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr": 1e-8}
    assert args.per_device_train_batch_size == 16 and args.num_train_epochs == 3
    assert args.metric_for_best_model == "eval_loss" and not args.greater_is_better
    translation = translation_arguments(str(tmp_path), learning_rate=1e-3, use_cpu=True)
    assert translation.learning_rate == 1e-3 and translation.warmup_steps == 0.2
    assert translation.lr_scheduler_type == "cosine" and translation.predict_with_generate
    assert translation.metric_for_best_model == "bleu4" and translation.greater_is_better
    assert PRETRAINING_PRESET["learning_rate"] == 3e-4  # the dict the command line uses as defaults


def test_pretraining_trainer_logs_each_loss_part_averaged_between_logging_steps(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = BeyondGlossForContrastivePretraining(_config(tokenizer))
    trainer = PartsRecorder(
        model=model, args=pretraining_arguments(str(tmp_path), **_quick(gradient_accumulation_steps=2)),
        train_dataset=_dataset(tokenizer), data_collator=TensorCollator(tokenizer, "pretraining"))
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logs] == [2, 4]
    recorded = trainer.recorded  # 4 optimizer steps x 2 accumulated batches
    assert len(recorded) == 8
    for entry, batches in zip(logs, (recorded[:4], recorded[4:])):
        # Each part is logged as the float64 mean of the same float32 batch values, rounded to 6 decimals: off by at
        # most half a unit of the 6th decimal (plus float64 round-off).
        for name in ("alignment_loss", "description_loss", "hand_loss"):
            assert entry[name] == pytest.approx(np.mean([b[name] for b in batches]), abs=5e-7 + 1e-12)
        # The logged total is the batch mean (not scaled by the accumulation steps) and matches its weighted parts.
        # The Trainer sums the 4 positive float32 batch losses in float32 (halving for the accumulation is exact):
        # each addition rounds by at most eps/2 of the running sum, so within 2 eps of the mean.
        epsilon = float(torch.finfo(torch.float32).eps)
        assert entry["loss"] == pytest.approx(np.mean([b["loss"] for b in batches]), rel=len(batches) * epsilon / 2)
        # Against the weighted logged parts: their 6-decimal rounding (0.5e-6 * (1 + 0.5 + 0.3)), the model's float32
        # sum of the weighted terms and the Trainer's float32 mean (a few eps of the loss).
        weighted = entry["alignment_loss"] + 0.5 * entry["description_loss"] + 0.3 * entry["hand_loss"]
        assert entry["loss"] == pytest.approx(weighted, abs=0.9e-6 + 8 * epsilon * entry["loss"])


def test_activation_checkpointing_argument_trains_the_same_steps(tmp_path, tokenizer):
    """`--activation_checkpointing` reaches the frame encoder (and mBART) and recomputes the same values: the
    losses of every training batch equal those of a run without it (dropout included)."""
    losses = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = BeyondGlossForContrastivePretraining(_config(tokenizer))
        trainer = PartsRecorder(
            model=model, args=pretraining_arguments(str(tmp_path / str(checkpointing)),
                                                    **_quick(activation_checkpointing=checkpointing)),
            train_dataset=_dataset(tokenizer), data_collator=TensorCollator(tokenizer, "pretraining"))
        trainer.train()
        assert model.sign_encoder.frame_encoder.gradient_checkpointing == checkpointing
        losses.append([batch["loss"] for batch in trainer.recorded])
    assert len(losses[0]) == 4 and losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_pretraining_evaluation_reports_parts_and_retrieval_over_the_whole_set(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = BeyondGlossForContrastivePretraining(_config(tokenizer))
    eval_dataset = _dataset(tokenizer, count=6, seed=1)
    trainer = BeyondGlossPretrainingTrainer(
        model=model, args=pretraining_arguments(str(tmp_path), **_quick()), eval_dataset=eval_dataset,
        data_collator=TensorCollator(tokenizer, "pretraining"))
    metrics = trainer.evaluate()
    for key in ("eval_loss", "eval_alignment_loss", "eval_description_loss", "eval_hand_loss",
                "eval_video_to_text_recall@1", "eval_video_to_text_recall@5"):
        assert key in metrics, key
    # Recall over all 6 samples (batches of 4 and 2), recomputed from the model's embeddings of the whole set.
    model.eval()
    batch = TensorCollator(tokenizer, "pretraining")([eval_dataset[i] for i in range(6)])
    batch.pop("ids")
    with torch.no_grad():
        outputs = model(**batch)
    scores = outputs.video_embeds @ outputs.text_embeds.t()
    ranks = (scores > scores.diag()[:, None]).sum(1)
    assert metrics["eval_video_to_text_recall@1"] == pytest.approx(100 * (ranks < 1).float().mean().item())
    assert metrics["eval_video_to_text_recall@5"] == pytest.approx(100 * (ranks < 5).float().mean().item())
    assert trainer.state.log_history[-1]["eval_alignment_loss"] == metrics["eval_alignment_loss"]


def test_retrieval_metrics_by_hand():
    video = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    text = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    parts = np.array([[1.0, np.nan, 2.0]] * 3)
    metrics = RetrievalMetrics(ks=(1, 2))(EvalPrediction(predictions=(video, text), label_ids=parts))
    # video 0 ties with text 1 (same sentence embedding): rank 0; video 1 -> text 1 scores 0 < 1 (text 2): rank 1;
    # video 2 -> text 2 scores 0.8 > 0.6: rank 0.
    assert metrics["video_to_text_recall@1"] == pytest.approx(200 / 3)
    assert metrics["video_to_text_recall@2"] == 100.0
    assert metrics["alignment_loss"] == 1.0 and metrics["hand_loss"] == 2.0 and "description_loss" not in metrics


def test_weight_decay_scope(tmp_path, tokenizer):
    model = BeyondGlossForContrastivePretraining(_config(tokenizer))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    args = pretraining_arguments(str(tmp_path), **_quick())
    reference = BeyondGlossPretrainingTrainer(model=model, args=args)
    groups = reference.create_optimizer().param_groups
    assert {id(p) for p in groups[0]["params"]} == trainable and groups[0]["weight_decay"] == 0.01
    assert not groups[1]["params"]
    standard = BeyondGlossPretrainingTrainer(model=model, args=args, decay_all_parameters=False)
    no_decay = standard.create_optimizer().param_groups[1]
    assert no_decay["weight_decay"] == 0.0 and no_decay["params"]


class FirstStep(TrainerCallback):
    """Records the state and optimizer at the first step a (resumed) run takes."""

    def __init__(self):
        self.seen = None

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if self.seen is None:
            self.seen = (state.global_step, {k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()}
                                             for k, s in optimizer.state_dict()["state"].items()})


def test_checkpoint_then_resume_at_the_right_step_with_the_optimizer_state(tmp_path, tokenizer):
    def run(output_dir, resume=None):
        # The resumed model starts from other random weights: everything must come from the checkpoint.
        torch.manual_seed(1 if resume else 0)
        model = BeyondGlossForContrastivePretraining(_config(tokenizer))
        callback = FirstStep()
        trainer = BeyondGlossPretrainingTrainer(
            model=model, args=pretraining_arguments(str(output_dir), **_quick(save_strategy="steps", save_steps=2)),
            train_dataset=_dataset(tokenizer), data_collator=TensorCollator(tokenizer, "pretraining"),
            callbacks=[callback])
        trainer.train(resume_from_checkpoint=resume)
        return trainer, callback

    full, _ = run(tmp_path / "full")
    checkpoint = tmp_path / "full" / "checkpoint-2"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    resumed, callback = run(tmp_path / "resumed", resume=str(checkpoint))
    step, optimizer_state = callback.seen
    assert step == 2 and resumed.state.global_step == 4
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"]
    assert saved.keys() == optimizer_state.keys() and saved
    for key, values in saved.items():
        assert torch.equal(values["exp_avg"], optimizer_state[key]["exp_avg"])
        assert torch.equal(values["exp_avg_sq"], optimizer_state[key]["exp_avg_sq"])
    # Every weight was restored (DINOv2's are saved under legacy names), so the resumed run ends where the
    # uninterrupted one did.
    final_full, final_resumed = full.model.state_dict(), resumed.model.state_dict()
    for name, value in final_full.items():
        assert torch.allclose(value, final_resumed[name], atol=1e-6), name
    assert load_file(checkpoint / "model.safetensors")  # a safetensors file, not a pickle


def test_translation_trainer_evaluates_by_generation_and_writes_predictions(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(_config(tokenizer, max_new_tokens=6))
    eval_dataset = _dataset(tokenizer, count=5, seed=2)
    scorer = make_compute_metrics(tokenizer, language="en")
    trainer = BeyondGlossTranslationTrainer(
        model=model,
        args=translation_arguments(str(tmp_path), **_quick(max_steps=2, generation_num_beams=2)),
        train_dataset=_dataset(tokenizer), eval_dataset=eval_dataset,
        data_collator=TensorCollator(tokenizer, "translation"), compute_metrics=scorer)
    trainer.train()
    metrics = trainer.evaluate()
    for key in ("eval_loss", "eval_bleu1", "eval_bleu4", "eval_rouge_l", "eval_chrf"):
        assert key in metrics, key
    records = [json.loads(line) for line in (tmp_path / "eval_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == eval_dataset["id"]
    assert [r["reference"] for r in records] == eval_dataset["text"]
    # The scores are those of the generated texts against the raw references.
    expected = compute_translation_metrics([r["prediction"] for r in records], eval_dataset["text"], language="en")
    assert metrics["eval_bleu4"] == pytest.approx(expected["bleu4"])
    assert metrics["eval_chrf"] == pytest.approx(expected["chrf"])
    # The predictions are beam search outputs with the model's settings, decoded.
    batch = TensorCollator(tokenizer, "translation")([eval_dataset[i] for i in range(5)])
    generated = model.generate(batch["pixel_values_videos"], batch["video_attention_mask"], num_beams=2)
    decoded = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    assert [r["prediction"] for r in records] == decoded
    scores = json.loads((tmp_path / "eval_scores.json").read_text())
    assert scores["signature"].startswith("nrefs:1") and scores["global_step"] == 2

"""`beyondgloss demo`: the whole method on the built-in SynthSign corpus, on a CPU, in minutes.

1. Generate SynthSign (rendered mp4 clips, per-frame hand parameters, hand-motion descriptions).
2. Build a tokenizer on the training sentences and a processor for the 32 px clips.
3. Stage 1: contrastive pre-training with all three losses (alignment, description, hand).
4. Stage 2: translation, initialised from stage 1.
5. Score the unseen test sentences by beam search; translate a few test videos with
   `pipeline("sign-translation")`.
6. Live captions (docs/streaming.md): SynthSign's idle clips train the signing gate with the translation stage;
   after training, the gate is scored on held-out signing and idle clips, and a long test video (held-out sentences
   with idle stretches between them) is captioned as a stream (`demo_captions.py`).
7. Leave everything in one folder: the model with its processor and model card (loadable with
   `from_pretrained`), `metrics.json`, the predictions, plots of both stages' losses, of the video-text
   similarity matrix of a test batch and of the gate over the long video, and its captions (`captions.srt`).

The command is `beyondgloss demo` (`beyondgloss.cli.demo`), which reads the [`DemoArguments`] flags. `--ablation`
instead trains the variants of the paper's ablation on the same budget (translation alone, and
pre-training with alignment only, + hand, + hand + description) and writes `ablation.json`.

The model is tiny and its backbones start from random weights (nothing downloads), so both backbones train in
full (`vision_tuning="full"`, `text_tuning="full"`); the method is otherwise the paper's.
"""

import concurrent.futures
import json
import logging
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import set_seed

from .demo_captions import IdleMarginCollator, live_captions, print_live_captions, signing_only

logger = logging.getLogger(__name__)

__all__ = ["DemoArguments", "DemoOutputDirError", "demo_config", "run_demo"]


class DemoOutputDirError(ValueError):
    """The demo's output folder holds files it may not replace; the message names them and what to do."""


@dataclass
class DemoArguments:
    """Settings of `beyondgloss demo` (defaults: measured to finish within the 15-minute budget on 2 CPU cores)."""

    output_dir: str = field(default="demo_output", metadata={"help": "Where everything is written."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing demo output folder."})
    num_train: int = field(default=3000, metadata={"help": "Training clips (distinct sentences)."})
    num_validation: int = field(default=200, metadata={"help": "Validation clips (sentences unseen in training)."})
    num_test: int = field(default=200, metadata={"help": "Test clips (sentences unseen in training)."})
    seed: int = field(default=0, metadata={"help": "Corpus and training seed."})
    pretraining_steps: int = field(default=300, metadata={"help": "Stage-1 optimizer steps (0 skips stage 1)."})
    translation_steps: int = field(default=900, metadata={"help": "Stage-2 optimizer steps."})
    batch_size: int = field(default=32, metadata={"help": "Videos per step in both stages."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of both stages."})
    translation_hand_loss: float = field(default=3.0, metadata={
        "help": "Weight of the hand-distillation term during translation (0 is the paper's stage 2)."})
    encoder_lr_scale: float = field(default=0.1, metadata={
        "help": "Learning-rate multiplier, during translation, for what stage 1 trained (the sign video encoder and "
                "the mBART encoder); the decoder keeps --learning_rate. 1.0 is the paper's stage 2."})
    description_loss: bool = field(default=True, metadata={"help": "Use the description term in stage 1."})
    hand_loss: bool = field(default=True, metadata={"help": "Use the hand-distillation term in stage 1."})
    num_beams: int = field(default=5, metadata={"help": "Beams for the test translations."})
    pipeline_examples: int = field(default=5, metadata={"help": "Test videos translated through the pipeline."})
    ablation: bool = field(default=False, metadata={"help": "Train the ablation variants instead; writes ablation.json."})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0: one per core)."})
    idle_fraction: float = field(default=0.15, metadata={
        "help": "Idle SynthSign clips per split, as a fraction of its sentences; they train the signing gate in "
                "stage 2 (0: no idle clips and no gate)."})
    stream_sentences: int = field(default=8, metadata={
        "help": "Held-out test sentences in the long video captioned as a stream (0 skips it)."})
    window_seconds: float = field(default=4.8, metadata={
        "help": "Live captions: the longest stretch of signing translated at once; 120 frames at 25 fps hold the "
                "longest SynthSign sentence (6 signs of 10 frames) with a gate tail of idle frames on either side."})
    stride_seconds: float = field(default=0.2, metadata={"help": "Live captions: the gate decides every 5 frames."})
    gate_seconds: float = field(default=0.8, metadata={
        "help": "Live captions: the tail the gate looks at (20 frames, within the idle margins of stage 2)."})
    bar: float = field(default=50.0, metadata={
        "help": "Test BLEU-4 the default recipe is expected to reach; a run below it says so at the end."})


def demo_config(vocab_size: int, decoder_start_token_id: int, hand_dim: int, description_dim: int, image_size: int,
                **overrides):
    """The demo's model: the BeyondGloss architecture at ~0.5 M parameters for 32 px clips."""
    from ..configuration_beyondgloss import BeyondGlossConfig

    width = 128
    settings = dict(
        vision_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2, patch_size=8,
                           image_size=image_size, use_mask_token=False),
        text_config=dict(vocab_size=vocab_size, d_model=width, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * width,
                         decoder_ffn_dim=2 * width, max_position_embeddings=256, scale_embedding=True, dropout=0.1),
        frame_dim=width // 2, temporal_heads=4, temporal_ffn_dim=width, hand_dim=hand_dim,
        description_dim=description_dim, vision_tuning="full", text_tuning="full", drop_path_rate=0.0,
        decoder_start_token_id=decoder_start_token_id, max_new_tokens=40, frame_chunk_size=1024,
    )
    settings.update(overrides)
    return BeyondGlossConfig(**settings)


def video_paths(split) -> list:
    """The file paths of a split's `video` column, without opening a decoder per clip."""
    from datasets import Video

    return [video["path"] for video in split.cast_column("video", Video(decode=False))["video"]]


def _decode_chunk(paths: list) -> list:
    from ..video_io import read_video_frames

    torch.set_num_threads(1)  # one thread per worker: the workers are the parallelism
    return [read_video_frames(path) for path in paths]


def decode_videos(dataset, workers: int = 2) -> dict:
    """Decodes every clip of a `DatasetDict` once (real mp4 decoding, in parallel): `{id: uint8 (T, 3, H, W)}`.

    The demo trains for many epochs over 32 px clips without augmentation, so decoding each clip once and keeping
    the frames in memory (about 0.1 MB a clip) is the same input, without paying the decoder at every step.
    """
    ids, paths = [], []
    for split in dataset.values():
        ids += list(split["id"])
        paths += video_paths(split)
    chunks = [paths[start:start + 200] for start in range(0, len(paths), 200)]
    frames = []
    # Spawned, not forked: a child forked from a process whose OpenMP threads have run (any torch op in the parent,
    # as in a test session) can deadlock in its first parallel torch op.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for decoded in pool.map(_decode_chunk, chunks):
            frames.extend(decoded)
    return dict(zip(ids, frames))


class DecodedVideoCollator:
    """Wraps a collator so that each row's video comes from a `{id: frames}` cache of decoded clips."""

    def __init__(self, collator, frames: dict):
        self.collator, self.frames = collator, frames

    def __call__(self, rows: list) -> dict:
        return self.collator([{**row, "video": self.frames[row["id"]]} for row in rows])


# Everything a demo run writes into its output folder; `--overwrite_output_dir` removes these and nothing else.
DEMO_OUTPUTS = ("demo_settings.json", ".cache", "pretraining", "translation", "model", "ablation", "ablation.json",
                "metrics.json", "test_predictions.jsonl", "pipeline_examples.json", "losses.png",
                "similarity_matrix.png", "training_log.json", "long_test_video.mp4", "captions.srt",
                "gate_probability.png")
# The corpus is kept across runs: SynthSign reuses it when its settings match and replaces it (its own files only)
# when they differ.
DEMO_CORPUS = "synthsign"


def _check_output_dir(path: Path, overwrite: bool) -> None:
    """Refuses a folder that holds anything, unless `overwrite` and it is a demo's folder with nothing foreign in it;
    then removes the previous run's outputs (not the corpus), so that two runs' files never mix."""
    if not path.exists() or not any(path.iterdir()):
        return
    if not overwrite:
        raise DemoOutputDirError(
            f"{path} already holds files; pass --overwrite_output_dir to replace a previous demo run's outputs, or "
            "choose another --output_dir (nothing was changed)."
        )
    if not (path / "demo_settings.json").is_file():
        raise DemoOutputDirError(f"{path} holds files that are not a beyondgloss demo's; refusing to overwrite them "
                                 "(nothing was changed). Choose another --output_dir.")
    foreign = sorted(child.name for child in path.iterdir() if child.name not in DEMO_OUTPUTS + (DEMO_CORPUS,))
    if foreign:
        raise DemoOutputDirError(f"{path} is a demo folder but also holds {', '.join(foreign)}, which the demo did not "
                                 "write; move them elsewhere or choose another --output_dir (nothing was changed).")
    # The settings file goes last: a deletion cut short leaves a folder that is still recognised as the demo's.
    for name in DEMO_OUTPUTS[1:] + DEMO_OUTPUTS[:1]:
        child = path / name
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        elif child.exists() or child.is_symlink():
            child.unlink()


def _stage_arguments(preset, output_dir: Path, args: DemoArguments, steps: int, **overrides):
    return preset(
        str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=50,
        learning_rate=args.learning_rate,
        # Measured on SynthSign: a constant rate learns within the budget; the presets' cosine decay (which halves
        # the area under the rate) left the decoder at BLEU-4 13 after the same 900 steps, against 97 constant.
        lr_scheduler_type="constant",
        lr_scheduler_kwargs={},
        warmup_steps=0,
        logging_steps=max(1, min(10, steps // 2)),
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        **overrides,
    )


def _pretrain(args: DemoArguments, train, frames, processor, config, out: Path, steps: int, log: dict):
    """Stage 1 on the clips that hold signing; saves it to `out / "pretraining"`."""
    from ..data import PretrainingCollator
    from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining
    from .presets import pretraining_arguments
    from .trainers import BeyondGlossPretrainingTrainer

    model = BeyondGlossForContrastivePretraining(config)
    # The reference's two text-side encoders are copies of one mBART; the demo's start from one random draw.
    model.text_encoder.load_state_dict(model.mbart.model.encoder.state_dict(), strict=False)
    trainer = BeyondGlossPretrainingTrainer(
        model=model,
        args=_stage_arguments(pretraining_arguments, out / "pretraining", args, steps),
        train_dataset=train,
        data_collator=DecodedVideoCollator(PretrainingCollator(processor, training=True), frames),
    )
    trainer.train()
    log["pretraining"] = trainer.state.log_history
    model.save_pretrained(out / "pretraining")
    processor.save_pretrained(out / "pretraining")


def _train_variant(args: DemoArguments, data, frames, processor, config, out: Path, pretraining_steps: int,
                   use_hand: bool, use_description: bool, evaluate_split: str, log: dict):
    """Trains stage 1 (if `pretraining_steps`) then stage 2 (with the signing gate when the corpus has idle clips);
    returns `(model, translation trainer, test metrics)`."""
    from ..data import TranslationCollator
    from ..metrics import make_compute_metrics
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation
    from .presets import translation_arguments
    from .trainers import BeyondGlossTranslationTrainer

    set_seed(args.seed)
    drop = [name for name, keep in (("hand_features", use_hand), ("hand_mask", use_hand),
                                    ("description_embedding", use_description)) if not keep]
    train = signing_only(data["train"])
    train = train.remove_columns([c for c in drop if c in train.column_names])
    gate = {"signing_gate": True} if "signing" in data["train"].column_names else {}
    started = time.time()
    if pretraining_steps > 0:
        _pretrain(args, train, frames, processor, config, out, pretraining_steps, log)
        model = BeyondGlossForSignTranslation.from_pretrained(out / "pretraining", **gate)
    else:
        model = BeyondGlossForSignTranslation(type(config).from_dict({**config.to_dict(), **gate}))
    pretraining_seconds = time.time() - started

    started = time.time()
    compute_metrics = make_compute_metrics(processor.tokenizer, language="en", convention="plain")
    collator = TranslationCollator(processor, training=True)
    trainer = BeyondGlossTranslationTrainer(
        model=model,
        args=_stage_arguments(translation_arguments, out / "translation", args, args.translation_steps,
                              generation_num_beams=args.num_beams),
        encoder_learning_rate_scale=args.encoder_lr_scale if pretraining_steps > 0 else 1.0,
        train_dataset=data["train"],
        data_collator=IdleMarginCollator(collator, frames, config.vision_config.image_size, seed=args.seed) if gate
        else DecodedVideoCollator(collator, frames),
        eval_data_collator=DecodedVideoCollator(TranslationCollator(processor, training=False), frames),
        compute_metrics=compute_metrics,
        processing_class=processor,
    )
    trainer.train()
    log["translation"] = trainer.state.log_history
    translation_seconds = time.time() - started
    started = time.time()
    metrics = trainer.evaluate(signing_only(data[evaluate_split]), metric_key_prefix=evaluate_split)
    metrics.update({
        "pretraining_seconds": round(pretraining_seconds, 1),
        "translation_seconds": round(translation_seconds, 1),
        "evaluation_seconds": round(time.time() - started, 1),
    })
    return model, trainer, metrics


def _plot_losses(log: dict, path: Path) -> None:
    from ..utils import require

    matplotlib = require("matplotlib", "The demo's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    pretraining = [entry for entry in log.get("pretraining", []) if "loss" in entry]
    if pretraining:
        steps = [entry["step"] for entry in pretraining]
        for name in ("loss", "alignment_loss", "description_loss", "hand_loss"):
            if name in pretraining[0]:
                axes[0].plot(steps, [entry[name] for entry in pretraining], label=name)
        axes[0].legend()
    axes[0].set(title="Stage 1: contrastive pre-training", xlabel="step", ylabel="loss")
    translation = [entry for entry in log.get("translation", []) if "loss" in entry]
    axes[1].plot([entry["step"] for entry in translation], [entry["loss"] for entry in translation], label="loss")
    axes[1].set(title="Stage 2: translation (label-smoothed CE + hand term)", xlabel="step", ylabel="loss")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_similarity(pretraining_dir: Path, data, frames, processor, path: Path, count: int = 16) -> None:
    from ..data import PretrainingCollator
    from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining

    import matplotlib.pyplot as plt

    model = BeyondGlossForContrastivePretraining.from_pretrained(pretraining_dir).eval()
    test = signing_only(data["test"])
    rows = list(test.select(range(min(count, len(test)))))
    batch = DecodedVideoCollator(PretrainingCollator(processor, training=False), frames)(rows)
    with torch.no_grad():
        output = model(pixel_values_videos=batch["pixel_values_videos"],
                       video_attention_mask=batch["video_attention_mask"],
                       input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    similarity = (output.video_embeds @ output.text_embeds.t()).numpy()
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(similarity, cmap="viridis")
    axis.set(title="Cosine similarity, test videos (rows) vs their sentences (columns)", xlabel="sentence",
             ylabel="video")
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    recall = float((similarity.argmax(1) == range(len(rows))).mean())
    logger.info("test batch video->text recall@1: %.2f", recall)


def run_demo(args: DemoArguments) -> dict:
    from ..data import load_sign_dataset
    from ..data.synthsign import SYNTHSIGN_HAND_DIM, SYNTHSIGN_LANGUAGE_CODE
    from ..processing_beyondgloss import BeyondGlossProcessor
    from ..data import train_sign_tokenizer
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor

    started = time.time()
    out = Path(args.output_dir)
    _check_output_dir(out, args.overwrite_output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_settings.json").write_text(json.dumps(asdict(args), indent=2))
    set_seed(args.seed)
    image_size, description_dim = 32, 64

    print(f"[demo] SynthSign: {args.num_train} / {args.num_validation} / {args.num_test} clips", flush=True)
    data = load_sign_dataset("synthsign", data_dir=str(out / "synthsign"), cache_dir=str(out / ".cache"),
                             num_train=args.num_train, num_validation=args.num_validation, num_test=args.num_test,
                             seed=args.seed, image_size=image_size, description_dim=description_dim,
                             idle_fraction=args.idle_fraction)
    frames = decode_videos(data)
    print(f"[demo] corpus ready and decoded in {time.time() - started:.0f} s", flush=True)

    tokenizer = train_sign_tokenizer(signing_only(data["train"])["text"], language=SYNTHSIGN_LANGUAGE_CODE)
    # SynthSign clips are already image_size square (resizing them is the identity); other videos given to the saved
    # model are resized and centre-cropped to what it was trained on.
    video_processor = BeyondGlossVideoProcessor(size={"shortest_edge": image_size}, crop_size=image_size, augment=False)
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language=SYNTHSIGN_LANGUAGE_CODE)
    config = demo_config(len(tokenizer), processor.language_code_id, SYNTHSIGN_HAND_DIM, description_dim, image_size,
                         translation_hand_loss_weight=args.translation_hand_loss)

    if args.ablation:
        return _run_ablation(args, data, frames, processor, config, out, started)

    log = {}
    model, trainer, metrics = _train_variant(args, data, frames, processor, config, out, args.pretraining_steps,
                                              args.hand_loss, args.description_loss, "test", log)
    return _finish(args, data, frames, processor, model, trainer, metrics, log, out, started)


def _run_ablation(args, data, frames, processor, config, out: Path, started: float) -> dict:
    variants = {
        "translation only": (0, False, False),
        "pre-training: alignment": (args.pretraining_steps, False, False),
        "pre-training: alignment + hand": (args.pretraining_steps, True, False),
        "pre-training: alignment + hand + description": (args.pretraining_steps, True, True),
    }
    results = {}
    for name, (steps, hand, description) in variants.items():
        print(f"[demo] ablation: {name}", flush=True)
        variant_dir = out / "ablation" / name.replace(" ", "_").replace(":", "").replace("+", "plus")
        _, _, metrics = _train_variant(args, data, frames, processor, config, variant_dir, steps, hand, description,
                                       "test", {})
        results[name] = {key: metrics[f"test_{key}"] for key in ("bleu1", "bleu4", "rouge_l", "chrf")}
        results[name].update(pretraining_steps=steps, translation_steps=args.translation_steps,
                             seconds=metrics["pretraining_seconds"] + metrics["translation_seconds"])
        print(f"[demo]   {name}: BLEU-4 {results[name]['bleu4']:.2f}", flush=True)
    summary = {"variants": results, "seed": args.seed, "total_seconds": round(time.time() - started, 1)}
    (out / "ablation.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


def _finish(args, data, frames, processor, model, trainer, metrics, log, out: Path, started: float) -> dict:
    """Saves the model with its card and examples, the plots and `metrics.json`, and prints where they are."""
    from ..data import TranslationCollator

    last = getattr(trainer.compute_metrics, "last_result", None) or {}
    model_dir = out / "model"
    pipeline_examples = _save_model(args, data, processor, model, trainer, metrics, last, out, model_dir)
    _plot_losses(log, out / "losses.png")
    if args.pretraining_steps > 0:
        _plot_similarity(out / "pretraining", data, frames, processor, out / "similarity_matrix.png")
    (out / "training_log.json").write_text(json.dumps(log, indent=2))
    captions = live_captions(args, data, processor, model, DecodedVideoCollator(
        TranslationCollator(processor, training=False), frames), frames, out)

    pretraining_log = [entry for entry in log.get("pretraining", []) if "alignment_loss" in entry]
    summary = {
        "test": {key[len("test_"):]: value for key, value in metrics.items() if key.startswith("test_")},
        "bleu_signature": last.get("signature"),
        "convention": last.get("convention"),
        "bar": {"bleu4": args.bar, "reached": metrics["test_bleu4"] >= args.bar},
        "alignment_loss_first_last": [pretraining_log[0]["alignment_loss"], pretraining_log[-1]["alignment_loss"]]
        if pretraining_log else None,
        "seconds": {"total": round(time.time() - started, 1), "pretraining": metrics["pretraining_seconds"],
                    "translation": metrics["translation_seconds"], "evaluation": metrics["evaluation_seconds"]},
        "live_captions": captions,
        "settings": asdict(args),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    _print_summary(args, metrics, summary, pretraining_log, pipeline_examples, out, model_dir)
    return summary


def _save_model(args, data, processor, model, trainer, metrics, last: dict, out: Path, model_dir: Path) -> list:
    """Saves the model with its card and a few example clips, and translates those clips with the saved model's
    pipeline; returns `{video, reference, translation}` per clip."""
    from transformers import pipeline

    from ..hub import save_for_hub
    from ..model_card import EvaluationResult, SignTranslationCardData

    card = SignTranslationCardData(
        model_name="beyondgloss-synthsign-demo", dataset_name="SynthSign", language="en",
        sign_language="SynthSign (a synthetic sign language)", domain="synthetic sentences",
        results=[EvaluationResult(metric=key, value=metrics[f"test_{key}"], split="test",
                                  convention=last.get("convention"), signature=last.get("signature"))
                 for key in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf")],
        training_settings={"pretraining steps": args.pretraining_steps, "translation steps": args.translation_steps,
                           "batch size": args.batch_size, "learning rate": args.learning_rate, "seed": args.seed},
        notes="Trained by `beyondgloss demo` from random weights on SynthSign; it translates SynthSign only.",
    )
    save_for_hub(model, processor, model_dir, card)
    shutil.copy(Path(trainer.args.output_dir) / "test_predictions.jsonl", out / "test_predictions.jsonl")

    translator = pipeline("sign-translation", model=str(model_dir))
    test = signing_only(data["test"])
    examples = test.select(range(min(args.pipeline_examples, len(test))))
    paths = video_paths(examples)
    outputs = translator(paths, num_beams=args.num_beams)
    pipeline_examples = [{"video": path, "reference": text, "translation": output["translation_text"]}
                         for path, text, output in zip(paths, examples["text"], outputs)]
    (out / "pipeline_examples.json").write_text(json.dumps(pipeline_examples, indent=2, ensure_ascii=False))
    # A few test clips travel with the model, as the examples `beyondgloss serve` offers.
    (model_dir / "examples").mkdir(exist_ok=True)
    for path in paths[:3]:
        shutil.copy(path, model_dir / "examples" / Path(path).name)
    return pipeline_examples


def _print_summary(args, metrics, summary, pretraining_log, pipeline_examples, out: Path, model_dir: Path) -> None:
    print("\n[demo] done in {:.1f} min".format(summary["seconds"]["total"] / 60))
    print(f"[demo] test (unseen sentences, beam {args.num_beams}): BLEU-4 {metrics['test_bleu4']:.2f}, "
          f"BLEU-1 {metrics['test_bleu1']:.2f}, ROUGE-L {metrics['test_rouge_l']:.2f}, chrF {metrics['test_chrf']:.2f}")
    if pretraining_log:
        print(f"[demo] stage-1 alignment loss {pretraining_log[0]['alignment_loss']:.3f} -> "
              f"{pretraining_log[-1]['alignment_loss']:.3f}")
    for example in pipeline_examples[:3]:
        print(f"[demo]   {example['reference']!r} -> {example['translation']!r}")
    if metrics["test_bleu4"] < args.bar:
        print(f"[demo] BLEU-4 {metrics['test_bleu4']:.2f} is below this demo's bar of {args.bar:g}: the decoder has not "
              "yet learnt to read the video within the budget. Try more steps (--translation_steps), another --seed, "
              "or, if you changed it, the default --encoder_lr_scale; the README's demo section lists measured runs.")
    print_live_captions(summary.get("live_captions"), out)
    print(f"[demo] model (from_pretrained / pipeline): {model_dir}")
    print(f"[demo] try it in the browser: beyondgloss serve --model {model_dir}")
    print(f"[demo] metrics: {out / 'metrics.json'}; predictions: {out / 'test_predictions.jsonl'}; plots: "
          f"{out / 'losses.png'}, {out / 'similarity_matrix.png'}")

"""`beyondgloss ablate`: the paper's ablation rows, each trained with several seeds, as a table and a plot.

Rows (each removes one part of the full method and keeps the rest):

- `full`: stage 1 with all three losses (alignment, description, hand distillation), LoRA on the frame encoder
  (`vision_tuning="lora"`, the paper's DINOv2 setting), the hand term also in stage 2; then stage 2.
- `no_hand`: no hand distillation: stage 1 without the hand term and stage 2 without it.
- `no_description`: stage 1 without the description term.
- `no_lora`: the frame encoder frozen (`vision_tuning="frozen"`): no LoRA on it; the rest trains as in `full`.
- `no_pretraining`: stage 2 alone, from the initial weights.

Every run is stage 1 then stage 2 through the demo's own training function (`beyondgloss.training.demo`), scored on
the test split by beam search. The corpus is one (its seed is `--corpus_seed`); the seeds vary the initial weights,
dropout and batch order, so the spread over seeds is the spread of training, not of data. Results:
`ablation.json` (every run's metrics, the table, the significance tests), `ablation.md` (mean +/- std of BLEU-4 and
ROUGE-L per row), `ablation.png`. Each finished run keeps its `metrics.json`; a run that is interrupted is redone,
a finished one is not (`runs/<row>/seed<k>/`). The report and its significance test are in `ablate_report.py`;
docs/ablate.md has the measured table.
"""

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .ablate_report import write_report
from .arguments import check_values

__all__ = ["ABLATION_ROWS", "AblateArguments", "AblateError", "AblateOutputDirError", "run_ablation"]

# row -> (what it means, what it changes). Keys: "hand" (hand distillation in both stages), "description"
# (description term in stage 1), "vision_tuning", "pretraining" (stage 1 at all).
ABLATION_ROWS = {
    "full": ("full model", {}),
    "no_hand": ("without hand distillation", {"hand": False}),
    "no_description": ("without the description loss", {"description": False}),
    "no_lora": ("without the frame-encoder (DINOv2) LoRA", {"vision_tuning": "frozen"}),
    "no_pretraining": ("without pre-training", {"pretraining": False}),
}
# The flags that do not change what a run computes: a folder made with other values of these is resumed.
_NOT_TRAINING = ("output_dir", "overwrite_output_dir", "workers", "threads", "seeds", "rows")


class AblateError(ValueError):
    """An input or a state the user can fix (the dataset, the output folder); the message names it and what to do."""


class AblateOutputDirError(AblateError):
    """The output folder holds files `ablate` may not replace; the message names them and what to do."""


@dataclass
class AblateArguments:
    """Settings of `beyondgloss ablate`. The defaults (measured in docs/ablate.md) train 5 rows x 3 seeds on SynthSign's
    "handshape" lexicon within 30 minutes on 2 CPU cores: the demo's model, on fewer clips and fewer steps."""

    output_dir: str = field(default="ablate_output", metadata={"help": "Where everything is written."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a previous ablation with other settings (only the files ablate wrote are removed)."})
    dataset: str = field(default="synthsign", metadata={
        "help": "synthsign (generated into OUTPUT_DIR/synthsign), or a dataset name or folder as the training "
                "commands take (it needs hand_features and description_embedding for the hand and description rows)."})
    data_dir: str | None = field(default=None, metadata={"help": "The dataset's folder (not for synthsign)."})
    hand_features: str | None = field(default=None, metadata={"help": "Hand feature store (not for synthsign)."})
    descriptions: str | None = field(default=None, metadata={"help": "Description store (not for synthsign)."})
    lexicon: str = field(default="handshape", metadata={
        "help": "SynthSign's lexicon: handshape (signs that differ only in hand shape; the default, so that the hand "
                "path can matter) or standard (the demo's)."})
    num_train: int = field(default=800, metadata={"help": "SynthSign training clips."})
    num_test: int = field(default=100, metadata={"help": "SynthSign test clips (sentences unseen in training)."})
    frames_per_sign: list[int] = field(default_factory=lambda: [3, 5], metadata={
        "help": "SynthSign's frames per sign, low and high (the demo's 6 10 doubles the cost of a step)."})
    corpus_seed: int = field(default=0, metadata={"help": "SynthSign's corpus seed (one corpus for every run)."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Training seeds, one run each."})
    rows: list[str] = field(default_factory=lambda: list(ABLATION_ROWS), metadata={
        "help": f"Rows to train, among {', '.join(ABLATION_ROWS)}."})
    image_size: int = field(default=32, metadata={"help": "Frame side the model reads (SynthSign: 32)."})
    pretraining_steps: int = field(default=100, metadata={"help": "Stage-1 optimizer steps (rows with stage 1)."})
    translation_steps: int = field(default=300, metadata={"help": "Stage-2 optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Videos per step in both stages."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of both stages."})
    translation_hand_loss: float = field(default=3.0, metadata={
        "help": "Weight of the hand term during translation (the demo's; 0 in the no_hand row)."})
    encoder_lr_scale: float = field(default=0.1, metadata={
        "help": "Stage-2 learning-rate multiplier for what stage 1 trained (the demo's)."})
    num_beams: int = field(default=1, metadata={"help": "Beams for the test translations."})
    workers: int = field(default=2, metadata={
        "help": "Runs trained at once, each in its own process (the default: one per core of a 2-core machine)."})
    threads: int = field(default=0, metadata={
        "help": "CPU threads for torch in each run (0: the cores shared out among the workers). On a busy machine "
                "one thread a process is much faster than several (docs/ablate.md)."})

    def __post_init__(self):
        check_values(self)
        unknown = [row for row in self.rows if row not in ABLATION_ROWS]
        if unknown or not self.rows or len(set(self.rows)) != len(self.rows):
            raise ValueError(f"--rows {' '.join(self.rows)}: give distinct rows among {' '.join(ABLATION_ROWS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"--seeds {' '.join(map(str, self.seeds))}: give distinct non-negative seeds")
        if len(self.frames_per_sign) != 2 or not 1 <= self.frames_per_sign[0] <= self.frames_per_sign[1]:
            raise ValueError(f"--frames_per_sign {' '.join(map(str, self.frames_per_sign))}: give LOW HIGH with "
                             "1 <= LOW <= HIGH")
        if self.workers < 1:
            raise ValueError(f"--workers {self.workers}: must be a positive integer")
        if self.lexicon not in ("handshape", "standard"):
            raise ValueError(f"--lexicon {self.lexicon!r}: choose handshape or standard")


# Everything ablate writes into its output folder; `--overwrite_output_dir` removes these and nothing else.
ABLATE_OUTPUTS = ("ablate_settings.json", ".cache", "runs", "ablation.json", "ablation.md", "ablation.png")
ABLATE_CORPUS = "synthsign"


def _training_settings(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key not in _NOT_TRAINING}


def _prepare_output_dir(path: Path, args: AblateArguments) -> None:
    """Resumes a folder of an ablation with the same training settings; refuses any other non-empty folder unless
    `--overwrite_output_dir` and it holds nothing but an ablation's outputs, which it then removes."""
    settings = asdict(args)
    if path.exists() and any(path.iterdir()):
        marker = path / "ablate_settings.json"
        if not marker.is_file():
            raise AblateOutputDirError(f"{path} holds files that are not a beyondgloss ablation's; choose another "
                                       "--output_dir (nothing was changed).")
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            previous = {}
        if _training_settings(previous) != _training_settings(settings):
            _replace_previous(path, args.overwrite_output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "ablate_settings.json").write_text(json.dumps(settings, indent=2))


def _replace_previous(path: Path, overwrite: bool) -> None:
    if not overwrite:
        raise AblateOutputDirError(
            f"{path} holds an ablation made with other settings; pass --overwrite_output_dir to replace it, rerun with "
            "its settings (ablate_settings.json) to resume it, or choose another --output_dir (nothing was changed).")
    foreign = sorted(child.name for child in path.iterdir() if child.name not in ABLATE_OUTPUTS + (ABLATE_CORPUS,))
    if foreign:
        raise AblateOutputDirError(f"{path} is an ablation folder but also holds {', '.join(foreign)}, which ablate "
                                   "did not write; move them elsewhere or choose another --output_dir (nothing was "
                                   "changed).")
    # The settings file goes last: a deletion cut short leaves a folder that is still recognised as ablate's.
    for name in ABLATE_OUTPUTS[1:] + ABLATE_OUTPUTS[:1]:
        child = path / name
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        elif child.exists() or child.is_symlink():
            child.unlink()


def _load_data(args: AblateArguments, out: Path):
    """The dataset (SynthSign generated into the output folder, or the one named), with its language code."""
    from ..data import load_sign_dataset
    from ..data.loading import dataset_language_code
    from ..data.synthsign import generate_synthsign

    if args.dataset.lower() == "synthsign":
        root = generate_synthsign(out / ABLATE_CORPUS, num_train=args.num_train, num_validation=0,
                                  num_test=args.num_test, seed=args.corpus_seed, image_size=args.image_size,
                                  description_dim=64, frames_per_sign=tuple(args.frames_per_sign), overwrite=True,
                                  lexicon=args.lexicon)
        data = load_sign_dataset("sign_video_folder", data_dir=str(root), cache_dir=str(out / ".cache"),
                                 hand_features=root / "hand_features", descriptions=root / "descriptions",
                                 language="en")
    else:
        try:
            data = load_sign_dataset(args.dataset, data_dir=args.data_dir, cache_dir=str(out / ".cache"),
                                     hand_features=args.hand_features, descriptions=args.descriptions)
        except (OSError, ValueError) as error:
            raise AblateError(f"--dataset {args.dataset}: {error}") from error
    missing = [split for split in ("train", "test") if split not in data]
    if missing:
        raise AblateError(f"dataset {args.dataset!r} has no {' and no '.join(missing)} split; ablate trains on train "
                         "and scores on test")
    needs = {"hand_features": "no_hand", "description_embedding": "no_description"}
    absent = [column for column, row in needs.items() if column not in data["train"].column_names]
    if absent:
        raise AblateError(f"dataset {args.dataset!r} has no {', '.join(absent)} column: the full model and its hand and "
                         "description rows need them (pass --hand_features / --descriptions)")
    return data, dataset_language_code(data)


def _row_config(base_settings: dict, changes: dict, args: AblateArguments):
    from .demo import demo_config

    settings = dict(base_settings, vision_tuning=changes.get("vision_tuning", "lora"),
                    translation_hand_loss_weight=args.translation_hand_loss if changes.get("hand", True) else 0.0)
    return demo_config(**settings)


def _run_one(args, row: str, seed: int, data, frames, processor, base_settings: dict, run_dir: Path) -> dict:
    """Trains one row with one seed (or reads its finished metrics); returns the run's record."""
    from .demo import DemoArguments, _train_variant

    finished = run_dir / "metrics.json"
    if finished.is_file():
        return json.loads(finished.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted run of this ablation: start it again
    changes = ABLATION_ROWS[row][1]
    demo_args = DemoArguments(seed=seed, translation_steps=args.translation_steps, batch_size=args.batch_size,
                              learning_rate=args.learning_rate, encoder_lr_scale=args.encoder_lr_scale,
                              num_beams=args.num_beams)
    steps = args.pretraining_steps if changes.get("pretraining", True) else 0
    started, cpu_started = time.time(), time.process_time()
    _, _, metrics = _train_variant(demo_args, data, frames, processor, _row_config(base_settings, changes, args),
                                   run_dir, steps, changes.get("hand", True), changes.get("description", True),
                                   "test", {})
    # CPU seconds (all of this process's threads) hardly depend on what else runs on the machine; wall seconds do.
    record = {"row": row, "seed": seed, "pretraining_steps": steps, "seconds": round(time.time() - started, 1),
              "cpu_seconds": round(time.process_time() - cpu_started, 1)}
    record.update({key: metrics[f"test_{key}"] for key in ("bleu1", "bleu4", "rouge_l", "chrf")})
    temporary = run_dir / "metrics.json.tmp"
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, finished)
    return record


def _report_run(record: dict) -> None:
    print(f"[ablate] {record['row']}, seed {record['seed']}: BLEU-4 {record['bleu4']:.2f}, ROUGE-L "
          f"{record['rouge_l']:.2f} ({record['seconds']} s)", flush=True)


# A worker process's data, frames, processor and settings, set once by `_start_worker`.
_WORKER = {}


def _start_worker(args: AblateArguments, data, frames: dict, processor, base_settings: dict) -> None:
    import torch

    torch.set_num_threads(args.threads or 1)
    frames = {key: torch.from_numpy(value) for key, value in frames.items()}
    _WORKER.update(args=args, context=(data, frames, processor, base_settings))


def _worker_run(row: str, seed: int, run_dir: Path) -> dict:
    if not (run_dir / "metrics.json").is_file():
        print(f"[ablate] {row} ({ABLATION_ROWS[row][0]}), seed {seed}: started", flush=True)
    data, frames, processor, base_settings = _WORKER["context"]
    return _run_one(_WORKER["args"], row, seed, data, frames, processor, base_settings, run_dir)


def _run_all(args: AblateArguments, context: tuple, out: Path) -> list:
    """Every (row, seed) run, seeds outermost (an interrupted ablation has every row of its first seeds), in
    `--workers` processes; returns their records in that order."""
    jobs = [(row, seed, out / "runs" / row / f"seed{seed}") for seed in args.seeds for row in args.rows]
    if args.workers == 1:
        _WORKER.update(args=args, context=context)
        records = []
        for job in jobs:
            records.append(_worker_run(*job))
            _report_run(records[-1])
        return records
    data, frames, processor, base_settings = context
    # Arrays, not tensors, cross to the workers: torch would share each of the thousand clips by a file descriptor.
    arrays = {key: value.numpy() for key, value in frames.items()}
    spawn = multiprocessing.get_context("spawn")  # as decode_videos: a fork after torch's threads ran can deadlock
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=_start_worker,
                                                initargs=(args, data, arrays, processor, base_settings)) as pool:
        futures = [pool.submit(_worker_run, *job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            _report_run(future.result())
    return [future.result() for future in futures]


def run_ablation(args: AblateArguments) -> dict:
    """Trains every row with every seed (resuming finished runs) and writes the table, the plot and the json."""
    from ..data import train_sign_tokenizer
    from ..processing_beyondgloss import BeyondGlossProcessor
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor
    from .demo import decode_videos

    started, cpu_started, load_before = time.time(), time.process_time(), os.getloadavg()
    out = Path(args.output_dir)
    _prepare_output_dir(out, args)
    data, language_code = _load_data(args, out)
    frames = decode_videos(data)
    print(f"[ablate] data ready and decoded in {time.time() - started:.0f} s", flush=True)
    tokenizer = train_sign_tokenizer(data["train"]["text"], language=language_code)
    video_processor = BeyondGlossVideoProcessor(size={"shortest_edge": args.image_size}, crop_size=args.image_size,
                                                augment=False)
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language=language_code)
    first = data["train"][0]
    base_settings = dict(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id,
                         hand_dim=len(first["hand_features"][0]), description_dim=len(first["description_embedding"]),
                         image_size=args.image_size)
    runs = _run_all(args, (data, frames, processor, base_settings), out)
    timing = {"total_seconds": round(time.time() - started, 1),
              "cpu_seconds": round(time.process_time() - cpu_started, 1), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "cpu_count": os.cpu_count()}
    return write_report(out, args, runs, {row: ABLATION_ROWS[row][0] for row in args.rows}, timing)

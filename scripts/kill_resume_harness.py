"""Kill -9 short tiny runs at random points, restart them, and check that nothing was lost.

Three kinds of trial, `--points` in all (a third each, the rest to training):

- training, at an event: a fresh pre-training run (SynthSign, tiny model, a checkpoint after every step) kills itself
  with SIGKILL inside a training step, half-way through writing a log line, inside a checkpoint save (before the
  model, half-way through `model.safetensors`, after the model, after the optimizer and scheduler, after the RNG
  states, after the trainer state, after the rename into place), each at a random step, or inside the final save
  (half-way through the final `model.safetensors`, once every final file is staged, half-way through renaming them
  into the run folder);
- training, at a random moment: the harness sends SIGKILL after a random delay between 30% and 97% of an
  uninterrupted run's duration (the first part is start-up: dataset, model, trainer); late delays land in the final
  save;
- translate: `beyondgloss translate --output_file` over many videos gets SIGKILL, or SIGTERM (half the trials), at a
  random moment while it translates.

A killed training run is restarted with `--resume_from_checkpoint last`. Checks per training trial: the resume exits 0
and reaches the final step; every checkpoint that was complete at the kill is byte-identical after the resume; every
checkpoint left afterwards is complete; the log has each step once; no staging folder and no lock file is left. A kill
before the first checkpoint leaves nothing to resume: `--resume_from_checkpoint last` must then refuse (exit 1, an input
to fix), and the run is started again with `--overwrite_output_dir`; such trials are counted apart. Checks per
translate trial: every line of the output file is a whole JSON record, and every translation the command printed (it
prints each after writing it) is in the file; after SIGTERM the command exits 1 with its "stopped by" line, and the
file holds exactly the printed translations. Before the trials, two training runs are started at once in the same new
folder: one must finish as an uninterrupted run does, the other stop with exit 1 naming the lock.

Runs take a few seconds each on 2 CPU cores: the runs are forked from a server process that has imported everything
once. Usage (docs/reliability.md has a run's counts):

    python scripts/kill_resume_harness.py --points 30 --seed 0
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per run: the machine is shared

MAX_STEPS = 6
SYNTHSIGN = {"num_train": 12, "num_validation": 4, "num_test": 4, "image_size": 28, "description_dim": 24,
             "frames_per_sign": [2, 2], "num_workers": 1}
EVENTS = ("training_step", "torn_log_line", "before_model", "torn_safetensors", "after_model", "after_optimizer",
          "after_rng", "after_state", "after_rename", "final_torn_safetensors", "final_staged", "final_half_moved")
FINAL_EVENTS = ("final_torn_safetensors", "final_staged", "final_half_moved")
TRANSLATE_VIDEOS = 60  # the test split's videos, repeated: enough translating time to land kills in


def run_arguments(data: Path, output: Path) -> list:
    return ["pretrain", "--dataset", "synthsign", "--data_dir", str(data / "data"), "--cache_dir", str(data / "cache"),
            "--dataset_options", json.dumps(SYNTHSIGN), "--tiny", "--crop_size", "28", "--size", "28",
            "--max_frames", "12", "--use_cpu", "true", "--per_device_train_batch_size", "4", "--logging_steps", "1",
            "--save_strategy", "steps", "--save_steps", "1", "--eval_strategy", "no", "--load_best_model_at_end",
            "false", "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--max_steps", str(MAX_STEPS),
            "--save_total_limit", str(MAX_STEPS + 1), "--seed", "0", "--output_dir", str(output)]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(event: str, step: int) -> None:
    """Makes this process kill itself with SIGKILL at `event` of global step `step`."""
    import transformers.modeling_utils as modeling_utils
    from transformers import TrainerState

    from beyondgloss.training import callbacks, trainers
    from beyondgloss.training.trainers import BeyondGlossPretrainingTrainer as Trainer

    def at(owner, name, before=False, wrap_state=None):
        original = getattr(owner, name)

        def patched(self, *args, **kwargs):
            state = wrap_state(self) if wrap_state else self.state
            if before and state.global_step == step:
                _die()
            result = original(self, *args, **kwargs)
            if not before and state.global_step == step:
                _die()
            return result

        setattr(owner, name, patched)

    if event == "training_step":
        original_step = Trainer.training_step

        def training_step(self, *args, **kwargs):
            if self.state.global_step == step - 1:  # inside the step that would become `step`
                _die()
            return original_step(self, *args, **kwargs)

        Trainer.training_step = training_step
    elif event == "torn_log_line":
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.global_step == step and logs and "loss" in logs:
                with open(self._file(args), "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({**logs, "step": state.global_step})[:20])
                _die()
            return original_on_log(self, args, state, control, logs=logs, **kwargs)

        original_on_log = callbacks.LogFileCallback.on_log
        callbacks.LogFileCallback.on_log = on_log
    elif event == "before_model":
        at(Trainer, "save_model", before=True)
    elif event == "after_model":
        at(Trainer, "save_model")
    elif event == "torn_safetensors":
        original_save = modeling_utils.safe_save_file
        trainer_state = {}
        original_checkpoint = Trainer._save_checkpoint

        def save_checkpoint(self, *args, **kwargs):
            trainer_state["step"] = self.state.global_step
            return original_checkpoint(self, *args, **kwargs)

        def save_file(tensors, filename, *args, **kwargs):
            original_save(tensors, filename, *args, **kwargs)
            if trainer_state.get("step") == step:
                with open(filename, "r+b") as handle:
                    handle.truncate(os.path.getsize(filename) // 2)
                _die()

        Trainer._save_checkpoint = save_checkpoint
        modeling_utils.safe_save_file = save_file
    elif event == "after_optimizer":
        at(Trainer, "_save_optimizer_and_scheduler")
    elif event == "after_rng":
        at(Trainer, "_save_rng_state")
    elif event == "after_state":
        at(TrainerState, "save_to_json", wrap_state=lambda state: state)
    elif event == "after_rename":
        original_rotate = trainers.rotate_checkpoints

        def rotate(output_dir, **kwargs):
            if Path(output_dir, f"checkpoint-{step}").is_dir():
                _die()
            return original_rotate(output_dir=output_dir, **kwargs)

        trainers.rotate_checkpoints = rotate
    elif event in FINAL_EVENTS:
        _install_final_kill(event)
    else:
        raise ValueError(f"unknown event {event!r}; one of {EVENTS}")


def _install_final_kill(event: str) -> None:
    """Makes this process kill itself with SIGKILL at `event` of the final `save_model()` (never a checkpoint's)."""
    import transformers.modeling_utils as modeling_utils

    from beyondgloss.training import trainers

    if event == "final_torn_safetensors":
        original_save = modeling_utils.safe_save_file

        def save_file(tensors, filename, *args, **kwargs):
            original_save(tensors, filename, *args, **kwargs)
            if trainers.FINAL_SAVE_STAGING in str(filename):
                with open(filename, "r+b") as handle:
                    handle.truncate(os.path.getsize(filename) // 2)
                _die()

        modeling_utils.safe_save_file = save_file
    elif event == "final_staged":
        trainers._move_files = lambda source, target: _die()
    else:
        def move_half(source, target):
            paths = sorted(path for path in Path(source).rglob("*") if path.is_file())
            for path in paths[: len(paths) // 2]:
                destination = Path(target, path.relative_to(source))
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, destination)
            _die()

        trainers._move_files = move_half


def child(argv: list, event: str | None, step: int | None, log: str, out: str | None) -> None:
    """One run of the command, with stderr (and stdout, unless `out` is given) to `log`; exits with its status."""
    handle = open(log, "a")
    os.dup2(handle.fileno(), 2)
    printed = open(out, "w") if out else handle
    os.dup2(printed.fileno(), 1)
    if event is not None:
        _install_kill(event, step)
    from beyondgloss.cli import main
    from beyondgloss.cli.folder_lock import release_output_dir

    code = main(argv)
    release_output_dir()  # a multiprocessing child ends without running atexit handlers
    sys.exit(code)


def launch(context, argv, log, event=None, step=None, kill_after=None, out=None, kill_signal=signal.SIGKILL) -> int:
    """Runs `child` to its end (or until the harness sends it `kill_signal` after `kill_after` seconds, and then
    SIGKILL if it has not ended 60 s later); returns its exit code."""
    process = context.Process(target=child, args=(argv, event, step, str(log), out and str(out)))
    process.start()
    process.join(kill_after)
    if process.is_alive():
        os.kill(process.pid, kill_signal)
        process.join(60)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
            process.join()
    return process.exitcode


def digest(folder: Path) -> str:
    hasher = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            hasher.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


def complete_checkpoints(folder: Path) -> dict:
    from beyondgloss.cli.output_dir import checkpoint_problem

    return {path.name: digest(path) for path in folder.glob("checkpoint-*")
            if path.is_dir() and checkpoint_problem(path) is None}


def check_resumed(folder: Path, before: dict) -> list:
    """What is wrong with a run folder after its resume (empty list: nothing)."""
    from beyondgloss.cli.output_dir import checkpoint_problem

    problems = []
    state_file = folder / "trainer_state.json"
    step = json.loads(state_file.read_text())["global_step"] if state_file.is_file() else None
    if step != MAX_STEPS:
        problems.append(f"final step {step}, expected {MAX_STEPS}")
    after = complete_checkpoints(folder)
    for name, value in before.items():
        if after.get(name) != value:
            problems.append(f"{name} changed or vanished")
    for path in folder.glob("checkpoint-*"):
        problem = checkpoint_problem(path)
        if problem:
            problems.append(f"{path.name} left incomplete: {problem}")
    if list(folder.glob(".incomplete-*")):
        problems.append("a staging folder was left behind")
    if (folder / ".beyondgloss_lock").exists():
        problems.append("the lock file was left behind")
    steps = [json.loads(line)["step"] for line in (folder / "log_history.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    if steps != list(range(1, MAX_STEPS + 1)):
        problems.append(f"logged training steps {steps}")
    return problems


def translate_arguments(work: Path, output: Path) -> list:
    videos = sorted(str(path) for path in (work / "data" / "test").glob("*.mp4"))
    videos = (videos * TRANSLATE_VIDEOS)[:TRANSLATE_VIDEOS]
    return ["translate", "--model_name_or_path", str(work / "model"), "--videos", *videos, "--batch_size", "2",
            "--num_beams", "2", "--max_new_tokens", "6", "--inference_precision", "fp32", "--output_file", str(output)]


def make_translation_model(work: Path) -> None:
    """A tiny random translation model with its processor (what translate needs; its sentences do not matter)."""
    import torch

    from beyondgloss import BeyondGlossForSignTranslation
    from beyondgloss.data.tokenizer_training import train_sign_tokenizer
    from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
    from beyondgloss.testing import tiny_config
    from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

    tokenizer = train_sign_tokenizer(["morgen regnet es im norden", "heute sonne im süden"], language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=12), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id)
    BeyondGlossForSignTranslation(config).save_pretrained(work / "model")
    processor.save_pretrained(work / "model")


def check_translations(output: Path, printed: Path) -> tuple[list, int, int]:
    """Problems of a translate output file against what the command printed; and the numbers of both."""
    problems, records = [], []
    text = output.read_text(encoding="utf-8") if output.is_file() else ""
    if text and not text.endswith("\n"):
        problems.append("the last line of the output file is torn")
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
            records.append(f"{record['video']}\t{record['translation']}")
        except (ValueError, KeyError, TypeError):
            problems.append(f"output line {number} is not a whole record")
    shown = printed.read_text(encoding="utf-8").splitlines() if printed.is_file() else []
    missing = [line for line in shown if line not in records]
    if missing:
        problems.append(f"{len(missing)} printed translations are not in the file")
    if len(records) < len(shown) or records[: len(shown)] != shown[: len(records)]:
        problems.append("the file's records are not the printed ones, in order")
    return problems, len(records), len(shown)


def run_translate_trial(context, work: Path, index: int, delay: float, kill_signal, counts: dict) -> str:
    folder = work / f"translate{index:02d}"
    folder.mkdir()
    output, printed, log = folder / "t.jsonl", folder / "stdout.txt", folder / "stderr.txt"
    code = launch(context, translate_arguments(work, output), log, kill_after=delay, out=printed,
                  kill_signal=kill_signal)
    problems, written, shown = check_translations(output, printed)
    if kill_signal == signal.SIGTERM and code not in (0, None):
        stopped = "stopped by SIGTERM" in log.read_text()
        if code != 1 or not stopped:
            problems.append(f"SIGTERM: exit {code}, {'with' if stopped else 'without'} its 'stopped by' line")
        elif written != shown:
            problems.append(f"SIGTERM: {written} records written, {shown} printed")
        else:
            counts["translate: SIGTERM stopped cleanly with every printed line in the file"] += 1
    counts["translate: trials"] += 1
    counts["translate: finished translations checked in the file"] += shown
    if not problems:
        counts["translate: every finished translation in the file"] += 1
    else:
        counts["failures"] += 1
    name = signal.Signals(kill_signal).name
    ended = " (ended before the signal)" if code == 0 else ""
    return (f"translate {name} after {delay:.2f} s{ended}: {written} written, {shown} printed "
            + ("ok" if not problems else "FAIL " + "; ".join(problems)))


def run_training_trial(context, work: Path, index: int, kind: str, event, randomness, duration: float,
                       reference_model: str, counts: dict) -> str:
    folder, log = work / f"trial{index:02d}", work / f"trial{index:02d}.log"
    argv = run_arguments(work, folder)
    if kind == "event":
        step = MAX_STEPS if event in FINAL_EVENTS else randomness.randint(1, MAX_STEPS)
        point = f"{event} at step {step}"
        code = launch(context, argv, log, event=event, step=step)
    else:
        delay = randomness.uniform(0.3, 0.97) * duration  # the first third is mostly start-up
        point = f"after {delay:.2f} s"
        code = launch(context, argv, log, kill_after=delay)
    counts["training: trials"] += 1
    if code == 0:
        point += " (the run ended before the kill)"
    before = complete_checkpoints(folder)
    incomplete = sorted(p.name for p in folder.glob("checkpoint-*") if p.name not in before)
    counts["training: incomplete checkpoint-N folders"] += len(incomplete)
    counts["training: interrupted saves left in staging"] += len(list(folder.glob(".incomplete-*")))
    counts["training: kills inside the final save"] += (folder / ".incomplete-model").is_dir()
    counts["training: stale locks taken over"] += code != 0 and (folder / ".beyondgloss_lock").is_file()
    code = launch(context, [*argv, "--resume_from_checkpoint", "last"], log)
    restarted = False
    if code == 1 and not before:
        restarted = True
        counts["training: killed before the first checkpoint (restarted)"] += 1
        code = launch(context, [*argv, "--overwrite_output_dir", "true"], log)
    problems = [f"exit {code}"] if code != 0 else check_resumed(folder, before)
    if problems:
        counts["failures"] += 1
    else:
        counts["training: resumed to the final step"] += not restarted
        counts["training: complete checkpoints checked byte-identical"] += len(before)
        counts["training: final model equal to the uninterrupted run's"] += (
            digest_file(folder / "model.safetensors") == reference_model)
    status = "FAIL " + "; ".join(problems) if problems else "ok"
    return (f"kill {point:<40} complete {len(before)} incomplete {incomplete or '-'} "
            f"{'restarted ' if restarted else ''}{status}")


def uninterrupted_runs(context, work: Path) -> tuple:
    """Times an uninterrupted training run and translate run; returns (training s, translate window, model digest)."""
    started = time.monotonic()
    reference = work / "reference"
    code = launch(context, run_arguments(work, reference), work / "reference.log")
    duration = time.monotonic() - started
    if code != 0 or check_resumed(reference, {}):
        raise SystemExit(f"the uninterrupted run failed (exit {code}); see {work / 'reference.log'}")
    folder = work / "translate_reference"
    folder.mkdir()
    printed = folder / "stdout.txt"
    process = context.Process(target=child, args=(translate_arguments(work, folder / "t.jsonl"), None, None,
                                                  str(folder / "stderr.txt"), str(printed)))
    started = time.monotonic()
    process.start()
    first = None
    while process.is_alive():
        if first is None and printed.is_file() and printed.stat().st_size:
            first = time.monotonic() - started
        time.sleep(0.01)
    total = time.monotonic() - started
    problems, written, _ = check_translations(folder / "t.jsonl", printed)
    if process.exitcode != 0 or problems or written != TRANSLATE_VIDEOS:
        raise SystemExit(f"the uninterrupted translate failed (exit {process.exitcode}, {written} lines); see {folder}")
    return duration, (first or 0.0, total), digest_file(reference / "model.safetensors")


def concurrent_starts(context, work: Path) -> list:
    """Two runs started at once in the same new folder: one finishes cleanly, the other stops with exit 1 and one
    line naming the lock (or, had the first already ended, its run); returns the problems."""
    folder = work / "concurrent"
    processes = [context.Process(target=child, args=(run_arguments(work, folder), None, None,
                                                     str(work / f"concurrent{i}.log"), None)) for i in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    codes = sorted(process.exitcode for process in processes)
    problems = [] if codes == [0, 1] else [f"exit codes {codes}, expected 0 and 1"]
    refused = "".join((work / f"concurrent{i}.log").read_text() for i in range(2))
    if "in use by another beyondgloss run" not in refused and "already holds an earlier run" not in refused:
        problems.append("the refused run did not say why")
    return problems + check_resumed(folder, {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=30, help="kill points (trials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default=None, help="where runs go (default: a temporary folder, deleted)")
    options = parser.parse_args()
    randomness = random.Random(options.seed)
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="kill_resume_"))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "transformers", "datasets", "beyondgloss.cli",
                                    "beyondgloss.cli.training", "beyondgloss.cli.translate",
                                    "beyondgloss.training.trainers", "beyondgloss.modeling_beyondgloss",
                                    "beyondgloss.pipeline_sign_translation", "beyondgloss.data"])
    from beyondgloss.data import load_sign_dataset

    load_sign_dataset("synthsign", data_dir=str(work / "data"), cache_dir=str(work / "cache"), **SYNTHSIGN)
    make_translation_model(work)
    launch(context, ["--help"], work / "reference.log")  # starts the server, so that the timings below are a run's
    duration, (first, total), reference_model = uninterrupted_runs(context, work)
    print(f"uninterrupted run: {duration:.1f} s, {MAX_STEPS} steps; translate: {total:.1f} s for {TRANSLATE_VIDEOS} "
          f"videos, the first printed after {first:.1f} s")
    concurrent = concurrent_starts(context, work)
    print("two runs started at once in one new folder: " + ("one ran, the other was refused" if not concurrent
                                                            else "FAIL " + "; ".join(concurrent)), flush=True)

    counts = dict.fromkeys(
        ["training: trials", "training: resumed to the final step",
         "training: killed before the first checkpoint (restarted)", "training: kills inside the final save",
         "training: interrupted saves left in staging", "training: incomplete checkpoint-N folders",
         "training: stale locks taken over", "training: complete checkpoints checked byte-identical",
         "training: final model equal to the uninterrupted run's", "translate: trials",
         "translate: every finished translation in the file",
         "translate: SIGTERM stopped cleanly with every printed line in the file",
         "translate: finished translations checked in the file", "failures"], 0)
    counts["failures"] += bool(concurrent)
    translating = options.points // 3
    events = (options.points - translating) // 2
    others = [event for event in EVENTS if event not in FINAL_EVENTS]
    chosen = list(FINAL_EVENTS) + randomness.sample(others, len(others))  # every final-save event, then the others
    plan = [("event", chosen[i % len(chosen)]) for i in range(events)]
    plan += [("timer", None)] * (options.points - translating - events)
    plan += [("translate", signal.SIGKILL if i % 2 else signal.SIGTERM) for i in range(translating)]
    randomness.shuffle(plan)
    for index, (kind, detail) in enumerate(plan):
        if kind == "translate":
            delay = randomness.uniform(first, first + 0.95 * (total - first))
            line = run_translate_trial(context, work, index, delay, detail, counts)
        else:
            line = run_training_trial(context, work, index, kind, detail, randomness, duration, reference_model,
                                      counts)
        print(f"{index:2d} {line}", flush=True)
    print(json.dumps(counts, indent=2))
    if options.work_dir is None and not counts["failures"]:
        import shutil

        shutil.rmtree(work)
    elif counts["failures"]:
        print(f"runs and their logs: {work}")
    return 1 if counts["failures"] else 0


def digest_file(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())

"""Kill -9 a short tiny pre-training run at random points, resume it, and check that nothing was lost.

For each of `--points` trials a fresh run (SynthSign, tiny model, a checkpoint after every step) is killed with
SIGKILL at one point, then restarted with `--resume_from_checkpoint last`:

- half the points are events inside the run, chosen at random among: inside a training step, half-way through
  writing a log line, and inside a checkpoint save (before the model, half-way through `model.safetensors`, after the
  model, after the optimizer and scheduler, after the RNG states, after the trainer state, after the rename into
  place), each at a random step;
- the other half are random moments: the harness sends SIGKILL after a random delay between 30% and 97% of an
  uninterrupted run's duration (the first part is start-up: dataset, model, trainer).

Checks per trial: the resume exits 0 and reaches the final step; every checkpoint that was complete at the kill is
byte-identical after the resume; every checkpoint left afterwards is complete; the log has each step once. A kill
before the first checkpoint leaves nothing to resume: `--resume_from_checkpoint last` must then refuse (exit 1, an
input to fix), and the run is started again with `--overwrite_output_dir`; such trials are counted apart.

Runs take a few seconds each on 2 CPU cores: the runs are forked from a server process that has imported everything
once. Usage:

    python scripts/kill_resume_harness.py --points 20 --seed 0
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
          "after_rng", "after_state", "after_rename")


def run_arguments(data: Path, output: Path) -> list:
    return ["pretrain", "--dataset", "synthsign", "--data_dir", str(data / "data"), "--cache_dir", str(data / "cache"),
            "--dataset_options", json.dumps(SYNTHSIGN), "--tiny", "--crop_size", "28", "--resize_size", "28",
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
    else:
        raise ValueError(f"unknown event {event!r}; one of {EVENTS}")


def child(argv: list, event: str | None, step: int | None, log: str) -> None:
    """One run of the command, with stdout/stderr to `log`; exits with the command's status."""
    handle = open(log, "a")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    if event is not None:
        _install_kill(event, step)
    from beyondgloss.cli import main

    sys.exit(main(argv))


def launch(context, argv, log, event=None, step=None, kill_after=None) -> int:
    """Runs `child` to its end (or until the harness kills it after `kill_after` seconds); returns its exit code."""
    process = context.Process(target=child, args=(argv, event, step, str(log)))
    process.start()
    process.join(kill_after)
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
    steps = [json.loads(line)["step"] for line in (folder / "log_history.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    if steps != list(range(1, MAX_STEPS + 1)):
        problems.append(f"logged training steps {steps}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20, help="kill points (trials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default=None, help="where runs go (default: a temporary folder, deleted)")
    options = parser.parse_args()
    randomness = random.Random(options.seed)
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="kill_resume_"))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "transformers", "datasets", "beyondgloss.cli",
                                    "beyondgloss.cli.training", "beyondgloss.training.trainers",
                                    "beyondgloss.modeling_beyondgloss", "beyondgloss.data"])
    from beyondgloss.data import load_sign_dataset

    load_sign_dataset("synthsign", data_dir=str(work / "data"), cache_dir=str(work / "cache"), **SYNTHSIGN)
    launch(context, ["--help"], work / "reference.log")  # starts the server, so that the timing below is a run's
    started = time.monotonic()
    reference = work / "reference"
    code = launch(context, run_arguments(work, reference), work / "reference.log")
    duration = time.monotonic() - started
    if code != 0 or check_resumed(reference, {}):
        print(f"the uninterrupted run failed (exit {code}); see {work / 'reference.log'}")
        return 1
    reference_model = digest_file(reference / "model.safetensors")
    print(f"uninterrupted run: {duration:.1f} s, {MAX_STEPS} steps")

    counts = {"trials": 0, "resumed to the final step": 0, "killed before the first checkpoint (restarted)": 0,
              "interrupted saves left in staging": 0, "incomplete checkpoint-N folders": 0, "complete checkpoints checked byte-identical": 0,
              "final model equal to the uninterrupted run's": 0, "failures": 0}
    plan = [("event", EVENTS[i % len(EVENTS)]) for i in range(options.points // 2)]
    plan += [("timer", None)] * (options.points - len(plan))
    randomness.shuffle(plan)
    for index, (kind, event) in enumerate(plan):
        folder, log = work / f"trial{index:02d}", work / f"trial{index:02d}.log"
        argv = run_arguments(work, folder)
        if kind == "event":
            step = randomness.randint(1, MAX_STEPS)
            point = f"{event} at step {step}"
            code = launch(context, argv, log, event=event, step=step)
        else:
            delay = randomness.uniform(0.3, 0.97) * duration  # the first third is mostly start-up
            point = f"after {delay:.2f} s"
            code = launch(context, argv, log, kill_after=delay)
        counts["trials"] += 1
        if code == 0:
            point += " (the run ended before the kill)"
        before = complete_checkpoints(folder)
        incomplete = sorted(p.name for p in folder.glob("checkpoint-*") if p.name not in before)
        counts["incomplete checkpoint-N folders"] += len(incomplete)
        counts["interrupted saves left in staging"] += len(list(folder.glob(".incomplete-*")))
        code = launch(context, [*argv, "--resume_from_checkpoint", "last"], log)
        restarted = False
        if code == 1 and not before:
            restarted = True
            counts["killed before the first checkpoint (restarted)"] += 1
            code = launch(context, [*argv, "--overwrite_output_dir", "true"], log)
        problems = [f"exit {code}"] if code != 0 else check_resumed(folder, before)
        if problems:
            counts["failures"] += 1
        else:
            counts["resumed to the final step"] += not restarted
            counts["complete checkpoints checked byte-identical"] += len(before)
            counts["final model equal to the uninterrupted run's"] += (
                digest_file(folder / "model.safetensors") == reference_model)
        status = "FAIL " + "; ".join(problems) if problems else "ok"
        print(f"{index:2d} kill {point:<40} complete {len(before)} incomplete {incomplete or '-'} "
              f"{'restarted ' if restarted else ''}{status}", flush=True)
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

"""Nothing lost, nothing unbounded (issue 24): every write a user could lose is whole and owned, and nothing a run
completed is deleted to recover from an interruption.

Interruptions are simulated in-process by raising `KeyboardInterrupt` where a kill would land (the kill -9 harness,
`scripts/kill_resume_harness.py`, kills real processes; docs/reliability.md has its counts). Each case asserts what
the folder holds afterwards and that the run then finishes without deleting a complete checkpoint.
"""

import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from beyondgloss.cli import main
from beyondgloss.cli.folder_lock import LOCK_FILE, lock_output_dir, release_output_dir
from beyondgloss.cli._common import CommandError
from beyondgloss.cli.output_dir import RUN_MARKER, checkpoint_problem
from beyondgloss.training import BeyondGlossPretrainingTrainer, BeyondGlossTranslationTrainer
from beyondgloss.training.trainers import FINAL_SAVE_STAGING, optimizer_state_problem
from tests.test_cli import QUICK, corpus  # noqa: F401 - `corpus` is a module fixture shared with the CLI tests
from tests.test_hostile_training import folder_digest, translation_model  # noqa: F401 - a module fixture

SHORT = ["--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_total_limit", "10"]


def _run(corpus, folder: Path, steps: int, *extra) -> list:
    _, options, _ = corpus
    return ["pretrain", *options, *QUICK, *SHORT, "--output_dir", str(folder), "--max_steps", str(steps), *extra]


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory):
    """A finished 2-step run with checkpoint-2, copied fresh for each test that damages it."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    assert main(_run(corpus, folder, 2)) == 0
    release_output_dir(folder)
    return folder


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    (target / LOCK_FILE).unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------------------------------------------
# The final save


def test_an_interrupted_final_save_tears_no_file_and_resume_finishes_it(corpus, tmp_path, monkeypatch, capsys):
    import transformers.modeling_utils as modeling_utils

    folder = tmp_path / "run"
    original = modeling_utils.safe_save_file

    def killed_in_the_final_save(tensors, filename, *args, **kwargs):
        original(tensors, filename, *args, **kwargs)
        if FINAL_SAVE_STAGING in str(filename):
            with open(filename, "r+b") as handle:  # as a kill half-way through writing the file
                handle.truncate(os.path.getsize(filename) // 2)
            raise KeyboardInterrupt

    monkeypatch.setattr(modeling_utils, "safe_save_file", killed_in_the_final_save)
    with pytest.raises(KeyboardInterrupt):
        main(_run(corpus, folder, 2))
    monkeypatch.undo()
    release_output_dir(folder)
    # The torn file is in the staging folder only; the run folder has its checkpoint and no final model yet.
    assert (folder / FINAL_SAVE_STAGING / "model.safetensors").is_file()
    assert not (folder / "model.safetensors").exists() and not (folder / "config.json").exists()
    checkpoint = folder_digest(folder / "checkpoint-2")
    # Starting again offers only what keeps checkpoint-2.
    assert main(_run(corpus, folder, 2)) == 1
    error = capsys.readouterr().err
    assert "--resume_from_checkpoint last" in error and "--overwrite_output_dir" not in error
    assert main([*_run(corpus, folder, 2), "--resume_from_checkpoint", "last"]) == 0
    assert folder_digest(folder / "checkpoint-2") == checkpoint
    assert checkpoint_problem(folder) is None  # the final model is whole (trainer_state.json, model.safetensors)
    assert not (folder / FINAL_SAVE_STAGING).exists()


def test_a_torn_config_json_of_an_older_version_is_finished_by_resuming(corpus, finished_run, tmp_path, capsys,
                                                                        caplog):
    folder = _copy(finished_run, tmp_path)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config[: len(config) // 2])  # what a kill in the old in-place save left
    checkpoint = folder_digest(folder / "checkpoint-2")
    assert main(_run(corpus, folder, 2)) == 1
    error = capsys.readouterr().err
    assert "config.json is torn" in error and "--resume_from_checkpoint last" in error
    assert "--overwrite_output_dir" not in error
    with caplog.at_level(logging.WARNING):
        assert main([*_run(corpus, folder, 2), "--resume_from_checkpoint", "last"]) == 0
    assert "config.json is torn" in caplog.text
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BeyondGlossForContrastivePretraining"]
    assert folder_digest(folder / "checkpoint-2") == checkpoint


def test_another_kind_of_run_with_checkpoints_is_refused_without_suggesting_overwrite(corpus, finished_run, capsys):
    _, options, _ = corpus
    before = folder_digest(finished_run)
    argv = ["finetune", *options, *QUICK, "--model_name_or_path", str(finished_run), "--output_dir", str(finished_run)]
    argv.remove("--tiny")
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "BeyondGlossForContrastivePretraining" in error and "checkpoint-2" in error
    assert "--overwrite_output_dir" not in error
    assert folder_digest(finished_run) == before


# --------------------------------------------------------------------------------------------------------------
# Optimizer state


def _damage(checkpoint: Path, how: str) -> None:
    optimizer = checkpoint / "optimizer.pt"
    if how == "missing":
        optimizer.unlink()
    else:
        data = optimizer.read_bytes()
        optimizer.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_resume_without_optimizer_state_stops_unless_reset_optimizer(corpus, finished_run, tmp_path, capsys, caplog,
                                                                     how):
    folder = _copy(finished_run, tmp_path)
    _damage(folder / "checkpoint-2", how)
    expected = "no optimizer.pt" if how == "missing" else "optimizer.pt is truncated"
    assert optimizer_state_problem(str(folder / "checkpoint-2")).startswith(expected)
    argv = [*_run(corpus, folder, 3), "--resume_from_checkpoint", "last"]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert expected in error and "--reset_optimizer" in error and "checkpoint-2" in error
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--reset_optimizer"]) == 0
    assert "fresh optimizer" in caplog.text and "learning-rate schedule" in caplog.text
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 3


def test_the_trainer_itself_refuses_a_torn_optimizer_state(finished_run, tmp_path):
    """Library use (no command line): a `ValueError` naming the file, not an error from inside `torch.load`."""
    from beyondgloss import BeyondGlossForContrastivePretraining
    from beyondgloss.training import pretraining_arguments

    folder = _copy(finished_run, tmp_path)
    _damage(folder / "checkpoint-2", "truncated")
    model = BeyondGlossForContrastivePretraining.from_pretrained(folder / "checkpoint-2")
    args = pretraining_arguments(str(tmp_path / "lib"), use_cpu=True, max_steps=3, eval_strategy="no",
                                 load_best_model_at_end=False)
    trainer = BeyondGlossPretrainingTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=3)
    with pytest.raises(ValueError, match="optimizer.pt is truncated.*reset_optimizer=True"):
        trainer._load_optimizer_and_scheduler(str(folder / "checkpoint-2"))
    trainer.reset_optimizer = True
    trainer._load_optimizer_and_scheduler(str(folder / "checkpoint-2"))
    assert not trainer.optimizer.state  # fresh
    assert trainer.lr_scheduler.last_epoch == 2  # the checkpoint's schedule


# --------------------------------------------------------------------------------------------------------------
# One run per output folder


_HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from beyondgloss.cli.folder_lock import lock_output_dir
    lock_output_dir(Path(sys.argv[1]))
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_a_second_run_in_the_same_folder_is_refused_while_the_first_holds_it(corpus, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RUN_MARKER).touch()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(_run(corpus, folder, 1)) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "in use by another beyondgloss run" in error
        assert f"pid {holder.pid} on host {socket.gethostname()}" in error and LOCK_FILE in error
        assert sorted(os.listdir(folder)) == [LOCK_FILE, RUN_MARKER]  # nothing written: no log, no checkpoint
    finally:
        holder.communicate("")
    # Ended normally: the lock file is gone, and a run goes ahead.
    assert not (folder / LOCK_FILE).exists()
    assert main(_run(corpus, folder, 1, "--save_strategy", "no")) == 0


def test_push_refuses_a_folder_a_run_is_writing(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["push", str(folder), "someone/model"]) == 1
        error = capsys.readouterr().err
        assert "is being written by a beyondgloss run" in error and f"pid {holder.pid}" in error
    finally:
        holder.communicate("")
    assert main(["push", str(folder), "someone/model"]) == 1  # now the folder's own problem: not a checkpoint
    assert "being written" not in capsys.readouterr().err


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    stale = json.loads((folder / LOCK_FILE).read_text())
    assert stale["pid"] == holder.pid
    with caplog.at_level(logging.WARNING):
        lock_output_dir(folder)
    try:
        assert f"pid {holder.pid}" in caplog.text and "taking over" in caplog.text
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        release_output_dir(folder)
    assert not (folder / LOCK_FILE).exists()


def test_a_lock_of_another_host_is_refused_with_the_way_to_clear_it(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(CommandError, match=f"pid 1 on host elsewhere.*delete {folder / LOCK_FILE}"):
        lock_output_dir(folder)


# --------------------------------------------------------------------------------------------------------------
# translate --output_file


def test_translate_writes_each_line_as_it_is_made_and_stops_cleanly_on_sigterm(translation_model, tmp_path,
                                                                               monkeypatch, capsys):
    from beyondgloss.cli import translate as translate_module

    folder, good, _ = translation_model
    output = tmp_path / "t.jsonl"
    videos = [good[0], good[1], good[0], good[1]]
    original = translate_module._translate_batch
    seen = []

    def batch_then_sigterm(translator, batch, generation):
        results = original(translator, batch, generation)
        seen.append(output.read_text().count("\n"))  # lines already in the file when the next batch starts
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during the first batch: it finishes, then the command stops
        return results

    monkeypatch.setattr(translate_module, "_translate_batch", batch_then_sigterm)
    code = main(["translate", "--model_name_or_path", str(folder), "--videos", *videos, "--batch_size", "2",
                 "--output_file", str(output)])
    captured = capsys.readouterr()
    assert code == 1 and seen == [0]
    assert "stopped by SIGTERM after 2 of 4 videos" in captured.err and str(output) in captured.err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [record["video"] for record in records] == videos[:2]
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == videos[:2]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the command's handler is gone


def test_translate_stopped_while_the_model_loads_translates_nothing_and_says_so(translation_model, tmp_path,
                                                                              monkeypatch, capsys):
    from beyondgloss.cli import translate as translate_module

    folder, good, _ = translation_model
    output = tmp_path / "t.jsonl"
    original = translate_module._load_pipeline

    def sigint_while_loading(options):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the model loads: no KeyboardInterrupt traceback
        return original(options)

    monkeypatch.setattr(translate_module, "_load_pipeline", sigint_while_loading)
    assert main(["translate", "--model_name_or_path", str(folder), "--videos", *good, "--output_file",
                 str(output)]) == 1
    captured = capsys.readouterr()
    assert "stopped by SIGINT after 0 of 2 videos" in captured.err and captured.out == ""
    assert output.read_text() == ""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_translate_skips_a_video_that_runs_out_of_memory_and_goes_on(translation_model, tmp_path, monkeypatch,
                                                                     capsys):
    from beyondgloss.pipeline_sign_translation import SignTranslationPipeline

    folder, good, _ = translation_model
    output = tmp_path / "t.jsonl"
    original = SignTranslationPipeline._forward

    def out_of_memory_for_long_batches(self, model_inputs, **kwargs):
        if any(group["video_attention_mask"].sum(dim=1).max() > 4 for group in model_inputs["groups"]):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return original(self, model_inputs, **kwargs)

    monkeypatch.setattr(SignTranslationPipeline, "_forward", out_of_memory_for_long_batches)
    from beyondgloss.testing.videos import make_frames, write_mp4

    long = str(write_mp4(tmp_path / "long.mp4", make_frames(8, 28, 28, seed=5)))
    code = main(["translate", "--model_name_or_path", str(folder), "--videos", good[0], long, good[1],
                 "--batch_size", "3", "--output_file", str(output)])
    captured = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["video"] for line in output.read_text().splitlines()] == [good[0], good[1]]
    errors = [line for line in captured.err.splitlines() if "out of memory" in line]
    assert len(errors) == 1 and long in errors[0] and "max_frames" in errors[0]
    assert "1 of 3 videos could not be translated" in captured.err


# --------------------------------------------------------------------------------------------------------------
# transformers internals the trainers override


# Each Trainer method the trainers override (or whose behaviour they rely on), with its signature in the transformers
# versions setup.py allows. A change means the override may no longer be called as written: read the new method and
# update the override before updating this table.
OVERRIDDEN = {
    "_load_from_checkpoint": "(self, resume_from_checkpoint: str, model: torch.nn.modules.module.Module | None = None) "
                             "-> None",
    "_load_best_model": "(self) -> None",
    "create_accelerator_and_postprocess": "(self) -> None",
    "_get_output_dir": "(self, trial: 'optuna.Trial | dict[str, Any] | None') -> str",
    "_save_checkpoint": "(self, model: torch.nn.modules.module.Module, trial: 'optuna.Trial | dict[str, Any] | None') "
                        "-> None",
    "_load_optimizer_and_scheduler": "(self, checkpoint: str | None) -> None",
    "_save_rng_state": "(self, output_dir: str) -> None",
    "save_model": "(self, output_dir: str | None = None, _internal_call: bool = False) -> None",
    "save_metrics": "(self, split, metrics, combined=True)",
    "save_state": "(self)",
    "get_decay_parameter_names": "(self, model: torch.nn.modules.module.Module) -> list[str]",
    "get_train_dataloader": "(self) -> torch.utils.data.dataloader.DataLoader",
    "get_eval_dataloader": "(self, eval_dataset: str | torch.utils.data.dataset.Dataset | None = None) -> "
                           "torch.utils.data.dataloader.DataLoader",
    "get_test_dataloader": "(self, test_dataset: torch.utils.data.dataset.Dataset) -> "
                           "torch.utils.data.dataloader.DataLoader",
    "compute_loss": "(self, model: torch.nn.modules.module.Module, inputs: dict[str, torch.Tensor | typing.Any], "
                    "return_outputs: bool = False, num_items_in_batch: torch.Tensor | int | None = None) -> "
                    "torch.Tensor | tuple[torch.Tensor, typing.Any]",
    "log": "(self, logs: dict[str, float], start_time: float | None = None) -> None",
    "prediction_step": "(self, model: torch.nn.modules.module.Module, inputs: dict[str, torch.Tensor | typing.Any], "
                       "prediction_loss_only: bool, ignore_keys: list[str] | None = None) -> "
                       "tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]",
    "create_optimizer": "(self, model=None) -> torch.optim.optimizer.Optimizer",
    "evaluation_loop": "(self, dataloader: torch.utils.data.dataloader.DataLoader, description: str, "
                       "prediction_loss_only: bool | None = None, ignore_keys: list[str] | None = None, "
                       "metric_key_prefix: str = 'eval') -> transformers.trainer_utils.EvalLoopOutput",
}
SEQ2SEQ_OVERRIDDEN = {
    "prediction_step": "(self, model: torch.nn.modules.module.Module, inputs: dict[str, torch.Tensor | typing.Any], "
                       "prediction_loss_only: bool, ignore_keys: list[str] | None = None, **gen_kwargs) -> "
                       "tuple[float | None, torch.Tensor | None, torch.Tensor | None]",
}


def test_every_overridden_trainer_method_keeps_its_signature():
    from transformers import Seq2SeqTrainer, Trainer

    changed = []
    for base, table in ((Trainer, OVERRIDDEN), (Seq2SeqTrainer, {**OVERRIDDEN, **SEQ2SEQ_OVERRIDDEN})):
        for name, expected in table.items():
            method = getattr(base, name, None)
            found = "absent" if method is None else str(inspect.signature(method))
            if found != expected:
                changed.append(f"{base.__name__}.{name}: expected {expected}, found {found}")
    assert not changed, ("transformers changed methods that beyondgloss/training/trainers.py overrides; read each and "
                         "update the override:\n" + "\n".join(changed))
    # Every override of the trainers is in the table, so that a new one is not left unguarded.
    for trainer, base, table in ((BeyondGlossPretrainingTrainer, Trainer, OVERRIDDEN),
                                 (BeyondGlossTranslationTrainer, Seq2SeqTrainer, OVERRIDDEN)):
        overridden = {name for klass in trainer.__mro__[: trainer.__mro__.index(base)] for name, value in
                      vars(klass).items() if callable(value) and not name.startswith("__") and hasattr(base, name)}
        assert overridden <= set(table), f"{trainer.__name__} overrides {sorted(overridden - set(table))}: add them"


def test_the_internals_the_atomic_checkpoint_relies_on_are_still_there():
    """`_save_checkpoint` writes into the folder `_get_output_dir` names, and saves the model through `save_model`
    with `_internal_call=True`; the atomic checkpoint and final save depend on both."""
    from transformers import Trainer

    source = inspect.getsource(Trainer._save_checkpoint)
    assert "self._get_output_dir(trial=trial)" in source, "Trainer._save_checkpoint no longer asks _get_output_dir"
    assert "self.save_model(output_dir, _internal_call=True)" in source, (
        "Trainer._save_checkpoint no longer saves the model with save_model(output_dir, _internal_call=True)")

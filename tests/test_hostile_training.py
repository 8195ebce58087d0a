"""Careless and hostile use of the training side and the command line (issue 12): each case asserts the named error or
the documented result, and that nothing that was there before changed."""

import hashlib
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError
import torch
from transformers import TrainerState

from beyondgloss import BeyondGlossConfig, BeyondGlossForSignTranslation
from beyondgloss.cli import main
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames, write_mp4
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.training import BeyondGlossPretrainingTrainer, LogFileCallback, pretraining_arguments
from beyondgloss.training.arguments import TranslateArguments
from beyondgloss.cli._arguments import parse_arguments
from beyondgloss.cli._common import CommandError
from beyondgloss.cli.output_dir import RUN_MARKER, checkpoint_problem, last_complete_checkpoint
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor
from tests.test_cli import QUICK, corpus  # noqa: F401 - `corpus` is a module fixture shared with the CLI tests

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]
# Two optimizer steps, a checkpoint at each even step, no evaluation: the cheapest run that leaves checkpoints.
SHORT = ["--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_total_limit", "10"]


def folder_digest(root: Path) -> dict:
    """Every entry under `root` (hidden ones, links, special files) with its kind and content, without following links."""
    digest = {}
    for directory, folders, files in os.walk(root, followlinks=False):
        for name in folders + files:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                digest[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                digest[str(path.relative_to(root))] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                digest[str(path.relative_to(root))] = (stat.S_IFMT(mode), None)
    return digest


def user_folder(path: Path) -> Path:
    """A folder of someone's own files with the names a run writes, and every other kind of entry."""
    path.mkdir(parents=True)
    (path / "tokenizer.json").write_text('{"mine": true}')
    (path / "eval_results.json").write_text('{"bleu4": 99}')
    (path / "training_args.bin").write_bytes(b"\x00mine")
    (path / ".hidden").write_text("x")
    (path / "checkpoint-7").mkdir()
    (path / "checkpoint-7" / "notes.txt").write_text("not a checkpoint")
    (path / "link").symlink_to(path / "tokenizer.json")
    os.mkfifo(path / "pipe")
    return path


# --------------------------------------------------------------------------------------------------------------
# Output folders


@pytest.mark.parametrize("extra", [[], ["--overwrite_output_dir", "true"], ["--resume_from_checkpoint", "last"]])
def test_a_folder_beyondgloss_did_not_create_is_never_written(corpus, tmp_path, capsys, extra):
    _, options, _ = corpus
    folder = user_folder(tmp_path / "mine")
    before = folder_digest(folder)
    assert main(["pretrain", *options, *QUICK, "--output_dir", str(folder), "--max_steps", "1", *extra]) == 1
    message = capsys.readouterr().err
    assert RUN_MARKER in message and "tokenizer.json" in message and "--overwrite_output_dir does not apply" in message
    assert folder_digest(folder) == before


@pytest.mark.parametrize("kind", ["a file", "a link to nothing", "a special file"])
def test_an_output_dir_that_is_not_a_folder_is_refused(corpus, tmp_path, capsys, kind):
    _, options, _ = corpus
    target = tmp_path / "out"
    if kind == "a file":
        target.write_text("keep")
    elif kind == "a link to nothing":
        target.symlink_to(tmp_path / "missing")
    else:
        os.mkfifo(target)
    before = folder_digest(tmp_path)
    assert main(["pretrain", *options, *QUICK, "--output_dir", str(target), "--max_steps", "1"]) == 1
    assert f"is {kind}, not a folder" in capsys.readouterr().err
    assert folder_digest(tmp_path) == before


def test_an_empty_folder_is_claimed_and_overwrite_deletes_only_checkpoints(corpus, tmp_path, capsys):
    _, options, _ = corpus
    folder = tmp_path / "run"
    folder.mkdir()
    argv = ["pretrain", *options, *QUICK, *SHORT, "--output_dir", str(folder), "--max_steps", "2"]
    assert main(argv) == 0
    assert (folder / RUN_MARKER).is_file() and (folder / "checkpoint-2").is_dir()
    # Things a user put into the run's folder afterwards, under names no run writes.
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoint-final").mkdir()
    (folder / "checkpoint-final" / "weights.bin").write_bytes(b"mine")
    kept = {name: value for name, value in folder_digest(folder).items() if name.split("/")[0] in
            ("notes.txt", "checkpoint-final")}
    assert main([*argv, "--overwrite_output_dir", "true", "--max_steps", "1", "--save_strategy", "no"]) == 0
    assert not (folder / "checkpoint-2").exists()  # the earlier run's checkpoint, deleted so runs cannot mix
    after = folder_digest(folder)
    assert {name: after.get(name) for name in kept} == kept


# --------------------------------------------------------------------------------------------------------------
# Atomic checkpoints and resume


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def test_checkpoint_problem_names_what_is_missing_or_torn(tmp_path):
    from safetensors.torch import save_file

    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    assert checkpoint_problem(checkpoint) == "no trainer_state.json"
    (checkpoint / "trainer_state.json").write_text('{"global_step": 3, "log_hist')
    assert checkpoint_problem(checkpoint) == "a torn trainer_state.json"
    TrainerState(global_step=3).save_to_json(str(checkpoint / "trainer_state.json"))
    assert checkpoint_problem(checkpoint) == "no model.safetensors"
    save_file({"w": torch.ones(64)}, str(checkpoint / "model.safetensors"))
    assert checkpoint_problem(checkpoint) is None
    _truncate(checkpoint / "model.safetensors", (checkpoint / "model.safetensors").stat().st_size - 10)
    assert "model.safetensors" in checkpoint_problem(checkpoint) and "header needs" in checkpoint_problem(checkpoint)
    _truncate(checkpoint / "model.safetensors", 5)
    assert checkpoint_problem(checkpoint) == "model.safetensors: truncated"
    # A newer incomplete folder is passed over (and named), an older complete one taken.
    complete = tmp_path / "checkpoint-2"
    complete.mkdir()
    TrainerState(global_step=2).save_to_json(str(complete / "trainer_state.json"))
    save_file({"w": torch.ones(4)}, str(complete / "model.safetensors"))
    assert last_complete_checkpoint(tmp_path) == (str(complete), [("checkpoint-3", "model.safetensors: truncated")])


def test_a_save_interrupted_midway_leaves_no_checkpoint_and_resume_skips_incomplete_ones(
        corpus, tmp_path, monkeypatch, capsys, caplog):
    _, options, _ = corpus
    folder = tmp_path / "run"
    argv = ["pretrain", *options, *QUICK, *SHORT, "--output_dir", str(folder), "--max_steps", "6"]
    original = BeyondGlossPretrainingTrainer._save_rng_state

    def killed_in_the_save_of_step_four(self, output_dir):
        if self.state.global_step == 4:
            raise KeyboardInterrupt  # as a kill after the model and optimizer files, before the RNG and state files
        return original(self, output_dir)

    monkeypatch.setattr(BeyondGlossPretrainingTrainer, "_save_rng_state", killed_in_the_save_of_step_four)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.undo()
    assert (folder / "checkpoint-2").is_dir() and not (folder / "checkpoint-4").exists()
    assert (folder / ".incomplete-checkpoint-4" / "checkpoint-4" / "model.safetensors").is_file()
    # What an interruption of plain Trainer, or of an older version, leaves: checkpoint folders without their state,
    # one of a step the resumed run saves again (4), one of a step it does not save (5).
    for step in (4, 5):
        shutil.copytree(folder / ".incomplete-checkpoint-4" / "checkpoint-4", folder / f"checkpoint-{step}")
    # And a log line torn in the middle of its write.
    with open(folder / "log_history.jsonl", "a") as handle:
        handle.write('{"loss": 1.2, "step"')
    complete, torn = folder_digest(folder / "checkpoint-2"), folder_digest(folder / "checkpoint-5")

    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--resume_from_checkpoint", "last"]) == 0
    warnings = caplog.text
    assert "skipping" in warnings and "no trainer_state.json" in warnings
    assert "checkpoint-4" in warnings and "checkpoint-5" in warnings
    assert "not a complete JSON object" in warnings
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 6
    assert folder_digest(folder / "checkpoint-2") == complete
    assert checkpoint_problem(folder / "checkpoint-4") is None and checkpoint_problem(folder / "checkpoint-6") is None
    assert folder_digest(folder / "checkpoint-5") == torn  # passed over and left as it was
    assert not list(folder.glob(".incomplete-*"))
    steps = [json.loads(line)["step"] for line in (folder / "log_history.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [2, 4, 6]

    # An incomplete checkpoint named explicitly is refused, naming what is missing.
    assert main([*argv, "--max_steps", "8", "--resume_from_checkpoint", str(folder / "checkpoint-5")]) == 1
    assert "incomplete checkpoint (no trainer_state.json)" in capsys.readouterr().err


def test_resume_with_only_incomplete_checkpoints_names_them(corpus, tmp_path, capsys):
    _, options, _ = corpus
    folder = tmp_path / "run"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / RUN_MARKER).touch()
    before = folder_digest(folder)
    assert main(["pretrain", *options, *QUICK, "--output_dir", str(folder), "--resume_from_checkpoint", "last"]) == 1
    error = capsys.readouterr().err
    assert "no complete checkpoint" in error and "checkpoint-10" in error
    assert folder_digest(folder) == before


def test_a_torn_log_line_is_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "log_history.jsonl"
    path.write_text('{"loss": 1.0, "step": 1}\n{"loss": 0.5, "step": 2}\n[1, 2]\n{"loss": 0.4, "st')
    state = TrainerState(global_step=2)
    state.is_world_process_zero = True
    with caplog.at_level(logging.WARNING):
        LogFileCallback(str(path)).on_train_begin(None, state, None)
    assert path.read_text().splitlines() == ['{"loss": 1.0, "step": 1}', '{"loss": 0.5, "step": 2}']
    assert "line 3" in caplog.text and "line 4" in caplog.text


def test_a_last_batch_of_one_sample_is_warned_about(tmp_path, caplog):
    import datasets

    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    from beyondgloss import BeyondGlossForContrastivePretraining

    network = BeyondGlossForContrastivePretraining(tiny_config(vocab_size=len(tokenizer)))
    for count, drop_last, warned in ((5, False, True), (5, True, False), (8, False, False), (6, False, False)):
        caplog.clear()
        args = pretraining_arguments(str(tmp_path), per_device_train_batch_size=4, use_cpu=True,
                                     dataloader_drop_last=drop_last, eval_strategy="no",
                                     load_best_model_at_end=False)
        trainer = BeyondGlossPretrainingTrainer(model=network, args=args,
                                                train_dataset=datasets.Dataset.from_dict({"x": list(range(count))}),
                                                data_collator=lambda rows: rows)
        with caplog.at_level(logging.WARNING):
            trainer.get_train_dataloader()
        assert ("last batch of 1 sample" in caplog.text) is warned, (count, drop_last)
        if warned:
            assert "--dataloader_drop_last true" in caplog.text and "5 samples" in caplog.text


# --------------------------------------------------------------------------------------------------------------
# translate


@pytest.fixture(scope="module")
def translation_model(tmp_path_factory):
    """A tiny random translation model folder saved with its processor, and three videos: two good, one not."""
    root = tmp_path_factory.mktemp("translate")
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=8), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=1,
                         max_new_tokens=4)
    folder = root / "model"
    BeyondGlossForSignTranslation(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    good = [str(write_mp4(root / f"good{i}.mp4", make_frames(4, 28, 28, seed=i))) for i in range(2)]
    bad = root / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return folder, good, str(bad)


def test_translate_reports_a_bad_video_and_writes_the_good_results(translation_model, tmp_path, capsys):
    folder, good, bad = translation_model
    output = tmp_path / "t.jsonl"
    before = folder_digest(folder)
    code = main(["translate", "--model_name_or_path", str(folder), "--videos", good[0], bad, good[1],
                 "--batch_size", "2", "--output_file", str(output)])
    captured = capsys.readouterr()
    assert code == 1
    assert [line.split("\t")[0] for line in captured.out.strip().splitlines()] == good
    assert [json.loads(line)["video"] for line in output.read_text().splitlines()] == good
    assert f"{bad}: " in captured.err and "1 of 3 videos could not be translated" in captured.err
    assert "input [1] of 3" in captured.err  # its place among all the videos, not within its batch
    assert folder_digest(folder) == before
    assert main(["translate", "--model_name_or_path", str(folder), "--videos", *good]) == 0


# Status 2: a flag that is wrong whatever the model (usage line first); 1: a value this model cannot take.
@pytest.mark.parametrize("flags, words, status", [
    (["--batch_size", "-1"], ["--batch_size", "-1", "positive"], 2),
    (["--batch_size", "0"], ["--batch_size", "0"], 2),
    (["--num_beams", "0"], ["--num_beams", "0"], 2),
    (["--max_new_tokens", "0"], ["--max_new_tokens"], 2),
    (["--max_new_tokens", "500"], ["--max_new_tokens 500", "128 positions"], 1),
    (["--num_beams", "two"], ["--num_beams", "invalid int value: 'two'"], 2),
    (["--device"], ["--device", "expected one argument"], 2),
    (["--batch-size", "0"], ["--batch_size", "0"], 2),  # the dashed spelling of old scripts, named underscored
])
def test_translate_validates_its_values(translation_model, tmp_path, capsys, flags, words, status):
    folder, good, _ = translation_model
    output = tmp_path / "t.jsonl"
    assert main(["translate", "--model_name_or_path", str(folder), "--videos", good[0], "--output_file", str(output),
                 *flags]) == status
    error = capsys.readouterr().err
    assert "beyondgloss translate: error:" in error and "Traceback" not in error
    assert error.startswith("usage: beyondgloss translate") is (status == 2)
    for word in words:
        assert word in error
    assert not output.exists()


def _copy_model(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def test_a_model_folder_without_its_tokenizer_is_refused(translation_model, tmp_path, capsys):
    folder, good, _ = translation_model
    broken = _copy_model(folder, tmp_path / "model")
    (broken / "tokenizer.json").unlink()
    before = folder_digest(broken)
    assert main(["translate", "--model_name_or_path", str(broken), "--videos", good[0]]) == 1
    error = capsys.readouterr().err
    assert str(broken) in error and "no tokenizer.json" in error
    assert folder_digest(broken) == before


def test_bad_config_types_and_too_many_frames_are_named(translation_model, tmp_path, capsys):
    folder, good, _ = translation_model
    broken = _copy_model(folder, tmp_path / "model")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "frame_dim": "abc"}))
    assert main(["translate", "--model_name_or_path", str(broken), "--videos", good[0]]) == 1
    error = capsys.readouterr().err
    assert "'frame_dim' expected int" in error and "'abc'" in error

    (broken / "config.json").write_text(json.dumps(config))
    settings = json.loads((broken / "processor_config.json").read_text())
    video = settings.get("video_processor", settings)
    frames_key = "max_frames"
    video[frames_key] = 300  # the tiny text encoder has 128 positions: at most 256 frames
    (broken / "processor_config.json").write_text(json.dumps(settings))
    assert main(["translate", "--model_name_or_path", str(broken), "--videos", good[0]]) == 1
    error = capsys.readouterr().err
    assert "max_frames=300" in error and "128 positions" in error and "at most 256 frames" in error


@pytest.mark.parametrize("overrides, words", [
    ({"frame_dim": "abc"}, ["'frame_dim' expected int", "'abc'"]),
    ({"reference_compat": "no"}, ["'reference_compat' expected bool", "'no'"]),
    ({"num_beams": 2.5}, ["'num_beams' expected int", "2.5"]),
    ({"max_frames": True}, ["'max_frames' expected int", "True"]),
    ({"temporal_layers": ["2", 2]}, ["'temporal_layers'", "['2', 2]"]),
    ({"max_new_tokens": 128}, ["max_new_tokens=128", "128 positions"]),
])
def test_config_types_are_checked_by_name(overrides, words):
    # Types are checked by `@strict` as in transformers' own configs (StrictDataclassFieldValidationError), settings
    # by the config's own validation (ValueError).
    with pytest.raises((StrictDataclassFieldValidationError, ValueError)) as error:
        tiny_config(**overrides)
    for word in words:
        assert word in str(error.value)
    # Numbers a JSON file spells as integers are fine where floats are expected.
    assert BeyondGlossConfig.from_dict(tiny_config(label_smoothing=0, vision_lora_alpha=4).to_dict()).label_smoothing == 0


# --------------------------------------------------------------------------------------------------------------
# Flags and configuration files: one parser, strict booleans


def _parse_file(tmp_path, text: str, suffix: str = ".yaml"):
    path = tmp_path / f"config{suffix}"
    path.write_text(text)
    return parse_arguments([str(path)], (TranslateArguments,), None, "translate")


@pytest.mark.parametrize("value, expected", [('"no"', False), ('"false"', False), ("no", False), ("off", None),
                                             ('"yes"', True), ("true", True), ('"0"', False)])
def test_booleans_in_a_yaml_file_are_strict(tmp_path, value, expected):
    text = f"model_name_or_path: m\nvideos: [a.mp4]\noverwrite_output_file: {value}\n"
    if expected is None:  # YAML 1.1 reads off as false; a string that is no boolean is an error
        text = text.replace("off", '"maybe"')
        with pytest.raises(CommandError, match="overwrite_output_file.*Truthy value expected"):
            _parse_file(tmp_path, text)
        return
    (options,) = _parse_file(tmp_path, text)
    assert options.overwrite_output_file is expected and options.videos == ["a.mp4"]


@pytest.mark.parametrize("text, words", [
    ("model_name_or_path: m\nnum_beam: 2\n", ["unknown key 'num_beam'", "did you mean 'num_beams'"]),
    ("model_name_or_path: m\nnum_beams: abc\n", ["--num_beams", "invalid int value: 'abc'"]),
    ("model_name_or_path: m\nnum_beams: 1.5\n", ["--num_beams", "invalid int value: '1.5'"]),
    ("model_name_or_path: m\nbatch_size: -3\n", ["--batch_size -3", "positive"]),
    ("model_name_or_path: m\nbatch_size: [1, 2]\n", ["batch_size takes one value"]),
    ("model_name_or_path: m\nbatch_size: null\n", ["batch_size: null"]),
    ("videos: [a.mp4]\n", ["--model_name_or_path"]),
    ("- just\n- a list\n", ["mapping"]),
    ("model_name_or_path: [unclosed\n", ["not a readable YAML file"]),
])
def test_configuration_file_errors_name_the_file_and_the_key(tmp_path, text, words):
    with pytest.raises(CommandError) as error:
        _parse_file(tmp_path, text)
    for word in words:
        assert word in str(error.value)


def test_training_argument_errors_are_reported_not_raised(corpus, tmp_path, capsys):
    _, options, _ = corpus
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"dataset": "synthsign", "tiny": "no", "eval_strategy": "sometimes",
                                "output_dir": str(tmp_path / "out")}))
    assert main(["pretrain", str(path)]) == 1  # a bad file: one line naming it
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert str(path) in error and "--eval_strategy" in error and "sometimes" in error and "Traceback" not in error
    for flags, words in ((["--max_frames", "0"], ["--max_frames 0: must be a positive integer"]),
                         (["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size 0", "positive"]),
                         (["--lr_scheduler_kwargs", "{min_lr: 1}"], ["--lr_scheduler_kwargs {min_lr: 1}", "JSON"]),
                         (["--report_to", "nowhere"], ["Trainer refused", "nowhere is not supported"]),
                         (["--encoder_learning_rate_scale", "0"], ["--encoder_learning_rate_scale 0.0", "positive"])):
        assert main(["pretrain", *options, *QUICK, "--output_dir", str(tmp_path / "out"), *flags]) == 2, flags
        error = capsys.readouterr().err
        assert all(word in error for word in words) and "Traceback" not in error, error
    assert not (tmp_path / "out").exists()

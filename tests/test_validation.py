"""One validation layer for every flag, one place that turns expected errors into one line, and the guards that keep a
model which cannot translate (or that would run foreign code) from being used (docs/validation.md)."""

import errno
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossProcessor
from beyondgloss.cli import main
from beyondgloss.cli._arguments import config_overrides, parse_arguments
from beyondgloss.cli._common import CommandError, UsageError, run_command
from beyondgloss.cli._guards import check_remote_code
from beyondgloss.testing import make_frames, write_mp4
from beyondgloss.training.arguments import DataArguments, ModelArguments

from .test_hostile_training import translation_model  # noqa: F401 -- the tiny translation model folder (a fixture)

SENTENCES = ["guten morgen", "heute regnet es", "morgen scheint die sonne", "es ist kalt", "der wind weht"]


@pytest.fixture(scope="module")
def folders(translation_model, tmp_path_factory):
    """A tiny translation model folder, a pre-training one made from it, and a 4-frame video."""
    folder, good, _ = translation_model
    pretraining = tmp_path_factory.mktemp("pretraining") / "model"
    BeyondGlossForContrastivePretraining.from_pretrained(folder).save_pretrained(pretraining)
    BeyondGlossProcessor.from_pretrained(folder).save_pretrained(pretraining)
    return folder, pretraining, good[0]


def _sign_folder(root: Path, language: str | None = "de") -> Path:
    """A sign video folder dataset (metadata.jsonl): two training clips, one validation clip."""
    root.mkdir(parents=True)
    rows = []
    for index, (split, text) in enumerate((("train", SENTENCES[0]), ("train", SENTENCES[1]),
                                           ("validation", SENTENCES[2]))):
        write_mp4(root / f"{index}.mp4", make_frames(3, 28, 28, seed=index))
        row = {"file_name": f"{index}.mp4", "text": text, "split": split}
        rows.append({**row, "language": language} if language else row)
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def _copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def _error_line(capsys, command: str, status: int) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert lines[-1].startswith(f"beyondgloss {command}: error: ")
    assert sum(line.startswith(f"beyondgloss {command}: error: ") for line in lines) == 1
    if status == 2:
        assert lines[0].startswith(f"usage: beyondgloss {command}")
    return lines[-1]


# --------------------------------------------------------------------------------------------------------------
# 1. One range table for every command's values


# Values each command accepted silently (or with a traceback), and what the one error line must name.
@pytest.mark.parametrize("command, flags, words", [
    ("pretrain", ["--max_steps", "-5"], ["--max_steps -5", "-1 (train for --num_train_epochs) or a positive"]),
    ("pretrain", ["--max_steps", "0"], ["--max_steps 0"]),
    ("finetune", ["--learning_rate", "-1"], ["--learning_rate -1.0", "positive, finite number"]),
    ("finetune", ["--learning_rate", "nan"], ["--learning_rate nan", "finite"]),
    ("pretrain", ["--num_train_epochs", "0"], ["--num_train_epochs 0.0", "positive"]),
    ("pretrain", ["--weight_decay", "-0.1"], ["--weight_decay -0.1", "0 or more"]),
    ("pretrain", ["--seed", "-1"], ["--seed -1", "[0, 2**32)"]),
    ("pretrain", ["--adam_beta1", "1.5"], ["--adam_beta1 1.5", "[0, 1)"]),
    ("finetune", ["--crop_size", "300", "--size", "256"], ["--crop_size 300", "at most --size 256"]),
    ("finetune", ["--resize_size", "32", "--size", "32"], ["--resize_size 32 and --size 32", "earlier name"]),
    ("evaluate", ["--generation_num_beams", "0"], ["--generation_num_beams 0", "positive integer"]),
    ("demo", ["--translation_steps", "-1"], ["--translation_steps -1", "positive integer"]),
    ("demo", ["--learning_rate", "-1"], ["--learning_rate -1.0", "positive"]),
    ("demo", ["--num_train", "0"], ["--num_train 0"]),
    ("demo", ["--pretraining_steps", "-3"], ["--pretraining_steps -3", "0 or more"]),
    ("translate", ["--device", "banana"], ["--device 'banana'", "not a torch device", "'cpu'"]),
    ("translate", ["--device", f"cuda:{torch.cuda.device_count()}"], ["no such device", "'cpu'"]),
    ("serve", ["--device", "banana"], ["--device 'banana'"]),
])
def test_a_value_out_of_range_is_exit_2_naming_the_flag_the_value_and_the_range(command, flags, words, tmp_path,
                                                                                capsys):
    required = {"translate": ["--model_name_or_path", str(tmp_path / "m"), "--videos", str(tmp_path / "v.mp4")],
                "serve": ["--model", str(tmp_path / "m")]}.get(command, ["--output_dir", str(tmp_path / "out")])
    assert main([command, *flags, *required]) == 2
    line = _error_line(capsys, command, 2)
    assert all(word in line for word in words), line
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_configuration_file_value_out_of_range_names_the_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(f"dataset: synthsign\ntiny: true\nmax_steps: -5\noutput_dir: {tmp_path / 'out'}\n")
    assert main(["pretrain", str(path)]) == 1
    line = _error_line(capsys, "pretrain", 1)
    assert str(path) in line and "--max_steps -5" in line


@pytest.mark.parametrize("text, words", [
    ("hidden_size=-32", ["--config_overrides hidden_size=-32", "'hidden_size' is not a BeyondGlossConfig setting"]),
    ("num_beam=2", ["did you mean 'num_beams'?"]),
    ("label_smoothing", ["not of the form name=value"]),
])
def test_config_overrides_names_are_checked(text, words):
    with pytest.raises(UsageError) as error:
        config_overrides(text)
    assert all(word in str(error.value) for word in words)
    assert config_overrides("num_beams=3,reference_compat=true") == {"num_beams": 3, "reference_compat": True}


def test_the_video_flags_speak_the_processors_names_and_the_old_ones_still_work(caplog):
    # The processor's names with its meanings: max_frames a cap, num_frames an exact count (as transformers').
    _, data = parse_arguments(["--max_frames", "12", "--size", "32", "--crop_size", "28"],
                              (ModelArguments, DataArguments))
    assert data.video_settings() == {"max_frames": 12, "size": 32, "crop_size": 28}
    _, exact = parse_arguments(["--num_frames", "12"], (ModelArguments, DataArguments))
    assert exact.video_settings() == {"num_frames": 12}
    with caplog.at_level(logging.WARNING):
        _, old = parse_arguments(["--max_frames", "12", "--resize_size", "32", "--crop_size", "28"],
                                 (ModelArguments, DataArguments))
    assert old.video_settings() == data.video_settings()
    assert "--resize_size is deprecated; use --size" in caplog.text


# --------------------------------------------------------------------------------------------------------------
# 2. One place for expected errors


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/ft/model.safetensors"),
     ["/runs/ft/model.safetensors", "no space left on the device"]),
    (PermissionError(errno.EACCES, "Permission denied", "/data/train"), ["/data/train", "permission denied"]),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"), ["/mnt/ro/out", "read-only"]),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/absent.json"), ["/absent.json", "no such file"]),
    (SafetensorError("Error while deserializing header: invalid header length"), [".safetensors", "truncated"]),
    (CommandError("x.mp4 is not a video"), ["x.mp4 is not a video"]),
])
def test_an_expected_error_is_one_line_and_exit_1(error, words, capsys):
    def body(argv):
        raise error

    assert run_command("translate", body, []) == 1
    line = _error_line(capsys, "translate", 1)
    assert all(word in line for word in words), line


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command("translate", lambda argv: 1 / 0, [])


def test_debug_shows_the_traceback_and_is_not_passed_on(capsys):
    seen = []

    def body(argv):
        seen.append(argv)
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/out")

    assert run_command("finetune", body, ["--output_dir", "x", "--debug"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and error.strip().splitlines()[-1].startswith("beyondgloss finetune: error: /runs/out")
    # TrainingArguments' own --debug (transformers' debug modes) is left to the Trainer.
    assert run_command("finetune", body, ["--debug", "underflow_overflow"]) == 1
    assert seen == [["--output_dir", "x"], ["--debug", "underflow_overflow"]]
    assert "Traceback" not in capsys.readouterr().err


def test_a_generation_length_longer_than_the_decoder_is_named(folders, tmp_path, capsys):
    dataset = _sign_folder(tmp_path / "signs")
    assert main(["evaluate", "--dataset", str(dataset), "--cache_dir", str(tmp_path / "cache"), "--test_split",
                 "validation", "--model_name_or_path", str(folders[0]), "--output_dir", str(tmp_path / "scores"),
                 "--use_cpu", "true", "--generation_max_length", "10000000"]) == 1
    line = _error_line(capsys, "evaluate", 1)
    assert "--generation_max_length 10000000" in line and "128 positions" in line and "at most 128" in line
    assert not (tmp_path / "scores").exists()


def test_a_metadata_file_without_a_language_is_named(tmp_path, capsys):
    dataset = _sign_folder(tmp_path / "signs", language=None)
    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    assert all("language" not in row for row in rows)
    assert main(["finetune", "--dataset", str(dataset), "--cache_dir", str(tmp_path / "cache"), "--tiny",
                 "--output_dir", str(tmp_path / "out"), "--test_split", "none"]) == 1
    line = _error_line(capsys, "finetune", 1)
    assert "`language`" in line and "--target_language" in line and "mBART language code known for ''" not in line


# --------------------------------------------------------------------------------------------------------------
# 3. Garbage guard


def test_a_pre_training_checkpoint_does_not_translate_unless_forced(folders, capsys):
    _, pretraining, video = folders
    argv = ["translate", "--model_name_or_path", str(pretraining), "--videos", video]
    assert main(argv) == 1
    line = _error_line(capsys, "translate", 1)
    assert str(pretraining / "config.json") in line and "--allow_untrained_decoder" in line
    assert main([*argv, "--allow_untrained_decoder"]) == 0


def test_a_folder_without_generation_config_is_refused(folders, tmp_path, capsys):
    model = _copy(folders[0], tmp_path / "model")
    (model / "generation_config.json").unlink()
    assert main(["translate", "--model_name_or_path", str(model), "--videos", folders[2]]) == 1
    line = _error_line(capsys, "translate", 1)
    assert str(model) in line and "generation_config.json" in line and "--allow_untrained_decoder" in line


def test_non_finite_weights_are_refused_by_name(folders, tmp_path, capsys):
    model = _copy(folders[0], tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    name = sorted(weights)[0]
    weights[name].view(-1)[0] = math.nan
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    assert main(["translate", "--model_name_or_path", str(model), "--videos", folders[2]]) == 1
    line = _error_line(capsys, "translate", 1)
    assert str(model) in line and name in line and "not all finite" in line


def test_missing_weights_are_refused_unless_allowed(folders, tmp_path, capsys):
    model = _copy(folders[0], tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    name = next(name for name in sorted(weights) if name.startswith("sign_encoder.temporal."))
    del weights[name]
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    argv = ["translate", "--model_name_or_path", str(model), "--videos", folders[2]]
    assert main(argv) == 1
    line = _error_line(capsys, "translate", 1)
    assert str(model) in line and name in line and "--allow_missing_weights" in line
    assert main([*argv, "--allow_missing_weights"]) == 0


def test_missing_sign_encoder_tensors_get_their_init(folders, tmp_path):
    """Loaded with missing tensors, each gets the init of its kind, never the memory it was built in (transformers'
    init pass skips the sign encoder, which counts as initialised once built): a bias 0, a norm's weight 1, any other
    weight drawn with std `initializer_range`."""
    from beyondgloss import BeyondGlossForSignTranslation

    model = _copy(folders[0], tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    temporal = sorted(name for name in weights if name.startswith("sign_encoder.temporal."))
    names = {kind: next(name for name in temporal if pick(name)) for kind, pick in (
        ("bias", lambda name: name.endswith(".bias")),
        ("norm", lambda name: "norm" in name and name.endswith(".weight")),
        ("weight", lambda name: "norm" not in name and name.endswith(".weight") and weights[name].numel() >= 64))}
    for name in names.values():
        del weights[name]
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    for _ in range(3):  # memory reused from freed tensors is what made the uninitialised case fail now and then
        loaded = BeyondGlossForSignTranslation.from_pretrained(model)
        state = loaded.state_dict()
        assert torch.equal(state[names["bias"]], torch.zeros_like(state[names["bias"]]))
        assert torch.equal(state[names["norm"]], torch.ones_like(state[names["norm"]]))
        drawn = state[names["weight"]]
        std = loaded.config.initializer_range
        # n draws of N(0, std): the sample std is within 6 standard errors (std / sqrt(2n)) of std
        assert abs(drawn.std().item() - std) < 6 * std / math.sqrt(2 * drawn.numel())
        assert torch.isfinite(drawn).all() and drawn.abs().max() < 10 * std


def test_a_truncated_weights_file_is_named(folders, tmp_path, capsys):
    model = _copy(folders[0], tmp_path / "model")
    with open(model / "model.safetensors", "r+b") as handle:
        handle.truncate(1000)
    argv = ["translate", "--model_name_or_path", str(model), "--videos", folders[2]]
    assert main(argv) == 1
    line = _error_line(capsys, "translate", 1)
    assert str(model / "model.safetensors") in line and "truncated" in line
    assert main([*argv, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# 4. Remote code only when asked for


def test_auto_map_references_outside_beyondgloss_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {
        "AutoConfig": "configuration_beyondgloss.BeyondGlossConfig",
        "AutoModelForSeq2SeqLM": "modeling_beyondgloss.BeyondGlossForSignTranslation"}}))
    check_remote_code(tmp_path, trust_remote_code=False)  # beyondgloss's own classes
    for foreign in ({"AutoTokenizer": ["evil.SlowTokenizer", None]},
                    {"AutoConfig": "someone/repo--configuration_beyondgloss.BeyondGlossConfig"}):
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"video_processor": {"auto_map": foreign}}))
        with pytest.raises(CommandError, match="tokenizer_config.json names code outside beyondgloss"):
            check_remote_code(tmp_path, trust_remote_code=False)
        check_remote_code(tmp_path, trust_remote_code=True)


def test_a_foreign_processor_is_refused_without_a_prompt_and_its_code_never_runs(folders, tmp_path):
    model = _copy(folders[0], tmp_path / "model")
    marker = tmp_path / "foreign-code-ran"
    (model / "evil_processing.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    settings = json.loads((model / "processor_config.json").read_text())
    settings.update(model_type="evil", processor_class="EvilProcessor",
                    auto_map={"AutoProcessor": "evil_processing.EvilProcessor"})
    (model / "processor_config.json").write_text(json.dumps(settings))
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # No terminal and no stdin: a question on the terminal would wait for an answer (or time out), not refuse.
    done = subprocess.run([sys.executable, "-m", "beyondgloss.cli", "translate", "--model_name_or_path", str(model),
                           "--videos", folders[2]], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, env=environment)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert str(model / "processor_config.json") in line and "--trust_remote_code" in line
    assert "evil_processing.EvilProcessor" in line and not marker.exists()


# --------------------------------------------------------------------------------------------------------------
# 5. finetune --tiny with the processor's frame count, and its model card


def test_finetune_tiny_needs_no_frame_flags_and_writes_a_full_card(tmp_path, capsys):
    dataset = _sign_folder(tmp_path / "signs")
    output = tmp_path / "ft"
    assert main(["finetune", "--dataset", str(dataset), "--cache_dir", str(tmp_path / "cache"), "--tiny",
                 "--size", "28", "--crop_size", "28", "--output_dir", str(output), "--max_steps", "1",
                 "--use_cpu", "true", "--eval_strategy", "no", "--load_best_model_at_end", "false",
                 "--test_split", "validation", "--disable_tqdm", "true", "--generation_num_beams", "1"]) == 0
    settings = json.loads((output / "processor_config.json").read_text())
    # The processor's default cap: no frame flag was given.
    assert settings["video_processor"]["max_frames"] == 300 and settings["video_processor"]["num_frames"] is None
    config = json.loads((output / "config.json").read_text())
    assert 2 * config["text_config"]["max_position_embeddings"] >= 300
    card = (output / "README.md").read_text()
    assert "Not recorded" not in card and "No scores recorded" not in card
    assert "signs, translated into `de`" in card  # the dataset (its folder's name) and the target language
    assert "| max_steps | 1 |" in card and "| optim | adamw" in card
    assert "| test | BLEU-4 |" in card and "| validation | BLEU-4 |" in card
    assert "tiny random model" in card

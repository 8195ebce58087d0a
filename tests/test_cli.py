"""The `beyondgloss` commands: pretrain|finetune|evaluate|translate on a tiny SynthSign corpus, their bad inputs, and
every command's flag dialect and error policy."""

import json
import re
from pathlib import Path

import pytest

from beyondgloss.cli import COMMANDS, main
from beyondgloss.data import load_sign_dataset
from beyondgloss.training import BeyondGlossPretrainingTrainer

SYNTHSIGN = {"num_train": 12, "num_validation": 4, "num_test": 4, "image_size": 28, "description_dim": 24,
             "frames_per_sign": [2, 2], "num_workers": 1}
QUICK = ["--tiny", "--crop_size", "28", "--size", "28", "--max_frames", "12", "--use_cpu", "true",
         "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--logging_steps", "2",
         "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2",
         "--disable_tqdm", "true", "--dataloader_num_workers", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthsign")
    options = ["--dataset", "synthsign", "--data_dir", str(root / "data"), "--cache_dir", str(root / "cache"),
               "--dataset_options", json.dumps(SYNTHSIGN)]
    dataset = load_sign_dataset("synthsign", data_dir=str(root / "data"), cache_dir=str(root / "cache"), **SYNTHSIGN)
    return root, options, dataset


@pytest.fixture(scope="module")
def pretrained(corpus):
    """A pre-training run configured by a YAML file (2 steps)."""
    root, options, _ = corpus
    output = root / "pretrain"
    values = {"dataset": "synthsign", "data_dir": str(root / "data"), "cache_dir": str(root / "cache"),
              "dataset_options": json.dumps(SYNTHSIGN), "tiny": True, "crop_size": 28, "size": 28,
              "max_frames": 12, "use_cpu": True, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
              "max_steps": 2, "logging_steps": 1, "eval_strategy": "no", "save_strategy": "no",
              "load_best_model_at_end": False, "disable_tqdm": True, "output_dir": str(output)}
    config = root / "pretrain.yaml"
    config.write_text("\n".join(f"{key}: {json.dumps(value)}" for key, value in values.items()))
    assert main(["pretrain", str(config)]) == 0
    return output


def test_pretrain_from_a_yaml_file_leaves_model_processor_and_loss_parts(pretrained, capsys):
    for name in ("model.safetensors", "config.json", "processor_config.json", "tokenizer.json", "log_history.jsonl"):
        assert (pretrained / name).is_file(), name
    logs = [json.loads(line) for line in (pretrained / "log_history.jsonl").read_text().splitlines()]
    training = [entry for entry in logs if "loss" in entry]
    assert [entry["step"] for entry in training] == [1, 2]
    assert all({"alignment_loss", "description_loss", "hand_loss"} <= entry.keys() for entry in training)
    config = json.loads((pretrained / "config.json").read_text())
    assert config["architectures"] == ["BeyondGlossForContrastivePretraining"]
    assert config["hand_dim"] == 18 and config["description_dim"] == 24  # fitted to the dataset's columns


def test_finetune_evaluate_translate(corpus, pretrained, capsys):
    root, options, dataset = corpus
    output = root / "finetune"
    argv = ["finetune", *options, *QUICK, "--model_name_or_path", str(pretrained), "--output_dir", str(output),
            "--max_steps", "2", "--generation_num_beams", "2", "--config_overrides", "max_new_tokens=4",
            "--encoder_learning_rate_scale", "0.1"]
    argv.remove("--tiny")
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "beyondgloss finetune: done" in summary and "test_bleu4" in summary and str(output) in summary
    records = [json.loads(line) for line in (output / "test_predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == dataset["test"]["id"]
    assert [r["reference"] for r in records] == dataset["test"]["text"]
    results = json.loads((output / "all_results.json").read_text())
    assert "test_bleu4" in results and "eval_bleu4" in results
    assert (output / "checkpoint-2").is_dir()
    generation = json.loads((output / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 4  # --config_overrides reach the saved generation settings

    evaluation = root / "evaluation"
    assert main(["evaluate", *options, "--model_name_or_path", str(output), "--output_dir", str(evaluation),
                 "--per_device_eval_batch_size", "4", "--use_cpu", "true", "--disable_tqdm", "true",
                 "--generation_num_beams", "2"]) == 0
    assert "test_bleu4" in capsys.readouterr().out
    assert json.loads((evaluation / "test_results.json").read_text())["test_bleu4"] == pytest.approx(
        results["test_bleu4"])
    # Evaluating again into the same folder would overwrite its results.
    assert main(["evaluate", *options, "--model_name_or_path", str(output), "--output_dir", str(evaluation),
                 "--use_cpu", "true"]) == 1
    assert "--overwrite_output_dir" in capsys.readouterr().err

    videos = [str(root / "data" / "test" / f"00000{i}.mp4") for i in range(2)]
    assert main(["translate", "--model_name_or_path", str(output), "--videos", *videos, "--num_beams", "2",
                 "--max_new_tokens", "4", "--output_file", str(root / "translations.jsonl")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == videos
    assert len((root / "translations.jsonl").read_text().splitlines()) == 2

    # Fine-tuning a translation model again: its generation_config.json wins over its config, the command over both.
    again = root / "finetune-again"
    argv = ["finetune", *options, *QUICK, "--model_name_or_path", str(output), "--output_dir", str(again),
            "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
            "--test_split", "none", "--config_overrides", "num_beams=3,max_new_tokens=5"]
    argv.remove("--tiny")
    assert main(argv) == 0
    generation = json.loads((again / "generation_config.json").read_text())
    assert (generation["num_beams"], generation["max_new_tokens"]) == (3, 5)


def test_an_output_folder_with_a_run_or_another_model_is_refused(corpus, pretrained, capsys):
    root, options, _ = corpus
    before = (pretrained / "model.safetensors").stat().st_mtime_ns
    # Another pre-training run into the folder of a finished one without checkpoints: nothing to resume, so replacing
    # it is what the message offers (it would delete no complete checkpoint).
    assert main(["pretrain", *options, *QUICK, "--output_dir", str(pretrained), "--max_steps", "1"]) == 1
    message = capsys.readouterr().err
    assert "no complete checkpoint" in message and "--overwrite_output_dir" in message
    # A translation run into a folder that holds a pre-training model.
    argv = ["finetune", *options, *QUICK, "--model_name_or_path", str(pretrained), "--output_dir", str(pretrained)]
    argv.remove("--tiny")
    assert main(argv) == 1
    assert "BeyondGlossForContrastivePretraining" in capsys.readouterr().err
    assert (pretrained / "model.safetensors").stat().st_mtime_ns == before


def test_bad_dataset_and_language_are_clear_errors(corpus, pretrained, tmp_path, capsys):
    root, options, _ = corpus
    folder = tmp_path / "no_text"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.mp4", "gloss": "HELLO"}) + "\n")
    assert main(["pretrain", "--dataset", str(folder), "--cache_dir", str(tmp_path / "cache"), *QUICK,
                 "--output_dir", str(tmp_path / "out")]) == 1
    assert "text" in capsys.readouterr().err
    argv = ["finetune", *options, *QUICK, "--model_name_or_path", str(pretrained), "--target_language", "xx_YY",
            "--output_dir", str(tmp_path / "ft")]
    argv.remove("--tiny")
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "xx_YY" in error and "--target_language" in error
    assert not (tmp_path / "ft").exists()


def test_an_interrupted_run_resumes_from_its_last_checkpoint(corpus, monkeypatch, capsys):
    root, options, _ = corpus
    output = root / "interrupted"
    argv = ["pretrain", *options, *QUICK, "--output_dir", str(output), "--max_steps", "4", "--eval_strategy", "no",
            "--load_best_model_at_end", "false"]
    original = BeyondGlossPretrainingTrainer.training_step

    def interrupt_at_step_three(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) in the middle of the epoch
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BeyondGlossPretrainingTrainer, "training_step", interrupt_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.setattr(BeyondGlossPretrainingTrainer, "training_step", original)
    assert (output / "checkpoint-2").is_dir() and not (output / "model.safetensors").exists()
    # Starting over without a decision is refused, and the message offers only what keeps checkpoint-2; resuming
    # continues at step 2.
    assert main(argv) == 1
    message = capsys.readouterr().err
    assert "--resume_from_checkpoint last" in message and "checkpoint-2" in message
    assert "--overwrite_output_dir" not in message
    assert main([*argv, "--resume_from_checkpoint", "last"]) == 0
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    entries = [json.loads(line) for line in (output / "log_history.jsonl").read_text().splitlines()]
    # The interrupted run logged step 2; the resumed one step 4, with no step logged twice.
    assert [entry["step"] for entry in entries if "loss" in entry] == [2, 4]
    # --overwrite_output_dir replaces the run: its checkpoints go.
    assert main([*argv, "--overwrite_output_dir", "true", "--max_steps", "1", "--save_strategy", "no"]) == 0
    assert not list(output.glob("checkpoint-*"))


# --------------------------------------------------------------------------------------------------------------
# One dialect and one error policy for every command


DASHED_FLAG = re.compile(r"--[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_documents_only_underscored_flags_and_rejects_unknown_ones(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: beyondgloss {command}")
    flags = set(re.findall(r"--[A-Za-z0-9_-]+", text)) - {"--help"}
    assert flags, f"beyondgloss {command} --help documents no flag"
    assert not DASHED_FLAG.findall(text), f"beyondgloss {command} --help shows dashed flags"
    # A malformed command line (an unknown flag; for some commands also missing arguments, which argparse names
    # first): argparse's usage line, then one error line, status 2.
    assert main([command, "--no_such_flag", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[0].startswith(f"usage: beyondgloss {command}")
    assert error[-1].startswith(f"beyondgloss {command}: error:") and "Traceback" not in "".join(error)


def test_the_command_list_names_every_command(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert main(["pre-train"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "beyondgloss: error: unknown command 'pre-train'"


def test_dashed_spellings_of_older_versions_are_still_accepted():
    from beyondgloss.cli._arguments import parse_arguments
    from beyondgloss.cli.descriptor import _import_hands_parser
    from beyondgloss.training.arguments import TranslateArguments

    args = _import_hands_parser().parse_args(["root", "--store", "s", "--id-format", "video", "--no-progress"])
    assert (args.id_format, args.no_progress) == ("video", True)
    (options,) = parse_arguments(["--model-name-or-path", "m", "--videos", "a.mp4", "--batch-size", "3"],
                                 (TranslateArguments,))
    assert (options.model_name_or_path, options.batch_size) == ("m", 3)


def _input_errors(tmp_path: Path) -> dict:
    """One input error per command family: the command line, and the file or folder its message must name."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the model folder is refused first")
    empty_model = tmp_path / "model"
    empty_model.mkdir()
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "notes.txt").write_text("mine")
    return {
        "training": (["pretrain", str(tmp_path / "absent.yaml")], tmp_path / "absent.yaml"),
        "translate": (["translate", "--model_name_or_path", str(empty_model), "--videos", str(video)], empty_model),
        "demo": (["demo", "--output_dir", str(demo_dir)], demo_dir),
        "descriptor": (["import-hands", str(tmp_path / "no_hamer"), "--store", str(tmp_path / "store")],
                       tmp_path / "no_hamer"),
        "convert": (["trim-mbart", str(tmp_path / "mbart"), str(tmp_path / "out"), "--texts",
                     str(tmp_path / "absent.txt")], tmp_path / "absent.txt"),
        "push": (["push", str(tmp_path / "no_model"), "someone/model"], tmp_path / "no_model"),
        "serve": (["serve", "--model", str(tmp_path / "no_checkpoint")], tmp_path / "no_checkpoint"),
    }


@pytest.mark.parametrize("family", ["training", "translate", "demo", "descriptor", "convert", "push", "serve"])
def test_an_input_error_is_one_line_naming_the_file_and_exit_1(family, tmp_path, capsys):
    if family == "serve":
        pytest.importorskip("gradio")  # without it, serve's one line names the missing extra instead
    argv, named = _input_errors(tmp_path)[family]
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"beyondgloss {argv[0]}: error: ") and str(named) in line
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # nothing written or removed

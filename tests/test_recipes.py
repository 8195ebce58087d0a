"""The recipes in recipes/ parse with the training commands' own parser (a renamed flag breaks them here, not after
hours on a GPU), hold the paper's numbers, and the accelerate configurations are ones accelerate reads."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from beyondgloss import BeyondGlossConfig
from beyondgloss.cli._arguments import config_overrides, parse_arguments
from beyondgloss.cli._common import CommandError
from beyondgloss.training.arguments import DataArguments, ModelArguments, RunArguments
from beyondgloss.training.presets import PRETRAINING_PRESET, TRANSLATION_PRESET

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DATASETS = {"phoenix14t": ("de_DE", "phoenix"), "csl_daily": ("zh_CN", "plain")}
# The paper's settings (the authors' code; docs/method.md): stage -> flag -> value.
EXPECTED = {
    "pretrain": {"learning_rate": 3e-4, "per_device_train_batch_size": 16, "num_train_epochs": 100, "seed": 42,
                 "weight_decay": 0.01, "max_grad_norm": 1.0, "warmup_steps": 0,
                 "lr_scheduler_kwargs": {"min_lr": 1e-8}, "metric_for_best_model": "eval_loss"},
    "finetune": {"learning_rate": 4e-4, "per_device_train_batch_size": 16, "num_train_epochs": 100, "seed": 42,
                 "weight_decay": 0.01, "max_grad_norm": 1.0, "warmup_steps": 0.2, "metric_for_best_model": "bleu4"},
}
CONFIG_VALUES = {"vision_lora_rank": 4, "vision_lora_alpha": 4.0, "vision_lora_dropout": 0.1, "text_lora_rank": 16,
                 "text_lora_alpha": 32.0, "text_lora_dropout": 0.1, "description_loss_weight": 0.5,
                 "hand_loss_weight": 0.3, "label_smoothing": 0.2, "num_beams": 5}


def parse(path: Path, stage: str):
    arguments_class = TrainingArguments if stage == "pretrain" else Seq2SeqTrainingArguments
    preset = PRETRAINING_PRESET if stage == "pretrain" else TRANSLATION_PRESET
    return parse_arguments([str(path)], (ModelArguments, DataArguments, RunArguments, arguments_class), preset, stage)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_recipe_parses_with_the_paper_settings(dataset, stage):
    path = RECIPES / dataset / f"{stage}.yaml"
    model, data, _, args = parse(path, stage)
    # Every key of the file reached the parsed arguments (none was dropped or defaulted).
    keys = yaml.safe_load(path.read_text())
    parsed = {**dataclasses.asdict(model), **dataclasses.asdict(data)}
    for key, value in keys.items():
        if key in parsed:
            assert parsed[key] == value, (path.name, key)
    for key, value in EXPECTED[stage].items():
        assert getattr(args, key) == value, (path, key)
    language, convention = DATASETS[dataset]
    assert data.dataset == dataset and model.target_language == language
    assert (data.max_frames, data.size, data.crop_size) == (300, 256, 224)
    assert args.fp16 and args.eval_strategy == "epoch" and args.load_best_model_at_end
    if stage == "finetune":
        assert data.scoring_convention == convention and args.predict_with_generate
        assert model.model_name_or_path == f"runs/{dataset}/pretrain"
    overrides = config_overrides(model.config_overrides)
    fields = set(BeyondGlossConfig().to_dict())
    assert set(overrides) <= fields, sorted(set(overrides) - fields)
    for key, value in overrides.items():
        if key in CONFIG_VALUES:
            assert value == CONFIG_VALUES[key], (path, key)


def test_a_renamed_flag_breaks_the_recipe(tmp_path):
    text = (RECIPES / "phoenix14t" / "pretrain.yaml").read_text().replace("learning_rate:", "learn_rate:")
    (tmp_path / "pretrain.yaml").write_text(text)
    with pytest.raises(CommandError, match="unknown key 'learn_rate'"):
        parse(tmp_path / "pretrain.yaml", "pretrain")


@pytest.mark.parametrize("name", ["fsdp.yaml", "deepspeed_zero2.yaml"])
def test_accelerate_configurations_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate" / name))
    assert config.num_processes >= 1
    if name == "fsdp.yaml":
        assert config.distributed_type.value == "FSDP" and config.fsdp_config["fsdp_version"] == 2
    else:
        assert config.distributed_type.value == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == 2


def test_a_recipe_runs_as_config_with_flags_that_override_it():
    path = RECIPES / "phoenix14t" / "pretrain.yaml"
    classes = (ModelArguments, DataArguments, RunArguments, TrainingArguments)
    _, data, _, args = parse_arguments(["--config", str(path), "--data_dir", "/data/phoenix", "--learning_rate",
                                        "1e-4"], classes, PRETRAINING_PRESET, "pretrain")
    assert data.data_dir == "/data/phoenix" and args.learning_rate == 1e-4  # the flags win
    assert args.per_device_train_batch_size == 16 and data.max_frames == 300  # the rest is the recipe's
    _, alone, _, _ = parse_arguments([f"--config={path}"], classes, PRETRAINING_PRESET, "pretrain")
    assert alone.data_dir == yaml.safe_load(path.read_text())["data_dir"]

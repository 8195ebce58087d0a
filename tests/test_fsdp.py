"""FSDP and DeepSpeed ZeRO-2 (sharded data parallel) through accelerate for both trainers, 2 CPU processes over gloo.

The shipped `recipes/accelerate/fsdp.yaml` and `deepspeed_zero2.yaml` are run as a user runs them (`accelerate launch
--config_file recipes/accelerate/fsdp.yaml --num_processes 2`; for DeepSpeed also `--mixed_precision no` and
`--gradient_accumulation_steps 2`, as the file is for fp16 GPUs; the training arguments' `use_cpu=True` keeps the
processes on the CPU, where beyondgloss's trainers turn on the FSDP or DeepSpeed that accelerate drops there,
`beyondgloss/training/cpu_distributed.py`; `accelerate launch --cpu` would start one process, its CPU launcher needing
mpirun for more). `Trainer.train()` takes one optimizer step of two gradient-accumulation micro-batches, each process
holding one sample of each micro-batch. The parameters must equal those of the single-process run whose micro-batches
are the two processes' samples joined: sharding the parameters, gradients and optimizer state changes where numbers
live, not the update. The pre-training step gathers its contrastive negatives across the processes, so the comparison
also proves that the gathered negatives stay exact under sharding and gradient accumulation (each process scores its
video against the sentences of its micro-batch on every process, as the single process does with the joined
micro-batch). DeepSpeed is not a dependency: its runs are skipped where it is not installed.

What makes the two computations the same math, so that only round-off separates them:

- float64 throughout (model and inputs), and every dropout and BatchNorm kept in eval mode while training (dropout
  draws differ per process, and BatchNorm's batch statistics are per process unless synchronised, which is not what
  sharding is about);
- every sample of the same length (frames, tokens), so that the per-process loss means, averaged over processes as
  the gradient reduction does, equal the joined micro-batch's mean;
- samples in order (a sequential sampler): accelerate deals micro-batch k's samples to processes 0 and 1, which is
  the single process's micro-batch k of two;
- the presets' AdamW and gradient clipping (the clipping norm is computed over the shards), a constant learning rate.

Tolerance 1e-5, derived: AdamW's first step moves a parameter by lr * g / (|g| + eps) (plus decay, identical in both),
whose derivative in g is at most lr / eps = 1e-3 / 1e-8 = 1e5. In float64 two summation orders of a gradient differ by
about n * 2^-53 of its largest terms: under 1e-13 here (tiny model, gradients of order 1), so the parameters differ by
at most 1e5 * 1e-13 = 1e-8; 1e-5 leaves three orders of magnitude for other CPUs. A real fault is far above it: a
single float32 rounding of a gradient (6e-8 relative) already gives up to 6e-3, and negatives gathered without their
backward changed gradients by 0.34 (tests/test_training_distributed.py).

Run as a script (by the tests): `python tests/test_fsdp.py <stage> <output.safetensors> <run_dir>`, under `accelerate
launch` for the sharded run or alone for the reference.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HAND_DIM, DESCRIPTION_DIM, FRAMES, TOKENS, WORLD, ACCUMULATION = 6, 24, 4, 5, 2, 2
TOLERANCE = 1e-5
LEARNING_RATE = 1e-3
ROOT = Path(__file__).resolve().parents[1]


def rows(count: int) -> dict:
    """`count` samples, all of the same length (see the module docstring)."""
    generator = torch.Generator().manual_seed(1)
    return {
        "pixel_values_videos": torch.randn(count, FRAMES, 3, 28, 28, generator=generator, dtype=torch.float64),
        "video_attention_mask": torch.ones(count, FRAMES, dtype=torch.long),
        "input_ids": torch.randint(4, 60, (count, TOKENS), generator=generator),
        "attention_mask": torch.ones(count, TOKENS, dtype=torch.long),
        "labels": torch.randint(4, 60, (count, TOKENS), generator=generator),
        "description_embeds": torch.randn(count, DESCRIPTION_DIM, generator=generator, dtype=torch.float64),
        "hand_features": torch.randn(count, FRAMES, HAND_DIM, generator=generator, dtype=torch.float64),
        "hand_mask": torch.ones(count, FRAMES, dtype=torch.long),
    }


class Samples(torch.utils.data.Dataset):
    """The stage's inputs (stage 2 has no description term, its model takes no description embeddings)."""

    def __init__(self, stage: str):
        keys = ("pixel_values_videos", "video_attention_mask", "hand_features", "hand_mask",
                *(("description_embeds", "input_ids", "attention_mask") if stage == "pretrain" else ("labels",)))
        everything = rows(WORLD * ACCUMULATION)
        self.rows = {key: everything[key] for key in keys}

    def __len__(self):
        return WORLD * ACCUMULATION

    def __getitem__(self, index):
        return {key: value[index] for key, value in self.rows.items()}


def keep_in_eval_mode(model: torch.nn.Module) -> None:
    """Every submodule stays in eval mode when the Trainer calls `model.train()` (dropout off, BatchNorm on its
    running statistics): the forward is then the same function of each sample in every process."""
    for module in model.modules():
        module.train = lambda mode=True, module=module: torch.nn.Module.train(module, False) and module
        torch.nn.Module.train(module, False)


def build_trainer(stage: str, run_dir: str, processes: int):
    """The stage's beyondgloss Trainer around a tiny float64 model, taking one optimizer step of `ACCUMULATION`
    micro-batches of `WORLD` samples in all (one per process under FSDP)."""
    from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
    from beyondgloss.testing import tiny_config
    from beyondgloss.training import (
        BeyondGlossPretrainingTrainer,
        BeyondGlossTranslationTrainer,
        pretraining_arguments,
        translation_arguments,
    )

    pretraining = stage == "pretrain"
    torch.manual_seed(0)
    config = tiny_config(hand_dim=HAND_DIM, description_dim=DESCRIPTION_DIM, gather_distributed_negatives=pretraining)
    model = (BeyondGlossForContrastivePretraining if pretraining else BeyondGlossForSignTranslation)(config).double()
    keep_in_eval_mode(model)
    arguments = (pretraining_arguments if pretraining else translation_arguments)(
        run_dir, learning_rate=LEARNING_RATE, lr_scheduler_type="constant", warmup_steps=0, max_steps=1,
        per_device_train_batch_size=WORLD // processes, gradient_accumulation_steps=ACCUMULATION, use_cpu=True,
        eval_strategy="no", save_strategy="no", load_best_model_at_end=False, disable_tqdm=True, logging_steps=1,
        dataloader_num_workers=0)
    base = BeyondGlossPretrainingTrainer if pretraining else BeyondGlossTranslationTrainer

    class InOrder(base):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    return InOrder(model=model, args=arguments, train_dataset=Samples(stage),
                   data_collator=torch.utils.data.default_collate)


def full_parameters(model: torch.nn.Module) -> dict:
    """Every parameter, whole (an FSDP2 parameter is a sharded DTensor: gathered, a collective on every process)."""
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters()}


def worker(stage: str, output: str, run_dir: str) -> None:
    from safetensors.torch import save_file

    processes = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = build_trainer(stage, run_dir, processes)
    trainer.train()
    model = trainer.model  # under DeepSpeed, the module inside its engine
    parameters = full_parameters(model)
    if trainer.args.process_index == 0:
        kinds = {name: type(p).__name__ for name, p in model.named_parameters()}
        save_file({name: tensor.contiguous() for name, tensor in parameters.items()}, output, metadata={
            "world_size": str(trainer.args.world_size), "parameter_types": json.dumps(kinds),
            "distributed_type": trainer.accelerator.distributed_type.value, "global_step": str(trainer.state.global_step)})


# ----------------------------------------------------------------------------------------------------------------
# The tests


def run(command: list, tmp_path: Path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-4000:]


LAUNCHES = {
    "fsdp": ["--config_file", str(ROOT / "recipes" / "accelerate" / "fsdp.yaml")],
    # The file is for fp16 on GPUs, with one accumulation step: the comparison needs float64 and two.
    "deepspeed_zero2": ["--config_file", str(ROOT / "recipes" / "accelerate" / "deepspeed_zero2.yaml"),
                        "--mixed_precision", "no", "--gradient_accumulation_steps", str(ACCUMULATION)],
}


@pytest.mark.parametrize("launch", list(LAUNCHES))
@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_sharded_step_equals_the_single_process_step_on_the_joined_batch(stage, launch, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    if launch.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not a dependency of beyondgloss")
    script = str(Path(__file__).resolve())
    run([sys.executable, script, stage, str(tmp_path / "single.safetensors"), str(tmp_path / "single")], tmp_path)
    run([sys.executable, "-m", "accelerate.commands.launch", *LAUNCHES[launch], "--num_processes", str(WORLD),
         "--main_process_port", "0", script, stage, str(tmp_path / "sharded.safetensors"), str(tmp_path / "sharded")],
        tmp_path)
    with safe_open(str(tmp_path / "sharded.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert (metadata["world_size"], metadata["distributed_type"], metadata["global_step"]) == (
        str(WORLD), "FSDP" if launch == "fsdp" else "DEEPSPEED", "1"), metadata
    kinds = json.loads(metadata["parameter_types"])
    # Under FSDP every parameter really was sharded (the temperatures too: shape (1,), as FSDP2 needs); ZeRO-2 shards
    # gradients and optimizer state, not parameters.
    assert set(kinds.values()) == ({"DTensor"} if launch == "fsdp" else {"Parameter"}), kinds
    single, sharded = load_file(str(tmp_path / "single.safetensors")), load_file(str(tmp_path / "sharded.safetensors"))
    assert single.keys() == sharded.keys()
    moved = max((single[name] - before).abs().max().item()
                for name, before in full_parameters(build_trainer(stage, str(tmp_path / "x"), 1).model).items())
    assert moved > 100 * TOLERANCE  # the step changed the parameters far more than the tolerance
    worst = max(((single[name] - sharded[name]).abs().max().item(), name) for name in single)
    assert worst[0] <= TOLERANCE, worst


def test_cpu_sharding_turns_on_only_what_was_asked_and_refuses_fsdp1(monkeypatch):
    """The part of `enable_cpu_sharding` the launches above cannot reach: nothing asked for, or a run accelerate did
    not leave on MULTI_CPU, is left alone; FSDP1, which torch runs only on accelerators, is refused with the fix."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from beyondgloss.training.cpu_distributed import enable_cpu_sharding

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)

    def trainer(kind, fsdp=None):
        return SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(distributed_type=kind),
                                                           mixed_precision="no"),
                               args=SimpleNamespace(deepspeed_plugin=None, fsdp_plugin_args=fsdp),
                               is_fsdp_enabled=False)

    unasked, not_cpu = trainer(DistributedType.MULTI_CPU), trainer(DistributedType.NO, {"fsdp_version": 2})
    assert enable_cpu_sharding(unasked) is None and enable_cpu_sharding(not_cpu) is None
    assert not unasked.is_fsdp_enabled and not not_cpu.is_fsdp_enabled
    with pytest.raises(ValueError, match="FSDP version 1 was asked for on CPU processes.*fsdp_version: 2"):
        enable_cpu_sharding(trainer(DistributedType.MULTI_CPU, {"fsdp_version": 1}))


if __name__ == "__main__":
    worker(*sys.argv[1:4])

"""FSDP (fully sharded data parallel, torch's FSDP2 through accelerate) for both trainers, 2 CPU processes over gloo.

One training step of each trainer under FSDP, each process holding half of one joined batch, must leave the parameters
the single-process step on the joined batch leaves: sharding the parameters, gradients and optimizer state changes
where numbers live, not the update. The pre-training step gathers its contrastive negatives across the processes, so
the comparison also proves that the gathered negatives stay exact under FSDP (each process scores its videos against
every sentence of the joined batch, and the averaged gradient is the joined batch's).

What makes the two computations the same math, so that only round-off separates them:

- float64 throughout (model and inputs), and every dropout and BatchNorm kept in eval mode while training (dropout
  draws differ per process, and BatchNorm's batch statistics are per process unless synchronised, which is not what
  FSDP is about);
- every sample of the same length (frames, tokens), so that the per-process loss means, averaged over processes as
  FSDP's reduce-scatter does, equal the joined batch's mean;
- the presets' AdamW and gradient clipping (the clipping norm is computed over the shards).

Tolerance 1e-5, derived: AdamW's first step moves a parameter by lr * g / (|g| + eps) (plus decay, identical in both),
whose derivative in g is at most lr / eps = 1e-3 / 1e-8 = 1e5. In float64 two summation orders of a gradient differ by
about n * 2^-53 of its largest terms: under 1e-13 here (tiny model, gradients of order 1), so the parameters differ by
at most 1e5 * 1e-13 = 1e-8; 1e-5 leaves three orders of magnitude for other CPUs. A real fault is far above it: a
single float32 rounding of a gradient (6e-8 relative) already gives up to 6e-3, and negatives gathered without their
backward changed gradients by 0.34 (tests/test_training_distributed.py).

Run as a script (by the tests): `python tests/test_fsdp.py <stage> <output.safetensors> <run_dir>`, under `torchrun
--nproc_per_node 2` for the FSDP step or alone for the reference.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HAND_DIM, DESCRIPTION_DIM, FRAMES, TOKENS, PER_RANK, WORLD = 6, 24, 4, 5, 2, 2
TOLERANCE = 1e-5
LEARNING_RATE = 1e-3


def joined_rows(count: int) -> dict:
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


def keep_in_eval_mode(model: torch.nn.Module) -> None:
    """Every submodule stays in eval mode when the Trainer calls `model.train()` (dropout off, BatchNorm on its
    running statistics): the forward is then the same function of each sample in every process."""
    for module in model.modules():
        module.train = lambda mode=True, module=module: torch.nn.Module.train(module, False) and module
        torch.nn.Module.train(module, False)


def build_trainer(stage: str, run_dir: str):
    """The stage's beyondgloss Trainer around a tiny float64 model: its `compute_loss` and `create_optimizer` (the
    presets' AdamW, decay on every trainable parameter, per-side learning rates) make the step."""
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
        run_dir, learning_rate=LEARNING_RATE, use_cpu=True, report_to="none", eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, **({"ddp_backend": "gloo"} if "WORLD_SIZE" in os.environ else {}))
    trainer_class = BeyondGlossPretrainingTrainer if pretraining else BeyondGlossTranslationTrainer
    return trainer_class(model=model, args=arguments)


def local_inputs(stage: str, rank: int, world: int) -> dict:
    # Stage 2 has no description term (its model takes no description embeddings).
    keys = ("pixel_values_videos", "video_attention_mask", "hand_features", "hand_mask",
            *(("description_embeds", "input_ids", "attention_mask") if stage == "pretrain" else ("labels",)))
    rows = joined_rows(PER_RANK * WORLD)
    share = len(rows["labels"]) // world
    return {key: rows[key][rank * share:(rank + 1) * share] for key in keys}


def shard(model: torch.nn.Module) -> list:
    """FSDP2 as accelerate applies it on GPUs (`fsdp_version: 2`, recipes/accelerate/fsdp.yaml), sharded over every
    process (parameters, gradients and optimizer state become DTensors, one shard each).

    Returns the parameters left replicated: `fully_shard` refuses 0-d parameters ("fully_shard doesn't support scalar
    parameters. Change logit_scale to a 1D tensor with numel equal to 1."), which the pre-training model's two
    temperatures are; they are kept out (`ignored_params`) and their gradients averaged by hand, as DDP would
    (docs/distributed.md, "FSDP").
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))
    scalars = [p for p in model.parameters() if p.ndim == 0]
    # One unit, the whole model (accelerate's NO_WRAP): the DINOv2 fast path reads the blocks' weights itself instead of
    # calling their forward, so per-block units (TRANSFORMER_BASED_WRAP) would leave them sharded when it reads them
    # ("aten.mul.Tensor got mixed torch.Tensor and DTensor"; docs/distributed.md).
    fully_shard(model, mesh=mesh, ignored_params=set(scalars))
    return scalars


def training_step(trainer, inputs: dict, replicated: list) -> None:
    """`Trainer.training_step` and the optimizer part of its loop: loss, backward, clipping at `max_grad_norm`
    (its norm over all shards), AdamW step."""
    import torch.distributed as dist

    model = trainer.model
    optimizer = trainer.create_optimizer()
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    for parameter in replicated:
        dist.all_reduce(parameter.grad)
        parameter.grad /= dist.get_world_size()
    trainable = [p for p in model.parameters() if p.requires_grad]
    sharded = [p for p in trainable if all(p is not q for q in replicated)]
    if replicated:
        # clip_grad_norm_ cannot mix DTensor and plain gradients: the global norm from both parts.
        norm = torch.linalg.vector_norm(torch.stack([
            torch.nn.utils.get_total_norm([p.grad for p in sharded]).full_tensor(),
            torch.nn.utils.get_total_norm([p.grad for p in replicated])]))
        torch.nn.utils.clip_grads_with_norm_(trainable, trainer.args.max_grad_norm, norm)
    else:
        torch.nn.utils.clip_grad_norm_(trainable, trainer.args.max_grad_norm)
    optimizer.step()


def full_parameters(model: torch.nn.Module) -> dict:
    """Every parameter, whole (an FSDP2 parameter is a sharded DTensor: gathered, a collective on every process)."""
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters()}


def worker(stage: str, output: str, run_dir: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    trainer = build_trainer(stage, run_dir)
    replicated = shard(trainer.model) if distributed else []
    training_step(trainer, local_inputs(stage, rank, world), replicated)
    parameters = full_parameters(trainer.model)
    if rank == 0:
        kinds = {name: type(p).__name__ for name, p in trainer.model.named_parameters()}
        save_file({name: tensor.contiguous() for name, tensor in parameters.items()}, output,
                  metadata={"world_size": str(world), "parameter_types": json.dumps(kinds)})
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------------------
# The tests


def run(command: list, tmp_path: Path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-4000:]


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_fsdp_step_equals_the_single_process_step_on_the_joined_batch(stage, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    script = str(Path(__file__).resolve())
    run([sys.executable, script, stage, str(tmp_path / "single.safetensors"), str(tmp_path / "single")], tmp_path)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), script, stage,
         str(tmp_path / "fsdp.safetensors"), str(tmp_path / "fsdp")], tmp_path)
    with safe_open(str(tmp_path / "fsdp.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["world_size"] == str(WORLD)
    kinds = json.loads(metadata["parameter_types"])
    # Every parameter really was sharded, but for the 0-d temperatures FSDP2 refuses (see `shard`).
    assert {name for name, kind in kinds.items() if kind != "DTensor"} == (
        {"logit_scale", "logit_scale_description"} if stage == "pretrain" else set()), kinds
    single, sharded = load_file(str(tmp_path / "single.safetensors")), load_file(str(tmp_path / "fsdp.safetensors"))
    assert single.keys() == sharded.keys()
    moved = max((single[name] - before).abs().max().item()
                for name, before in full_parameters(build_trainer(stage, str(tmp_path / "x")).model).items())
    assert moved > 100 * TOLERANCE  # the step changed the parameters far more than the tolerance
    worst = max(((single[name] - sharded[name]).abs().max().item(), name) for name in single)
    assert worst[0] <= TOLERANCE, worst


if __name__ == "__main__":
    worker(*sys.argv[1:4])

# Copyright 2026 The beyondgloss authors. MIT license.
"""FSDP2 and DeepSpeed on CPU processes through accelerate, which otherwise runs DDP there without a word.

accelerate (1.15) decides the distributed type in `AcceleratorState.__init__`: the FSDP or DeepSpeed plugin that
`accelerate launch --config_file recipes/accelerate/fsdp.yaml` (or `deepspeed_zero2.yaml`) or the Trainer's `fsdp` /
`deepspeed` arguments ask for is honoured only on GPU-like devices (CUDA, XPU, NPU, MLU, ...). On CPU processes
(`use_cpu`) the state stays `MULTI_CPU`, the plugin is dropped and the Trainer wraps the model in DDP; without
`use_cpu` and without a GPU, accelerate sees no distributed run at all (one process of one) while DeepSpeed starts
its own group of all processes, so every process reads the same batches. torch's FSDP2 (`fully_shard`) shards over
gloo on CPUs, and DeepSpeed's CPU accelerator (`DS_ACCELERATOR=cpu`) runs ZeRO over the same group, so
[`enable_cpu_sharding`] puts the dropped plugin back on a `use_cpu` run: the model is then prepared by accelerate's
own FSDP2 or DeepSpeed path, as on GPUs.

This sets accelerate's state (`distributed_type` and the plugin, as `AcceleratorState.__init__` does), not a public
API: `tests/test_fsdp.py` runs both trainers under `accelerate launch` with the shipped configurations and fails if a
step is not sharded or differs from the single-process step. FSDP1 (`fsdp_version: 1`) needs an accelerator device in
torch (`RuntimeError: FSDP needs a non-CPU accelerator device`) and is refused here with that advice.
"""

import os

from accelerate import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

__all__ = ["enable_cpu_sharding"]


def _requested_fsdp_plugin(plugin_args: dict | None) -> FullyShardedDataParallelPlugin | None:
    """The FSDP plugin the training arguments (`fsdp`, `fsdp_config`) or `accelerate launch` (its environment) ask
    for, built as `Accelerator` builds it; None when none is asked for."""
    if plugin_args is not None:
        return FullyShardedDataParallelPlugin(**plugin_args)
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return FullyShardedDataParallelPlugin()
    return None


def _set_type(state, distributed_type: DistributedType) -> None:
    state.distributed_type = distributed_type
    # As AcceleratorState.__init__ ends: each later AcceleratorState() copies PartialState's type over its own.
    PartialState._shared_state["distributed_type"] = distributed_type


def enable_cpu_sharding(trainer) -> str | None:
    """Turns FSDP2 or DeepSpeed on for a Trainer's `Accelerator` of several CPU processes when its arguments or
    `accelerate launch` asked for it and accelerate dropped it, and sets the Trainer's flags as
    `Trainer.create_accelerator_and_postprocess` does.

    Returns "fsdp" or "deepspeed" when it did (the model, prepared after this, is then sharded), else None."""
    enabled = _enable(trainer.accelerator, trainer.args)
    if enabled == "fsdp":
        trainer.is_fsdp_enabled = True
    if enabled == "deepspeed":
        from transformers.integrations.deepspeed import propagate_args_to_deepspeed

        trainer.is_deepspeed_enabled = True
        if getattr(trainer.args, "hf_deepspeed_config", None) is None:
            propagate_args_to_deepspeed(trainer.accelerator, trainer.args)
    return enabled


def _enable(accelerator, args) -> str | None:
    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return None
    deepspeed_plugin = getattr(args, "deepspeed_plugin", None)
    if deepspeed_plugin is not None:
        deepspeed_plugin.set_mixed_precision(accelerator.mixed_precision)
        deepspeed_plugin.select(_from_accelerator_state=True)
        state.deepspeed_plugins = deepspeed_plugin
        _set_type(state, DistributedType.DEEPSPEED)
        return "deepspeed"
    plugin = _requested_fsdp_plugin(args.fsdp_plugin_args)
    if plugin is None:
        return None
    if plugin.fsdp_version != 2:
        raise ValueError(f"FSDP version {plugin.fsdp_version} was asked for on CPU processes, where torch runs only "
                         "FSDP2: set `fsdp_version: 2` in the accelerate config (recipes/accelerate/fsdp.yaml) or "
                         "`--fsdp_config '{\"version\": 2}'` in the training arguments.")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    state.fsdp_plugin = plugin
    _set_type(state, DistributedType.FSDP)
    return "fsdp"

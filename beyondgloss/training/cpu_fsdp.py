# Copyright 2026 The beyondgloss authors. MIT license.
"""FSDP2 on CPU processes through accelerate, which otherwise runs DDP there without a word.

accelerate (1.15) decides the distributed type in `AcceleratorState.__init__`: the FSDP plugin that `accelerate launch
--config_file recipes/accelerate/fsdp.yaml` (environment variable `ACCELERATE_USE_FSDP=true`) or the Trainer's `fsdp`
arguments ask for is honoured only when the processes are on GPU-like devices (CUDA, XPU, NPU, MLU, ...). On CPU
processes (`--cpu`, or no GPU) the state stays `MULTI_CPU`, the plugin is dropped, and the Trainer wraps the model in
DDP. torch's FSDP2 (`fully_shard`) itself shards over gloo on CPUs, so [`shard_on_cpu`] puts the dropped plugin back:
the model is then prepared by accelerate's own FSDP2 path (`fsdp2_prepare_model`), as on GPUs.

This sets accelerate's state (`distributed_type`, `fsdp_plugin`, as `AcceleratorState.__init__` does), not a public API:
`tests/test_fsdp.py` runs both trainers under `accelerate launch --config_file recipes/accelerate/fsdp.yaml --cpu` and
fails if their parameters are not sharded (DTensors) after a step. FSDP1 (`fsdp_version: 1`) needs an accelerator
device in torch (`RuntimeError: FSDP needs a non-CPU accelerator device`) and is refused here with that advice.
"""

import os

from accelerate import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

__all__ = ["shard_on_cpu"]


def requested_fsdp_plugin(plugin_args: dict | None) -> FullyShardedDataParallelPlugin | None:
    """The FSDP plugin the training arguments (`fsdp`, `fsdp_config`) or `accelerate launch` (its environment) ask
    for, built as `Accelerator` builds it; None when none is asked for."""
    if plugin_args is not None:
        return FullyShardedDataParallelPlugin(**plugin_args)
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return FullyShardedDataParallelPlugin()
    return None


def shard_on_cpu(accelerator, plugin_args: dict | None = None) -> bool:
    """Turns FSDP on for an `Accelerator` of several CPU processes when it was asked for and accelerate dropped it.

    Returns True when it did (the caller's model, prepared after this, is sharded with `fully_shard`)."""
    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU or getattr(state, "fsdp_plugin", None) is not None:
        return False
    plugin = requested_fsdp_plugin(plugin_args)
    if plugin is None:
        return False
    if plugin.fsdp_version != 2:
        raise ValueError(f"FSDP version {plugin.fsdp_version} was asked for on CPU processes, where torch runs only "
                         "FSDP2: set `fsdp_version: 2` in the accelerate config (recipes/accelerate/fsdp.yaml) or "
                         "`fsdp_config={'version': 2}` in the training arguments.")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    # As AcceleratorState.__init__ ends: each later AcceleratorState() copies PartialState's type back over its own.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True

# Copyright 2026 The beyondgloss authors. MIT license.
"""The mBART LoRA (PEFT's layers on every q_proj/v_proj) and its checkpoint names; adapters (what fine-tuning changed)
are in `adapters_beyondgloss.py`. Shipped in checkpoints; imports peft only where a model uses LoRA.
"""

import math

import torch
from torch import nn
from transformers import initialization as init

from .configuration_beyondgloss import BeyondGlossConfig

__all__ = [
    "TEXT_LORA_ADAPTER",
    "TEXT_LORA_TARGETS",
    "add_lora_to_mbart",
    "is_text_lora",
    "reset_text_lora",
    "set_text_trainable",
    "text_lora_config",
    "text_lora_key_mapping",
]


TEXT_LORA_TARGETS = ("q_proj", "v_proj")
TEXT_LORA_ADAPTER = "default"


def is_text_lora(module: nn.Module) -> bool:
    """Whether `module` is a PEFT LoRA layer (told by its attributes, so that this file imports peft only where LoRA
    is used)."""
    return isinstance(getattr(module, "lora_A", None), nn.ModuleDict) and hasattr(module, "base_layer")


def text_lora_config(config: BeyondGlossConfig):
    """The PEFT `LoraConfig` of the mBART q_proj/v_proj LoRA a config asks for (`text_lora_rank`, `_alpha`,
    `_dropout`)."""
    from peft import LoraConfig  # lazily: only LoRA models need peft

    return LoraConfig(r=config.text_lora_rank, lora_alpha=config.text_lora_alpha,
                      lora_dropout=config.text_lora_dropout, target_modules=list(TEXT_LORA_TARGETS))


def add_lora_to_mbart(module: nn.Module, config: BeyondGlossConfig) -> None:
    """Puts PEFT's LoRA (adapter `"default"`) on every q_proj and v_proj of `module` (an mBART encoder or
    encoder-decoder) when `config.text_tuning == "lora"`. The layers are peft's own (`base_layer`,
    `lora_A.default`, `lora_B.default`), so peft's and transformers' adapter functions find them."""
    if config.text_tuning != "lora":
        return
    from peft import inject_adapter_in_model

    # peft's layers draw other random numbers than beyondgloss's earlier LoRA layer did (an nn.Linear of the
    # projection's shape, then A): they are made apart from the global generator, and the earlier layer's draws
    # replayed, so that a seeded model keeps the weights it had (seeded tests and results keep their values).
    with torch.random.fork_rng(devices=[]):
        inject_adapter_in_model(text_lora_config(config), module, adapter_name=TEXT_LORA_ADAPTER)
    for sub in module.modules():
        if is_text_lora(sub):
            base = sub.base_layer
            nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device=base.weight.device,
                      dtype=base.weight.dtype)
            for name in sub.lora_A:
                init.kaiming_uniform_(sub.lora_A[name].weight, a=math.sqrt(5))
                init.zeros_(sub.lora_B[name].weight)
    # inject_adapter_in_model leaves its config on the module; the BeyondGloss config is the only source of truth.
    if "peft_config" in vars(module):
        del module.peft_config


def reset_text_lora(module: nn.Module) -> None:
    """PEFT's default LoRA init (A Kaiming-uniform, B zero) on every LoRA layer in `module`; through transformers'
    init functions, which leave tensors loaded from a checkpoint untouched."""
    for sub in module.modules():
        if is_text_lora(sub):
            for name in sub.lora_A:
                init.kaiming_uniform_(sub.lora_A[name].weight, a=math.sqrt(5))
                init.zeros_(sub.lora_B[name].weight)


def text_lora_key_mapping(text_tuning: str, scope: str) -> dict[str, str]:
    """`key_mapping` for `from_pretrained`: the state-dict names of beyondgloss's earlier hand-written LoRA layer
    (`...q_proj.weight`, `...q_proj.lora_A`) and of plain mBART q/v projections (a pre-training checkpoint's idle
    decoder) to PEFT's (`...q_proj.base_layer.weight`, `...q_proj.lora_A.default.weight`), for the modules under
    `scope` (a regex prefix) that carry LoRA. Empty unless `text_tuning == "lora"`."""
    if text_tuning != "lora":
        return {}
    # transformers' renaming substitutes one group, \1, so each suffix has its own entry.
    projection = rf"^({scope}.*\.(?:q_proj|v_proj))"
    return {
        projection + r"\.weight$": r"\1.base_layer.weight",
        projection + r"\.bias$": r"\1.base_layer.bias",
        projection + r"\.lora_A$": rf"\1.lora_A.{TEXT_LORA_ADAPTER}.weight",
        projection + r"\.lora_B$": rf"\1.lora_B.{TEXT_LORA_ADAPTER}.weight",
    }


def set_text_trainable(module: nn.Module, text_tuning: str) -> None:
    """`"full"`: every weight of `module` trains; otherwise it is frozen except its LoRA matrices (if any)."""
    module.requires_grad_(text_tuning == "full")
    for sub in module.modules():
        if is_text_lora(sub):
            sub.lora_A.requires_grad_(True)
            sub.lora_B.requires_grad_(True)

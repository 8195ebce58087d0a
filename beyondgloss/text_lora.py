# Copyright 2026 The beyondgloss authors. MIT license.
"""The mBART LoRA (PEFT's layers on every q_proj/v_proj), its checkpoint names, and adapters: what fine-tuning changed,
saved and loaded in PEFT's file layout. Shipped in checkpoints; imports peft only where a model uses LoRA.
"""

import math
import os
import re
from pathlib import Path

import torch
from torch import nn
from transformers import initialization as init

from .configuration_beyondgloss import BeyondGlossConfig

__all__ = [
    "ADAPTER_WEIGHTS_NAME",
    "TEXT_LORA_ADAPTER",
    "TEXT_LORA_TARGETS",
    "adapter_base",
    "adapter_state_dict",
    "add_lora_to_mbart",
    "is_text_lora",
    "load_adapter",
    "reset_text_lora",
    "save_adapter",
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


ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."  # how PEFT names a model's tensors in adapter files
_LORA_ADAPTER_NAME = re.compile(rf"\.(lora_[AB])\.{TEXT_LORA_ADAPTER}\.weight$")  # PEFT's files drop the adapter name
_LORA_WEIGHT = re.compile(r"\.(lora_[AB])\.weight$")


def adapter_base(path, **hub) -> str | None:
    """The base checkpoint named by `path` when it is an adapter (a folder without a config.json of its own, or a
    hub repo, holding an adapter_config.json), else None; as transformers decides it in `from_pretrained`."""
    import json

    from transformers.utils import find_adapter_config_file

    if os.path.isfile(os.path.join(str(path), "config.json")):
        return None
    try:
        found = find_adapter_config_file(str(path), **hub)
    except (OSError, ValueError):
        return None
    if found is None:
        return None
    with open(found, encoding="utf-8") as file:
        return json.load(file).get("base_model_name_or_path")


def set_text_trainable(module: nn.Module, text_tuning: str) -> None:
    """`"full"`: every weight of `module` trains; otherwise it is frozen except its LoRA matrices (if any)."""
    module.requires_grad_(text_tuning == "full")
    for sub in module.modules():
        if is_text_lora(sub):
            sub.lora_A.requires_grad_(True)
            sub.lora_B.requires_grad_(True)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What fine-tuning changes: every trainable parameter (the mBART LoRA, the DINOv2 LoRA, the temporal encoder
    and heads) and the buffers of the modules holding them (BatchNorm statistics), keyed as in `state_dict()`."""
    if model.config.text_tuning == "full" or model.config.vision_tuning == "full":
        raise ValueError(
            f"text_tuning={model.config.text_tuning!r}, vision_tuning={model.config.vision_tuning!r}: a whole "
            "backbone trains, so an adapter would hold it all; save the model with save_pretrained instead."
        )
    state = {}
    for module_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        trainable = {name: p for name, p in own.items() if p.requires_grad}
        if not trainable:
            continue
        prefix = f"{module_name}." if module_name else ""
        state.update({prefix + name: p.detach() for name, p in trainable.items()})
        state.update({prefix + name: b.detach() for name, b in module.named_buffers(recurse=False)})
    return state

def save_adapter(model: nn.Module, save_directory: str | os.PathLike,
                 base_model_name_or_path: str | None = None) -> Path:
    r"""
    Saves what fine-tuning changed ([`adapter_state_dict`]) as an adapter of the checkpoint it started from:
    `adapter_config.json` (PEFT's LoRA config of the mBART q/v LoRA, `base_model_name_or_path`, the other
    trained modules as `modules_to_save`) and `adapter_model.safetensors` (PEFT's key names,
    `base_model.model.<name>`, LoRA without the adapter name). About 70 MB for the full-size translation model,
    against gigabytes for the whole model.

    `BeyondGlossForSignTranslation.from_pretrained(<adapter folder>)` loads the base checkpoint and then the
    adapter; so does `model.load_adapter(<adapter folder>)` on a loaded base model. The adapter holds no config:
    fine-tuning must not change the architecture (sizes, text_tuning) of the base checkpoint.

    Args:
        save_directory: the folder to write (created if needed).
        base_model_name_or_path: the hub id or folder of the base checkpoint; default: where this model was
            loaded from.
    """
    from peft import LoraConfig  # noqa: F401 (a clear ImportError here when peft is missing)
    from safetensors.torch import save_file

    base = base_model_name_or_path or getattr(model.config, "_name_or_path", None)
    if not base:
        raise ValueError("This model was not loaded from a checkpoint: pass base_model_name_or_path, the hub id or "
                         "folder of the checkpoint it was fine-tuned from.")
    state = adapter_state_dict(model)
    lora = sorted({name.rsplit(".lora_", 1)[0] for name in state if ".lora_A." in name})
    # PEFT's modules_to_save: the outermost modules (outside LoRA layers) that train whole.
    modules_to_save = []
    for name, module in model.named_modules():
        parameters = list(module.parameters())
        if (name and parameters and all(p.requires_grad for p in parameters) and ".lora_" not in name
                and not any(name.startswith(kept + ".") for kept in modules_to_save)):
            modules_to_save.append(name)
    if model.config.text_tuning == "lora":
        peft_config = text_lora_config(model.config)
        # Exactly the LoRA layers this model has (peft matches a string target_modules as a full regex).
        peft_config.target_modules = "|".join(re.escape(name) for name in lora)
    else:
        from peft import LoraConfig

        peft_config = LoraConfig(target_modules=[])
    peft_config.modules_to_save = modules_to_save
    peft_config.base_model_name_or_path = str(base)
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    peft_config.save_pretrained(str(save_directory))
    tensors = {_PEFT_PREFIX + _LORA_ADAPTER_NAME.sub(r".\1.weight", name): tensor.contiguous()
               for name, tensor in state.items()}
    save_file(tensors, str(save_directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    return save_directory

def load_adapter(model: nn.Module, peft_model_id: str | os.PathLike, adapter_name: str | None = None,
                 load_config=None, adapter_kwargs: dict | None = None, **kwargs) -> None:
    r"""
    Loads an adapter written by [`save_adapter`] (a folder or a hub repo) into this model, which must have the
    architecture of its base checkpoint. Called by `from_pretrained(<adapter folder>)` after it loaded the
    base checkpoint named in `adapter_config.json`.

    BeyondGloss models carry their mBART LoRA as part of the architecture (one adapter, `"default"`); loading
    several named adapters, `add_adapter`, `set_adapter` and `PeftModel`/`get_peft_model` are not supported: most
    of what fine-tuning trains (the temporal encoder, heads and DINOv2 LoRA) is not LoRA.
    """
    from safetensors.torch import load_file
    from transformers.utils import cached_file

    if adapter_name not in (None, TEXT_LORA_ADAPTER):
        raise ValueError(f"adapter_name={adapter_name!r}: BeyondGloss models hold one adapter, "
                         f"{TEXT_LORA_ADAPTER!r}; leave adapter_name unset.")
    download = dict(getattr(load_config, "download_kwargs", None) or {})
    download.update({k: v for k, v in (adapter_kwargs or {}).items() if k in ("token", "revision", "cache_dir")})
    download.update({k: v for k, v in kwargs.items() if k in ("token", "revision", "cache_dir")})
    path = cached_file(str(peft_model_id), ADAPTER_WEIGHTS_NAME, **download)
    loaded = load_file(path)
    model.set_trainable()  # from_pretrained calls this before it restores requires_grad
    expected = adapter_state_dict(model)
    state = {}
    for key, tensor in loaded.items():
        if not key.startswith(_PEFT_PREFIX):
            raise ValueError(f"{path}: key {key!r} does not start with {_PEFT_PREFIX!r}; not an adapter written "
                             "by save_adapter.")
        name = _LORA_WEIGHT.sub(rf".\1.{TEXT_LORA_ADAPTER}.weight", key[len(_PEFT_PREFIX):])
        if name not in expected or expected[name].shape != tensor.shape:
            found = "no such tensor" if name not in expected else f"shape {tuple(expected[name].shape)}"
            raise ValueError(
                f"{path}: {name!r} {tuple(tensor.shape)} does not fit this model ({found}); load the adapter into "
                "the base checkpoint named in its adapter_config.json."
            )
        state[name] = tensor
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{path}: the adapter lacks {missing[:5]} ({len(missing)} tensors) that this model trains;"
                         " it was saved from a model of another configuration.")
    with torch.no_grad():
        current = model.state_dict()
        for name, tensor in state.items():
            current[name].copy_(tensor)

# Copyright 2026 The beyondgloss authors. MIT license.
"""Adapters: what fine-tuning changed, saved in PEFT's layout so that `PeftModel.from_pretrained(base, folder)`,
`model.load_adapter(folder, adapter_name=...)` and `from_pretrained(folder)` load it, with what makes the folder
self-sufficient (the processor, the config's changes, the generation settings). Shipped in checkpoints.

What PEFT is told: the mBART q/v LoRA is PEFT's LoRA (`target_modules`, the exact layer names); every other trained
module (the temporal encoder, the heads, the frame BatchNorm with its statistics, and the DINOv2 LoRA, whose one A
shared by q, k and v PEFT cannot express) is a `modules_to_save` entry: the outermost modules that train whole and
that PEFT can wrap (not a ModuleDict or ModuleList), so each DINOv2 block's `BeyondGlossVisionLoRA`
(`sign_encoder.frame_encoder.lora.<i>`) is saved whole, as PEFT saves a classifier head.
"""

import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from .text_lora import TEXT_LORA_ADAPTER, is_text_lora, text_lora_config

__all__ = ["ADAPTER_CONFIG_NAME", "ADAPTER_WEIGHTS_NAME", "adapter_base", "adapter_config_diff", "apply_adapter_settings",
           "adapter_modules_to_save", "adapter_state_dict", "enable_modules_to_save", "load_adapter",
           "refuse_text_inputs", "register_builtin_adapter", "save_adapter",
           "set_adapter"]

ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
# The config's changes against the base checkpoint's (not `config.json`: transformers would take the folder for a whole
# checkpoint and not look for its base).
ADAPTER_CONFIG_NAME = "adapter_beyondgloss_config.json"
_PEFT_PREFIX = "base_model.model."  # how PEFT names a model's tensors in adapter files
_LORA_ADAPTER_NAME = re.compile(rf"\.(lora_[AB])\.{TEXT_LORA_ADAPTER}\.weight$")  # PEFT's files drop the adapter name
_LORA_WEIGHT = re.compile(r"\.(lora_[AB])\.weight$")
# Config entries that say where and by what a config was written, not what the model does.
_CONFIG_BOOKKEEPING = {"_name_or_path", "transformers_version", "architectures", "auto_map", "custom_pipelines",
                       "dtype", "torch_dtype", "_commit_hash", "_attn_implementation_autoset", "model_type"}
_HUB_KWARGS = ("token", "revision", "cache_dir", "force_download", "proxies", "local_files_only", "subfolder")


def adapter_base(path, **hub) -> str | None:
    """The base checkpoint named by `path` when it is an adapter (a folder without a config.json of its own, or a
    hub repo, holding an adapter_config.json), else None; as transformers decides it in `from_pretrained`."""
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


def adapter_modules_to_save(model: nn.Module) -> list[str]:
    """PEFT's `modules_to_save` for `model`: the outermost modules outside the LoRA layers whose parameters all train,
    descending into containers (ModuleDict, ModuleList), which PEFT cannot wrap. A trained parameter of a module that
    also holds frozen ones (the pre-training model's temperatures) is in no entry: PEFT leaves it at the base's value
    (beyondgloss's own `load_adapter` loads it)."""
    containers = (nn.ModuleDict, nn.ModuleList, nn.ParameterDict, nn.ParameterList)
    names = []
    for name, module in model.named_modules():
        parameters = list(module.parameters())
        if (name and parameters and all(p.requires_grad for p in parameters) and not isinstance(module, containers)
                and ".lora_" not in name and not is_text_lora(module)
                and not any(name.startswith(kept + ".") for kept in names)):
            names.append(name)
    return names


def _peft_config(model: nn.Module, state: dict, base: str):
    """The `LoraConfig` of `model`'s adapter: exactly its LoRA layers (a string `target_modules` is matched as a full
    regex) and its other trained modules."""
    from peft import LoraConfig

    if model.config.text_tuning == "lora":
        peft_config = text_lora_config(model.config)
        lora = sorted({name.rsplit(".lora_", 1)[0] for name in state if ".lora_A." in name})
        peft_config.target_modules = "|".join(re.escape(name) for name in lora)
    else:
        peft_config = LoraConfig(target_modules=[])
    peft_config.modules_to_save = adapter_modules_to_save(model)
    peft_config.base_model_name_or_path = str(base)
    if model.can_generate():  # PeftModelForSeq2SeqLM, and AutoPeftModelForSeq2SeqLM finds the base's class
        peft_config.task_type = "SEQ_2_SEQ_LM"
    return peft_config


def _differences(current: dict, base: dict) -> dict:
    """The entries of `current` that `base` lacks or holds with another value (sub-dicts compared entry by entry)."""
    changed = {}
    for key, value in current.items():
        if key in _CONFIG_BOOKKEEPING:
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            inner = _differences(value, base[key])
            if inner:
                changed[key] = inner
        elif key not in base or base[key] != value:
            changed[key] = value
    return changed


def adapter_config_diff(model: nn.Module, base: str) -> dict:
    """The config entries of `model` that differ from the base checkpoint's config (a config change made during
    fine-tuning: label_smoothing, num_beams, max_new_tokens, ...). Where the base's config cannot be read here (a hub
    id offline), the whole config, less its bookkeeping: loading applies only what differs from the loaded base."""
    try:
        base_config = type(model.config).from_pretrained(base).to_dict()
    except (OSError, ValueError):
        base_config = {}
    return _differences(model.config.to_dict(), base_config)


def save_adapter(model: nn.Module, save_directory: str | os.PathLike, base_model_name_or_path: str | None = None,
                 processor=None) -> Path:
    r"""
    Saves what fine-tuning changed ([`adapter_state_dict`]) as a PEFT LoRA adapter of the checkpoint it started from,
    in a folder that loads alone:

    - `adapter_config.json`: PEFT's `LoraConfig` (the mBART q/v LoRA layers as `target_modules`, the other trained
      modules as `modules_to_save`, see [`adapter_modules_to_save`]) and `base_model_name_or_path`;
    - `adapter_model.safetensors`: PEFT's names (`base_model.model.<name>`, LoRA without the adapter name);
    - `adapter_beyondgloss_config.json`: the config's changes against the base's (see [`adapter_config_diff`]) and,
      for a translation model, `generation_config.json`;
    - the processor's files (`processor`, else the model's `processor` attribute, if any).

    About 70 MB for the full-size translation model, against gigabytes for the whole model. It loads with
    `PeftModel.from_pretrained(base, folder)`, `base.load_adapter(folder, adapter_name=...)`, any Auto class's or
    `pipeline`'s `from_pretrained(folder)` (base found through `base_model_name_or_path`).

    Args:
        save_directory: the folder to write (created if needed).
        base_model_name_or_path: the hub id or folder of the base checkpoint; default: where this model was
            loaded from.
        processor: the processor to save beside the adapter.
    """
    from safetensors.torch import save_file

    base = base_model_name_or_path or getattr(model.config, "_name_or_path", None)
    if not base:
        raise ValueError("This model was not loaded from a checkpoint: pass base_model_name_or_path, the hub id or "
                         "folder of the checkpoint it was fine-tuned from.")
    state = adapter_state_dict(model)
    peft_config = _peft_config(model, state, base)
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    peft_config.save_pretrained(str(save_directory))
    tensors = {_PEFT_PREFIX + _LORA_ADAPTER_NAME.sub(r".\1.weight", name): tensor.contiguous()
               for name, tensor in state.items()}
    save_file(tensors, str(save_directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    with open(save_directory / ADAPTER_CONFIG_NAME, "w", encoding="utf-8") as file:
        json.dump(adapter_config_diff(model, str(base)), file, indent=2, sort_keys=True)
    if model.can_generate() and getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(save_directory))
    processor = processor if processor is not None else getattr(model, "processor", None)
    if processor is not None:
        processor.save_pretrained(str(save_directory))
    return save_directory


def _read_adapter_tensors(model: nn.Module, path: str) -> dict[str, torch.Tensor]:
    """The adapter file's tensors under `model`'s state-dict names, checked against what `model` trains; tensors of
    parts this model does not have (`_keys_to_ignore_on_load_unexpected`: the encoder model from a translation
    adapter) are left out."""
    from safetensors.torch import load_file

    ignored = [re.compile(pattern) for pattern in getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []]
    expected = adapter_state_dict(model)
    state = {}
    for key, tensor in load_file(path).items():
        if not key.startswith(_PEFT_PREFIX):
            raise ValueError(f"{path}: key {key!r} does not start with {_PEFT_PREFIX!r}; not an adapter written "
                             "by save_adapter.")
        name = _LORA_WEIGHT.sub(rf".\1.{TEXT_LORA_ADAPTER}.weight", key[len(_PEFT_PREFIX):])
        if name not in expected and any(pattern.search(name) for pattern in ignored):
            continue
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
    return state


def _apply_config(config, changes: dict) -> None:
    """Sets the entries of `changes` on `config` (sub-configs entry by entry)."""
    for key, value in changes.items():
        current = getattr(config, key, None)
        if isinstance(value, dict) and hasattr(current, "to_dict"):
            _apply_config(current, value)
        elif current != value:
            setattr(config, key, value)


def apply_adapter_settings(model: nn.Module, peft_model_id, **download) -> None:
    """The adapter folder's config changes and generation settings, when it has them (adapters written before they
    were saved have none)."""
    from transformers import GenerationConfig
    from transformers.utils import cached_file

    def optional(name):
        return cached_file(str(peft_model_id), name, _raise_exceptions_for_missing_entries=False, **download)

    changes = optional(ADAPTER_CONFIG_NAME)
    if changes:
        with open(changes, encoding="utf-8") as file:
            _apply_config(model.config, json.load(file))
    if model.can_generate() and optional("generation_config.json"):
        model.generation_config = GenerationConfig.from_pretrained(str(peft_model_id), **download)


def load_adapter(model: nn.Module, peft_model_id: str | os.PathLike, load_config=None,
                 adapter_kwargs: dict | None = None, **kwargs):
    r"""
    Loads an adapter written by [`save_adapter`] (a folder or a hub repo) into `model`'s own trained weights (its
    built-in mBART LoRA, adapter `"default"`, and trained modules), then its config changes and generation settings.
    `model` must have the architecture of its base checkpoint. `from_pretrained(<adapter folder>)` calls it after
    loading the base checkpoint named in `adapter_config.json`. Returns transformers' `LoadStateDictInfo`, as its
    `load_adapter` does (what `from_pretrained(..., output_loading_info=True)` reports): every key empty, since an
    adapter that lacks a tensor or holds one that does not fit is refused.
    """
    from transformers.utils import cached_file
    from transformers.utils.loading_report import LoadStateDictInfo

    download = dict(getattr(load_config, "download_kwargs", None) or {})
    download.update({k: v for k, v in (adapter_kwargs or {}).items() if k in _HUB_KWARGS})
    download.update({k: v for k, v in kwargs.items() if k in _HUB_KWARGS})
    path = cached_file(str(peft_model_id), ADAPTER_WEIGHTS_NAME, **download)
    model.set_trainable()  # from_pretrained calls this before it restores requires_grad
    state = _read_adapter_tensors(model, path)
    with torch.no_grad():
        current = model.state_dict()
        for name, tensor in state.items():
            current[name].copy_(tensor)
    apply_adapter_settings(model, peft_model_id, **download)
    return LoadStateDictInfo(missing_keys=set(), unexpected_keys=set(), mismatched_keys=set(), error_msgs=[],
                             conversion_errors={}, skipped_pp_keys=set())


def refuse_text_inputs(**inputs) -> None:
    """The translation model's encoder reads the video: text inputs, which peft's `PeftModelForSeq2SeqLM` passes to
    `forward` (as None), must be None."""
    given = sorted(name for name, value in inputs.items() if value is not None)
    if given:
        raise ValueError(f"{given}: BeyondGlossForSignTranslation encodes videos (pixel_values_videos, "
                         "video_attention_mask), not text; leave these unset (labels or decoder_input_ids give the "
                         "target side).")


def enable_modules_to_save(model: nn.Module) -> None:
    """Re-enables PEFT's `ModulesToSaveWrapper`s in `model` (transformers' `enable_adapters` leaves them disabled)."""
    from peft.utils import ModulesToSaveWrapper

    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper):
            module.enable_adapters(True)


def register_builtin_adapter(model: nn.Module) -> None:
    """Before a named PEFT adapter joins `model` (transformers' `load_adapter`/`add_adapter`): its built-in mBART LoRA
    becomes transformers' adapter `"default"`, so that `set_adapter("default")` returns to the base checkpoint (its
    built-in LoRA, its own trained modules) and `add_adapter` without a name is refused instead of replacing it."""
    if getattr(model, "_hf_peft_config_loaded", False) or model.config.text_tuning != "lora":
        return
    builtin = text_lora_config(model.config)
    layers = sorted(name for name, module in model.named_modules() if is_text_lora(module))
    builtin.target_modules = "|".join(re.escape(name) for name in layers)
    builtin.base_model_name_or_path = getattr(model, "name_or_path", None)
    model.peft_config = {TEXT_LORA_ADAPTER: builtin}
    model._hf_peft_config_loaded = True


def set_adapter(model: nn.Module, adapter_name: str | list[str]) -> None:
    """transformers' `set_adapter`, where a trained module that an adapter does not wrap (the built-in `"default"`:
    none) runs its own, base, module instead of failing."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import ModulesToSaveWrapper

    names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
    loaded = list(getattr(model, "peft_config", None) or {}) if getattr(model, "_hf_peft_config_loaded", False) else []
    unknown = sorted(set(names) - set(loaded))
    if unknown or not names:
        raise ValueError(f"Adapter(s) {unknown or names} not found: the loaded adapters are {loaded} (load one with "
                         "load_adapter(folder, adapter_name=...) or add_adapter(config, adapter_name)).")
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(adapter_name)
        elif isinstance(module, ModulesToSaveWrapper):
            module.set_adapter([name for name in names if name in module.modules_to_save])

# Copyright 2026 The beyondgloss authors. MIT license.
"""What the BeyondGloss models share (`BeyondGlossPreTrainedModel`): their weight initialisation, and the entry points
of checkpoints (`checkpointing.py`), adapters (`adapters_beyondgloss.py`), reduced-precision inference
(`inference_precision.py`) and the frozen-feature cache (`frame_encoder.py`), each of which is a function of its own
file.

Shipped in checkpoints beside `modeling_beyondgloss.py` (imports only torch, transformers and siblings).
"""

import inspect
import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .checkpointing import finish_loading, from_backbones, initialize_missing, loading_kwargs, save_checkpoint
from .configuration_beyondgloss import BeyondGlossConfig
from .dinov2_fast_path import BeyondGlossVisionLoRA
from .inference_precision import InferencePrecision, choose_inference_precision
from .temporal_encoder import BeyondGlossTemporalEncoder
from .adapters_beyondgloss import (adapter_modules_to_save, adapter_state_dict, enable_modules_to_save, load_adapter,
                                   register_builtin_adapter, save_adapter, set_adapter)
from .text_lora import TEXT_LORA_ADAPTER, is_text_lora, reset_text_lora

__all__ = ["BeyondGlossPreTrainedModel"]


class BeyondGlossPreTrainedModel(PreTrainedModel):
    config: BeyondGlossConfig
    config_class = BeyondGlossConfig
    base_model_prefix = "sign_encoder"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    # forward takes **kwargs but returns per-batch mean losses: Trainer must scale for gradient accumulation itself.
    accepts_loss_kwargs = False
    _supports_sdpa = True
    _no_split_modules = ["BeyondGlossTemporalBlock", "Dinov2Layer", "MBartEncoderLayer", "MBartDecoderLayer"]
    # A regex of the state-dict prefix under which the mBART q/v projections carry LoRA (None: no text LoRA).
    _text_lora_scope = None
    _decodes_text = False  # set_inference_precision's guard and "auto" also check and time the decoder

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, BeyondGlossTemporalEncoder):
            # The reference's Transformer._init_weights: every Linear N(0, 0.02), bias 0; LayerNorm (1, 0); the
            # attention output projections (weight and bias) redrawn from N(0, 0.02 / sqrt(2 * depth)).
            depth = len(module.blocks)
            for name, sub in module.named_modules():
                if isinstance(sub, nn.Linear):
                    init.normal_(sub.weight, std=std)
                    init.zeros_(sub.bias)
                elif isinstance(sub, nn.LayerNorm):
                    init.ones_(sub.weight)
                    init.zeros_(sub.bias)
            for block in module.blocks:
                init.normal_(block.attention.out_proj.weight, std=std / math.sqrt(2 * depth))
                init.normal_(block.attention.out_proj.bias, std=std / math.sqrt(2 * depth))
                init.constant_(block.layer_scale, self.config.layer_scale_init)
        elif isinstance(module, BeyondGlossVisionLoRA):
            for name in ("qkv_A", "out_A", "fc1_A", "fc2_A"):
                init.normal_(getattr(module, name), std=0.02)
            for name in ("q_B", "k_B", "v_B", "out_B", "fc1_B", "fc2_B"):
                init.zeros_(getattr(module, name))
        elif isinstance(module, nn.Linear):
            # The heads keep PyTorch's default init, as in the reference.
            if not getattr(module.weight, "_is_hf_initialized", False):
                module.reset_parameters()
        elif isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
            super()._init_weights(module)

    def initialize_weights(self):
        # LoRA inside the mBART sub-models is visited by mBART's own init, which does not know it (it would draw
        # N(0, 0.02) for A and B): it is kept away from it, then given LoRA's init. The init functions leave tensors
        # loaded from a checkpoint untouched.
        lora = [layer.weight for module in self.modules() if is_text_lora(module)
                for layers in (module.lora_A, module.lora_B) for layer in layers.values()]
        fresh = [weight for weight in lora if not getattr(weight, "_is_hf_initialized", False)]
        for weight in fresh:
            weight._is_hf_initialized = True
        try:
            super().initialize_weights()
        finally:
            for weight in fresh:
                weight._is_hf_initialized = False
        with torch.no_grad():
            # beyondgloss's earlier LoRA layer was a module new to this pass, so mBART's init drew its q/v weight
            # again; so here, in the same order, that seeded models keep their weights (loaded tensors are skipped).
            mbart = self._modules.get("mbart")
            if mbart is not None:
                for module in mbart.modules():
                    if is_text_lora(module):
                        mbart._init_weights(module.base_layer)
            reset_text_lora(self)

    def _refuse_unknown_inputs(self, kwargs: dict) -> None:
        """A misspelt or foreign input would otherwise vanish into `**kwargs`: it is refused, with its name and the
        inputs `forward` takes."""
        if kwargs:
            accepted = [name for name in inspect.signature(self.forward).parameters if name != "kwargs"]
            raise TypeError(f"{type(self).__name__}.forward() got unknown inputs {sorted(kwargs)}; it takes "
                            f"{', '.join(accepted)}.")

    def _extra_outputs(self, output_hidden_states: bool | None, output_attentions: bool | None) -> tuple[bool, bool]:
        """Whether to return hidden states and attentions: as asked, else as the config says (transformers' rule)."""
        return (self.config.output_hidden_states if output_hidden_states is None else output_hidden_states,
                self.config.output_attentions if output_attentions is None else output_attentions)

    def _return_dict(self, return_dict: bool | None) -> bool:
        return self.config.return_dict if return_dict is None else return_dict

    def set_trainable(self) -> None:
        """Sets `requires_grad` to what the method trains (frozen backbones, trainable LoRA and heads)."""
        self.sign_encoder.set_trainable()

    @torch.no_grad()
    def _initialize_now(self, part: nn.Module) -> None:
        """Initializes `part` at once, as `post_init` would (transformers' `smart_apply`: children first, sub-models by
        their own init). The sign encoder is initialized as soon as it is built, before mBART is, so that a seeded model
        draws the weights it drew when the sign encoder was a model of its own (beyondgloss < 0.3)."""
        for child in part.children():
            if isinstance(child, PreTrainedModel):
                child.initialize_weights()
            else:
                self._initialize_now(child)
        self._initialize_weights(part, self.is_custom_code())

    # ---- checkpoints ------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        kwargs = loading_kwargs(cls, pretrained_model_name_or_path, kwargs)
        asked = kwargs.get("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, **{**kwargs,
                                                                                      "output_loading_info": True})
        initialize_missing(model, info["missing_keys"])
        finish_loading(model)
        return (model, info) if asked else model

    def save_pretrained(self, save_directory, *args, **kwargs):
        return save_checkpoint(self, super().save_pretrained, save_directory, *args, **kwargs)

    @classmethod
    def from_backbones(cls, vision: str, text: str, config_kwargs: dict | None = None, **load_kwargs):
        r"""
        Builds the model from a DINOv2 checkpoint and an mBART checkpoint (any local directory or hub id);
        everything BeyondGloss adds starts from its own initialisation.

        ```python
        >>> model = BeyondGlossForContrastivePretraining.from_backbones(
        ...     vision="facebook/dinov2-small", text="facebook/mbart-large-cc25")  # doctest: +SKIP
        ```
        """
        return from_backbones(cls, vision, text, config_kwargs, **load_kwargs)

    # ---- adapters (the functions of adapters_beyondgloss.py) --------------------------------------------------------

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What fine-tuning changes (see [`~adapters_beyondgloss.adapter_state_dict`])."""
        return adapter_state_dict(self)

    def adapter_modules_to_save(self) -> list[str]:
        """The trained modules other than LoRA, as PEFT's `modules_to_save` names them: pass them to
        `LoraConfig(modules_to_save=...)` for `get_peft_model` to train and save them too (see
        [`~adapters_beyondgloss.adapter_modules_to_save`])."""
        return adapter_modules_to_save(self)

    def save_adapter(self, save_directory, base_model_name_or_path: str | None = None, processor=None):
        """Saves what fine-tuning changed as a PEFT adapter of the checkpoint it started from, with the processor and
        the config's changes (see [`~adapters_beyondgloss.save_adapter`])."""
        return save_adapter(self, save_directory, base_model_name_or_path, processor)

    def load_adapter(self, peft_model_id=None, adapter_name: str | None = None, load_config=None,
                     adapter_kwargs: dict | None = None, **kwargs):
        """Loads an adapter written by [`save_adapter`]. Without `adapter_name` (or with `"default"`) while no named
        adapter is loaded, into the model's own weights (see [`~adapters_beyondgloss.load_adapter`]; what
        `from_pretrained(<adapter folder>)` does). With another name, as transformers loads a PEFT adapter: beside the
        built-in one (adapter `"default"`, the base checkpoint), switched with `set_adapter(name)`; `disable_adapters()`
        switches every LoRA off, the built-in one too."""
        if adapter_name in (None, TEXT_LORA_ADAPTER) and not getattr(self, "_hf_peft_config_loaded", False):
            return load_adapter(self, peft_model_id, load_config, adapter_kwargs, **kwargs)
        register_builtin_adapter(self)
        return super().load_adapter(peft_model_id, adapter_name=adapter_name, load_config=load_config,
                                    adapter_kwargs=adapter_kwargs, **kwargs)

    def add_adapter(self, adapter_config, adapter_name: str | None = None) -> None:
        """transformers' `add_adapter` (a fresh PEFT adapter, made active), beside the built-in mBART LoRA, which is
        adapter `"default"`: a name is needed, and `set_adapter("default")` returns to the built-in one."""
        register_builtin_adapter(self)
        super().add_adapter(adapter_config, adapter_name)

    def set_adapter(self, adapter_name: str | list[str]) -> None:
        """transformers' `set_adapter`; `"default"` is the built-in mBART LoRA with the base's own trained modules."""
        set_adapter(self, adapter_name)

    def enable_adapters(self) -> None:
        """transformers' `enable_adapters`, which re-enables LoRA layers only, and the trained modules PEFT wraps
        (`ModulesToSaveWrapper`), which its `disable_adapters` disabled."""
        super().enable_adapters()
        enable_modules_to_save(self)

    # ---- inference (inference_precision.py, frame_encoder.py) ---------------------------------------------------

    @property
    def _precision(self) -> InferencePrecision:
        return getattr(self, "_inference_precision", None) or InferencePrecision()

    @property
    def inference_precision(self) -> str:
        """"fp32", "bf16" or "int8": what [`set_inference_precision`] put in effect."""
        return self._precision.name

    @property
    def inference_precision_report(self) -> dict | None:
        """What [`set_inference_precision`] measured and why it chose its precision."""
        return self._precision.report

    def set_inference_precision(self, precision: str = "auto", probe: tuple | None = None) -> str:
        r"""
        Chooses the precision of inference (`generate`, and `forward` without gradients) and returns the one in effect.

        - `"fp32"`: float32 throughout (the default).
        - `"bf16"`: bfloat16 GEMMs and attention in the frame encoder and in mBART. The mBART weights are converted to
          bfloat16 in place, which halves what each decoding step reads; a later `set_inference_precision("fp32")`
          computes in float32 again with those rounded weights (reload the model for the original ones). It needs a
          float32 model ("auto" keeps other types out of bf16).
        - `"int8"` (CPU): int8 GEMMs in mBART's Linear layers, weights quantized per output channel and inputs per
          call (the float weights are kept, so "fp32" is exact again), and the frame encoder in bfloat16 where this
          machine's bfloat16 GEMMs are at least 1.2x faster than float32 ones, else float32.
        - `"auto"`: measured on this machine. The frame encoder in bfloat16 where its GEMMs are at least 1.2x faster
          (about 0.1 s to measure for ViT-S). mBART, for a translation model: int8 where a decoding step is at least
          1.2x faster in int8 than in float32 (quantizing and timing take a few seconds for mBART-large), else as the
          frame encoder. Each candidate must pass the quality guard, else the next one is tried, down to "fp32".

        The quality guard runs `probe` (a `(pixel_values_videos, video_attention_mask)` pair; by default a fixed
        synthetic video) through the sign encoder, the mBART encoder and, for a translation model, a teacher-forced
        mBART decoder, in float32 and in the chosen precision: every real step must keep a cosine of at least 0.999
        to the float32 output. A warning says when it fails for a precision that was asked for by name.
        `model.inference_precision_report` holds what was measured and why the precision was chosen.

        With gradients enabled the frame encoder and int8 layers compute in the model's own type whatever the
        precision; bf16 mBART weights stay bf16 until `set_inference_precision("fp32")`, so train a model that was
        never switched to "bf16" (or a freshly loaded one).
        """
        num_beams = (self.generation_config.num_beams or 1) if self._decodes_text else 1
        self._inference_precision = choose_inference_precision(
            self.sign_encoder, self._modules.get("mbart"), precision, probe, self._decodes_text, num_beams)
        return self.inference_precision

    def mbart_precision(self):
        """The context of mBART's inference calls: bfloat16 autocast in "bf16" mode (see [`set_inference_precision`]),
        else none."""
        return self._precision.text_context(self.device.type)

    def enable_frozen_feature_cache(self, max_megabytes: float = 1024.0):
        r"""Caches each video's DINOv2 CLS features while no DINOv2 or LoRA weight trains (`vision_tuning="frozen"`),
        so that later epochs skip the frame encoder for videos seen before. Returns the [`FrozenFeatureCache`]."""
        return self.sign_encoder.frame_encoder.enable_feature_cache(max_megabytes)

    def disable_frozen_feature_cache(self) -> None:
        self.sign_encoder.frame_encoder.disable_feature_cache()

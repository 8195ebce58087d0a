# Copyright 2026 The beyondgloss authors. MIT license.
"""How BeyondGloss models meet checkpoints: loading (old LoRA names, adapters), saving (an `auto_map` naming every
task class, the pipeline file, a default card) and building from pretrained DINOv2 and mBART backbones. Shipped in
checkpoints beside `modeling_beyondgloss.py`."""

import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import Dinov2Model, MBartForConditionalGeneration, PretrainedConfig
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import ConversionOps, WeightConverter
from transformers.utils import logging

from .configuration_beyondgloss import BeyondGlossConfig
from .adapters_beyondgloss import adapter_base
from .text_lora import is_text_lora, text_lora_key_mapping

__all__ = ["FRAME_ENCODER_KEY_MAPPING", "SAVE_HOOKS", "SIGN_TRANSLATION_PIPELINE", "SIGN_TRANSLATION_TASK",
           "TEMPERATURES", "finish_loading", "fit_state_to_parameters", "from_backbones", "load_backbone_weights",
           "loading_kwargs", "pipeline_files_of", "save_checkpoint"]

logger = logging.get_logger(__name__)

SIGN_TRANSLATION_TASK = "sign-translation"
# What `config.json` says about the pipeline (transformers' `custom_pipelines` entry), as Pipeline.save_pretrained
# writes it.
SIGN_TRANSLATION_PIPELINE = {
    "impl": "pipeline_sign_translation.SignTranslationPipeline",
    "pt": ["AutoModelForSeq2SeqLM"],
    "type": "multimodal",
}


# The names of checkpoints written before the frame encoder became a module of its own (beyondgloss < 0.3): DINOv2 and
# its LoRA sat directly in the sign encoder (and in a saved BeyondGlossModel, at the top level).
FRAME_ENCODER_KEY_MAPPING = {
    r"^(?:sign_encoder\.)?vision\.": "sign_encoder.frame_encoder.vision.",
    r"^(?:sign_encoder\.)?vision_lora\.": "sign_encoder.frame_encoder.lora.",
}


# Called with (model, folder) after each save by the main process. beyondgloss registers the default model card here
# (`beyondgloss.model_card`, which is not shipped: a copy of this file loaded with trust_remote_code saves no card).
SAVE_HOOKS: list = []


# The contrastive temperatures: 0-d tensors in earlier checkpoints and the authors', shape (1,) since FSDP2 needed it
# (it shards no 0-d parameter).
TEMPERATURES = ("logit_scale", "logit_scale_description")


class _ToParameterShape(ConversionOps):
    """Reshapes a loaded tensor to the shape of the parameter it loads into when only the shape differs (the same
    elements: a 0-d temperature into a (1,) one); any other difference is left for transformers to report."""

    def convert(self, input_dict, source_patterns, target_patterns, **kwargs):
        (tensors,) = input_dict.values()
        tensor = tensors[0] if isinstance(tensors, list) else tensors
        shape = kwargs["model"].get_parameter(kwargs["full_layer_name"]).shape
        return {target_patterns[0]: tensor.reshape(shape) if tensor.numel() == shape.numel() else tensor}

    @property
    def reverse_op(self):
        return self  # a save writes the parameter's own shape


def fit_state_to_parameters(optimizer) -> None:
    """Optimizer state saved while a parameter had another shape of the same elements takes the parameter's shape, as
    its weights do on load: the contrastive temperatures were 0-d before they became (1,) for FSDP2, and a run resumed
    from such a checkpoint would otherwise fail in its first AdamW step."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if (key != "step" and torch.is_tensor(value) and value.shape != parameter.shape
                        and value.numel() == parameter.numel()):
                    state[key] = value.reshape(parameter.shape)


def loading_kwargs(cls, pretrained_model_name_or_path, kwargs: dict) -> dict:
    """`from_pretrained`'s keyword arguments with the renamings of earlier checkpoints' tensor names (the frame encoder's,
    and for models with an mBART LoRA, its names in beyondgloss < 0.2 and in pre-training checkpoints), and the
    reshaping of their 0-d temperatures (registered for `cls`, by name, as transformers looks conversions up)."""
    if cls.__name__ == "BeyondGlossForContrastivePretraining":
        register_checkpoint_conversion_mapping(cls.__name__, [
            WeightConverter(name, name, operations=[_ToParameterShape()]) for name in TEMPERATURES], overwrite=True)
    if kwargs.get("key_mapping") is None:
        kwargs = kwargs | {"key_mapping": FRAME_ENCODER_KEY_MAPPING | _text_lora_key_mapping(
            cls, pretrained_model_name_or_path, kwargs)}
    return kwargs


def initialize_missing(model, missing_keys) -> None:
    """Tensors of the sign encoder that a checkpoint lacks (loaded with `--allow_missing_weights` or
    `from_pretrained`): transformers' init pass skips the sign encoder, which counts as initialised once built, so each
    missing tensor gets the init of its kind here (a bias 0, a norm's weight 1, a layer scale its configured value,
    any other weight N(0, initializer_range)) instead of whatever memory it was built in."""
    config = model.config
    with torch.no_grad():
        for key in missing_keys:
            if not key.startswith("sign_encoder."):
                continue
            owner, _, name = key.rpartition(".")
            module = model.get_submodule(owner)
            tensor = getattr(module, name)
            if getattr(tensor, "_is_hf_initialized", False):
                continue  # given its init by the model's own pass (a signing gate added to an ungated checkpoint)
            if name == "bias" or isinstance(module, torch.nn.BatchNorm1d) and name != "weight":
                tensor.zero_()
            elif name == "weight" and isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                tensor.fill_(1.0)
            elif name == "layer_scale":
                tensor.fill_(config.layer_scale_init)
            else:
                tensor.normal_(std=config.initializer_range)


def finish_loading(model) -> None:
    """After `from_pretrained`: the old names are only read, never written (transformers reverses load-time renamings
    when saving), and loading replaced parameters, which resets requires_grad: the frozen parts are frozen again."""
    old_names = (set(FRAME_ENCODER_KEY_MAPPING) | set(text_lora_key_mapping("lora", model._text_lora_scope or ""))
                 | set(TEMPERATURES))
    if getattr(model, "_weight_conversions", None):
        model._weight_conversions = [
            c for c in model._weight_conversions
            if not set(getattr(c, "_original_source_patterns", None) or []) & old_names
        ]
    model.set_trainable()


def _text_lora_key_mapping(cls, pretrained_model_name_or_path, kwargs) -> dict:
    """Checkpoints of beyondgloss < 0.2 (its own LoRA layer) and pre-training checkpoints (a plain decoder) name the
    LoRA projections differently; which names to map depends on the config's text_tuning."""
    if cls._text_lora_scope is None:
        return {}
    config = kwargs.get("config")
    if not isinstance(config, PretrainedConfig):  # (remote code has its own BeyondGlossConfig class)
        hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "proxies", "local_files_only", "token",
                                      "revision", "subfolder") if k in kwargs}
        source = config or adapter_base(pretrained_model_name_or_path, **hub) or pretrained_model_name_or_path
        config = cls.config_class.from_pretrained(source, **hub)
    text_tuning = kwargs.get("text_tuning", config.text_tuning)  # a from_pretrained override wins
    return text_lora_key_mapping(text_tuning, cls._text_lora_scope)


def save_checkpoint(model, save, save_directory, *args, **kwargs):
    """`model.save_pretrained(save_directory, ...)` around transformers' own (`save`): an `auto_map` naming every task
    class, the pipeline file and its `custom_pipelines` entry for a model that translates, the card of the
    `SAVE_HOOKS`, and an upload (`push_to_hub=True`) of all of it."""
    # Every task class loads from every checkpoint (the encoder from a translation model, stage 2 from stage 1),
    # so the saved auto_map names all of them, not only the class that saved.
    module = type(model).__module__.rsplit(".", 1)[-1]
    auto_map = dict(getattr(model.config, "auto_map", None) or {})
    auto_map.update({
        "AutoConfig": f"{module.replace('modeling_', 'configuration_')}.BeyondGlossConfig",
        "AutoModel": f"{module}.BeyondGlossModel",
        "AutoModelForPreTraining": f"{module}.BeyondGlossForContrastivePretraining",
        "AutoModelForSeq2SeqLM": f"{module}.BeyondGlossForSignTranslation",
    })
    model.config.auto_map = auto_map
    # The translation model's checkpoint names its pipeline and holds its file. Any other (a stage-1 model whose
    # config came from a translation checkpoint, or a copy of the code without the pipeline file) must not name it.
    pipeline_files = pipeline_files_of(model)
    named = model.config.__dict__.get("_custom_pipelines") or {}  # the config property's storage
    saved = {task: info for task, info in named.items() if task != SIGN_TRANSLATION_TASK}
    if pipeline_files:
        saved[SIGN_TRANSLATION_TASK] = SIGN_TRANSLATION_PIPELINE
    model.config.custom_pipelines = saved
    main_process = kwargs.get("is_main_process", True)
    # save_pretrained(push_to_hub=True) uploads inside transformers' save, before the pipeline file and the card
    # below exist: the upload happens here instead, after them, of what this call wrote (as transformers does).
    push = kwargs.pop("push_to_hub", False) and main_process
    hub = {name: kwargs.pop(name) for name in ("repo_id", "commit_message", "create_pr", "private") if name in kwargs}
    if push:
        from transformers.utils.hub import hf_api

        Path(save_directory).mkdir(parents=True, exist_ok=True)
        repo_id = hf_api().create_repo(hub.get("repo_id", Path(save_directory).name), exist_ok=True,
                                       private=hub.get("private"), token=kwargs.get("token")).repo_id
        timestamps = model._get_files_timestamps(save_directory)
    try:
        result = save(save_directory, *args, **kwargs)
    finally:
        model.config.custom_pipelines = named
    if main_process:
        for file in pipeline_files:
            shutil.copy(file, Path(save_directory) / Path(file).name)
        for hook in SAVE_HOOKS:
            hook(model, Path(save_directory))
    if push:
        model._upload_modified_files(save_directory, repo_id, timestamps, commit_message=hub.get("commit_message"),
                                     token=kwargs.get("token"), create_pr=hub.get("create_pr", False))
    return result


def pipeline_files_of(model) -> list[str]:
    """The "sign-translation" pipeline's file and the siblings it imports, for a model that translates; empty
    otherwise, or when neither this copy of the code nor the checkpoint it was loaded from has the pipeline."""
    if not model.can_generate():
        return []
    from transformers.dynamic_module_utils import get_cached_module_file, get_relative_import_files
    from transformers.utils import HF_MODULES_CACHE

    name = "pipeline_sign_translation.py"
    pipeline_file = Path(sys.modules[type(model).__module__].__file__).with_name(name)
    if not pipeline_file.is_file() and model.name_or_path:
        # Loaded with trust_remote_code: transformers caches each module of a checkpoint in its own folder, so
        # the pipeline is fetched from the checkpoint the model came from (a local folder or the Hub cache).
        try:
            pipeline_file = Path(HF_MODULES_CACHE) / get_cached_module_file(model.name_or_path, name)
        except (OSError, ValueError) as error:
            logger.warning("%s of %s cannot be fetched (%s)", name, model.name_or_path, error)
    if not pipeline_file.is_file():
        logger.warning("No %s next to %s: the saved checkpoint will not name the %r pipeline", name,
                       type(model).__module__, SIGN_TRANSLATION_TASK)
        return []
    return [str(pipeline_file), *get_relative_import_files(os.fspath(pipeline_file))]


def from_backbones(cls, vision: str, text: str, config_kwargs: dict | None = None, **load_kwargs):
    """`cls.from_backbones`: a model of class `cls` around DINOv2 and mBART checkpoints (local folders or hub ids)."""
    vision_model = Dinov2Model.from_pretrained(vision, **load_kwargs)
    text_model = MBartForConditionalGeneration.from_pretrained(text, **load_kwargs)
    config = BeyondGlossConfig.from_vision_text_configs(vision_model.config, text_model.config,
                                                        **(config_kwargs or {}))
    if config.decoder_start_token_id is None:
        config.decoder_start_token_id = text_model.config.decoder_start_token_id
    model = cls(config)
    load_backbone_weights(model, vision_model.state_dict(), text_model.state_dict())
    return model


def load_backbone_weights(model, vision_state: dict, text_state: dict) -> None:
    """Loads DINOv2 weights into the frame encoder and mBART weights into the model's mBART and text encoder (those
    it has)."""
    missing, unexpected = model.sign_encoder.frame_encoder.vision.load_state_dict(vision_state, strict=False)
    if missing or unexpected:
        raise ValueError(f"DINOv2 weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    mbart = model._modules.get("mbart")
    if mbart is not None:
        # mBART's q/v weights go under the `base_layer` of the LoRA layers wrapping them.
        lora = {name for name, module in mbart.named_modules() if is_text_lora(module)}
        text_state_here = {
            (f"{k.rsplit('.', 1)[0]}.base_layer.{k.rsplit('.', 1)[1]}" if k.rsplit(".", 1)[0] in lora else k): v
            for k, v in text_state.items()
        }
        missing, _ = mbart.load_state_dict(text_state_here, strict=False)
        if any(".base_layer." in name for name in missing):
            raise ValueError(f"mBART weights do not fit: missing {[n for n in missing if '.base_layer.' in n][:5]}")
    text_encoder = model._modules.get("text_encoder")
    if text_encoder is not None:
        encoder_state = {k[len("model.encoder."):]: v for k, v in text_state.items() if k.startswith("model.encoder.")}
        text_encoder.load_state_dict(encoder_state, strict=False)

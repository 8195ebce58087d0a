# Copyright 2026 The beyondgloss authors. MIT license.
"""Conversion of checkpoints of the BeyondGloss reference code (PyTorch Lightning) into beyondgloss checkpoints.

The reference code saves two kinds of Lightning checkpoints (keys prefixed `model.`; [`reference_layout`] lists
every tensor):

- **pre-training** (`PreTrainModel`): the sign video encoder under `model.model_images.model.`, the image-side
  mBART encoder with PEFT LoRA under `model.model_images.trans_encoder.base_model.model.`, the frozen text-side
  mBART encoder under `model.model_txt.model_txt.`, and `logit_scale`/`logit_scale_desc`. It holds no mBART decoder.
- **translation** (`FineTuneModel`): the sign video encoder under `model.backbone.` and the PEFT-wrapped mBART
  encoder-decoder under `model.mbart.base_model.model.`.

The converter derives the architecture from the tensor shapes, rebuilds the exact layout those shapes imply, refuses
a checkpoint that differs from it (naming the first missing, unexpected and wrongly shaped keys), maps every tensor
into [`BeyondGlossForContrastivePretraining`] or [`BeyondGlossForSignTranslation`] and saves it with
`reference_compat=True`, under which the model follows the reference's order of operations and its defects
(`docs/reference_differences.md` lists them and how closely converted models reproduce the reference).
"""

import logging
import math
import pickle
import re
import zipfile
from pathlib import Path

import torch

from ..configuration_beyondgloss import BeyondGlossConfig
from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from ..temporal_encoder import sinusoidal_position_encoding
from .reference_config import infer_config
from .reference_names import (
    DINO,
    IMAGE_ENCODER,
    MBART,
    SIGN_HEAD_NAMES,
    SIGN_PREFIX,
    STAGES,
    TEMPORAL_BLOCK_NAMES,
    TEXT_ENCODER,
    ReferenceCheckpointError,
    dino_names,
    temporal_reference_indices,
)

__all__ = [
    "STAGES",
    "ReferenceCheckpointError",
    "load_reference_state_dict",
    "detect_stage",
    "infer_config",
    "reference_layout",
    "check_reference_layout",
    "check_reference_values",
    "map_reference_state_dict",
    "convert_reference_checkpoint",
]

logger = logging.getLogger(__name__)

MODEL_CLASSES = {"pretraining": BeyondGlossForContrastivePretraining, "translation": BeyondGlossForSignTranslation}
# The reference stores its sinusoidal and rotary tables; they must equal the ones the model computes.
_BUFFER_TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------------------------------
# Reading


def load_reference_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads the tensors of a reference checkpoint without unpickling arbitrary objects.

    Accepts a Lightning checkpoint (a dict whose `state_dict` holds the tensors), a bare state dict saved with
    `torch.save`, or a `.safetensors` file with the same keys. Torch files are read with
    `torch.load(weights_only=True)` (memory-mapped when possible).

    Args:
        path (`str` or `Path`): the checkpoint file.

    Returns:
        `dict[str, torch.Tensor]`: the state dict, keys as in the reference (`model.` prefix).

    Raises:
        ReferenceCheckpointError: the file is missing, holds Python objects that `weights_only` refuses, or has
            no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such checkpoint file.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        # torch's message is long and generic; the line naming the refused class is the useful one.
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0] if lines else "")
        raise ReferenceCheckpointError(
            f"{path}: torch.load(weights_only=True) refuses this checkpoint because it holds Python objects "
            f"beyond tensors and plain containers ({reason}). beyondgloss never unpickles arbitrary objects. "
            "If you trust the file, re-save only its 'state_dict' (a dict of tensors) with torch.save in an "
            "environment you trust, and convert that file."
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ReferenceCheckpointError(f"{path}: not a readable torch checkpoint ({error}).") from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise ReferenceCheckpointError(
            f"{path}: found no state dict; expected a Lightning checkpoint with a 'state_dict' entry or a dict of "
            "tensors."
        )
    return checkpoint


def detect_stage(state: dict[str, torch.Tensor]) -> str:
    """`"pretraining"` or `"translation"`, from the key prefixes of a reference state dict."""
    pretraining = any(key.startswith(SIGN_PREFIX["pretraining"]) for key in state)
    translation = any(key.startswith(SIGN_PREFIX["translation"]) for key in state)
    if pretraining != translation:
        return "pretraining" if pretraining else "translation"
    found = ", ".join(sorted(state)[:3])
    raise ReferenceCheckpointError(
        "unknown checkpoint layout: expected the sign video encoder under "
        f"'{SIGN_PREFIX['pretraining']}' (pre-training) or '{SIGN_PREFIX['translation']}' (translation)"
        + (", found both" if pretraining else f"; the first keys are {found}")
        + ". Is this a checkpoint of the BeyondGloss reference code?"
    )


# --------------------------------------------------------------------------------------------------------------
# The layout a configuration implies


def _mbart_stack_layout(prefix: str, config, layers: int, ffn: int, lora_rank: int | None, cross: bool) -> dict:
    """Keys and shapes of an mBART encoder (`cross=False`) or decoder stored under `prefix`; with `lora_rank`, the
    q_proj/v_proj of every attention are PEFT LoRA layers (`base_layer`, `lora_A.default`, `lora_B.default`)."""
    d = config.d_model
    layout = {prefix + "embed_tokens.weight": (config.vocab_size, d),
              prefix + "embed_positions.weight": (config.max_position_embeddings + 2, d)}
    for i in range(layers):
        block = f"{prefix}layers.{i}."
        for attention in ("self_attn", "encoder_attn") if cross else ("self_attn",):
            for projection in ("k_proj", "v_proj", "q_proj", "out_proj"):
                name = f"{block}{attention}.{projection}."
                if lora_rank and projection in ("q_proj", "v_proj"):
                    layout[name + "base_layer.weight"], layout[name + "base_layer.bias"] = (d, d), (d,)
                    layout[name + "lora_A.default.weight"] = (lora_rank, d)
                    layout[name + "lora_B.default.weight"] = (d, lora_rank)
                else:
                    layout[name + "weight"], layout[name + "bias"] = (d, d), (d,)
            for parameter in ("weight", "bias"):
                layout[f"{block}{attention}_layer_norm.{parameter}"] = (d,)
        layout.update({block + "fc1.weight": (ffn, d), block + "fc1.bias": (ffn,),
                       block + "fc2.weight": (d, ffn), block + "fc2.bias": (d,)})
        for parameter in ("weight", "bias"):
            layout[f"{block}final_layer_norm.{parameter}"] = (d,)
    for norm in ("layernorm_embedding", "layer_norm"):
        for parameter in ("weight", "bias"):
            layout[f"{prefix}{norm}.{parameter}"] = (d,)
    return layout


def _linear(name: str, out_features: int, in_features: int) -> dict:
    return {name + ".weight": (out_features, in_features), name + ".bias": (out_features,)}


def _norm(name: str, width: int) -> dict:
    return {name + ".weight": (width,), name + ".bias": (width,)}


def _sign_encoder_layout(prefix: str, config: BeyondGlossConfig) -> dict:
    vision = config.vision_config
    h, p = vision.hidden_size, vision.patch_size
    m = int(h * vision.mlp_ratio)
    r = config.vision_lora_rank
    lora = set(config.vision_lora_layers) if config.vision_tuning == "lora" else set()
    dino = prefix + DINO
    layout = {
        dino + "cls_token": (1, 1, h),
        dino + "pos_embed": (1, (vision.image_size // p) ** 2 + 1, h),
        dino + "mask_token": (1, h),
        dino + "patch_embed.proj.weight": (h, vision.num_channels, p, p),
        dino + "patch_embed.proj.bias": (h,),
    }
    for i in range(vision.num_hidden_layers):
        block = f"{dino}blocks.{i}."
        layout.update(_norm(block + "norm1", h))
        layout.update(_linear(block + "attn.qkv", 3 * h, h))
        layout.update(_linear(block + "attn.proj", h, h))
        if i in lora:
            layout.update({block + "attn.lora_w1_l1.weight": (r, h), block + "attn.lora_w1_l2.weight": (3 * h, r),
                           block + "attn.lora_w2_l1.weight": (r, h), block + "attn.lora_w2_l2.weight": (h, r)})
        layout[block + "ls1.gamma"] = (h,)
        layout.update(_norm(block + "norm2", h))
        layout.update(_linear(block + "mlp.fc1", m, h))
        layout.update(_linear(block + "mlp.fc2", h, m))
        if i in lora:
            layout.update({block + "mlp.lora_w1_l1.weight": (r, h), block + "mlp.lora_w1_l2.weight": (m, r),
                           block + "mlp.lora_w2_l1.weight": (r, m), block + "mlp.lora_w2_l2.weight": (h, r)})
        layout[block + "ls2.gamma"] = (h,)
    layout.update(_norm(dino + "norm", h))

    f, hand, desc = config.frame_dim, config.hand_dim, config.description_dim
    layout.update(_linear(prefix + "conv_2d.dino.lin", f, h))
    layout.update({prefix + f"conv_2d.dino.bn.{name}": (f,) for name in ("weight", "bias", "running_mean", "running_var")})
    layout[prefix + "conv_2d.dino.bn.num_batches_tracked"] = ()
    layout.update(_linear(prefix + "hamer_mapper_1", hand, f))
    layout.update(_linear(prefix + "hamer_mapper_2", f, hand))
    layout.update(_linear(prefix + "mapper_1_downsample.0", f, 2 * f))
    layout[prefix + "conv_1d.pos_embedding.pe"] = (config.max_frames, f)
    head_dim = f // config.temporal_heads
    for j in temporal_reference_indices(config.temporal_layers):
        block = f"{prefix}conv_1d.layers.{j}."
        layout[block + "attention.layer_scale"] = (f,)
        for name in ("query_proj", "key_proj", "value_proj", "out_proj"):
            layout.update(_linear(f"{block}attention.{name}", f, f))
        layout[block + "attention.rotary_emb.sin"] = (config.max_frames, 1, 1, head_dim // 2)
        layout[block + "attention.rotary_emb.cos"] = (config.max_frames, 1, 1, head_dim // 2)
        layout.update(_linear(block + "ffn.linear1", config.temporal_ffn_dim, f))
        layout.update(_linear(block + "ffn.linear2", f, config.temporal_ffn_dim))
        layout.update(_norm(block + "norm1", f))
        layout.update(_norm(block + "norm2", f))
    layout.update(_linear(prefix + "conv_1d.output_proj", f, f))
    layout.update(_linear(prefix + "mapper_1", desc, f))
    layout.update(_linear(prefix + "mapper_2", f, desc))
    return layout


def reference_layout(config: BeyondGlossConfig, stage: str) -> dict[str, tuple[int, ...]]:
    """Every key of a reference checkpoint of `stage` built with `config`'s shapes, with its shape (`()` for scalars).

    For the reference settings (`infer_config` of a reference checkpoint) this is the layout of the reference's own
    checkpoints, key for key and shape for shape (the tests check it against a table of them).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; choose one of {STAGES}.")
    text = config.text_config
    layout = _sign_encoder_layout(SIGN_PREFIX[stage], config)
    if stage == "pretraining":
        layout.update({"model.logit_scale": (), "model.logit_scale_desc": ()})
        layout.update(_mbart_stack_layout(TEXT_ENCODER, text, text.encoder_layers, text.encoder_ffn_dim, None, False))
        layout.update(_mbart_stack_layout(IMAGE_ENCODER, text, text.encoder_layers, text.encoder_ffn_dim,
                                          config.text_lora_rank, False))
    else:
        rank = config.text_lora_rank
        layout[MBART + "final_logits_bias"] = (1, text.vocab_size)
        layout[MBART + "model.shared.weight"] = (text.vocab_size, text.d_model)
        layout.update(_mbart_stack_layout(MBART + "model.encoder.", text, text.encoder_layers, text.encoder_ffn_dim,
                                          rank, False))
        layout.update(_mbart_stack_layout(MBART + "model.decoder.", text, text.decoder_layers, text.decoder_ffn_dim,
                                          rank, True))
        layout[MBART + "lm_head.weight"] = (text.vocab_size, text.d_model)
    return layout


def check_reference_layout(state: dict[str, torch.Tensor], layout: dict[str, tuple[int, ...]], limit: int = 5) -> None:
    """Raises [`ReferenceCheckpointError`] naming the first missing, unexpected and wrongly shaped keys of `state`
    against `layout` (at most `limit` of each)."""
    missing = [key for key in layout if key not in state]
    unexpected = [key for key in state if key not in layout]
    wrong = [f"{key} {tuple(state[key].shape)} (expected {shape})"
             for key, shape in layout.items() if key in state and tuple(state[key].shape) != shape]
    problems = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            problems.append(f"{title} ({len(items)}): " + ", ".join(items[:limit]) + more)
    if problems:
        raise ReferenceCheckpointError(
            "the checkpoint does not have the reference layout (see official_checkpoint_layout.tsv): "
            + "; ".join(problems) + ".")


# --------------------------------------------------------------------------------------------------------------
# Mapping


_TEMPORAL = re.compile(r"conv_1d\.layers\.(\d+)\.(.+)$")
# Tables the model computes instead of storing; checked against the computed ones, then dropped.
_COMPUTED = re.compile(r"conv_1d\.(pos_embedding\.pe|layers\.\d+\.attention\.rotary_emb\.(sin|cos))$")


def _map_sign_encoder(state: dict, prefix: str, config: BeyondGlossConfig) -> dict[str, torch.Tensor]:
    """The sign video encoder's tensors under `prefix`, keyed as in [`BeyondGlossSignEncoder`].

    A fused tensor of the reference (DINOv2's `qkv`, its LoRA B) splits row-wise into the tensors `dino_names`
    lists; the temporal blocks renumber around the downsampler's index."""
    lora_blocks = config.vision_lora_layers if config.vision_tuning == "lora" else ()
    dino = dino_names(config.vision_config.num_hidden_layers, lora_blocks)
    before = config.temporal_layers[0]
    mapped = {}
    for key, tensor in state.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if _COMPUTED.match(rest):
            continue
        if rest.startswith(DINO) and rest[len(DINO):] in dino:
            targets = dino[rest[len(DINO):]]
            parts = (tensor,) if len(targets) == 1 else (part.clone() for part in tensor.chunk(len(targets), dim=0))
            mapped.update(zip(targets, parts))
        elif rest in SIGN_HEAD_NAMES:
            mapped[SIGN_HEAD_NAMES[rest]] = tensor
        elif (match := _TEMPORAL.match(rest)) and match.group(2) in TEMPORAL_BLOCK_NAMES:
            index = int(match.group(1))
            block = index if index < before else index - 1  # the downsampler holds reference index `before`
            mapped[f"temporal.blocks.{block}.{TEMPORAL_BLOCK_NAMES[match.group(2)]}"] = tensor
        else:
            raise ReferenceCheckpointError(f"no mapping for {key!r}.")
    return mapped


def _map_peft(state: dict, prefix: str, target: str) -> dict[str, torch.Tensor]:
    """An mBART (sub-)model under `prefix`, keyed under `target`. The PEFT LoRA names of its q/v projections
    (`base_layer`, `lora_A.default`) are beyondgloss's too (its mBART LoRA is peft's) and stay as they are; the
    frozen text encoder has none ([`reference_layout`] checked that)."""
    return {target + key[len(prefix):]: tensor for key, tensor in state.items() if key.startswith(prefix)}


def check_reference_values(state: dict[str, torch.Tensor], config: BeyondGlossConfig, stage: str) -> None:
    """Checks the tensors the converted model does not store separately. The reference stores its sinusoidal
    position table and RoPE sin/cos tables, which beyondgloss computes, and (translation) copies of the tied mBART
    embeddings. A checkpoint whose tables differ from the computed ones, or whose tied copies differ, was made by
    different code: refuse it."""
    prefix = SIGN_PREFIX[stage]
    f, length = config.frame_dim, config.max_frames
    expected = {prefix + "conv_1d.pos_embedding.pe": sinusoidal_position_encoding(length, f)}
    head_dim = f // config.temporal_heads
    theta = torch.exp(torch.arange(0, head_dim, 2, dtype=torch.float32) * (-math.log(10000.0) / head_dim))
    angle = (torch.arange(length, dtype=torch.float32)[:, None] * theta)[:, None, None, :]
    for j in temporal_reference_indices(config.temporal_layers):
        block = f"{prefix}conv_1d.layers.{j}.attention.rotary_emb."
        expected[block + "sin"], expected[block + "cos"] = angle.sin(), angle.cos()
    for key, table in expected.items():
        difference = (state[key].float() - table).abs().max().item()
        if difference > _BUFFER_TOLERANCE:
            raise ReferenceCheckpointError(
                f"{key} differs from the table beyondgloss computes (max difference {difference:.3g}); this "
                "checkpoint's temporal encoder is not the reference's (sinusoidal PE and interleaved RoPE).")
    if stage == "translation":
        shared = state[MBART + "model.shared.weight"]
        for key in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
            if not torch.equal(state[MBART + key], shared):
                raise ReferenceCheckpointError(
                    f"{MBART}{key} differs from {MBART}model.shared.weight; mBART ties them, and beyondgloss cannot "
                    "hold untied copies.")


def map_reference_state_dict(
    state: dict[str, torch.Tensor], config: BeyondGlossConfig, stage: str
) -> dict[str, torch.Tensor]:
    """Maps a reference state dict (already checked against [`reference_layout`]) to the state dict of the
    beyondgloss task model of `stage`, tied embeddings included. The pre-training stage's mBART decoder and
    `final_logits_bias` are not in the reference checkpoint and are not returned.

    DINOv2's fused `qkv` weight and bias and the fused LoRA B of the shared-A qkv LoRA split row-wise into q, k, v;
    the temporal blocks renumber around the downsampler; the mBART LoRA keeps PEFT's names (`base_layer`,
    `lora_A.default`), which are beyondgloss's; the computed position tables are dropped.
    """
    mapped = {"sign_encoder." + key: value
              for key, value in _map_sign_encoder(state, SIGN_PREFIX[stage], config).items()}
    if stage == "pretraining":
        mapped["logit_scale"] = state["model.logit_scale"]
        mapped["logit_scale_description"] = state["model.logit_scale_desc"]
        mapped.update(_map_peft(state, TEXT_ENCODER, "text_encoder."))
        mapped.update(_map_peft(state, IMAGE_ENCODER, "mbart.model.encoder."))
        shared = mapped["mbart.model.encoder.embed_tokens.weight"]
    else:
        mapped.update(_map_peft(state, MBART, "mbart."))
        shared = mapped["mbart.model.shared.weight"]
    for key in ("mbart.model.shared.weight", "mbart.model.encoder.embed_tokens.weight",
                "mbart.model.decoder.embed_tokens.weight", "mbart.lm_head.weight"):
        mapped[key] = shared
    return mapped


# --------------------------------------------------------------------------------------------------------------
# Building and saving


_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# What the saved pre-training model leaves out when its decoder is random (see `convert_reference_checkpoint`).
_DECODER_KEYS = re.compile(r"^mbart\.(model\.decoder\.|final_logits_bias$)")


def _holds_weights(text_backbone) -> bool:
    """Whether `text_backbone` has model weights: a local folder with a weights file, or a hub id (whose files
    `from_pretrained` resolves)."""
    folder = Path(text_backbone)
    return not folder.is_dir() or any((folder / name).is_file() for name in _WEIGHT_FILES)


def _decoder_state(config: BeyondGlossConfig, text_backbone, shared: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mBART decoder and `final_logits_bias` for a pre-training checkpoint: from `text_backbone` (the trimmed
    mBART the reference started from, as its stage 2 does) or freshly initialised from `config.text_config` when it
    is None."""
    from transformers import MBartForConditionalGeneration
    from transformers.models.mbart.modeling_mbart import MBartDecoder

    if text_backbone is None:
        decoder = MBartDecoder(config.text_config)
        state = {"mbart.model.decoder." + k: v for k, v in decoder.state_dict().items()}
        state["mbart.final_logits_bias"] = torch.zeros(1, config.text_config.vocab_size)
    else:
        backbone = MBartForConditionalGeneration.from_pretrained(text_backbone, dtype=torch.float32)
        backbone_state = backbone.state_dict()
        if not torch.equal(backbone_state["model.shared.weight"], shared.float()):
            raise ReferenceCheckpointError(
                f"text_backbone {text_backbone}: its token embeddings differ from the checkpoint's (frozen) mBART "
                "embeddings; pass the trimmed mBART the checkpoint was trained from.")
        state = {"mbart." + k: v for k, v in backbone_state.items() if k.startswith("model.decoder.")}
        state["mbart.final_logits_bias"] = backbone_state["final_logits_bias"]
    state.pop("mbart.model.decoder.embed_tokens.weight", None)
    return state


def _build_model(model_class, config: BeyondGlossConfig, state: dict[str, torch.Tensor]):
    """The task model holding exactly `state` (no random initialisation of what the state replaces)."""
    with torch.device("meta"):
        model = model_class(config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [key for key in expected if key in state and tuple(state[key].shape) != expected[key]]
    if missing or unexpected or wrong:
        # The layout check passed, so this is a mapping defect, not a user error.
        raise RuntimeError(f"conversion mapping does not fit {model_class.__name__}: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}")
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    model.load_state_dict(state, strict=True, assign=True)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trainable)
    # mBART ties the encoder/decoder token embeddings and the LM head to `shared`.
    model.mbart.model.set_input_embeddings(model.mbart.model.shared)
    model.mbart.lm_head.weight = model.mbart.model.shared.weight
    return model


def _load_tokenizer(tokenizer, text_backbone, vocab_size: int):
    from transformers import AutoTokenizer

    source = tokenizer if tokenizer is not None else text_backbone
    if source is None:
        return None
    if not isinstance(source, (str, Path)):
        loaded = source
    elif tokenizer is None and not any((Path(source) / name).is_file()
                                       for name in ("tokenizer.json", "sentencepiece.bpe.model", "tokenizer_config.json")):
        return None  # a text backbone without tokenizer files: nothing to take over
    else:
        loaded = AutoTokenizer.from_pretrained(str(source))
    if len(loaded) != vocab_size:
        raise ReferenceCheckpointError(
            f"tokenizer {source}: {len(loaded)} tokens, but the checkpoint's vocabulary has {vocab_size} rows; pass "
            "the trimmed tokenizer the checkpoint was trained with.")
    return loaded


def _start_id(target_language) -> int | None:
    """The token id `target_language` gives directly (an int or a string of digits), else None."""
    if isinstance(target_language, bool):
        raise ReferenceCheckpointError(f"target_language={target_language!r}: give a language code or a token id.")
    if isinstance(target_language, int):
        return target_language
    if isinstance(target_language, str) and target_language.strip().isdigit():
        return int(target_language)
    return None


def _checked_stage(path, state: dict, stage: str | None, text_backbone, random_decoder: bool) -> str:
    """The stage of `state`, refused when it contradicts the asked `stage` or the decoder options."""
    detected = detect_stage(state)
    if stage is not None and stage != detected:
        raise ReferenceCheckpointError(f"{path}: stage={stage!r} was asked, but the keys are those of a {detected} "
                                       "checkpoint.")
    if detected == "pretraining" and text_backbone is None and not random_decoder:
        raise ReferenceCheckpointError(
            f"{path} is a pre-training checkpoint, which holds no mBART decoder. Pass text_backbone (--text_backbone) "
            "= the trimmed mBART it was trained from, so that translation fine-tuning starts from its decoder as in "
            "the reference, or random_decoder=True (--random_decoder) to accept a randomly initialised decoder.")
    if detected == "translation" and random_decoder:
        raise ReferenceCheckpointError("random_decoder (--random_decoder) applies to pre-training checkpoints; a "
                                       "translation checkpoint has its decoder.")
    return detected


def _text_backbone_config(text_backbone):
    """The mBART configuration of `text_backbone`, or None without one."""
    if text_backbone is None:
        return None
    from transformers import AutoConfig

    text_config = AutoConfig.from_pretrained(str(text_backbone))
    if text_config.model_type not in ("mbart", "mbart-50"):
        raise ReferenceCheckpointError(f"text_backbone {text_backbone} is a {text_config.model_type!r} model, not "
                                       "an mBART.")
    return text_config


def _warn_random_decoder(path, text_backbone) -> None:
    reason = ("random_decoder=True (--random_decoder)" if text_backbone is None or _holds_weights(text_backbone)
              else f"text_backbone {text_backbone} holds a configuration but no weights")
    logger.warning(
        "%s: pre-training checkpoint converted with a RANDOMLY INITIALISED mBART decoder (%s), built from %s. "
        "It is not saved; translation models initialised from this conversion get a random decoder. For "
        "translation fine-tuning as in the reference, convert with --text_backbone <the trimmed mBART with its "
        "weights>.", path, reason,
        "the mBART-large-cc25 settings" if text_backbone is None else f"{text_backbone}'s configuration")


def _set_start_token(path, config: BeyondGlossConfig, tokenizer, target_language, start_id: int | None) -> None:
    """Sets `config.decoder_start_token_id` from the target language (an id, or a code the tokenizer holds; the
    reference's `de_DE` by default) and makes it the tokenizer's source and target language."""
    vocab_size = config.text_config.vocab_size
    if start_id is not None:
        if not 0 <= start_id < vocab_size:
            raise ReferenceCheckpointError(
                f"target_language={target_language!r}: token id {start_id} is outside the vocabulary (0..{vocab_size - 1}).")
        config.decoder_start_token_id = start_id
    elif tokenizer is not None:
        code = target_language or "de_DE"
        start = tokenizer.convert_tokens_to_ids(code)
        if start is None or start == tokenizer.unk_token_id:
            raise ReferenceCheckpointError(f"target_language={code!r} (--target_language) is not a token of the "
                                           "tokenizer; give a language code it holds, or the token id.")
        config.decoder_start_token_id = start
        for attribute in ("src_lang", "tgt_lang"):
            if hasattr(tokenizer, attribute):
                setattr(tokenizer, attribute, code)
    elif target_language is not None:
        raise ReferenceCheckpointError(
            f"target_language={target_language!r} needs a tokenizer to find its token id: pass tokenizer (--tokenizer) "
            "or a text_backbone (--text_backbone) holding one, or give the id itself (e.g. --target_language 250003).")
    else:
        logger.warning("%s: no tokenizer and no target language given; generate() needs decoder_start_token_id (the "
                       "target language code's id): convert with --tokenizer or --target_language <id>, or set "
                       "model.generation_config.decoder_start_token_id.", path)


def convert_reference_checkpoint(
    path: str | Path,
    out_dir: str | Path | None = None,
    stage: str | None = None,
    text_backbone: str | Path | None = None,
    random_decoder: bool = False,
    tokenizer=None,
    target_language: str | int | None = None,
    config_overrides: dict | None = None,
):
    r"""
    Converts a checkpoint of the BeyondGloss reference code into a beyondgloss model (and saves it).

    The pre-training checkpoint becomes a [`BeyondGlossForContrastivePretraining`], the translation checkpoint a
    [`BeyondGlossForSignTranslation`], both with `reference_compat=True`. Every tensor of the checkpoint is used or
    checked: DINOv2 (fused qkv split into q/k/v, the shared-A qkv LoRA split into q/k/v B blocks, LayerScale), the
    frame projection and BatchNorm with its statistics, the hand and description heads, the temporal encoder (its
    stored sinusoidal and RoPE tables are compared with the computed ones and dropped), the mBART encoders with
    their PEFT LoRA, the mBART decoder (translation) and the temperatures (pre-training).

    The pre-training checkpoint has no mBART decoder, which [`BeyondGlossForSignTranslation`] initialised from the
    converted model needs (the reference takes it from the trimmed mBART). Give that mBART as `text_backbone`: its
    decoder weights are taken over and saved. Without usable decoder weights the decoder is built from the mBART
    configuration and randomly initialised, with a warning: when `random_decoder=True`, or when `text_backbone` is a
    folder holding only a `config.json`. Such a decoder is fine for contrastive pre-training and for the video
    encoder, useless for translation until trained, and it is **not saved**: the pre-training stage never runs it, and
    it would take about 0.8 GB of the 2.2 GB file at the reference's sizes (12 decoder layers of width 1024). Loading
    the saved folder initialises it afresh (transformers lists the decoder weights as newly initialised). Without
    `text_backbone` or `random_decoder`, the conversion is refused.

    The converted model computes what the reference computes from the same weights, up to float32 round-off: see
    `docs/reference_differences.md` for what `reference_compat=True` reproduces and how that was measured.

    Args:
        path (`str` or `Path`): the Lightning checkpoint (or a state dict / `.safetensors` file with its keys).
        out_dir (`str` or `Path`, *optional*): where to `save_pretrained` the model (safetensors) and tokenizer.
        stage (`str`, *optional*): `"pretraining"` or `"translation"`; detected from the keys when omitted.
        text_backbone (`str` or `Path`, *optional*): the trimmed mBART folder the checkpoint was trained from (or a
            folder with its `config.json` alone); gives the mBART settings that shapes do not tell, the pre-training
            decoder when it holds weights and, when it holds one, the tokenizer.
        random_decoder (`bool`, defaults to `False`): pre-training only; a freshly initialised decoder (built from
            `text_backbone`'s configuration when given) instead of `text_backbone`'s weights.
        tokenizer (`str`, `Path` or tokenizer, *optional*): the (trimmed) tokenizer; saved with the model.
        target_language (`str` or `int`, *optional*): the language code generation starts from; its id (found with
            the tokenizer) becomes `decoder_start_token_id`. An integer (or a string of digits) is taken as the id
            itself, which needs no tokenizer. Defaults to `"de_DE"` (the reference's, for every dataset) when there is
            a tokenizer; without a tokenizer or a target language, `decoder_start_token_id` stays unset (warning).
        config_overrides (`dict`, *optional*): see [`infer_config`].

    Returns:
        The converted model ([`BeyondGlossForContrastivePretraining`] or [`BeyondGlossForSignTranslation`]).

    Raises:
        ReferenceCheckpointError: unreadable checkpoint, unknown layout (the message names the first missing,
            unexpected and wrongly shaped keys), or a backbone/tokenizer that does not fit.

    Example:

    ```python
    >>> from beyondgloss.convert import convert_reference_checkpoint
    >>> model = convert_reference_checkpoint("best.ckpt", "converted/", text_backbone="pretrained/MBart_trimmed")  # doctest: +SKIP
    ```
    """
    state = load_reference_state_dict(path)
    stage = _checked_stage(path, state, stage, text_backbone, random_decoder)
    start_id = _start_id(target_language)
    config = infer_config(state, stage, _text_backbone_config(text_backbone), config_overrides)
    check_reference_layout(state, reference_layout(config, stage))
    check_reference_values(state, config, stage)

    mapped = map_reference_state_dict(state, config, stage)
    random_decoder = stage == "pretraining" and (
        random_decoder or text_backbone is None or not _holds_weights(text_backbone))
    if stage == "pretraining":
        if random_decoder:
            _warn_random_decoder(path, text_backbone)
        mapped.update(_decoder_state(config, None if random_decoder else text_backbone,
                                     mapped["mbart.model.shared.weight"]))

    loaded_tokenizer = _load_tokenizer(tokenizer, text_backbone, config.text_config.vocab_size)
    _set_start_token(path, config, loaded_tokenizer, target_language, start_id)
    model = _build_model(MODEL_CLASSES[stage], config, mapped)
    if out_dir is not None:
        saved = {}
        if random_decoder:
            saved["state_dict"] = {k: v for k, v in model.state_dict().items() if not _DECODER_KEYS.match(k)}
        model.save_pretrained(str(out_dir), **saved)
        if loaded_tokenizer is not None:
            loaded_tokenizer.save_pretrained(str(out_dir))
        logger.info("converted %s (%s stage) into %s", path, stage, out_dir)
    return model

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

Each step has its module: reading (`reference_reading`), the layout and its check (`reference_layout`), the
mapping (`reference_mapping`); this one builds the model from the mapped tensors and saves it.
"""

import logging
import re
from pathlib import Path

import torch

from ..configuration_beyondgloss import BeyondGlossConfig
from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from ..processing_beyondgloss import language_code_id
from .reference_config import infer_config
from .reference_layout import check_reference_layout, reference_layout
from .reference_mapping import check_reference_values, map_reference_state_dict
from .reference_names import STAGES, ReferenceCheckpointError
from .reference_reading import detect_stage, load_reference_state_dict

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
        try:
            config.decoder_start_token_id = language_code_id(tokenizer, code)
        except ValueError as error:
            raise ReferenceCheckpointError(f"target_language={code!r} (--target_language): {error}; or give the "
                                           "token id.") from None
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

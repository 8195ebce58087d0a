# Copyright 2026 The beyondgloss authors. MIT license.
"""The generation settings of the translation model: those its config implies, the special tokens a generation config
made elsewhere lacks, and the checkpoint's `generation_config.json`. Shipped in checkpoints beside
`modeling_beyondgloss.py` (imports only transformers and siblings)."""

from transformers import GenerationConfig

from .configuration_beyondgloss import BeyondGlossConfig

__all__ = ["SPECIAL_TOKENS", "generation_config_from", "saved_generation_config", "with_special_tokens"]

SPECIAL_TOKENS = ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id", "forced_eos_token_id")


def generation_config_from(config: BeyondGlossConfig) -> GenerationConfig:
    """The generation settings a config implies: beam search with `config.num_beams` beams, at most
    `config.max_new_tokens` tokens, starting at `config.decoder_start_token_id` (the target language code), and
    mBART's special tokens."""
    text = config.text_config
    return GenerationConfig(
        num_beams=config.num_beams,
        max_new_tokens=config.max_new_tokens,
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=text.bos_token_id,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        forced_eos_token_id=text.forced_eos_token_id,
    )


def with_special_tokens(generation_config: GenerationConfig, *sources: GenerationConfig | None) -> GenerationConfig:
    """Fills the special tokens `generation_config` lacks (one made elsewhere: a Seq2SeqTrainingArguments file, a
    `generation_config=` argument) from the first of `sources` that has them; returns it."""
    for name in SPECIAL_TOKENS:
        for source in sources:
            if getattr(generation_config, name, None) is None and source is not None:
                setattr(generation_config, name, getattr(source, name, None))
    return generation_config


def saved_generation_config(pretrained_model_name_or_path, **hub) -> GenerationConfig | None:
    """The checkpoint's `generation_config.json`, or None where it has none (a pre-training checkpoint)."""
    try:
        return GenerationConfig.from_pretrained(pretrained_model_name_or_path, **hub)
    except OSError:
        return None

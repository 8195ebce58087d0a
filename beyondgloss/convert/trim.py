# Copyright 2026 The beyondgloss authors. MIT license.
"""mBART vocabulary trimming: keep the pieces a corpus uses, slice the embeddings to them.

mBART-large-cc25 has 250,027 tokens, of which a sign language corpus uses a few thousand (2,454 for Phoenix14T
with the reference's trimming); the embedding matrix and LM head then dominate the model. The reference trims with
the `hftrim` package (docs/method.md, "Trimmed mBART"); this module does the same with transformers alone: the kept
ids are the pieces of the training texts plus every special token and language code, in their original order, so
`<s>`, `<pad>`, `</s>` and `<unk>` keep ids 0-3 and the configuration's special ids stay valid.
"""

import copy
import json
import logging
from collections.abc import Iterable, Sequence

import torch
from transformers import MBartForConditionalGeneration, MBartTokenizer

__all__ = ["kept_token_ids", "trim_mbart", "trim_mbart_model", "trim_mbart_tokenizer"]

logger = logging.getLogger(__name__)

# Tensors of MBartForConditionalGeneration indexed by token id, and the axis that is.
_VOCAB_TENSORS = {
    "model.shared.weight": 0,
    "model.encoder.embed_tokens.weight": 0,
    "model.decoder.embed_tokens.weight": 0,
    "lm_head.weight": 0,
    "final_logits_bias": 1,
}
# Token-id settings of an mBART config and generation config, remapped to the new ids.
_ID_SETTINGS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "forced_bos_token_id",
                "forced_eos_token_id")
_MBART_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def kept_token_ids(tokenizer: MBartTokenizer, texts: Iterable[str], keep_tokens: Sequence[str] = ()) -> list[int]:
    """The sorted ids of the pieces `texts` tokenize to, of every special token and language code, and of
    `keep_tokens`.

    Args:
        tokenizer ([`MBartTokenizer`]): the full tokenizer.
        texts (`Iterable[str]`): the training sentences.
        keep_tokens (`Sequence[str]`, *optional*): extra tokens to keep (each must be in the vocabulary).

    Returns:
        `list[int]`: old ids in increasing order; position i is the new id i.
    """
    texts = list(texts)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"texts[{bad[0]}] is a {type(texts[bad[0]]).__name__}, not a string.")
    if not texts:
        raise ValueError("no texts given: pass the training sentences whose pieces the trimmed vocabulary keeps.")
    kept = set(tokenizer.all_special_ids)
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        kept.update(ids)
    for token in keep_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
            raise ValueError(f"keep_tokens: {token!r} is not in the tokenizer's vocabulary.")
        kept.add(token_id)
    return sorted(kept)


def _piece_scores(tokenizer: MBartTokenizer) -> dict[str, float]:
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "Unigram":
        raise TypeError(f"trim_mbart needs a unigram (sentencepiece) mBART tokenizer; this one is {model.get('type')}.")
    return {piece: score for piece, score in model["vocab"]}


def trim_mbart_tokenizer(tokenizer: MBartTokenizer, kept_ids: Sequence[int]) -> MBartTokenizer:
    """A new [`MBartTokenizer`] whose vocabulary is the pieces of `kept_ids` (with their unigram scores), new id i
    being old id `kept_ids[i]`; special tokens, language codes, normalisation and pre-tokenisation unchanged."""
    if not isinstance(tokenizer, MBartTokenizer):
        raise TypeError(f"trim_mbart needs an MBartTokenizer, got {type(tokenizer).__name__}.")
    pieces = tokenizer.convert_ids_to_tokens(list(kept_ids))
    if tuple(pieces[:4]) != _MBART_SPECIALS:
        raise ValueError(f"the tokenizer's first ids are {pieces[:4]}, not mBART's {list(_MBART_SPECIALS)}.")
    scores = _piece_scores(tokenizer)
    # Specials and language codes may live outside the unigram model (added tokens); they never compete in Viterbi.
    vocab = [(piece, scores.get(piece, 0.0)) for piece in pieces]
    codes = [code for code in tokenizer.lang_code_to_id if code in pieces]
    extra_codes = [token for token in tokenizer.all_special_tokens
                   if token not in codes and token not in _MBART_SPECIALS and token != str(tokenizer.mask_token)]
    trimmed = type(tokenizer)(
        vocab=vocab,
        src_lang=tokenizer.src_lang,
        tgt_lang=tokenizer.tgt_lang,
        additional_special_tokens=extra_codes or None,
        model_max_length=tokenizer.model_max_length,
    )
    backend, source = trimmed.backend_tokenizer, tokenizer.backend_tokenizer
    backend.normalizer, backend.pre_tokenizer, backend.decoder = source.normalizer, source.pre_tokenizer, source.decoder
    if trimmed.convert_ids_to_tokens(list(range(len(pieces)))) != pieces or len(trimmed) != len(pieces):
        raise RuntimeError("the trimmed tokenizer does not map the kept pieces to contiguous ids; "
                           "its special tokens differ from mBART's.")
    return trimmed


def trim_mbart_model(model: MBartForConditionalGeneration, kept_ids: Sequence[int]) -> MBartForConditionalGeneration:
    """A new [`MBartForConditionalGeneration`] with `vocab_size = len(kept_ids)`: the shared/encoder/decoder
    embeddings and the LM head keep rows `kept_ids`, `final_logits_bias` those columns; every other tensor is
    copied; token-id settings are renumbered; weights are tied as in the original."""
    if not isinstance(model, MBartForConditionalGeneration):
        raise TypeError(f"trim_mbart needs an MBartForConditionalGeneration, got {type(model).__name__}.")
    vocab_size = model.config.vocab_size
    if max(kept_ids) >= vocab_size:
        raise ValueError(f"token id {max(kept_ids)} is outside the model's vocabulary of {vocab_size}; the tokenizer "
                         "does not belong to this model.")
    new_id = {old: new for new, old in enumerate(kept_ids)}
    index = torch.tensor(list(kept_ids), dtype=torch.long)

    def renumber(settings, owner: str):
        for name in _ID_SETTINGS:
            old = getattr(settings, name, None)
            if old is None:
                continue
            if old not in new_id:
                raise ValueError(f"{owner}.{name}={old} is not among the kept tokens; keep it with keep_tokens.")
            setattr(settings, name, new_id[old])

    config = copy.deepcopy(model.config)
    config.vocab_size = len(kept_ids)
    renumber(config, "config")
    state = {
        key: value.index_select(_VOCAB_TENSORS[key], index.to(value.device)).clone() if key in _VOCAB_TENSORS else value
        for key, value in model.state_dict().items()
    }
    with torch.device("meta"):
        trimmed = type(model)(config)
    trimmed.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        trimmed.model.set_input_embeddings(trimmed.model.shared)
        trimmed.lm_head.weight = trimmed.model.shared.weight
    else:
        trimmed.model.encoder.embed_tokens = trimmed.model.decoder.embed_tokens = trimmed.model.shared
    for name, parameter in model.named_parameters():
        trimmed.get_parameter(name).requires_grad_(parameter.requires_grad)
    if model.generation_config is not None:
        trimmed.generation_config = copy.deepcopy(model.generation_config)
        renumber(trimmed.generation_config, "generation_config")
    return trimmed.train(model.training)


def trim_mbart(
    model: MBartForConditionalGeneration,
    tokenizer: MBartTokenizer,
    texts: Iterable[str],
    keep_tokens: Sequence[str] = (),
) -> tuple[MBartForConditionalGeneration, MBartTokenizer]:
    r"""
    Trims an mBART model and its tokenizer to the pieces used by `texts`, plus every special token and language
    code (and `keep_tokens`), as the reference's `trim.py` does for its training sentences.

    Texts made of kept pieces give the same logits before and after (once ids are mapped); pieces seen only outside
    `texts` become `<unk>`.

    Args:
        model ([`MBartForConditionalGeneration`]): the full model (unchanged).
        tokenizer ([`MBartTokenizer`]): its tokenizer (unchanged).
        texts (`Iterable[str]`): the training sentences (targets).
        keep_tokens (`Sequence[str]`, *optional*): further tokens to keep.

    Returns:
        `(model, tokenizer)`: the trimmed model (`vocab_size` = number of kept tokens, weights tied) and a tokenizer
        whose ids are the new contiguous ids.

    Example:

    ```python
    >>> from transformers import MBartForConditionalGeneration, MBartTokenizer
    >>> from beyondgloss.convert import trim_mbart
    >>> model = MBartForConditionalGeneration.from_pretrained("facebook/mbart-large-cc25")  # doctest: +SKIP
    >>> tokenizer = MBartTokenizer.from_pretrained("facebook/mbart-large-cc25")  # doctest: +SKIP
    >>> small, small_tokenizer = trim_mbart(model, tokenizer, ["am tag sonne", "nachts regen"])  # doctest: +SKIP
    ```
    """
    kept = kept_token_ids(tokenizer, texts, keep_tokens)
    trimmed_tokenizer = trim_mbart_tokenizer(tokenizer, kept)
    trimmed_model = trim_mbart_model(model, kept)
    logger.info("trimmed the mBART vocabulary from %d to %d tokens", model.config.vocab_size, len(kept))
    return trimmed_model, trimmed_tokenizer

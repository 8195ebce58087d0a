# Copyright 2026 The beyondgloss authors. MIT license.
"""A small mBART-compatible tokenizer built from a corpus in milliseconds, for tests, the demo and new languages.

Real checkpoints use mBART's own (trimmed) sentencepiece vocabulary. When no such vocabulary exists (the SynthSign
demo, tests, a new sign language dataset), `train_sign_tokenizer` builds a word-level unigram vocabulary from the
training sentences and wraps it in `transformers.MBartTokenizer`, so every downstream piece (target mode with
`[tokens..., </s>, <lang code>]`, language codes as decoder start tokens, `save_pretrained`) behaves exactly as with
the real mBART tokenizer. The `tokenizers` and sentencepiece unigram trainers were tried first: on small corpora they
keep only characters and short fragments (about 50 pieces for 3,000 sentences over 40 words), which makes targets
several times longer than needed.
"""

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from transformers import MBartTokenizer
from transformers.models.mbart.tokenization_mbart import FAIRSEQ_LANGUAGE_CODES

__all__ = ["MBART_LANGUAGE_CODES", "SPECIAL_TOKENS", "train_sign_tokenizer"]

MBART_LANGUAGE_CODES = tuple(FAIRSEQ_LANGUAGE_CODES)
# mBART's layout: ids 0-3 are fixed, so configs' pad/bos/eos ids line up with the real checkpoints.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
_MASK = "<mask>"
_SPACE = "\u2581"  # sentencepiece's word-start marker, as MBartTokenizer's Metaspace pre-tokenizer writes it
# One unit per CJK character (these scripts write no spaces; Chinese is also scored per character), one per run of
# other word characters, one per remaining symbol (punctuation).
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]", re.UNICODE)
# Character fallback pieces sit this far (in log-probability) below the rarest unit, so that Viterbi picks whole
# units whenever the vocabulary has them.
_FALLBACK_MARGIN = 10.0


def _units(text: str) -> list[str]:
    units = []
    for word in text.split():
        parts = _UNIT.findall(word)
        units.extend([_SPACE + parts[0], *parts[1:]] if parts else [])
    return units


def train_sign_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    language_codes: Sequence[str] = MBART_LANGUAGE_CODES,
    language: str = "en_XX",
) -> MBartTokenizer:
    """Builds an mBART tokenizer whose vocabulary is the words (and characters) of `texts`.

    The vocabulary is laid out as mBART's: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, then the pieces, then the
    language codes, then `<mask>`. Pieces are the corpus' units (words split from trailing punctuation, single CJK
    characters) scored by log frequency, plus every character seen as a fallback, so any sentence written in the
    corpus' characters round-trips through `decode(..., skip_special_tokens=True)` (up to whitespace
    normalisation); characters never seen become `<unk>`.

    Args:
        texts (`Iterable[str]`): the sentences to cover (typically the training targets).
        vocab_size (`int`, defaults to 8000): the largest vocabulary (specials, pieces, codes and `<mask>`); the
            least frequent units are left out (they then fall back to characters). Small corpora give fewer.
        language_codes (`Sequence[str]`, defaults to mBART's 25 codes): language codes in the vocabulary. mBART's
            25 codes are always included (MBartTokenizer requires them); other codes (e.g. `"ase_XX"`) are added.
        language (`str`, defaults to `"en_XX"`): the initial `src_lang` and `tgt_lang`.

    Returns:
        `MBartTokenizer`: target mode (`tokenizer(text_target=...)`) gives `[tokens..., </s>, <tgt_lang>]`.

    Example:

    ```python
    >>> tokenizer = train_sign_tokenizer(["Morgen regnet es im Süden.", "明天南方有雨。"], language="de_DE")
    >>> ids = tokenizer(text_target="Morgen regnet es.")["input_ids"]
    >>> tokenizer.convert_ids_to_tokens(ids)
    ['▁Morgen', '▁regnet', '▁es', '.', '</s>', 'de_DE']
    >>> tokenizer.decode(ids, skip_special_tokens=True)
    'Morgen regnet es.'
    ```
    """
    texts = list(texts)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"train_sign_tokenizer needs strings; texts[{bad[0]}] is a {type(texts[bad[0]]).__name__}")
    counts = Counter(unit for text in texts for unit in _units(text))
    if not counts:
        raise ValueError("train_sign_tokenizer got no text to learn from; pass the (non-empty) training sentences")
    codes = list(MBART_LANGUAGE_CODES) + [c for c in dict.fromkeys(language_codes) if c not in MBART_LANGUAGE_CODES]
    if language not in codes:
        raise ValueError(f"language={language!r} is not among the language codes; add it to language_codes")

    # Every character stays in the vocabulary (as a unit or a fallback piece) so nothing seen becomes <unk>;
    # vocab_size limits the multi-character units.
    characters = sorted({ch for unit in counts for ch in unit.removeprefix(_SPACE)} | {_SPACE})
    room = vocab_size - len(SPECIAL_TOKENS) - len(codes) - 1 - len(characters)
    if room < 0:
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the {len(characters)} characters of the corpus plus the special "
            f"tokens and {len(codes)} language codes; use vocab_size >= {vocab_size - room}"
        )
    total = sum(counts.values())
    words = sorted((item for item in counts.items() if len(item[0]) > 1), key=lambda item: (-item[1], item[0]))
    scored = {piece: math.log(count / total) for piece, count in words[:room]}
    scored.update({ch: math.log(counts[ch] / total) for ch in characters if ch in counts})
    fallback_score = min(scored.values()) - _FALLBACK_MARGIN
    scored.update({ch: fallback_score for ch in characters if ch not in scored})
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS]
    vocab += sorted(scored.items(), key=lambda item: (-item[1], item[0]))
    vocab += [(code, 0.0) for code in codes] + [(_MASK, 0.0)]

    extra_codes = [c for c in codes if c not in MBART_LANGUAGE_CODES]
    return MBartTokenizer(
        vocab=vocab,
        src_lang=language,
        tgt_lang=language,
        additional_special_tokens=extra_codes or None,
    )

"""Translation scores computed the way the sign language translation field computes them.

Three BLEU conventions are in use and their numbers are not comparable (see docs/metrics.md), so every result
says which convention, which scoring unit and which sacrebleu signature produced it:

- ``"plain"``: sacrebleu's defaults (tokenize ``13a``, ``exp`` smoothing), texts as they are.
- ``"phoenix"``: the GFSLT-VLP / BeyondGloss reference lineage: the plain settings, after appending ``" ."``
  to every hypothesis and every reference. This changes scores (one sentence: 55.55 -> 53.48) and is the
  default for German (Phoenix14T).
- ``"slrt"``: the SLRT / JoeyNMT lineage (Sign2GPT, Uni-Sign): ``raw_corpus_bleu``, i.e. tokenize ``none``,
  ``floor`` smoothing with value 0 and effective order.

Chinese (CSL-Daily) is scored on characters under every convention: whitespace is removed and the text is
split into space-separated characters, and BLEU uses tokenize ``none``; for Chinese text this gives the
same BLEU as sacrebleu's ``zh`` tokenizer on the unsplit text, whereas ``13a`` on unsplit Chinese treats
whole clauses as single words.
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..utils.import_utils import require

__all__ = [
    "CONVENTIONS",
    "BleuConvention",
    "compute_translation_metrics",
    "dataset_defaults",
    "default_convention",
    "rouge_l",
    "rouge_l_multi",
]

logger = logging.getLogger(__name__)

MAX_BLEU_ORDER = 4
# COCO caption evaluation's ROUGE-L weighs recall 1.2 times as much as precision; the field reports that.
ROUGE_BETA = 1.2
# Languages written without spaces between words: their natural scoring unit is the character.
CHARACTER_LANGUAGES = frozenset({"zh"})


@dataclass(frozen=True)
class BleuConvention:
    """How one lineage of papers prepares texts and configures sacrebleu's BLEU.

    Args:
        name (`str`): the convention's name, recorded in every result.
        tokenize (`str`): sacrebleu tokenizer for word-level scoring (character-level scoring always uses
            ``"none"`` on the character-split text).
        smooth_method (`str`): sacrebleu smoothing method.
        smooth_value (`float`, *optional*): value for ``floor`` / ``add-k`` smoothing.
        effective_order (`bool`): whether n-gram orders without any hypothesis n-gram are left out.
        append_period (`bool`): whether ``" ."`` is appended to every hypothesis and reference before scoring.
        description (`str`): where the convention comes from.
    """

    name: str
    tokenize: str
    smooth_method: str
    smooth_value: float | None
    effective_order: bool
    append_period: bool
    description: str


_PLAIN = BleuConvention(
    name="plain",
    tokenize="13a",
    smooth_method="exp",
    smooth_value=None,
    effective_order=False,
    append_period=False,
    description="sacrebleu defaults on the texts as they are",
)
CONVENTIONS: dict[str, BleuConvention] = {
    convention.name: convention
    for convention in (
        _PLAIN,
        replace(
            _PLAIN,
            name="phoenix",
            append_period=True,
            description='GFSLT-VLP / BeyondGloss reference code: " ." appended to every hypothesis and reference',
        ),
        BleuConvention(
            name="slrt",
            tokenize="none",
            smooth_method="floor",
            smooth_value=0.0,
            effective_order=True,
            append_period=False,
            description="SLRT / JoeyNMT raw_corpus_bleu: tokenize none, floor smoothing 0, effective order",
        ),
    )
}

# dataset name (lower case, without "-", "_" and spaces) -> the language and convention its papers use
_DATASET_DEFAULTS = {
    "phoenix14t": {"language": "de", "convention": "phoenix"},
    "phoenix2014t": {"language": "de", "convention": "phoenix"},
    "csldaily": {"language": "zh", "convention": "plain"},
}


def _normalise_language(language: str | None) -> str | None:
    """``"zh_CN"``, ``"zh-Hans"`` and ``"ZH"`` all mean ``"zh"``."""
    if language is None:
        return None
    return re.split(r"[_\-]", language.strip(), maxsplit=1)[0].lower()


def dataset_defaults(dataset: str) -> dict[str, str]:
    """The language and BLEU convention under which a benchmark's published numbers were computed.

    Args:
        dataset (`str`): a benchmark name such as ``"phoenix14t"``, ``"Phoenix-2014-T"`` or ``"csl_daily"``.

    Returns:
        `dict[str, str]`: ``{"language": ..., "convention": ...}``.
    """
    key = re.sub(r"[\s_\-]", "", dataset).lower()
    if key not in _DATASET_DEFAULTS:
        raise ValueError(
            f"No scoring defaults for dataset {dataset!r}. Known datasets: phoenix14t, csl-daily; for another "
            f"dataset pass `language=` and `convention=` (one of {sorted(CONVENTIONS)}) instead."
        )
    return dict(_DATASET_DEFAULTS[key])


def default_convention(language: str | None) -> str:
    """``"phoenix"`` for German (the Phoenix14T lineage appends ``" ."``), ``"plain"`` otherwise."""
    return "phoenix" if _normalise_language(language) == "de" else "plain"


def _reference_lists(predictions: Sequence[str], references: Sequence) -> list[list[str]]:
    """Checks the texts and gives each prediction's references as a list (one string or a sequence of strings per
    prediction; the number of references may differ between predictions)."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError(
            "`predictions` and `references` must be sequences (one entry per sample), not a single string; "
            "wrap a single sentence in a list."
        )
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions but {len(references)} references; each prediction needs one "
            "reference string (or a list of reference strings), in the same order."
        )
    if not predictions:
        raise ValueError(
            "Got no predictions and no references: there is nothing to score (is the evaluation set empty?)."
        )
    for index, text in enumerate(predictions):
        if not isinstance(text, str):
            raise TypeError(
                f"predictions[{index}] is a {type(text).__name__} ({text!r}), not a string; decode token ids to "
                "text before scoring."
            )
    lists = []
    for index, entry in enumerate(references):
        texts = [entry] if isinstance(entry, str) else entry
        if not isinstance(texts, (list, tuple)) or not texts:
            raise TypeError(
                f"references[{index}] is {'an empty ' if isinstance(texts, (list, tuple)) else 'a '}"
                f"{type(entry).__name__} ({entry!r}); pass a reference string, or a non-empty list of reference "
                "strings, per prediction (decode token ids to text before scoring)."
            )
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"references[{index}][{position}] is a {type(text).__name__} ({text!r}), not a string; each "
                    "reference must be a text."
                )
        lists.append(list(texts))
    return lists


def _reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Per-sample reference lists as sacrebleu's reference streams: stream k holds every sample's k-th reference,
    `None` where a sample has fewer (sacrebleu then uses the ones it has)."""
    count = max(len(texts) for texts in references)
    return [[texts[k] if k < len(texts) else None for texts in references] for k in range(count)]


def _split_characters(text: str) -> str:
    return " ".join(character for character in text if not character.isspace())


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming over one row."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for position, other in enumerate(second):
            current.append(previous[position] + 1 if token == other else max(previous[position + 1], current[-1]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis_tokens: Sequence[str], reference_tokens: Sequence[str], beta: float = ROUGE_BETA) -> float:
    """Sentence ROUGE-L F-measure as in the COCO caption evaluation (and SLRT's ``mscoco_rouge``).

    Args:
        hypothesis_tokens (`Sequence[str]`): the hypothesis as tokens (words or characters).
        reference_tokens (`Sequence[str]`): the reference as tokens.
        beta (`float`): recall weight; the field uses 1.2.

    Returns:
        `float`: F in [0, 1]; 0 when either side is empty or nothing matches.
    """
    return rouge_l_multi(hypothesis_tokens, [reference_tokens], beta)


def rouge_l_multi(
    hypothesis_tokens: Sequence[str], references_tokens: Sequence[Sequence[str]], beta: float = ROUGE_BETA
) -> float:
    """Sentence ROUGE-L F-measure against several references, as the COCO caption evaluation computes it: the
    largest LCS precision and the largest LCS recall over the references (each may come from another reference)
    combined into one F. With one reference it is [`rouge_l`].

    Args:
        hypothesis_tokens (`Sequence[str]`): the hypothesis as tokens.
        references_tokens (`Sequence[Sequence[str]]`): each reference as tokens (at least one).
        beta (`float`): recall weight; the field uses 1.2.

    Returns:
        `float`: F in [0, 1]; 0 when the hypothesis is empty or no reference shares a token with it (an empty
        reference counts as one with nothing in common).
    """
    if not references_tokens:
        raise ValueError("rouge_l_multi needs at least one reference")
    if not hypothesis_tokens:
        return 0.0
    precision = recall = 0.0
    for reference_tokens in references_tokens:
        if not reference_tokens:
            continue
        lcs = _lcs_length(reference_tokens, hypothesis_tokens)
        precision = max(precision, lcs / len(hypothesis_tokens))
        recall = max(recall, lcs / len(reference_tokens))
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def _resolve_convention(
    language: str | None, convention: str | None, dataset: str | None, char_level: bool | None
) -> tuple[str | None, BleuConvention, bool]:
    """The normalised language, the convention and the unit (`char_level`) that scoring uses, from what was given
    and the dataset's defaults; refuses an unknown convention and word-level scoring of Chinese."""
    if dataset is not None:
        defaults = dataset_defaults(dataset)
        language = language if language is not None else defaults["language"]
        convention = convention if convention is not None else defaults["convention"]
    language = _normalise_language(language)
    convention = convention if convention is not None else default_convention(language)
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown scoring convention {convention!r}; choose one of {sorted(CONVENTIONS)}.")
    if char_level is None:
        char_level = language in CHARACTER_LANGUAGES
    elif not char_level and language in CHARACTER_LANGUAGES:
        raise ValueError(
            f"Word-level scoring was requested for language {language!r}, which is written without spaces: BLEU "
            "with 13a on unsplit text treats whole clauses as words (3.78 instead of 25.70 on one published "
            "output set). Leave `char_level` unset (character-level scoring) for this language."
        )
    return language, CONVENTIONS[convention], char_level


def _scored_texts(
    predictions: Sequence[str], references: list[list[str]], spec: BleuConvention, char_level: bool
) -> tuple[list[str], list[list[str]]]:
    """The texts every score sees: with the convention's `" ."` and, for character-level scoring, split into
    space-separated characters."""

    def prepare(text: str) -> str:
        text = text + " ." if spec.append_period else text
        return _split_characters(text) if char_level else text

    return [prepare(text) for text in predictions], [[prepare(text) for text in texts] for texts in references]


def compute_translation_metrics(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    language: str | None = None,
    convention: str | None = None,
    dataset: str | None = None,
    char_level: bool | None = None,
) -> dict[str, Any]:
    """Corpus BLEU-1..4, sentence-averaged ROUGE-L (beta 1.2) and chrF, under a named convention.

    Args:
        predictions (`Sequence[str]`): one generated translation per sample (beam search output, decoded).
        references (`Sequence[str]` or `Sequence[Sequence[str]]`): the dataset's raw reference text per sample,
            same order; or several reference texts per sample (a list each; the number may vary between samples).
            BLEU and chrF then use sacrebleu's multi-reference scoring; ROUGE-L takes, per sample, the largest
            precision and the largest recall over its references (the COCO caption evaluation's rule).
        language (`str`, *optional*): target language code (``"de"``, ``"zh"``, ``"zh_CN"``, ...). Chinese is
            scored on characters. Taken from `dataset` when not given.
        convention (`str`, *optional*): ``"plain"``, ``"phoenix"`` or ``"slrt"`` (see the module docstring).
            Default: the `dataset`'s convention, else ``"phoenix"`` for German and ``"plain"`` otherwise.
        dataset (`str`, *optional*): ``"phoenix14t"`` or ``"csl-daily"``; fills in `language` and `convention`.
        char_level (`bool`, *optional*): score characters instead of whitespace-separated words. Default: True
            for Chinese, False otherwise. Word-level scoring of Chinese is refused (13a on unsplit Chinese is
            meaningless).

    Returns:
        `dict[str, Any]`: ``bleu1``..``bleu4``, ``rouge_l`` and ``chrf`` (0-100 floats); ``signature`` (the
        sacrebleu BLEU signature; BLEU-n differ only in their maximum n-gram order), ``chrf_signature``,
        ``rouge_l_signature``; ``convention``, ``convention_description``, ``language``, ``unit``
        (``"word"``/``"character"``), ``append_period``, ``num_samples``; and ``warnings``, a list of
        sentences about numbers that are 0 (or otherwise degenerate) for a structural reason rather than
        because of translation quality.

    Example:

    ```python
    >>> from beyondgloss.metrics import compute_translation_metrics
    >>> scores = compute_translation_metrics(["am tag regen"], ["am tag regen im norden"], dataset="phoenix14t")
    >>> scores["convention"], scores["unit"]
    ('phoenix', 'word')
    ```
    """
    references = _reference_lists(predictions, references)
    language, spec, char_level = _resolve_convention(language, convention, dataset, char_level)
    sacrebleu_metrics = require("sacrebleu", "Scoring translations").metrics
    hypotheses, targets = _scored_texts(predictions, references, spec, char_level)
    tokenize = "none" if char_level else spec.tokenize
    streams = _reference_streams(targets)

    result: dict[str, Any] = {}
    bleu = None
    for order in range(1, MAX_BLEU_ORDER + 1):
        bleu = sacrebleu_metrics.BLEU(
            tokenize=tokenize,
            smooth_method=spec.smooth_method,
            smooth_value=spec.smooth_value,
            effective_order=spec.effective_order,
            max_ngram_order=order,
        )
        result[f"bleu{order}"] = float(bleu.corpus_score(hypotheses, streams).score)
    bleu_tokenizer = bleu.tokenizer

    # ROUGE-L on the same units BLEU sees, but without 13a's punctuation splitting: whitespace words keep
    # every Unicode letter ("überall" stays "überall"), characters are already space-separated.
    rouge_values = [rouge_l_multi(hyp.split(), [ref.split() for ref in refs]) for hyp, refs in zip(hypotheses, targets)]
    result["rouge_l"] = 100.0 * sum(rouge_values) / len(rouge_values) if rouge_values else 0.0

    chrf = sacrebleu_metrics.CHRF()
    result["chrf"] = float(chrf.corpus_score(hypotheses, streams).score)

    unit = "character" if char_level else "word"
    result.update(
        signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        rouge_l_signature=f"rouge-l|beta:{ROUGE_BETA}|unit:{unit}|avg:sentence",
        convention=spec.name,
        convention_description=spec.description,
        language=language,
        unit=unit,
        append_period=spec.append_period,
        num_samples=len(hypotheses),
        warnings=_structural_warnings(predictions, references, hypotheses, bleu_tokenizer, spec, unit),
    )
    for message in result["warnings"]:
        logger.warning(message)
    return result


def _structural_warnings(
    predictions: Sequence[str],
    references: list[list[str]],
    hypotheses: list[str],
    bleu_tokenizer,
    spec: BleuConvention,
    unit: str,
) -> list[str]:
    """Explains numbers that follow from the shape of the data rather than from translation quality.

    `predictions` / `references` are the texts as given (emptiness is judged there, before a convention's
    `" ."`); `hypotheses` are the texts BLEU scores (lengths are judged there).
    """
    messages = []
    for name, texts in (("hypotheses", predictions), ("references", [text for refs in references for text in refs])):
        empty = sum(1 for text in texts if not text.strip())
        if empty:
            messages.append(f"{empty} of {len(texts)} {name} are empty.")
    longest = max(len(bleu_tokenizer(text.rstrip()).split()) for text in hypotheses)
    if longest == 0:
        messages.append("Every hypothesis is empty, so every BLEU score is 0.")
    elif longest < MAX_BLEU_ORDER:
        if spec.effective_order:
            messages.append(
                f"Every hypothesis is shorter than {MAX_BLEU_ORDER} {unit}s (longest: {longest}); with effective "
                f"order ({spec.name} convention) BLEU-n for n > {longest} equals BLEU-{longest} (the missing "
                "orders are left out), not a measured higher-order score."
            )
        else:
            zero = ", ".join(f"BLEU-{order}" for order in range(longest + 1, MAX_BLEU_ORDER + 1))
            messages.append(
                f"Every hypothesis is shorter than {MAX_BLEU_ORDER} {unit}s (longest: {longest}), so corpus {zero} "
                f"{'is' if longest == MAX_BLEU_ORDER - 1 else 'are'} 0 by construction (no hypothesis has "
                "n-grams of that order), not a measured score."
            )
    return messages


"""`evaluate` metric: sign language translation scores (BLEU-1..4, ROUGE-L, chrF) under the field's conventions.

Load it offline from the installed package::

    import evaluate
    from beyondgloss.metrics import METRIC_PATH

    metric = evaluate.load(METRIC_PATH)
    metric.compute(predictions=hypotheses, references=references, dataset="phoenix14t")

The computation is `beyondgloss.metrics.compute_translation_metrics`; this file only adapts it to
`evaluate.Metric` (evaluate's import scanner wants one import per line).
"""

import datasets
import evaluate

from beyondgloss.metrics.scoring import compute_translation_metrics

__all__ = ["SignTranslation"]

_CITATION = """\
@inproceedings{asasi2025beyondgloss,
  title={BeyondGloss: A Hand-Centric Framework for Gloss-Free Sign Language Translation},
  author={Asasi, Sobhan and Lakhal, Mohamed Ilyes and Mercanoglu Sincan, Ozge and Bowden, Richard},
  booktitle={British Machine Vision Conference (BMVC)},
  year={2025}
}
@inproceedings{post-2018-call,
  title={A Call for Clarity in Reporting {BLEU} Scores},
  author={Post, Matt},
  booktitle={Proceedings of the Third Conference on Machine Translation},
  year={2018}
}
"""

_DESCRIPTION = """\
Corpus BLEU-1..4 (sacrebleu), sentence-averaged ROUGE-L F (beta 1.2, Unicode-correct) and chrF for sign
language translation, under a named convention: "plain" (sacrebleu defaults), "phoenix" (GFSLT-VLP /
BeyondGloss: " ." appended to every hypothesis and reference; default for German) or "slrt" (SLRT / JoeyNMT:
tokenize none, floor smoothing 0, effective order). Chinese is scored on characters. The result records
the convention, the scoring unit and the sacrebleu signatures, and warns about structural zeros.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[str]`): generated translations.
    references (`list[str]` or `list[list[str]]`): one raw reference text per prediction, or a list of them.
    language (`str`, *optional*): target language code ("de", "zh", "zh_CN", ...).
    convention (`str`, *optional*): "plain", "phoenix" or "slrt".
    dataset (`str`, *optional*): "phoenix14t" or "csl-daily" (fills in language and convention).
    char_level (`bool`, *optional*): score characters instead of words.
Returns:
    bleu1..bleu4, rouge_l, chrf (0-100), signature, chrf_signature, rouge_l_signature, convention,
    convention_description, language, unit, append_period, num_samples, warnings.
Examples:
    >>> metric = evaluate.load(METRIC_PATH)
    >>> metric.compute(predictions=["am tag regen"], references=["am tag regen"], convention="plain")["bleu1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SignTranslation(evaluate.Metric):
    """Sign language translation scores; see `beyondgloss.metrics.compute_translation_metrics`."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # One reference string per prediction, or a list of them (as evaluate's sacrebleu metric).
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://arxiv.org/abs/2507.23575", "https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, language=None, convention=None, dataset=None, char_level=None):
        return compute_translation_metrics(
            predictions,
            references,
            language=language,
            convention=convention,
            dataset=dataset,
            char_level=char_level,
        )

"""Tests for beyondgloss.metrics: hand-computed values, parity with sacrebleu, conventions, Trainer hook."""

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from sacrebleu.metrics import BLEU, CHRF  # noqa: E402

from beyondgloss.metrics import (  # noqa: E402
    CONVENTIONS,
    METRIC_PATH,
    compute_translation_metrics,
    dataset_defaults,
    make_compute_metrics,
    rouge_l,
    rouge_l_multi,
)


def coco_rouge_f(lcs: int, hyp_len: int, ref_len: int, beta: float = 1.2) -> float:
    precision, recall = lcs / hyp_len, lcs / ref_len
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def test_bleu1_and_rouge_l_match_hand_counts():
    hypotheses = ["der wind weht schwach aus west", "morgen regen im süden"]
    references = ["der wind weht mäßig aus west", "morgen überall schnee"]
    scores = compute_translation_metrics(hypotheses, references, convention="plain")
    # Unigram matches: 5 of 6 (all but "schwach") and 1 of 4 ("morgen"); hypothesis length 10 > reference
    # length 9, so no brevity penalty.
    assert scores["bleu1"] == pytest.approx(100 * (5 + 1) / (6 + 4))
    # LCS: "der wind weht aus west" (5 of 6 / 6) and "morgen" (1 of 4 / 3).
    expected_rouge = 100 * (coco_rouge_f(5, 6, 6) + coco_rouge_f(1, 4, 3)) / 2
    assert scores["rouge_l"] == pytest.approx(expected_rouge)
    assert scores["num_samples"] == 2
    assert scores["convention"] == "plain" and scores["unit"] == "word" and scores["append_period"] is False


def test_brevity_penalty_by_hand():
    scores = compute_translation_metrics(["es regnet"], ["es regnet heute stark"], convention="plain")
    assert scores["bleu1"] == pytest.approx(100 * math.exp(1 - 4 / 2))


@pytest.mark.parametrize(
    ("convention", "bleu_kwargs"),
    [
        ("plain", {}),
        ("slrt", {"tokenize": "none", "smooth_method": "floor", "smooth_value": 0.0, "effective_order": True}),
    ],
)
def test_bleu_and_chrf_equal_sacrebleu_called_directly(convention, bleu_kwargs):
    hypotheses = ["im norden regnet es, im süden scheint die sonne.", "am abend frost", ""]
    references = ["im norden regen, im süden sonne.", "in der nacht frost möglich", "morgen mild"]
    scores = compute_translation_metrics(hypotheses, references, language="de", convention=convention)
    for order in range(1, 5):
        direct = BLEU(max_ngram_order=order, **bleu_kwargs)
        assert scores[f"bleu{order}"] == pytest.approx(direct.corpus_score(hypotheses, [references]).score)
    assert scores["signature"] == str(direct.get_signature())
    assert scores["chrf"] == pytest.approx(CHRF().corpus_score(hypotheses, [references]).score)
    assert scores["convention"] == convention


def test_slrt_signature_records_its_settings():
    scores = compute_translation_metrics(["a b c d e"], ["a b c d f"], convention="slrt")
    assert "tok:none" in scores["signature"] and "smooth:floor[0.00]" in scores["signature"]
    assert "eff:yes" in scores["signature"]


def test_phoenix_period_convention_reproduces_documented_change():
    # One sentence whose BLEU-4 is 55.55 as it is and 53.48 with " ." appended to both sides (docs/metrics.md).
    hypothesis = ["am tag wechselhaft mit schauern im süden gewitter vereinzelt möglich"]
    reference = ["am tag wechselhaft mit schauern im norden auch gewitter möglich"]
    plain = compute_translation_metrics(hypothesis, reference, convention="plain")
    phoenix = compute_translation_metrics(hypothesis, reference, convention="phoenix")
    assert round(plain["bleu4"], 2) == 55.55
    assert round(phoenix["bleu4"], 2) == 53.48
    suffixed = BLEU().corpus_score([hypothesis[0] + " ."], [[reference[0] + " ."]]).score
    assert phoenix["bleu4"] == pytest.approx(suffixed)
    assert phoenix["append_period"] is True and phoenix["convention"] == "phoenix"


def test_phoenix_is_the_default_for_german_and_phoenix14t():
    hypothesis, reference = ["es bleibt trocken"], ["es bleibt meist trocken"]
    by_language = compute_translation_metrics(hypothesis, reference, language="de")
    by_dataset = compute_translation_metrics(hypothesis, reference, dataset="Phoenix-2014-T")
    assert by_language["convention"] == by_dataset["convention"] == "phoenix"
    assert by_dataset["language"] == "de"
    assert compute_translation_metrics(hypothesis, reference, language="en")["convention"] == "plain"
    assert dataset_defaults("csl_daily") == {"language": "zh", "convention": "plain"}


def test_rouge_l_keeps_umlauts():
    # rouge_score's default tokenizer would turn "überall" into "berall" and "müde" into "mde".
    assert compute_translation_metrics(["überall müde"], ["überall müde"], convention="plain")["rouge_l"] == 100.0
    assert compute_translation_metrics(["berall mde"], ["überall müde"], convention="plain")["rouge_l"] == 0.0
    scores = compute_translation_metrics(["überall schnee"], ["überall regen und schnee"], convention="plain")
    assert scores["rouge_l"] == pytest.approx(100 * coco_rouge_f(2, 2, 4))


def test_rouge_l_function_on_empty_and_disjoint_inputs():
    assert rouge_l([], ["a"]) == 0.0
    assert rouge_l(["a"], []) == 0.0
    assert rouge_l(["x", "y"], ["a", "b"]) == 0.0
    assert rouge_l(list("abcbdab"), list("bdcaba")) == pytest.approx(coco_rouge_f(4, 7, 6))


def test_chinese_is_scored_on_characters():
    hypotheses = ["今天天气很好，我们去公园。", "他在学校学习。"]
    references = ["今天天气不错，我们去公园散步。", "他在学校读书。"]
    scores = compute_translation_metrics(hypotheses, references, language="zh_CN")
    for order in range(1, 5):
        zh_tokenized = BLEU(max_ngram_order=order, tokenize="zh").corpus_score(hypotheses, [references]).score
        assert scores[f"bleu{order}"] == pytest.approx(zh_tokenized)
    assert scores["unit"] == "character" and "tok:none" in scores["signature"]
    # 13a on unsplit Chinese sees each clause as one word and scores far lower.
    assert BLEU(tokenize="13a").corpus_score(hypotheses, [references]).score < scores["bleu4"] / 2
    # Character ROUGE-L: 他在学校 and 。 match (5 of 7 / 7) in the second pair.
    second = compute_translation_metrics(hypotheses[1:], references[1:], language="zh")
    assert second["rouge_l"] == pytest.approx(100 * coco_rouge_f(5, 7, 7))
    with pytest.raises(ValueError, match="written without spaces"):
        compute_translation_metrics(hypotheses, references, language="zh", char_level=False)


def test_all_short_hypotheses_warn_that_bleu4_is_zero_by_construction():
    scores = compute_translation_metrics(["es regnet", "sonne"], ["es regnet viel", "sonne pur"], convention="plain")
    assert scores["bleu4"] == 0.0
    assert any("BLEU-3, BLEU-4 are 0 by construction" in message for message in scores["warnings"])
    slrt = compute_translation_metrics(["es regnet", "sonne"], ["es regnet viel", "sonne pur"], convention="slrt")
    assert slrt["bleu4"] == pytest.approx(slrt["bleu2"])
    assert any("equals BLEU-2" in message for message in slrt["warnings"])
    long_enough = compute_translation_metrics(["es regnet sehr viel"], ["es regnet viel"], convention="plain")
    assert not any("shorter than" in message for message in long_enough["warnings"])


def test_empty_hypotheses_do_not_crash():
    scores = compute_translation_metrics(["", "es schneit"], ["es regnet", "es schneit"], convention="phoenix")
    assert 0.0 < scores["bleu1"] < 100.0
    assert "1 of 2 hypotheses are empty." in scores["warnings"]
    nothing = compute_translation_metrics(["", " "], ["es regnet", "es schneit"], convention="plain")
    assert nothing["bleu1"] == nothing["bleu4"] == nothing["rouge_l"] == nothing["chrf"] == 0.0
    assert "Every hypothesis is empty, so every BLEU score is 0." in nothing["warnings"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_translation_metrics(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"references\[1\] is a NoneType"):
        compute_translation_metrics(["a", "b"], ["a", None])
    with pytest.raises(TypeError, match="not a single string"):
        compute_translation_metrics("a b", "a b")
    with pytest.raises(ValueError, match="Unknown scoring convention 'bleu'"):
        compute_translation_metrics(["a"], ["a"], convention="bleu")
    with pytest.raises(ValueError, match="nothing to score"):
        compute_translation_metrics([], [])
    with pytest.raises(ValueError, match="No scoring defaults for dataset 'how2sign'"):
        compute_translation_metrics(["a"], ["a"], dataset="how2sign")


def test_evaluate_load_of_the_metric_script_works_offline(tmp_path):
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(METRIC_PATH, cache_dir=str(tmp_path))
    hypotheses, references = ["am tag regen im norden"], ["am tag regen im süden"]
    result = metric.compute(predictions=hypotheses, references=references, dataset="phoenix14t")
    direct = compute_translation_metrics(hypotheses, references, dataset="phoenix14t")
    assert result == direct
    assert result["convention"] == "phoenix"


@pytest.fixture
def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", "de_DE", "am", "tag", "regen", "im", "norden", "süden", "überall", "schnee"]
    backend = Tokenizer(models.WordLevel(vocab={word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # mBART-style targets: tokens, </s>, language code.
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s> de_DE", special_tokens=[("</s>", 1), ("de_DE", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["de_DE"],
    )


def padded(rows, pad_value):
    width = max(len(row) for row in rows)
    return np.array([row + [pad_value] * (width - len(row)) for row in rows], dtype=np.int64)


def test_make_compute_metrics_decodes_padded_ids(word_tokenizer):
    from transformers import EvalPrediction

    hypotheses = ["am tag regen im norden", "überall schnee"]
    references = ["am tag regen im süden", "überall regen"]
    # Generated ids start with the decoder start token and may be padded with pad or -100 across processes.
    generated = [[3] + word_tokenizer(text).input_ids for text in hypotheses]
    predictions = padded(generated, -100)
    predictions[1, len(generated[1])] = word_tokenizer.pad_token_id
    labels = padded([word_tokenizer(text).input_ids for text in references], -100)

    compute_metrics = make_compute_metrics(word_tokenizer, dataset="phoenix14t")
    metrics = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    expected = compute_translation_metrics(hypotheses, references, dataset="phoenix14t")
    assert compute_metrics.last_predictions == hypotheses
    numeric_keys = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf", "num_samples")
    assert metrics == {key: expected[key] for key in numeric_keys}
    assert compute_metrics.last_result["signature"] == expected["signature"]


def test_make_compute_metrics_scores_raw_references_when_given(word_tokenizer):
    from transformers import EvalPrediction

    # "kalt" is not in the vocabulary: a tokenizer round trip of the label drops it and inflates the score.
    raw_references = ["am tag regen kalt"]
    predictions = padded([[3] + word_tokenizer("am tag regen").input_ids], -100)
    labels = padded([word_tokenizer(raw_references[0]).input_ids], -100)
    prediction = EvalPrediction(predictions=predictions, label_ids=labels)

    from_labels = make_compute_metrics(word_tokenizer, convention="plain")(prediction)
    from_raw = make_compute_metrics(word_tokenizer, convention="plain", references=raw_references)(prediction)
    assert from_labels["bleu1"] == pytest.approx(100.0)
    direct = compute_translation_metrics(["am tag regen"], raw_references, convention="plain")
    assert from_raw["bleu1"] == pytest.approx(direct["bleu1"])
    assert from_raw["bleu1"] < 100.0

    with pytest.raises(ValueError, match="2 reference texts but the evaluation produced 1"):
        make_compute_metrics(word_tokenizer, references=["a", "b"])(prediction)
    logits = np.zeros((1, 4, len(word_tokenizer)), dtype=np.float32)
    with pytest.raises(ValueError, match="predict_with_generate=True"):
        make_compute_metrics(word_tokenizer)(EvalPrediction(predictions=logits, label_ids=labels))


REPO = Path(__file__).resolve().parent.parent


def test_the_documented_conventions_are_the_ones_the_code_applies():
    # docs/metrics.md is what a reader trusts; a convention changed in the code must change there too.
    rows = {}
    for line in (REPO / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(\w+)` \| (.*?) \| (.*?) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    assert set(rows) == set(CONVENTIONS)
    for name, convention in CONVENTIONS.items():
        texts, settings = rows[name]
        assert f"tokenize `{convention.tokenize}`" in settings, name
        assert f"smoothing `{convention.smooth_method}`" in settings, name
        assert ("no effective order" not in settings) == convention.effective_order, name
        assert ('`" ."` appended' in texts) == convention.append_period, name


def test_citations_of_docs_in_these_modules_resolve():
    # Code cites only files in the repository, by section name: `docs/method.md, "Training settings"`.
    cited = [
        *sorted((REPO / "beyondgloss" / "metrics").glob("*.py")),
        *sorted((REPO / "beyondgloss" / "descriptor").glob("*.py")),
        *(REPO / "beyondgloss" / "training" / name for name in ("presets.py", "trainers.py", "arguments.py")),
        REPO / "scripts" / "phoenix14t.sh",
        REPO / "scripts" / "csl_daily.sh",
    ]
    found = 0
    for path in cited:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"spec §|METRICS\.md|official_code_spec|\.\./shared", text), path
        for document, section in re.findall(r'docs/([\w-]+\.md)(?:, "([^"]+)")?', text):
            found += 1
            doc = REPO / "docs" / document
            assert doc.is_file(), f"{path.name} cites docs/{document}, which does not exist"
            if section:
                headings = re.findall(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
                assert section.lower() in (heading.lower() for heading in headings), (path.name, document, section)
    assert found >= 10


def test_several_references_per_prediction():
    hypotheses = ["the cat sat on the mat", "it is raining in the north today"]
    first = ["the cat is on the mat", "today it rains in the north"]
    second = ["there is a cat on the mat", "it is raining in the north"]
    multi = compute_translation_metrics(hypotheses, [list(pair) for pair in zip(first, second)], convention="plain")
    # BLEU and chrF: sacrebleu's multi-reference scores, reference streams as sacrebleu takes them.
    for order in range(1, 5):
        expected = BLEU(max_ngram_order=order).corpus_score(hypotheses, [first, second]).score
        assert multi[f"bleu{order}"] == pytest.approx(expected, abs=1e-9)
    assert multi["chrf"] == pytest.approx(CHRF().corpus_score(hypotheses, [first, second]).score, abs=1e-9)
    assert "nrefs:2" in multi["signature"]
    # ROUGE-L by hand (COCO's rule: the best precision and the best recall over the references). Sample 1: LCS 5
    # of 6 hypothesis words with the first reference (6 words), 4 with the second (7 words): P = R = 5/6. Sample 2:
    # LCS 4 with the first (6 words), 6 with the second (6 words): P = 6/7, R = 1.
    def f(p, r, beta=1.2):
        return (1 + beta**2) * p * r / (r + beta**2 * p)

    assert rouge_l_multi("the cat sat on the mat".split(), ["the cat is on the mat".split(),
                                                            "there is a cat on the mat".split()]) == pytest.approx(
        f(5 / 6, 5 / 6))
    sample2 = rouge_l_multi("it is raining in the north today".split(),
                            ["today it rains in the north".split(), "it is raining in the north".split()])
    assert sample2 == pytest.approx(f(6 / 7, 1.0))
    assert multi["rouge_l"] == pytest.approx(100 * (f(5 / 6, 5 / 6) + f(6 / 7, 1.0)) / 2)
    # Precision and recall may come from different references: "a" gives R = 1 (P = 1/2), "abcd" gives P = 1
    # (R = 1/2), so F = 1, above either reference's own F.
    assert rouge_l_multi(list("ab"), [list("a"), list("abcd")]) == pytest.approx(1.0)
    assert max(rouge_l(list("ab"), list("a")), rouge_l(list("ab"), list("abcd"))) < 0.9
    # One reference in a list is the single-reference score; a varying number of references per sample works.
    single = compute_translation_metrics(hypotheses, first, convention="phoenix")
    listed = compute_translation_metrics(hypotheses, [[text] for text in first], convention="phoenix")
    assert single == listed
    varying = compute_translation_metrics(hypotheses, [[first[0], second[0]], second[1]], convention="plain")
    expected = BLEU().corpus_score(hypotheses, [[first[0], second[1]], [second[0], None]]).score
    assert varying["bleu4"] == pytest.approx(expected, abs=1e-9)
    assert "nrefs:var" in varying["signature"]
    with pytest.raises(TypeError, match=r"references\[1\] is an empty list"):
        compute_translation_metrics(hypotheses, [["a"], []])
    with pytest.raises(TypeError, match=r"references\[0\]\[1\] is a int"):
        compute_translation_metrics(hypotheses, [["a", 3], ["b"]])


def test_several_references_through_evaluate_and_the_trainer_metric(tmp_path, word_tokenizer):
    evaluate = pytest.importorskip("evaluate")
    from transformers import EvalPrediction

    hypotheses = ["am tag regen im norden", "schnee überall"]
    references = [["am tag regen im süden", "regen im norden"], ["schnee im süden"]]
    direct = compute_translation_metrics(hypotheses, references, dataset="phoenix14t")
    metric = evaluate.load(METRIC_PATH, cache_dir=str(tmp_path))
    assert metric.compute(predictions=hypotheses, references=references, dataset="phoenix14t") == direct
    ids = padded([word_tokenizer(text)["input_ids"] for text in hypotheses], -100)
    compute = make_compute_metrics(word_tokenizer, dataset="phoenix14t", references=references)
    scores = compute(EvalPrediction(predictions=ids, label_ids=ids))
    assert scores["bleu4"] == direct["bleu4"] and scores["rouge_l"] == direct["rouge_l"]

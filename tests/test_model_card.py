"""Model cards: card data, offline rendering from the template, and the Trainer callback."""

import pytest
import yaml
from huggingface_hub import ModelCard
from transformers import TrainerControl, TrainerState, TrainingArguments

from beyondgloss.model_card import (
    CITATION,
    EvaluationResult,
    SignTranslationCardData,
    render_model_card,
)
from beyondgloss.training.callbacks import ModelCardCallback

from .test_pipeline import SENTENCES, make_translator

SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


@pytest.fixture(scope="module")
def translator():
    return make_translator()


def test_card_says_what_the_model_is_for(translator):
    card_data = SignTranslationCardData(
        model_name="phoenix-beyondgloss",
        dataset_name="Phoenix14T",
        license="cc-by-nc-sa-4.0",
        results=[{"metric": "bleu4", "value": 21.437, "convention": "phoenix", "signature": SIGNATURE},
                 EvaluationResult("rouge_l", 42.5, split="validation")],
        training_settings={"learning_rate": 3e-4},
    ).fill_from_model(translator.model, translator.processor)
    card = render_model_card(card_data)
    text = str(card)
    # Dataset, sign language and domain filled in from the dataset name; language from the processor.
    assert "RWTH-PHOENIX-Weather 2014 T" in text and "German Sign Language (DGS)" in text
    assert "weather forecasts" in text and "does not translate American Sign Language (ASL)" in text
    # The score with its convention and its signature (pipes escaped so the table stays a table).
    assert "| test | BLEU-4 | 21.44 | phoenix | `" + SIGNATURE.replace("|", "\\|") + "` |" in text
    assert "| validation | ROUGE-L | 42.50 | not recorded | not recorded |" in text
    assert "| learning_rate | 0.0003 |" in text and "max_frames: 8" in text
    assert CITATION in text and "2507.23575" in text
    # The YAML header parses back into the Hub's metadata.
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["language"] == ["de"] and metadata["license"] == "cc-by-nc-sa-4.0"
    assert metadata["pipeline_tag"] == "video-text-to-text" and metadata["datasets"] == ["phoenix14t"]
    assert metadata["metrics"] == ["bleu", "rouge"]
    results = metadata["model-index"][0]["results"]
    assert results[0]["metrics"][0] == {"type": "bleu", "value": 21.44, "name": "BLEU-4 (phoenix convention)",
                                        "config": "phoenix"}
    assert results[0]["dataset"]["split"] == "test"
    assert ModelCard(text).data.to_dict()["language"] == ["de"]


def test_pretraining_card_and_unknown_dataset():
    text = str(render_model_card(SignTranslationCardData(model_name="m", stage="pretraining", dataset_name="my set")))
    assert "stage 1" in text and "It does not translate by itself" in text
    assert "No scores recorded." in text and "my set" in text
    assert "language:" not in text  # unknown: left out rather than guessed


def test_bad_card_data():
    with pytest.raises(ValueError, match="bleu5"):
        EvaluationResult("bleu5", 1.0)
    with pytest.raises(ValueError, match="stage='finetune'"):
        SignTranslationCardData(stage="finetune")
    with pytest.raises(ValueError, match="model_name"):
        render_model_card(SignTranslationCardData())


def test_callback_writes_the_card_at_train_end(translator, tmp_path):
    class Scorer:  # what TranslationComputeMetrics keeps after a run
        last_result = {"convention": "phoenix", "signature": SIGNATURE, "chrf_signature": "chrF2|nc:6"}

    callback = ModelCardCallback(SignTranslationCardData(dataset_name="csl-daily"), compute_metrics=Scorer())
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, report_to=[], use_cpu=True)
    state = TrainerState(global_step=120, epoch=3.0, log_history=[{"loss": 2.0}, {"train_runtime": 61.23}])
    control = TrainerControl()
    callback.on_evaluate(args, state, control, metrics={"eval_bleu4": 12.3, "eval_chrf": 30.1, "eval_loss": 1.5})
    assert not (tmp_path / "README.md").exists()
    callback.on_train_end(args, state, control, model=translator.model, processing_class=translator.processor)
    text = (tmp_path / "README.md").read_text()
    assert "CSL-Daily" in text and "Chinese Sign Language (CSL)" in text
    assert "| validation | BLEU-4 | 12.30 | phoenix |" in text and "chrF2\\|nc:6" in text
    assert "eval_loss" not in text and "| validation | chrF | 30.10 |" in text
    for row in ("| learning_rate | 0.001 |", "| total_train_batch_size | 8 |", "| steps | 120 |",
                "| train_runtime_seconds | 61.2 |"):
        assert row in text, row
    assert "BeyondGlossForSignTranslation" in text
    assert f"# {tmp_path.name}" in text  # the output folder names the model when no name is given

    (tmp_path / "README.md").unlink()
    callback.on_train_end(args, TrainerState(is_world_process_zero=False), control, model=translator.model)
    assert not (tmp_path / "README.md").exists()  # only the main process writes


def test_metadata_defaults_and_language_from_the_tokenizer(translator):
    from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
    from beyondgloss.data.tokenizer_training import train_sign_tokenizer

    # Phoenix14T with English targets: the language is the tokenizer's target, not the dataset's country.
    english = BeyondGlossProcessor(translator.processor.video_processor,
                                   train_sign_tokenizer(SENTENCES, language="en_XX"), target_language="en_XX")
    model = translator.model
    saved_names = model.config.vision_config._name_or_path, model.config.text_config._name_or_path
    model.config.vision_config._name_or_path = "facebook/dinov2-small"  # as from_backbones leaves them
    model.config.text_config._name_or_path = "facebook/mbart-large-cc25"
    try:
        card_data = SignTranslationCardData(model_name="m", dataset_name="phoenix14t").fill_from_model(model, english)
    finally:
        model.config.vision_config._name_or_path, model.config.text_config._name_or_path = saved_names
    text = str(render_model_card(card_data))
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["language"] == ["en"]
    assert metadata["pipeline_tag"] == "video-text-to-text"
    assert metadata["license"] == "unknown" and "License: not recorded" in text
    assert metadata["datasets"] == ["phoenix14t"]
    assert metadata["base_model"] == ["facebook/dinov2-small", "facebook/mbart-large-cc25"]
    # Without a processor nothing guesses the language; the Trainer callback's tokenizer gives it.
    bare = SignTranslationCardData(model_name="m", dataset_name="phoenix14t").fill_from_model(model)
    assert bare.language is None and bare.base_model is None  # a model built from configs has no Hub source
    assert SignTranslationCardData().fill_from_model(processor=english.tokenizer).language == "en"
    # What beyondgloss generates itself has a known license; a stage-1 encoder is a feature extractor.
    synth = yaml.safe_load(str(render_model_card(SignTranslationCardData(
        model_name="m", dataset_name="SynthSign", stage="pretraining"))).split("---")[1])
    assert synth["license"] == "mit" and synth["pipeline_tag"] == "feature-extraction"
    assert synth["datasets"] == ["synthsign"]
    assert "datasets" not in yaml.safe_load(str(render_model_card(
        SignTranslationCardData(model_name="m", dataset_name="my set"))).split("---")[1])

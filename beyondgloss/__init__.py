"""beyondgloss: gloss-free sign language translation (BeyondGloss, BMVC 2025) for the Hugging Face ecosystem.

`import beyondgloss` registers the configuration, the models, the processors and the "sign-translation"
pipeline with transformers' Auto classes. It imports no video decoder, metric or trainer; those load on
first use of their names.
"""

import importlib

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSeq2SeqLM,
    AutoProcessor,
)
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

from .checkpointing import SAVE_HOOKS
from .configuration_beyondgloss import BeyondGlossConfig
from .modeling_beyondgloss import (
    BeyondGlossForContrastivePretraining,
    BeyondGlossForSignTranslation,
    BeyondGlossModel,
    BeyondGlossModelOutput,
    BeyondGlossPretrainingOutput,
    BeyondGlossPreTrainedModel,
)
from .pipeline_sign_translation import register_pipeline
from .processing_beyondgloss import BeyondGlossProcessor
from .video_processing_beyondgloss import BeyondGlossVideoProcessor

__version__ = "0.1.0"

# Names loaded on first use: heavier modules (video decoding, datasets, metrics, training).
_LAZY = {
    "load_sign_dataset": "beyondgloss.data",
    "FeatureStore": "beyondgloss.data.feature_store",
    "train_sign_tokenizer": "beyondgloss.data",
    "read_video_frames": "beyondgloss.video_io",
    "count_frames": "beyondgloss.video_io",
    "video_fps": "beyondgloss.video_io",
    "VideoReadError": "beyondgloss.video_io",
    "convert_reference_checkpoint": "beyondgloss.convert",
    "trim_mbart": "beyondgloss.convert",
    "SignTranslationPipeline": "beyondgloss.pipeline_sign_translation",
    "SignTranslationInputError": "beyondgloss.pipeline_sign_translation",
    "save_for_hub": "beyondgloss.hub",
    "push_to_hub": "beyondgloss.hub",
    "SignTranslationCardData": "beyondgloss.model_card",
    "ModelCardCallback": "beyondgloss.training",
    "generate_synthsign": "beyondgloss.data",
    "PretrainingCollator": "beyondgloss.data",
    "TranslationCollator": "beyondgloss.data",
    "BeyondGlossPretrainingTrainer": "beyondgloss.training",
    "BeyondGlossTranslationTrainer": "beyondgloss.training",
    "pretraining_arguments": "beyondgloss.training",
    "translation_arguments": "beyondgloss.training",
    "compute_translation_metrics": "beyondgloss.metrics",
    "make_compute_metrics": "beyondgloss.metrics",
    "METRIC_PATH": "beyondgloss.metrics",
}

__all__ = [
    "BeyondGlossConfig",
    "BeyondGlossModel",
    "BeyondGlossModelOutput",
    "BeyondGlossPretrainingOutput",
    "BeyondGlossPreTrainedModel",
    "BeyondGlossForContrastivePretraining",
    "BeyondGlossForSignTranslation",
    "BeyondGlossVideoProcessor",
    "BeyondGlossProcessor",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'beyondgloss' has no attribute {name!r}")


def _write_default_card(model, folder) -> None:
    # Every saved folder gets a card; one written by a callback or by hand (README.md) is kept.
    if not (folder / "README.md").exists():
        from .model_card import SignTranslationCardData, write_model_card

        write_model_card(SignTranslationCardData(), folder, model=model)


def _register():
    AutoConfig.register(BeyondGlossConfig.model_type, BeyondGlossConfig, exist_ok=True)
    AutoModel.register(BeyondGlossConfig, BeyondGlossModel, exist_ok=True)
    AutoModelForPreTraining.register(BeyondGlossConfig, BeyondGlossForContrastivePretraining, exist_ok=True)
    AutoModelForSeq2SeqLM.register(BeyondGlossConfig, BeyondGlossForSignTranslation, exist_ok=True)
    AutoVideoProcessor.register(BeyondGlossConfig, BeyondGlossVideoProcessor, exist_ok=True)
    AutoProcessor.register(BeyondGlossConfig, BeyondGlossProcessor, exist_ok=True)
    register_pipeline()  # "sign-translation"; video decoding loads on the pipeline's first call
    if _write_default_card not in SAVE_HOOKS:
        SAVE_HOOKS.append(_write_default_card)
    # save_pretrained copies the code files and writes auto_map, so checkpoints load with trust_remote_code=True.
    BeyondGlossConfig.register_for_auto_class()
    BeyondGlossModel.register_for_auto_class("AutoModel")
    BeyondGlossForContrastivePretraining.register_for_auto_class("AutoModelForPreTraining")
    BeyondGlossForSignTranslation.register_for_auto_class("AutoModelForSeq2SeqLM")


_register()

"""Sign language datasets: builders, the `load_sign_dataset` entry point, collators, feature stores, SynthSign,
the HaMeR hand-feature import and the word-level tokenizer trained on a corpus's sentences."""

from ..video_io import list_frame_images
from .builders import BadSampleError, SignDatasetBuilder, SignDatasetConfig
from .collators import PretrainingCollator, SignCollator, TranslationCollator
from .feature_store import FeatureFileError, FeatureStore, MissingFeatureError
from .folder_builders import SignVideoFolderBuilder, SynthSignBuilder
from .hands import HAND_FEATURE_DIM, hand_presence_mask, import_hamer_features, read_hamer_file
from .loading import LANGUAGE_CODES, SIGN_DATASET_BUILDERS, dataset_language_code, language_code, load_sign_dataset
from .official_builders import CSLDailyBuilder, Phoenix14TBuilder
from .synthsign import SYNTHSIGN_HAND_DIM, SYNTHSIGN_LANGUAGE_CODE, SYNTHSIGN_LEXICON, generate_synthsign
from .tokenizer_training import train_sign_tokenizer

__all__ = [
    "BadSampleError",
    "CSLDailyBuilder",
    "FeatureFileError",
    "FeatureStore",
    "HAND_FEATURE_DIM",
    "LANGUAGE_CODES",
    "MissingFeatureError",
    "Phoenix14TBuilder",
    "PretrainingCollator",
    "SIGN_DATASET_BUILDERS",
    "SYNTHSIGN_HAND_DIM",
    "SYNTHSIGN_LANGUAGE_CODE",
    "SYNTHSIGN_LEXICON",
    "SignCollator",
    "SignDatasetBuilder",
    "SignDatasetConfig",
    "SignVideoFolderBuilder",
    "SynthSignBuilder",
    "TranslationCollator",
    "dataset_language_code",
    "generate_synthsign",
    "hand_presence_mask",
    "import_hamer_features",
    "language_code",
    "list_frame_images",
    "load_sign_dataset",
    "read_hamer_file",
    "train_sign_tokenizer",
]

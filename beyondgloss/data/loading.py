"""One entry point for every sign dataset: `load_sign_dataset(name_or_path, data_dir=..., ...)`."""

from pathlib import Path

import datasets

from .feature_store import FeatureStore
from .folder_builders import SignVideoFolderBuilder, SynthSignBuilder
from .how2sign import How2SignBuilder
from .official_builders import CSLDailyBuilder, Phoenix14TBuilder
from .preprocessed import PreprocessedSignDataset

__all__ = ["SIGN_DATASET_BUILDERS", "LANGUAGE_CODES", "load_sign_dataset", "language_code", "dataset_language_code"]

SIGN_DATASET_BUILDERS = {
    "phoenix14t": Phoenix14TBuilder,
    "csl_daily": CSLDailyBuilder,
    "sign_video_folder": SignVideoFolderBuilder,
    "synthsign": SynthSignBuilder,
    "how2sign": How2SignBuilder,
    "preprocessed": PreprocessedSignDataset,  # a folder written by `beyondgloss preprocess`
}
_ALIASES = {"phoenix2014t": "phoenix14t", "phoenix_2014_t": "phoenix14t", "csldaily": "csl_daily",
            "videofolder": "sign_video_folder", "synth_sign": "synthsign"}

# ISO 639-1 language of a dataset -> mBART language code used as the target language token.
LANGUAGE_CODES = {"de": "de_DE", "zh": "zh_CN", "en": "en_XX"}


def language_code(language: str) -> str:
    """The mBART language code for a dataset language ("de" -> "de_DE"); codes pass through unchanged."""
    if "_" in language:
        return language
    if language not in LANGUAGE_CODES:
        raise ValueError(f"no mBART language code known for language {language!r}; known: {sorted(LANGUAGE_CODES)}. "
                         "Pass the code (e.g. 'fr_XX') directly")
    return LANGUAGE_CODES[language]


def dataset_language_code(dataset) -> str:
    """The one mBART language code of a `Dataset` or `DatasetDict` (from its `language` column)."""
    parts = dataset.values() if isinstance(dataset, datasets.DatasetDict) else [dataset]
    languages = set()
    for part in parts:
        languages.update(part.unique("language"))
    if len(languages) != 1:
        raise ValueError(f"the dataset has {len(languages)} languages ({sorted(languages)}); expected exactly one. "
                         "Fill its `language` column, or choose the target language code yourself")
    return language_code(languages.pop())


def load_sign_dataset(name_or_path: str, data_dir=None, cache_dir=None, hand_features=None, descriptions=None,
                      skip_bad_samples: bool = False, rebuild: bool = False, streaming: bool = False,
                      **builder_kwargs) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Builds (or reuses from the cache) a sign language translation dataset.

    Args:
        name_or_path (`str`): "phoenix14t", "csl_daily", "sign_video_folder", "synthsign", or a folder with a
            `metadata.jsonl`/`metadata.csv` (read as a sign video folder).
        data_dir (`str`, *optional*): the dataset's folder (for "synthsign": where to generate or reuse it).
            Defaults to `name_or_path` when that is a folder.
        cache_dir (`str`, *optional*): the `datasets` cache (default: the Hugging Face datasets cache).
        hand_features (`str` or `FeatureStore`, *optional*): per-frame hand features by sample id.
        descriptions (`str` or `FeatureStore`, *optional*): description embeddings by sample id.
        skip_bad_samples (`bool`): leave bad samples out with one warning listing their ids instead of failing.
        rebuild (`bool`): rebuild the Arrow tables even if the cache holds them (e.g. after frame folders changed).
        streaming (`bool`): as `datasets.load_dataset(..., streaming=True)`: no Arrow tables are written; the rows
            are read from the dataset's files as they are iterated (the metadata is still read and checked first).
        builder_kwargs: builder options (`reference_labels`, `frames_dir`, `language`, `label_file`,
            `split_file`; for "synthsign" the generation settings `num_train`, `num_validation`, `num_test`,
            `seed`, `image_size`, `description_dim`, `frames_per_sign`, `num_workers`, `overwrite`).

    Returns:
        `datasets.DatasetDict` with splits among train / validation / test (an `IterableDatasetDict` when
        `streaming=True`); columns are described in `beyondgloss.data.builders`.

    Example:

    ```python
    >>> dataset = load_sign_dataset("synthsign", data_dir="synthsign", num_train=3000, seed=0)
    >>> dataset["train"][0]["text"]
    'yesterday the teacher saw the red house'
    ```
    """
    for option, value in (("skip_bad_samples", skip_bad_samples), ("rebuild", rebuild), ("streaming", streaming)):
        if not isinstance(value, bool):
            raise ValueError(f"{option}={value!r}: pass True or False")
    key = str(name_or_path).lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in SIGN_DATASET_BUILDERS:
        builder_class = SIGN_DATASET_BUILDERS[key]
    elif Path(name_or_path).is_dir():
        builder_class = SignVideoFolderBuilder
        data_dir = data_dir or name_or_path
    else:
        raise ValueError(f"unknown sign dataset {name_or_path!r}: use one of {sorted(SIGN_DATASET_BUILDERS)} or the "
                         "path of a folder with metadata.jsonl / metadata.csv")
    if data_dir is None:
        raise ValueError(f"load_sign_dataset({name_or_path!r}) needs data_dir, the folder holding the dataset")
    for name, store in (("hand_features", hand_features), ("descriptions", descriptions)):
        if store is not None:
            builder_kwargs[name] = str(store.path if isinstance(store, FeatureStore) else store)
    builder = builder_class(data_dir=str(data_dir), cache_dir=cache_dir, skip_bad_samples=skip_bad_samples,
                            **builder_kwargs)
    if streaming:
        return builder.as_streaming_dataset()
    builder.download_and_prepare(download_mode="force_redownload" if rebuild else None)
    return builder.as_dataset()

"""Dataset builders for sign language translation corpora (`datasets.GeneratorBasedBuilder`, used directly).

datasets 5 has no loading scripts, so the builders are classes:

```python
>>> builder = Phoenix14TBuilder(data_dir="PHOENIX-2014-T", cache_dir="cache")
>>> builder.download_and_prepare()
>>> dataset = builder.as_dataset()          # DatasetDict: train, validation, test
```

or, in one call, `beyondgloss.data.load_sign_dataset("phoenix14t", data_dir=...)`.

This module holds what every builder shares (`SignDatasetConfig`, `SignDatasetBuilder`: columns, cache key,
validation, examples); the corpus families have their own modules: `official_builders` (Phoenix14T, CSL-Daily, from
their release layouts) and `folder_builders` (a folder of videos or frame folders with metadata, and SynthSign).

Every builder yields the same columns:

- `id` (`string`): the sample id, which is also the key of the feature stores. For Phoenix14T and CSL-Daily it
  is the reference code's sample name `"<official split>/<video name>"` (e.g. `"dev/01April_2010_..."`), so
  features imported from the reference's files join without renaming; for a video folder it is the
  `id` column of the metadata or the file name without its extension.
- `frames` (`list[string]`, frame image paths in natural order) for frame-folder corpora, or `video`
  (`datasets.Video`, decoded lazily by torchcodec) for video files. A folder holds one or the other.
- `text` (`string`): the spoken-language target sentence, raw (Chinese without spaces; the metrics split
  characters). `gloss` (`string`, space-separated glosses, "" if unknown), `signer` (`string`), `language`
  (`string`, ISO 639-1: "de", "zh", "en"; `beyondgloss.data.language_code` gives the mBART code).
- With a hand-feature store: `hand_features` (`Array2D` (T, hand_dim) float32, one row per video frame)
  and `hand_mask` (T,) float32: the store's hand-presence mask or, when it has none, 0 for all-zero rows (the
  reference's "no hand detected") and 1 elsewhere. With a description store:
  `description_embedding` (description_dim,) float32.

Split names follow the Hugging Face convention: `train`, `validation` (the official `dev`), `test`.
The cache is keyed on the annotation files and the feature stores (names, sizes, times); frame folders
are listed once, so after changing frames rebuild with `load_sign_dataset(..., rebuild=True)`.
Every builder's rows go through one validation layer (`SignDatasetBuilder._check_samples`, its checks in
`beyondgloss.data.validation`):

- Refused whatever `skip_bad_samples` says (a `BadSampleError` naming the rows): two rows with one id (both are
  named), and a file or folder path in the metadata that leaves `data_dir` (absolute, or with `..`). Symlinks
  inside the dataset folder are the owner's choice and are followed.
- Bad samples: `text` that is not a string (a list or dict is an error, never stringified; `gloss`, `signer`,
  `language`, `description` may also be numbers, written as text), an empty sentence, a missing or empty frame
  folder, an entry that is not a regular file (FIFO, device, folder), a corrupt or truncated image (every image
  is opened and verified: PNG checksums, the JPEG end marker, one size for all; the first is decoded) or
  video (opened, first and last frame decoded), a missing, truncated or foreign feature file, hand features of
  another width or length than the frames, description embeddings of another size, NaN or infinite features.
  They stop the build with an error listing every bad id and what is wrong, or, with `skip_bad_samples=True`,
  are left out with one warning listing them.

Frame folders are listed by `beyondgloss.video_io.list_frame_images` (regular image files, hidden and special
files skipped, natural order), the same function the video reader uses. Ids may be in any script and of any
length: feature stores give long ids hashed file names (`beyondgloss.data.feature_store.feature_file_name`).
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from ..video_io import VideoReadError, list_frame_images
from .feature_store import FeatureFileError, FeatureStore, read_feature_file
from .safe_pickle import load_pickle_file
from .validation import (
    BadSampleError,
    RowError,
    entry_problem,
    frame_images_problem,
    path_inside,
    stored_features,
    text_value,
    video_problem,
)

__all__ = [
    "SignDatasetConfig",
    "SignDatasetBuilder",
    "Phoenix14TBuilder",
    "CSLDailyBuilder",
    "SignVideoFolderBuilder",
    "SynthSignBuilder",
    "BadSampleError",
]

# The corpus families have their own modules; their builders are still reachable here, loaded when first asked for
# (a module-level import would be a cycle: they subclass `SignDatasetBuilder`).
_FAMILIES = {"Phoenix14TBuilder": "official_builders", "CSLDailyBuilder": "official_builders",
             "SignVideoFolderBuilder": "folder_builders", "SynthSignBuilder": "folder_builders"}

logger = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "dev": "validation", "val": "validation", "valid": "validation",
                "validation": "validation", "test": "test"}
# How many bad ids an error or warning spells out before summarising the rest.
_LISTED_IDS = 20


def _signature(*paths) -> str:
    """A short fingerprint of files or folders (names, sizes, modification times), so a changed source
    gives a new cache entry instead of a stale one."""
    digest = hashlib.sha1()
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        for entry in entries:
            if entry.exists():
                stat = entry.stat()
                digest.update(f"{entry}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


@dataclass
class SignDatasetConfig(datasets.BuilderConfig):
    """Options shared by the sign dataset builders.

    Args:
        hand_features (`str`, *optional*): folder of a `FeatureStore` with per-frame hand features by id.
        descriptions (`str`, *optional*): folder of a `FeatureStore` with description embeddings by id.
        skip_bad_samples (`bool`): leave bad samples out with a warning instead of failing.
        reference_labels (`str`, *optional*): Phoenix14T / CSL-Daily only. Prefix of the reference code's gzip
            label pickles (`<prefix>.train`, `.dev`, `.test`; dicts of `{name, text, gloss?, signer?}`),
            read with the restricted unpickler, instead of the official annotation files. Opt-in only.
        frames_dir (`str`, *optional*): Phoenix14T / CSL-Daily only: the frame-folder root, if not the
            release's own place.
        label_file, split_file (`str`, *optional*): CSL-Daily only: the label pickle and the split file, if not
            in the release's own place.
        language (`str`, *optional*): video folders only: language of rows without a `language` column.
        fingerprint (`str`): set by the builder from the sources' sizes and times (the cache key).
    """

    hand_features: str | None = None
    descriptions: str | None = None
    skip_bad_samples: bool = False
    reference_labels: str | None = None
    frames_dir: str | None = None
    label_file: str | None = None
    split_file: str | None = None
    language: str | None = None
    fingerprint: str = ""


class SignDatasetBuilder(datasets.GeneratorBasedBuilder):
    """Common machinery: columns, feature-store joins, bad-sample handling.

    Subclasses set `DATASET_NAME`, `MEDIA` ("frames" or "video") and `LANGUAGE`, and implement
    `_read_samples()` returning `{split: [sample, ...]}`, each sample a dict with `id`, `media` (list of
    frame paths or a video path), `text`, `gloss`, `signer`, `language`, and `problem` (a string) when the
    sample is unusable.
    """

    BUILDER_CONFIG_CLASS = SignDatasetConfig
    DATASET_NAME = "sign_dataset"
    MEDIA = "frames"
    LANGUAGE = ""
    # Files whose change must invalidate the cache, relative to data_dir (besides the stores).
    SOURCE_FILES: tuple = ()

    def __init__(self, *args, data_dir=None, **kwargs):
        if data_dir is None:
            raise ValueError(f"{type(self).__name__} needs data_dir, the folder holding the dataset")
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: data_dir {data_dir} is not a folder")
        skip = kwargs.get("skip_bad_samples", False)
        if not isinstance(skip, bool):
            raise ValueError(f"skip_bad_samples={skip!r}: pass True or False")
        kwargs.setdefault("dataset_name", self.DATASET_NAME)
        data_dir = str(Path(data_dir).resolve())
        for key in ("hand_features", "descriptions"):
            if kwargs.get(key) is not None:
                store = kwargs[key]
                path = store.path if isinstance(store, FeatureStore) else Path(store)
                if not path.is_dir():
                    raise FileNotFoundError(f"{key}={path}: no feature store folder there")
                kwargs[key] = str(path.resolve())
        kwargs["fingerprint"] = _signature(
            *[Path(data_dir) / name for name in self.SOURCE_FILES],
            kwargs.get("hand_features"), kwargs.get("descriptions"),
            kwargs.get("label_file"), kwargs.get("split_file"),
            *([f"{kwargs['reference_labels']}.{split}" for split in ("train", "dev", "test")]
              if kwargs.get("reference_labels") else []),
        )
        super().__init__(*args, data_dir=data_dir, **kwargs)

    # -- columns -------------------------------------------------------------------------------------
    def _media_column(self) -> str:
        return self.MEDIA

    def _extra_columns(self) -> dict:
        return {}

    def _info(self) -> datasets.DatasetInfo:
        media = (datasets.Video() if self._media_column() == "video"
                 else datasets.List(datasets.Value("string")))
        features = {
            "id": datasets.Value("string"),
            self._media_column(): media,
            "text": datasets.Value("string"),
            "gloss": datasets.Value("string"),
            "signer": datasets.Value("string"),
            "language": datasets.Value("string"),
        }
        features.update(self._extra_columns())
        if self.config.hand_features:
            hand_dim = self._peek_dim(self.config.hand_features, "hand_features", per_frame=True)
            features["hand_features"] = datasets.Array2D(shape=(None, hand_dim), dtype="float32")
            features["hand_mask"] = datasets.List(datasets.Value("float32"))
        if self.config.descriptions:
            dim = self._peek_dim(self.config.descriptions, "descriptions", per_frame=False)
            features["description_embedding"] = datasets.List(datasets.Value("float32"), length=dim)
        return datasets.DatasetInfo(description=self.__doc__, features=datasets.Features(features))

    @staticmethod
    def _peek_dim(path: str, argument: str, per_frame: bool) -> int:
        """The feature width of a store, from its first readable file (unreadable ones are reported per sample)."""
        files = FeatureStore(path, create=False).files()
        if not files:
            raise ValueError(f"{argument}={path}: the feature store is empty")
        errors = []
        for file in files:
            try:
                shape = tuple(read_feature_file(file)["features"].shape)
            except FeatureFileError as error:
                errors.append(str(error))
                continue
            if per_frame and len(shape) != 2:
                raise ValueError(f"{argument}={path}: {file.name} holds features of shape {shape}; per-frame "
                                 "hand features must be (T, hand_dim)")
            return int(shape[-1]) if shape else 1
        raise FeatureFileError(f"{argument}={path}: none of its {len(files)} files is readable, e.g. {errors[0]}")

    # -- generation ----------------------------------------------------------------------------------
    def _read_samples(self) -> dict:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        try:
            samples = self._read_samples()
        except RowError as error:
            raise BadSampleError(
                f"{self.DATASET_NAME} in {self.config.data_dir}: {error}. Fix the metadata: such rows are refused "
                "even with skip_bad_samples=True"
            ) from None
        self._check_samples(samples)
        # A split left empty (every sample skipped) has no data files; datasets cannot read it back.
        return [datasets.SplitGenerator(name=split, gen_kwargs={"samples": rows})
                for split, rows in samples.items() if rows]

    _TEXT_FIELDS = ("gloss", "signer", "language", "description")

    def _normalise(self, sample: dict) -> None:
        """Checks the types of a sample's fields and writes them as strings; a problem marks the sample bad."""
        where = sample.get("where", "")
        try:
            sample["id"] = text_value(sample["id"], "id", where)
            if not sample["id"].strip():
                raise RowError(f"id is empty ({where})")
            sample["text"] = text_value(sample.get("text"), "text", where, numbers=False)
            for key in self._TEXT_FIELDS:
                if key in sample:
                    sample[key] = text_value(sample[key], key, where)
        except RowError as error:
            sample["id"] = str(sample["id"])
            sample.setdefault("problem", str(error))

    def _check_samples(self, samples: dict) -> None:
        """The one validation layer of every builder: field types, unique ids, then media and feature files."""
        for rows in samples.values():
            for sample in rows:
                self._normalise(sample)
        first_row, duplicates = {}, []
        for rows in samples.values():
            for sample in rows:
                if sample["id"] in first_row:
                    duplicates.append(f"{sample['id']!r} ({first_row[sample['id']]} and {sample.get('where', '?')})")
                else:
                    first_row[sample["id"]] = sample.get("where", "?")
        if duplicates:
            raise BadSampleError(
                f"{self.DATASET_NAME} in {self.config.data_dir}: {len(duplicates)} id(s) used by more than one row: "
                f"{'; '.join(duplicates[:_LISTED_IDS])}. Ids key the feature stores and must be unique: give the rows "
                "distinct ids (rows with one id are refused even with skip_bad_samples=True)"
            )
        hands = FeatureStore(self.config.hand_features, create=False) if self.config.hand_features else None
        descriptions = FeatureStore(self.config.descriptions, create=False) if self.config.descriptions else None
        self._dims = {
            "hands": self._peek_dim(self.config.hand_features, "hand_features", True) if hands else None,
            "descriptions": self._peek_dim(self.config.descriptions, "descriptions", False) if descriptions else None,
        }
        for rows in samples.values():
            for sample in rows:
                if sample.get("problem"):
                    continue
                sample["problem"] = self._sample_problem(sample, hands, descriptions)
        bad = [f"{s['id']} ({s['problem']})" for rows in samples.values() for s in rows if s.get("problem")]
        if bad:
            listed = "; ".join(bad[:_LISTED_IDS]) + (f"; and {len(bad) - _LISTED_IDS} more" if len(bad) > _LISTED_IDS
                                                     else "")
            if not self.config.skip_bad_samples:
                raise BadSampleError(
                    f"{self.DATASET_NAME} in {self.config.data_dir}: {len(bad)} bad sample(s): {listed}. Fix them, "
                    "or pass skip_bad_samples=True to leave them out"
                )
            logger.warning("%s: skipping %d bad sample(s): %s", self.DATASET_NAME, len(bad), listed)
            for split in samples:
                samples[split] = [s for s in samples[split] if not s.get("problem")]

    def _sample_problem(self, sample: dict, hands, descriptions) -> str | None:
        if not sample["text"].strip() and sample.get("signing", True):  # an idle clip (signing false) has none
            return "empty target sentence"
        num_frames = None
        if self._media_column() == "frames":
            num_frames = len(sample["media"])
            if num_frames == 0:
                return "frame folder has no images"
            problem = frame_images_problem(sample["media"])
        else:
            problem = entry_problem(Path(sample["media"]), "video file")
            if problem is None:
                num_frames, problem = video_problem(Path(sample["media"]))
        if problem:
            return problem
        if hands is not None:
            features, problem = stored_features(hands, sample["id"], "hand-feature")
            if problem:
                return problem
            if features.ndim != 2 or features.shape[1] != self._dims["hands"]:
                return (f"hand features have shape {tuple(features.shape)}, expected (frames, {self._dims['hands']}) "
                        f"like the rest of {hands.path}")
            if features.shape[0] != num_frames:
                return f"hand features have {features.shape[0]} rows but the video has {num_frames} frames"
        if descriptions is not None:
            vector, problem = stored_features(descriptions, sample["id"], "description")
            if problem:
                return problem
            if vector.numel() != self._dims["descriptions"]:
                return (f"description embedding has {vector.numel()} values, expected {self._dims['descriptions']} "
                        f"like the rest of {descriptions.path}")
        return None

    def _generate_examples(self, samples):
        hands = FeatureStore(self.config.hand_features, create=False) if self.config.hand_features else None
        descriptions = FeatureStore(self.config.descriptions, create=False) if self.config.descriptions else None
        extra = list(self._extra_columns())
        for sample in samples:
            media = sample["media"]
            example = {
                "id": sample["id"],
                self._media_column(): [str(p) for p in media] if self._media_column() == "frames" else str(media),
                "text": sample["text"],
                "gloss": sample.get("gloss") or "",
                "signer": str(sample.get("signer") or ""),
                "language": sample.get("language") or self.LANGUAGE,
            }
            example.update({name: sample.get(name) for name in extra})
            if hands is not None:
                record = hands.read(sample["id"])
                features = record["features"].float().numpy()
                mask = record["mask"]
                example["hand_features"] = features
                # Without a stored mask, an all-zero row is the reference's "no hand detected".
                example["hand_mask"] = ((features != 0).any(axis=1).astype(np.float32) if mask is None
                                        else mask.float().numpy())
            if descriptions is not None:
                example["description_embedding"] = descriptions[sample["id"]].float().reshape(-1).numpy()
            yield sample["id"], example

    # -- helpers for subclasses ----------------------------------------------------------------------
    @staticmethod
    def _frame_sample(sample_id: str, root: Path, relative, where: str, **fields) -> dict:
        """A frame-folder sample; `relative` (from the metadata) must stay inside `root` (else `RowError`)."""
        folder = path_inside(root, relative, "frame folder", where)
        sample = {"id": sample_id, "media": [], "where": where, **fields}
        problem = entry_problem(folder, "frame folder")
        if problem is None:
            try:
                sample["media"] = list_frame_images(folder)
            except VideoReadError as error:
                problem = str(error)
        if problem:
            sample["problem"] = problem
        return sample

    def _reference_label_samples(self, frame_folder, language: str) -> dict:
        """Samples from the reference's gzip label pickles (opt-in); `frame_folder(name)` gives the frames'
        `(root, relative path)`."""
        samples = {}
        for official in ("train", "dev", "test"):
            path = Path(f"{self.config.reference_labels}.{official}")
            labels = load_pickle_file(path)
            if not isinstance(labels, dict):
                raise ValueError(f"{path}: expected a dict of sample name -> sample dict, got {type(labels).__name__}")
            rows = []
            for key, record in labels.items():
                if not isinstance(record, dict) or "name" not in record or "text" not in record:
                    raise ValueError(f"{path}: sample {key!r} lacks the 'name' or 'text' field")
                where = f"{path.name} sample {key!r}"
                name = text_value(record["name"], "name", where)
                rows.append(self._frame_sample(
                    name, *frame_folder(name), where, text=record["text"], gloss=record.get("gloss"),
                    signer=record.get("signer"), language=language))
            samples[SPLIT_NAMES[official]] = rows
        return samples


def __getattr__(name: str):
    if name in _FAMILIES:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{_FAMILIES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

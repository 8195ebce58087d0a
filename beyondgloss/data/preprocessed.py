"""Reading a corpus that `beyondgloss preprocess` decoded once: the layout, its key, and the `preprocessed` loader.

`beyondgloss preprocess` (`beyondgloss.data.preprocess`) decodes every video of a corpus once, with the video
processor's frame selection and resize, and writes the frames as uint8 arrays into a sharded Hugging Face dataset.
Training then reads frames instead of decoding videos:

```
beyondgloss preprocess --dataset phoenix14t --data_dir PHOENIX-2014-T --output_dir prepared/phoenix14t
beyondgloss pretrain --dataset preprocessed --data_dir prepared/phoenix14t ...
```

Layout of `<output_dir>` (docs/preprocess.md has the details):

```
<output_dir>/<key>/                 one folder per (corpus, decoding settings); key = PREPROCESS_VERSION + a hash
    preprocess.json                 what was hashed: the corpus, its ids, the processor's decoding settings
    manifest.json                   shards finished so far, per split (the resume state)
    dataset_dict.json               written last: the folder is complete (`datasets.load_from_disk` reads it)
    <split>/data-00000-of-000NN.arrow, state.json, dataset_info.json
```

Rows keep the corpus's columns (`id`, `text`, `gloss`, `signer`, `language`, the feature columns) and hold
`video`: uint8 `(T, 3, H, W)` (`datasets.Array4D`), the frames the processor keeps, at its output size, before
cropping, normalisation and augmentation; `hand_features` / `hand_mask` are taken at those same frames
(`hand_features` as lists of fixed-size lists, hand_dim each, rather than the corpus's `Array2D`: read back faster);
`frame_indices` are the kept frames' positions in the source video.
"""

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np

__all__ = ["DECODING_SETTINGS", "PREPROCESS_VERSION", "PreprocessedSignDataset", "decoding_settings",
           "load_preprocessed", "preprocess_key"]

# Bumped when the stored layout or the decoding path changes: a new version never reuses an older folder.
PREPROCESS_VERSION = 2  # 2: per-frame feature matrices as lists of fixed-size lists (1: Array2D)
# The video processor's settings that decide the stored frames. Cropping, normalisation and augmentation happen at
# training time on the stored frames, so changing them does not need a new preprocessing.
DECODING_SETTINGS = ("do_resize", "size", "do_sample_frames", "num_frames", "max_frames", "fps", "frame_sampling")
MANIFEST = "manifest.json"
SETTINGS_FILE = "preprocess.json"


def decoding_settings(video_processor) -> dict:
    """The settings of `video_processor` that decide which frames are stored and at what size."""
    settings = video_processor.settings()
    return {name: settings[name] for name in DECODING_SETTINGS}


def preprocess_key(identity: dict) -> str:
    """The folder name of one preprocessing: `v<version>-` and 16 hex digits of the SHA-256 of `identity` as JSON."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return f"v{PREPROCESS_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _is_complete(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() and (folder / SETTINGS_FILE).is_file()


def resolve_preprocessed_dir(path, key: str | None = None) -> Path:
    """The complete preprocessed folder that `path` names: the key folder itself, or the output folder holding it.

    Raises:
        `ValueError`: nothing complete there, or several preprocessings and no `key` to choose; the message lists them.
    """
    root = Path(path)
    if key is not None:
        root = root / key
    if _is_complete(root):
        return root
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder; run `beyondgloss preprocess --output_dir {root}` first")
    complete = sorted(p for p in root.iterdir() if p.is_dir() and _is_complete(p))
    if len(complete) == 1:
        return complete[0]
    unfinished = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file() and not _is_complete(p))
    if not complete:
        hint = (f" ({', '.join(unfinished)} unfinished: run the same `beyondgloss preprocess` again to finish it)"
                if unfinished else "")
        raise ValueError(f"{root} holds no finished preprocessed dataset{hint}; run `beyondgloss preprocess` first")
    choices = "; ".join(f"{p.name}: {json.loads((p / SETTINGS_FILE).read_text())['decoding']}" for p in complete)
    raise ValueError(f"{root} holds {len(complete)} preprocessings ({choices}); pass the one to use as the data "
                     f"folder ({root}/<key>) or as the `key` option")


def load_preprocessed(path, key: str | None = None) -> datasets.DatasetDict:
    """The preprocessed `DatasetDict` in `path`, with `video` read as uint8 numpy arrays (zero-copy from the
    memory-mapped Arrow files), every other column as plain Python values, as the collators take them."""
    folder = resolve_preprocessed_dir(path, key)
    dataset = datasets.load_from_disk(str(folder))
    # The numpy formatter turns integer arrays into int64 unless told the type: 8 times the bytes of the frames.
    return dataset.with_format("numpy", columns=["video"], output_all_columns=True, dtype=np.uint8)


class PreprocessedSignDataset:
    """The `preprocessed` entry of `load_sign_dataset`: a folder written by `beyondgloss preprocess`.

    It has the builders' interface (`download_and_prepare`, `as_dataset`), so every command that takes
    `--dataset` reads preprocessed corpora: `--dataset preprocessed --data_dir <output_dir or output_dir/key>`
    (with `--dataset_options '{"key": "..."}'` when the output folder holds several preprocessings).
    `hand_features` and `descriptions` were joined when preprocessing; giving them again is refused.
    """

    def __init__(self, data_dir: str, cache_dir=None, skip_bad_samples: bool = False, key: str | None = None,
                 hand_features=None, descriptions=None):
        if hand_features is not None or descriptions is not None:
            raise ValueError("a preprocessed dataset already holds the hand features and descriptions it was "
                             "preprocessed with; give the feature stores to `beyondgloss preprocess` instead")
        del cache_dir, skip_bad_samples  # nothing is built; bad samples were handled when preprocessing
        self.folder = resolve_preprocessed_dir(data_dir, key)

    def download_and_prepare(self, download_mode=None) -> None:
        """Nothing to prepare: `beyondgloss preprocess` did it (`rebuild` means running it again)."""

    def as_dataset(self) -> datasets.DatasetDict:
        return load_preprocessed(self.folder)

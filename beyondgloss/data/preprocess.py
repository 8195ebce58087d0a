"""Decode a corpus once into a sharded Hugging Face dataset of uint8 frames (`beyondgloss preprocess`).

```python
>>> from beyondgloss.data.preprocess import preprocess_sign_dataset
>>> folder = preprocess_sign_dataset("synthsign", "prepared/synthsign", data_dir="synthsign",
...                                  video_processor=processor.video_processor)
>>> dataset = beyondgloss.data.load_sign_dataset("preprocessed", data_dir=folder)
```

Each split is cut into shards of `shard_size` consecutive rows. A shard is written to a temporary file and renamed
into place, then recorded in `manifest.json` (also written through a rename), so a run killed at any moment (kill -9
included) leaves finished shards, at most one temporary file, and a manifest that lists only finished shards; the
same command run again skips them and writes the rest. The rows of a shard are the same whoever writes them
(decoding is deterministic: frame selection and the 8-bit resize use no randomness), so a resumed run yields the
dataset an uninterrupted one does.

Memory is bounded by one shard's write buffer (`max_buffer_bytes`, rows are flushed to the file when their frames
pass it) plus one video being decoded, never the corpus: the source dataset is memory-mapped Arrow, videos are
decoded one at a time and resized while decoded (a few frames at a time, `beyondgloss.video_io`).

The folder is keyed (`beyondgloss.data.preprocessed.preprocess_key`) by the corpus (name, folder, builder options,
feature stores, each split's row count and ids) and the video processor's decoding settings (`DECODING_SETTINGS`),
so a changed processor or corpus prepares a new folder beside the old one instead of reusing stale frames.
"""

import json
import logging
import os
from pathlib import Path

import datasets
import numpy as np
from datasets.arrow_writer import ArrowWriter

from ..video_io import VideoReadError, open_video, row_video
from .loading import load_sign_dataset
from .preprocessed import MANIFEST, SETTINGS_FILE, decoding_settings, preprocess_key

__all__ = ["preprocess_sign_dataset"]

logger = logging.getLogger(__name__)

_MEDIA_COLUMNS = ("video", "frames")
_PER_FRAME_COLUMNS = ("hand_features", "hand_mask")


def _write_json(path: Path, content: dict) -> None:
    """JSON through a temporary file, fsync and a rename: after any crash `path` is the old or the new content."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(json.dumps(content, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def _ids_digest(split: datasets.Dataset) -> str:
    import hashlib

    digest = hashlib.sha256()
    for sample_id in split["id"]:
        digest.update(str(sample_id).encode() + b"\0")
    return digest.hexdigest()


def _corpus_identity(name: str, data_dir, source: datasets.DatasetDict, options: dict, video_processor) -> dict:
    """What the preprocessed folder is keyed by (see the module docstring)."""
    return {
        "dataset": str(name),
        "data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "options": options,
        "splits": {split: {"rows": len(part), "ids_sha256": _ids_digest(part)} for split, part in source.items()},
        "decoding": decoding_settings(video_processor),
    }


def _stored_features(source_features: datasets.Features, frame_size: tuple) -> datasets.Features:
    """The preprocessed columns: the corpus's, with `video` as uint8 frames and the kept frames' source positions.

    Per-frame feature matrices (`Array2D` (T, D) in the builders) are stored as lists of fixed-size lists of D:
    the same values, and D stays in the schema (`beyondgloss.cli._loading` reads a new model's hand width there),
    but datasets reads them back without building an extension array per row, about twice as fast; the read-back
    epoch depends on it (docs/preprocess.md, "Measured")."""
    features = {name: feature for name, feature in source_features.items() if name not in _MEDIA_COLUMNS}
    for name, feature in features.items():
        if isinstance(feature, datasets.Array2D):
            features[name] = datasets.List(datasets.List(datasets.Value(feature.dtype), length=feature.shape[1]))
    features["video"] = datasets.Array4D(shape=(None, 3, *frame_size), dtype="uint8")
    features["frame_indices"] = datasets.List(datasets.Value("int32"))
    return datasets.Features(features)


def _undecoded(split: datasets.Dataset) -> datasets.Dataset:
    """The split with its videos as `{path, bytes}` (our reader opens them), not as datasets' own decoders."""
    if isinstance(split.features.get("video"), datasets.Video):
        return split.cast_column("video", datasets.Video(decode=False))
    return split


def _frame_size(source: datasets.DatasetDict, video_processor) -> tuple:
    """(height, width) of the stored frames: the processor's output size for the first video of the corpus."""
    for split in source.values():
        if len(split):
            row = _undecoded(split)[0]
            video = open_video(row_video(row, f"sample {row.get('id')!r}"))
            size = video_processor.output_size(*video.frame_size)
            return tuple(size) if size is not None else tuple(video.frame_size)
    raise ValueError("the corpus has no samples to preprocess")


def _decode_row(row: dict, video_processor, frame_size: tuple) -> dict:
    """One stored row: the processor's frames of the video (uint8, its output size) and the per-frame targets at
    the same frames."""
    name = f"sample {row.get('id')!r}"
    video = open_video(row_video(row, name))
    indices = video_processor.frame_indices_for(video)
    frames = video.read(indices, video_processor.output_size(*video.frame_size))
    if tuple(frames.shape[-2:]) != tuple(frame_size):
        raise VideoReadError(
            f"{name}: its frames come out {tuple(frames.shape[-2:])} but the first video's {frame_size}; one stored "
            "frame size is needed: pass --resize_size N (frames resized to N x N), or a processor whose size is a "
            "height and width")
    stored = {key: value for key, value in row.items() if key not in _MEDIA_COLUMNS}
    for key in _PER_FRAME_COLUMNS:
        if stored.get(key) is not None:
            stored[key] = np.asarray(stored[key], dtype=np.float32)[indices]
    stored["video"] = frames.numpy()
    stored["frame_indices"] = list(indices)
    return stored


def _write_shard(rows: datasets.Dataset, path: Path, features: datasets.Features, video_processor,
                 frame_size: tuple, skip_bad_samples: bool, max_buffer_bytes: int) -> dict:
    """Decodes `rows` into the Arrow file `path` (through a temporary file and a rename); returns its record."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    buffer, buffered, written, skipped = [], 0, 0, []
    with ArrowWriter(features=features, path=str(temporary)) as writer:
        for row in rows:
            try:
                stored = _decode_row(row, video_processor, frame_size)
            except VideoReadError as error:
                if not skip_bad_samples:
                    raise ValueError(f"{error}; fix or remove the sample, or pass --skip_bad_samples to leave it "
                                     "out") from error
                skipped.append(str(row.get("id")))
                logger.warning("preprocess: leaving out %s", error)
                continue
            buffer.append(stored)
            buffered += stored["video"].nbytes
            if buffered >= max_buffer_bytes:
                writer.write_batch({key: [item[key] for item in buffer] for key in features})
                written, buffer, buffered = written + len(buffer), [], 0
        if buffer:
            writer.write_batch({key: [item[key] for item in buffer] for key in features})
            written += len(buffer)
        writer.finalize()
    with open(temporary, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    return {"file": path.name, "rows": written, "bytes": path.stat().st_size, "skipped": skipped}


def _shard_done(folder: Path, record: dict | None) -> bool:
    """A manifest record whose file is there with the size it was written with."""
    if not record:
        return False
    path = folder / record["file"]
    return path.is_file() and path.stat().st_size == record["bytes"]


def _finish_split(folder: Path, split: str, entry: dict, features: datasets.Features, key: str) -> None:
    """`state.json` and `dataset_info.json` as `Dataset.save_to_disk` writes them, so `load_from_disk` reads it."""
    files = [entry["shards"][str(index)]["file"] for index in range(entry["num_shards"])]
    info = datasets.DatasetInfo(description="beyondgloss preprocess (docs/preprocess.md)", features=features)
    info.write_to_directory(str(folder))
    _write_json(folder / "state.json", {
        "_data_files": [{"filename": name} for name in files], "_fingerprint": f"{key}-{split}",
        "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
        "_split": split,
    })


def _prepare_split(root: Path, key: str, split: str, part: datasets.Dataset, manifest: dict, settings: dict) -> None:
    """Writes the split's missing shards, recording each in the manifest as soon as it is in place."""
    folder = root / split
    folder.mkdir(exist_ok=True)
    for stale in folder.glob(".data-*.arrow.tmp*"):
        stale.unlink()  # a shard a killed run was writing; it is written again below
    entry = manifest["splits"].setdefault(split, {
        "num_rows": len(part), "shard_size": settings["shard_size"],
        "num_shards": max(1, -(-len(part) // settings["shard_size"])), "shards": {}})
    size, count = entry["shard_size"], entry["num_shards"]
    features = datasets.Features.from_dict(settings["features"])
    rows = _undecoded(part)
    for index in range(count):
        if _shard_done(folder, entry["shards"].get(str(index))):
            continue
        shard = rows.select(range(index * size, min((index + 1) * size, len(part))))
        path = folder / f"data-{index:05d}-of-{count:05d}.arrow"
        entry["shards"][str(index)] = _write_shard(shard, path, features, settings["video_processor"],
                                                   tuple(settings["frame_size"]), settings["skip_bad_samples"],
                                                   settings["max_buffer_bytes"])
        _write_json(root / MANIFEST, manifest)
        logger.info("preprocess: %s shard %d/%d written", split, index + 1, count)
    _finish_split(folder, split, entry, features, key)


def preprocess_sign_dataset(name_or_path: str, output_dir, video_processor, data_dir=None, cache_dir=None,
                            hand_features=None, descriptions=None, skip_bad_samples: bool = False,
                            splits: list | None = None, shard_size: int = 256,
                            max_buffer_bytes: int = 64 * 2**20, **builder_kwargs) -> Path:
    """Decodes a corpus once with `video_processor`'s frame selection and resize into `output_dir/<key>/`.

    Args:
        name_or_path, data_dir, cache_dir, hand_features, descriptions, skip_bad_samples, builder_kwargs: the corpus,
            as [`~beyondgloss.data.load_sign_dataset`] takes it (any of its builders).
        output_dir (`str` or `Path`): where the keyed folder goes; several preprocessings may live side by side.
        video_processor (`BeyondGlossVideoProcessor`): its decoding settings (`DECODING_SETTINGS`) decide the frames.
        splits (`list[str]`, *optional*): the splits to prepare (default: all).
        shard_size (`int`): rows per shard (the unit of resumption and of the `of-N` file names). A resumed run
            keeps the shard size of the run it resumes.
        max_buffer_bytes (`int`): frames held before they are written to the shard file (the memory bound).

    Returns:
        `Path` of the complete folder, readable with `datasets.load_from_disk` or
        `load_sign_dataset("preprocessed", data_dir=...)`.
    """
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r}: must be a positive integer (rows per shard)")
    source = load_sign_dataset(name_or_path, data_dir=data_dir, cache_dir=cache_dir, hand_features=hand_features,
                               descriptions=descriptions, skip_bad_samples=skip_bad_samples, **builder_kwargs)
    if splits:
        missing = sorted(set(splits) - set(source))
        if missing:
            raise ValueError(f"the corpus has no split(s) {missing}; it has {sorted(source)}")
        source = datasets.DatasetDict({split: source[split] for split in splits})
    stores = {"hand_features": hand_features, "descriptions": descriptions}
    options = {**builder_kwargs, **{name: str(Path(str(value)).resolve()) for name, value in stores.items() if value}}
    identity = _corpus_identity(name_or_path, data_dir, source, options, video_processor)
    key = preprocess_key(identity)
    root = Path(output_dir) / key
    if (root / "dataset_dict.json").is_file():
        logger.info("preprocess: %s is already complete", root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    frame_size = _frame_size(source, video_processor)
    features = _stored_features(next(iter(source.values())).features, frame_size)
    if not (root / SETTINGS_FILE).is_file():
        _write_json(root / SETTINGS_FILE, {"key": key, **identity, "frame_size": list(frame_size),
                                           "features": features.to_dict()})
    manifest = json.loads((root / MANIFEST).read_text()) if (root / MANIFEST).is_file() else {"splits": {}}
    settings = {"shard_size": shard_size, "features": features.to_dict(), "video_processor": video_processor,
                "frame_size": frame_size, "skip_bad_samples": skip_bad_samples, "max_buffer_bytes": max_buffer_bytes}
    for split, part in source.items():
        _prepare_split(root, key, split, part, manifest, settings)
    _write_json(root / "dataset_dict.json", {"splits": list(source)})
    return root

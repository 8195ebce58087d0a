"""Describing and encoding many videos: resumable runs that write one JSON file per video.

A video's name is its file or folder name, or a dataset's sample id; an id such as `train/video-1` is
written as `{output_dir}/train/video-1.json`, so `load_descriptions` gives back the same ids. A finished
video has `{output_dir}/{name}.json` with its segment descriptions and the refined sentence, keys
in order: `{"chunk_0": ..., "chunk_1": ..., "refined": ...}` (the reference's layout, docs/method.md). Files are
written atomically and never overwritten, so a run that stops anywhere can be started again and only the
videos without a JSON are done. A video that fails (unreadable, no frames, refinement failing after every
retry) gets `{name}.failed.json` instead, with the error and, when describing succeeded, the segment texts;
the next run retries it and reuses those texts rather than running the vision-language model again.
"""

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .refiner import RefinementError

__all__ = [
    "VIDEO_EXTENSIONS",
    "DescribeSummary",
    "find_videos",
    "dataset_videos",
    "describe_videos",
    "finished_videos",
    "load_descriptions",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_FAILED_SUFFIX = ".failed.json"


def _image_extensions() -> tuple[str, ...]:
    from ..video_io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def _is_frame_folder(path: Path) -> bool:
    extensions = _image_extensions()
    return path.is_dir() and any(child.suffix.lower() in extensions for child in path.iterdir())


def find_videos(inputs: Iterable) -> dict[str, Path]:
    """Maps a name to each video found in `inputs`.

    Each input is a video file (named by its stem), a frame folder (a folder holding images, named by the
    folder), or a folder of video files and frame folders (each becomes one video).

    Raises:
        `FileNotFoundError`: an input does not exist.
        `ValueError`: an input holds no video, or two videos would share a name (and so an output file).
    """
    videos: dict[str, Path] = {}

    def add(name: str, path: Path):
        if name in videos:
            raise ValueError(f"two videos are named {name!r} ({videos[name]} and {path}); their outputs would collide")
        videos[name] = path

    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
        if path.is_file():
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise ValueError(f"input {path} is not a video file ({', '.join(VIDEO_EXTENSIONS)})")
            add(path.stem, path)
        elif _is_frame_folder(path):
            add(path.name, path)
        else:
            children = sorted(path.iterdir())
            found = [c for c in children if (c.is_file() and c.suffix.lower() in VIDEO_EXTENSIONS) or _is_frame_folder(c)]
            if not found:
                raise ValueError(
                    f"input folder {path} holds no video files ({', '.join(VIDEO_EXTENSIONS)}) and no frame folders"
                )
            for child in found:
                add(child.stem if child.is_file() else child.name, child)
    return videos


def dataset_videos(dataset) -> dict[str, object]:
    """Maps each sample id of a sign dataset split to its video (`frames`: image paths, or `video`).

    Args:
        dataset (`datasets.Dataset`): a split with an `id` column and a `frames` or `video` column, as the
            beyondgloss dataset builders make them.

    Returns:
        `dict[str, object]`: sample id -> a list of frame paths or a `{"path", "bytes"}` video.
    """
    import datasets

    if "id" not in dataset.column_names:
        raise ValueError(f"the dataset has no 'id' column (columns: {dataset.column_names})")
    if "frames" in dataset.column_names:
        column = "frames"
    elif "video" in dataset.column_names:
        # Undecoded: a path/bytes dict per row, opened only when that video is described.
        column = "video"
        dataset = dataset.cast_column("video", datasets.Video(decode=False))
    else:
        raise ValueError(f"the dataset has neither a 'frames' nor a 'video' column (columns: {dataset.column_names})")
    videos = {}
    for sample_id, media in zip(dataset["id"], dataset[column]):
        if sample_id in videos:
            raise ValueError(f"sample id {sample_id!r} appears twice in the dataset")
        videos[sample_id] = media
    return videos


def _output_path(output_dir: Path, name: str, suffix: str) -> Path:
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"video name {name!r} cannot be a file name under {output_dir}: use a relative name without '..'")
    return output_dir / f"{name}{suffix}"


def write_json_atomic(path: Path, content: dict):
    """Writes JSON through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def finished_videos(names: Iterable[str], output_dir) -> set[str]:
    """The names that already have a finished `{name}.json` in `output_dir`."""
    output_dir = Path(output_dir)
    return {name for name in names if _output_path(output_dir, name, ".json").is_file()}


@dataclass
class DescribeSummary:
    """What `describe_videos` did: names described now, names already done, and `{name: error}` failures."""

    described: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _reusable_chunks(failed_path: Path) -> list[str] | None:
    # Segment texts of an earlier run whose refinement failed: the expensive part is already done.
    if not failed_path.is_file():
        return None
    try:
        record = json.loads(failed_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    chunks = record.get("chunks") if isinstance(record, dict) else None
    return chunks if isinstance(chunks, list) and chunks and all(isinstance(c, str) for c in chunks) else None


class _UnreadableVideo(Exception):
    """A video's frames cannot be read; the video is marked failed and the run goes on."""


def _source_label(source) -> str:
    # Dataset sources are a path/bytes dict or a list of frame paths; name them without dumping their content.
    if isinstance(source, dict):
        return str(source.get("path") or "video bytes")
    if isinstance(source, (list, tuple)):
        return f"{len(source)} frames from {source[0]}" if source else "no frames"
    return str(source)


def _reading(name, source, function, *args, **kwargs):
    # Only reading errors mark a video failed; a model error must stop the run, not fail every video.
    try:
        return function(source, *args, **kwargs)
    except (ValueError, OSError) as error:
        raise _UnreadableVideo(f"video {name!r} ({_source_label(source)}) cannot be read: {error}") from error


def _describe_segments(name, source, describer, read_frames, count_frames) -> list[str]:
    num_frames = _reading(name, source, count_frames)
    if num_frames < 1:
        raise _UnreadableVideo(
            f"video {name!r} ({_source_label(source)}) has no frames; it needs at least one to be described"
        )
    segments = describer.segments(num_frames)
    texts = []
    # Read and tile one batch of segments at a time: a whole long video never sits in memory.
    for start in range(0, len(segments), describer.batch_size):
        grids = [
            describer.segment_grid(_reading(name, source, read_frames, indices=list(segment)))
            for segment in segments[start : start + describer.batch_size]
        ]
        texts += describer.describe_images(grids)
    return texts


def describe_videos(
    videos: Mapping[str, object],
    output_dir,
    describer,
    refiner,
    read_frames: Callable | None = None,
    count_frames: Callable | None = None,
    progress: bool = True,
) -> DescribeSummary:
    """Describes every video that has no finished JSON in `output_dir` yet.

    For each video: segment texts from `describer` (`SignVideoDescriber`), one sentence from `refiner`
    (`DescriptionRefiner`), then `{name}.json` = `{"chunk_0", ..., "refined"}`. A video that cannot be read
    or refined is recorded in `{name}.failed.json` and the run goes on; other errors (a model failing)
    stop the run, and the next run resumes after the last finished video.

    Args:
        videos (`Mapping[str, object]`): name -> source (anything `read_frames` takes; see `find_videos`).
        output_dir (`str` or `Path`): where the JSON files go (created if needed).
        describer (`SignVideoDescriber`), refiner (`DescriptionRefiner`): the two models.
        read_frames (`Callable`, *optional*): `(source, indices) -> uint8 (n, 3, H, W)`; defaults to
            `beyondgloss.video_io.read_video_frames`.
        count_frames (`Callable`, *optional*): `source -> int`; defaults to `beyondgloss.video_io.count_frames`.
        progress (`bool`): show a progress bar.
    """
    from tqdm.auto import tqdm

    if read_frames is None or count_frames is None:
        from .. import video_io

        read_frames = read_frames or video_io.read_video_frames
        count_frames = count_frames or video_io.count_frames
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = DescribeSummary()
    bar = tqdm(videos.items(), desc="describing videos", unit="video", disable=not progress)
    for name, source in bar:
        if name in finished_videos([name], output_dir):
            summary.skipped.append(name)
            continue
        target = _output_path(output_dir, name, ".json")
        failed_path = _output_path(output_dir, name, _FAILED_SUFFIX)
        chunks = _reusable_chunks(failed_path)
        if chunks is None:
            try:
                chunks = _describe_segments(name, source, describer, read_frames, count_frames)
            except _UnreadableVideo as error:
                _record_failure(summary, failed_path, name, "read", error)
                continue
        try:
            refined = refiner.refine(chunks)
        except RefinementError as error:
            _record_failure(summary, failed_path, name, "refine", error, chunks)
            continue
        record = {f"chunk_{index}": text for index, text in enumerate(chunks)}
        record["refined"] = refined
        write_json_atomic(target, record)
        failed_path.unlink(missing_ok=True)
        summary.described.append(name)
        bar.set_postfix(done=len(summary.described), failed=len(summary.failed))
    logger.info(
        "described %d videos, %d already done, %d failed%s",
        len(summary.described), len(summary.skipped), len(summary.failed),
        f" (see the *{_FAILED_SUFFIX} files in {output_dir})" if summary.failed else "",
    )
    return summary


def _record_failure(summary, failed_path: Path, name: str, stage: str, error: Exception, chunks=None):
    message = str(error)
    logger.error("video %r failed at the %s stage: %s", name, stage, message)
    record = {"stage": stage, "error": message}
    if chunks is not None:
        record["chunks"] = list(chunks)
    write_json_atomic(failed_path, record)
    summary.failed[name] = message


def load_descriptions(folder, key: str = "refined") -> list[tuple[str, str]]:
    """Reads `(name, text)` from the finished description files under a folder (`*.json`, not `*.failed.json`).

    Names are the files' paths relative to the folder without `.json` (`train/video-1`), as `describe_videos`
    wrote them.

    Files whose `key` is missing or empty are skipped with a warning.

    Raises:
        `FileNotFoundError`: the folder does not exist.
        `ValueError`: a file is not valid JSON.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"description folder {folder} does not exist")
    found = []
    for path in sorted(folder.rglob("*.json")):
        if path.name.endswith(_FAILED_SUFFIX) or path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); delete it and describe the video again") from error
        text = record.get(key) if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
            logger.warning("%s has no %r text; skipped", path, key)
            continue
        found.append((path.relative_to(folder).with_suffix("").as_posix(), text.strip()))
    return found

"""The validation layer of the dataset builders: metadata values, paths, annotation files, media and features.

Each check either returns a problem (a sentence naming the file and what is wrong; the builder then refuses the
sample, or leaves it out with `skip_bad_samples=True`) or raises `RowError` for a metadata row that cannot be read at
all (a path leaving the dataset folder, a value of the wrong type), which no option lets through.
"""

import csv
import io
from pathlib import Path, PurePath

import torch

from ..video_io import VideoReadError, open_video
from .feature_store import FeatureFileError, FeatureStore, MissingFeatureError

__all__ = [
    "BadSampleError",
    "RowError",
    "describe_value",
    "text_value",
    "path_inside",
    "entry_problem",
    "frame_images_problem",
    "stored_features",
    "video_problem",
    "joined_label",
    "read_text",
    "read_delimited",
]


class BadSampleError(ValueError):
    """Samples of a dataset cannot be used; the message lists their ids and what is wrong."""


class RowError(ValueError):
    """A metadata row that cannot be read at all: a path leaving the dataset folder, a value of the wrong type."""


def describe_value(value) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40] + '...' if len(text) > 40 else text})"


def text_value(value, key: str, where: str, numbers: bool = True) -> str:
    """A metadata value as a string: `None` is "", numbers (if allowed) are written out, anything else is refused."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{key} is {describe_value(value)}, expected a string ({where})")


def path_inside(root: Path, value, key: str, where: str) -> Path:
    """`root / value` for a relative path that stays inside `root`; anything else is refused, naming the row."""
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{where}: {key} must be a non-empty relative path, got {describe_value(value)}")
    if "\x00" in value:
        raise RowError(f"{where}: {key} {value!r} holds a NUL character")
    relative = PurePath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise RowError(f"{where}: {key} {value!r} points outside the dataset folder {root}; metadata paths must be "
                        "relative and stay inside it (move the file into the folder, or link it there)")
    return root / relative


def entry_problem(path: Path, what: str) -> str | None:
    """Why `path` is not a usable regular file (or, for `what="frame folder"`, folder), or `None`."""
    try:
        if path.is_dir() if what == "frame folder" else path.is_file():
            return None
        exists = path.exists() or path.is_symlink()
    except OSError as error:  # a name longer than the file system allows, a permission problem
        return f"{what} {path} cannot be checked ({error})"
    if not exists:
        return f"{what} {path} does not exist"
    if what == "frame folder":
        return f"frame folder {path} is not a folder (a file, FIFO, device or broken link)"
    return f"{what} {path} is not a regular file (a folder, FIFO, device or broken link)"


def _jpeg_complete(path: Path) -> bool:
    # A JPEG cut short (an interrupted copy) opens fine and fails only when decoded; its end marker is missing.
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64))
        return b"\xff\xd9" in handle.read()


def frame_images_problem(files: list) -> str | None:
    """Checks every image of a frame folder cheaply: header, one size, verified structure (PNG chunk checksums,
    the JPEG end marker); the first image is decoded in full."""
    from PIL import Image

    size = None
    for index, path in enumerate(files):
        try:
            with Image.open(path) as image:
                if size is None:
                    size = image.size
                elif image.size != size:
                    return (f"{path.name} is {image.size[0]}x{image.size[1]} px but {files[0].name} is {size[0]}x"
                            f"{size[1]} px; all frames of a video must have one size")
                if index == 0:
                    image.load()
                else:
                    image.verify()
            if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(path):
                return f"{path} is truncated (no JPEG end marker)"
        except Image.DecompressionBombError as error:
            return f"{path} is too large to decode safely ({error})"
        except (OSError, SyntaxError, ValueError) as error:
            return f"{path} is not a readable image; it may be corrupt or truncated ({error})"
    return None


def stored_features(store: FeatureStore, sample_id: str, what: str) -> tuple:
    """`(features, problem)` of a sample in a feature store: missing, unreadable and non-finite files are problems."""
    try:
        features = store.read(sample_id)["features"]
    except MissingFeatureError:
        return None, f"no {what} file in {store.path}"
    except FeatureFileError as error:
        return None, str(error)
    if not torch.isfinite(features).all():
        return None, f"{what} file {store.file_for(sample_id)} holds NaN or infinite values"
    return features, None


def video_problem(path: Path) -> tuple:
    """`(num_frames, problem)`: the video is opened and its first and last frames decoded (a file cut short
    usually still opens, then fails at its end)."""
    try:
        video = open_video(path)
        num_frames = video.num_frames
        if num_frames < 1:
            return 0, f"unreadable video: {path} has no frames"
        video.read(sorted({0, num_frames - 1}))
    except (VideoReadError, OSError, RuntimeError) as error:
        return 0, f"unreadable video: {error}"
    return num_frames, None


def joined_label(value, separator: str, key: str, where: str) -> str:
    """A label given as a list of strings (CSL-Daily's `label_char`, `label_gloss`) or as one string, as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return separator.join(value)
    raise RowError(f"{key} is {describe_value(value)}, expected a list of strings ({where})")


def read_text(path: Path) -> str:
    """A metadata or annotation file's text (UTF-8), with an error naming the file when it is not text.

    A leading byte-order mark (spreadsheet programs write one when saving "CSV UTF-8") is dropped, so the first
    column is named `file_name`, not `\ufefffile_name`.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8") from error


def read_delimited(path: Path, delimiter: str, required: tuple) -> list:
    if not path.is_file():
        what = "not a regular file (a folder, FIFO or device)" if path.exists() else "annotation file not found"
        raise FileNotFoundError(f"{path}: {what}")
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'})")
        rows = []
        for number, row in enumerate(reader, start=1):
            if None in row:  # more fields than the header names: a stray delimiter shifts every later column
                raise ValueError(f"{path}, row {number}: {len(columns) + len(row[None])} fields but the header names "
                                 f"{len(columns)}; quote or remove the extra {delimiter!r}")
            rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
        return rows
    except csv.Error as error:
        raise ValueError(f"{path}, line {reader.line_num}: not readable as {delimiter!r}-separated text ({error})") from error

# Copyright 2026 The beyondgloss authors. MIT license.
"""The "sign-translation" pipeline's inputs (see `pipeline_sign_translation.py`): each input named by its position,
its video found (a dataset row's entry, the bytes of an http(s) URL, or the input itself), and a batch's videos read
and padded by the video processor, one group per frame size, with one error naming each input that cannot be read.
For streaming ([`open_stream`], [`stream_frames`]): a video opened to be read as it goes, a few frames at a time.

Travels with checkpoints beside the pipeline: imports only torch, transformers and siblings (relatively).
"""

import re
import sys
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from .video_io import ROW_VIDEO_KEYS, VideoReadError, VideoSource, is_single_video, open_video, row_video
from .video_transforms import select_frame_indices

__all__ = ["ERROR_MODES", "NumberedInput", "NumberedInputs", "SignTranslationInputError", "collate_videos",
           "describe_input", "input_error", "is_hf_dataset", "open_stream", "stream_frames", "streamed_frames", "video_of"]

ERROR_MODES = ("raise", "skip")
URL_SCHEMES = ("http://", "https://")
# Seconds a video URL may take to answer (and between two reads): a stalled server then fails that input only.
URL_TIMEOUT_SECONDS = 60
# Frame rate of streamed frames that come without timestamps, unless the caller gives one (as StreamingTranslator's).
DEFAULT_STREAM_FPS = 25.0
# Frames decoded at a time when a video is streamed: the decoder's batch, and all of the video that is held at once.
STREAM_READ_FRAMES = 8


class SignTranslationInputError(ValueError):
    """An input of the pipeline cannot be read; the message names the input (its position and what it is) and why."""


@dataclass
class NumberedInput:
    """One input with its position in the call, so that an error can say which input it is."""

    index: int | None
    value: Any
    total: int | None = None


class NumberedInputs(Dataset):
    """A sized, indexable collection of inputs (list, `datasets.Dataset`, `KeyDataset`) seen as `NumberedInput` items."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return NumberedInput(index, self.items[index], len(self.items))


def is_hf_dataset(inputs) -> bool:
    # datasets is not imported here: a `datasets.Dataset` input means the caller already imported it.
    module = sys.modules.get("datasets")
    return module is not None and isinstance(inputs, (module.Dataset, module.IterableDataset))


def describe_input(value) -> str:
    """A short name of an input for error messages."""
    if isinstance(value, dict) and any(key in value for key in ROW_VIDEO_KEYS):
        return f"the dataset row with id {value['id']!r}" if "id" in value else "a dataset row"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} frames" + (f" starting with {value[0]}" if value else "")
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return str(value.get("path") or "a video dict")
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes of video"
    return str(value) if isinstance(value, str) or hasattr(value, "__fspath__") else type(value).__name__


def _is_url(value) -> bool:
    return isinstance(value, str) and value.lower().startswith(URL_SCHEMES)


def _fetch_url(url: str) -> dict:
    """The video at an http(s) URL as a `{"path", "bytes"}` dict (the form the video reader decodes from memory, named
    by its URL), read whole as transformers' `load_video` reads URLs."""
    from urllib.request import urlopen  # only for URL inputs

    with urlopen(url, timeout=URL_TIMEOUT_SECONDS) as response:
        data = response.read()
    if not data:
        raise ValueError(f"{url}: the server sent no data (0 bytes)")
    return {"path": url, "bytes": data}


def video_of(value):
    """The video of an input: a `datasets` row's `video` or `frames` entry, an http(s) URL's bytes, else the input."""
    if isinstance(value, dict) and any(key in value for key in ROW_VIDEO_KEYS):
        value = row_video(value, f"the dataset row with id {value['id']!r}" if "id" in value else "the dataset row")
    if isinstance(value, dict) and not value.get("bytes") and _is_url(value.get("path")):
        value = value["path"]  # a datasets.Video(decode=False) value of a URL
    return _fetch_url(value) if _is_url(value) else value


def _size_group(video_processor, video) -> tuple[int, int]:
    """`(height, width)` of a video's frames after the video processor, which only batches videos of one size."""
    if video_processor.do_center_crop and video_processor.crop_size:
        return video_processor.crop_size["height"], video_processor.crop_size["width"]
    # Without a crop the size follows the video's: open it (its header only) to know it.
    frame_size = open_video(video).frame_size
    return tuple(video_processor.output_size(*frame_size) or frame_size)


def _process(video_processor, members: list) -> dict:
    features = video_processor([member["video"] for member in members], training=False, return_tensors="pt")
    return {
        "pixel_values_videos": features["pixel_values_videos"],
        "video_attention_mask": features["video_attention_mask"],
        "positions": [member["position"] for member in members],
    }


def collate_videos(items: list[dict], video_processor) -> dict:
    """Reads the videos of a batch into the model's padded inputs: one video processor call per frame size.

    Args:
        items (`list[dict]`): outputs of [`SignTranslationPipeline.preprocess`], one per input.
        video_processor: the pipeline's video processor.

    Returns:
        `dict` with `groups` (per frame size: the processor's `pixel_values_videos` `(B, T_max, 3, H, W)` and
        `video_attention_mask` `(B, T_max)`, padded once, by the processor, and `positions`, the inputs they hold)
        and `errors` (per input: `None`, or why it cannot be translated under `errors="skip"`).

    Raises:
        [`SignTranslationInputError`]: an input cannot be read, under `errors="raise"`.
    """
    errors = [item["error"] for item in items]
    by_size: dict[tuple, list] = {}
    for position, item in enumerate(items):
        if item["video"] is None:
            continue
        try:
            size = _size_group(video_processor, item["video"])
        except (ValueError, OSError) as error:
            errors[position] = input_error(item, error)
            continue
        by_size.setdefault(size, []).append({**item, "position": position})
    groups = []
    for members in by_size.values():
        try:
            groups.append(_process(video_processor, members))
            continue
        except (ValueError, OSError):
            pass  # an input that cannot be read: read this group's videos one by one to find which
        for member in members:
            try:
                groups.append(_process(video_processor, [member]))
            except (ValueError, OSError) as error:
                errors[member["position"]] = input_error(member, error)
    return {"groups": groups, "errors": errors}


def input_error(item: dict, error: Exception) -> str:
    """Why an input cannot be translated; raises [`SignTranslationInputError`] under `errors="raise"`."""
    message = f"{item['label']} cannot be translated: {error}"
    if item["on_error"] == "raise":
        raise SignTranslationInputError(
            f"{message}. Fix or remove it, or pass errors='skip' to translate the other inputs"
        ) from error
    return message


def open_stream(video):
    """A video opened to be read progressively ([`stream_frames`]): a URL of any scheme FFmpeg reads (http(s), rtsp,
    ...) through torchcodec's decoder, which fetches as it decodes; anything else as `open_video` opens it.

    Raises:
        `VideoReadError`: the video cannot be opened; the message names it.
    """
    if isinstance(video, str) and re.match(r"^[a-z][a-z0-9+.-]*://", video):
        from torchcodec.decoders import VideoDecoder

        try:
            return open_video(VideoDecoder(video))
        except (RuntimeError, ValueError) as error:
            raise VideoReadError(f"cannot read the video at {video}: {error}; check the URL") from error
    return open_video(video)


def stream_frames(source, fps: float, target_fps: float | None):
    """`(timestamp_seconds, frame)` pairs of an opened video (`VideoSource`), decoded `STREAM_READ_FRAMES` at a time
    and subsampled from `fps` to `target_fps` as the video processor would (`select_frame_indices`)."""
    indices = select_frame_indices(source.num_frames, source.num_frames, fps=fps, target_fps=target_fps)
    for begin in range(0, len(indices), STREAM_READ_FRAMES):
        group = indices[begin:begin + STREAM_READ_FRAMES]
        for index, frame in zip(group, source.read(group)):
            yield index / fps, frame


def _is_video(value) -> bool:
    """Whether a streaming input is one video to decode (a path, a URL, bytes, a dict, a decoder, a list of image
    paths) rather than an iterable of frames."""
    if isinstance(value, (str, bytes, bytearray, dict, VideoSource)) or hasattr(value, "__fspath__"):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and is_single_video(value)
    return type(value).__module__.startswith("torchcodec")


def streamed_frames(value, fps: float | None, target_fps: float | None):
    """What the pipeline's streaming mode translates, and at what frame rate: a video opened and read as it goes
    (its own rate, sampled down to `target_fps`), or the frames as given (at `fps`, by default `DEFAULT_STREAM_FPS`).

    Returns:
        `(frames, fps)`: an iterable of frames or `(timestamp_seconds, frame)` pairs, and their rate.

    Raises:
        [`SignTranslationInputError`]: a video that cannot be opened, named.
    """
    if not _is_video(value):
        if not hasattr(value, "__iter__"):
            raise SignTranslationInputError(f"cannot stream {describe_input(value)}: pass an iterable of frames "
                                            "or a video (a path, a frame folder, a URL)")
        return value, fps or DEFAULT_STREAM_FPS
    try:
        source = open_stream(value)
    except (VideoReadError, OSError) as error:
        raise SignTranslationInputError(f"{describe_input(value)} cannot be streamed: {error}") from error
    rate = source.fps or fps or DEFAULT_STREAM_FPS
    frames = stream_frames(source, rate, target_fps)
    return frames, min(rate, target_fps) if target_fps else rate

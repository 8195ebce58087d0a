# Copyright 2026 The beyondgloss authors. MIT license.
"""Reading sign videos in every form users bring them, decoding only the frames that are kept.

Accepted sources (one video each):

- a video file path (`str` / `os.PathLike`; mp4, webm, avi, ... anything FFmpeg reads), decoded with torchcodec;
- a folder of frame images (see `IMAGE_EXTENSIONS` and [`list_frame_images`]), in natural order: `images0002.png`
  before `images0010.png`; hidden files, sub-folders, special files (FIFOs, sockets, devices) and broken links are
  skipped; EXIF orientation is applied;
- a list of image paths or of `PIL.Image`s, in the given order;
- a `torchcodec.decoders.VideoDecoder` (what a `datasets.Video()` column yields);
- a `{"path": ..., "bytes": ...}` dict (a `datasets.Video(decode=False)` value) or the encoded `bytes` of a file;
- an array or tensor `(T, H, W, C)` or `(T, C, H, W)` (or `(T, H, W)` grayscale), `uint8` or float in [0, 1]; a
  3-d array whose last axis has 3 or 4 channels is ONE frame `(H, W, C)`, and `(3, H, W)` / `(4, H, W)` (one
  channels-first image, or 3 / 4 greyscale frames) is refused as ambiguous.

Every reader returns RGB `uint8` frames `(T, 3, H, W)`, optionally resized while they are decoded (`size=`), so
that memory does not grow with the source resolution. Conversions are documented, not silent failures: images of
every Pillow mode by the rule of [`image_to_rgb`]; arrays: grayscale (and gray + alpha) repeated to three channels,
RGBA without its alpha channel, floats in [0, 1] (NaN and infinity are errors). Anything unreadable (special files,
frames above the [`FrameLimits`], corrupt or empty files, files without a video stream) raises `VideoReadError`
naming the file (and the frame) and what is wrong; nothing is read from a file that is not a regular file, so
nothing can block, and no frame larger than the limits is decoded.

This module imports only torch, numpy, Pillow and torchcodec (the last two lazily) and its siblings, so it travels
with `video_processing_beyondgloss.py` into a checkpoint folder loaded with `trust_remote_code=True`.
"""

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .frame_images import (
    IMAGE_EXTENSIONS,
    ImageSequence,
    check_float_range,
    frame_folder,
    image_to_rgb,
    is_image_path,
    is_pil_image,
    is_regular_file,
    list_frame_images,
    natural_sort_key,
)
from .video_source import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    FrameLimits,
    VideoReadError,
    VideoSource,
    resize_frames,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE",
    "ROW_VIDEO_KEYS",
    "FrameLimits",
    "VideoReadError",
    "VideoSource",
    "count_frames",
    "image_to_rgb",
    "is_single_video",
    "list_frame_images",
    "natural_sort_key",
    "open_video",
    "row_video",
    "read_video_frames",
    "resize_frames",
    "video_fps",
]

# Keys of a `datasets` row (as the beyondgloss builders yield it) that hold its video, in the order they are tried.
ROW_VIDEO_KEYS = ("video", "frames")
# Video frames with more pixels than 1080p are resized by FFmpeg as they are decoded (torchcodec's decoder-side
# `Resize`, bilinear with antialiasing), so a 4K frame never exists at full size in torch; smaller ones are decoded
# and resized by `resize_frames` (Pillow's bicubic), the same pixels as their frame folders give.
DECODER_RESIZE_MIN_PIXELS = 1920 * 1080


def _is_decoder(item) -> bool:
    # A VideoDecoder instance implies torchcodec is already imported; no need to import it here. Another thread may be
    # importing it right now (the module half made, without VideoDecoder yet): then `item` cannot be one.
    decoder_class = getattr(sys.modules.get("torchcodec.decoders"), "VideoDecoder", None)
    return decoder_class is not None and isinstance(item, decoder_class)


def is_single_video(item) -> bool:
    """Whether `item` is one video (as opposed to a batch of videos).

    A list whose elements are image paths or PIL images is one video (its frames); any other list or tuple is a
    batch, and so is a 5-d array `(B, T, ...)`. Everything else (a path, a decoder, a dict, bytes, a 3-d or 4-d array,
    a `VideoSource`) is one video.
    """
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return item.ndim < 5
    if isinstance(item, (list, tuple)):
        return len(item) > 0 and all(is_image_path(x) or is_pil_image(x) for x in item)
    return True


def row_video(row: dict, name: str = "the row"):
    """The video of a `datasets` row: its first `ROW_VIDEO_KEYS` entry that is not `None`.

    Args:
        row (`dict`): a dataset row.
        name (`str`): how error messages call the row, e.g. `"batch row 3 (id 'a')"`.

    Raises:
        `ValueError`: the row has no video entry, or only empty ones; the message names the row and its keys.
    """
    for key in ROW_VIDEO_KEYS:
        if row.get(key) is not None:
            return row[key]
    raise ValueError(
        f"{name} has no video: neither a `video` nor a `frames` entry is set (give it a `video`: a file, a decoder "
        f"or a {{path, bytes}} dict; or `frames`: image paths); it has {sorted(row)}"
    )


def _decoder_reason(error: Exception) -> str:
    """torchcodec's message in the user's terms: without its source locations or its request for a bug report."""
    text = str(error)
    if "best video stream is unknown" in text:
        return "it has no video stream (an audio-only file?); pass a file with a video track"
    text = re.sub(r"\S*/\S+\.(?:cpp|cc|c|h|hpp)(?::\d+)?,?\s*", "", text)  # .../SingleStreamDecoder.cpp:52,
    text = re.sub(r"^\w*Decoder,\s*", "", text.strip())
    text = re.split(r"\s*(?:This should never happen|Please report an issue)", text)[0]
    return " ".join(text.split())


class _DecodedVideo(VideoSource):
    """A video file, encoded bytes or an existing torchcodec decoder.

    `reopen(transforms)` (given for files and bytes) opens the same video with decoder-side transforms: frames above
    `DECODER_RESIZE_MIN_PIXELS` are then resized inside FFmpeg. A decoder handed over by the caller has no such
    route; its frames are decoded at the source size a group at a time and resized in torch.
    """

    backend = "torchcodec"

    def __init__(self, decoder, name: str, limits: FrameLimits = FrameLimits(), reopen=None):
        self.decoder = decoder
        self.name = name
        self.limits = limits
        self._reopen = reopen
        self._resized = {}  # size -> decoder resizing to it
        metadata = decoder.metadata
        self._size = (metadata.height, metadata.width)
        limits.check(name, *self._size)
        self.num_frames = int(metadata.num_frames if metadata.num_frames is not None else len(decoder))
        self.fps = float(metadata.average_fps) if metadata.average_fps else None
        if self.num_frames == 0:
            raise VideoReadError(f"{name}: the video stream has zero frames; it may be truncated or empty")

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    def _decoder_for(self, size: tuple[int, int] | None):
        """The decoder that gives frames of `size` directly, when FFmpeg should resize; else `None`."""
        height, width = self._size
        if size is None or self._reopen is None or height * width <= DECODER_RESIZE_MIN_PIXELS:
            return None
        if size[0] > height or size[1] > width:  # enlarging: nothing to save
            return None
        if size not in self._resized:
            from torchcodec.transforms import Resize

            self._resized = {size: self._reopen([Resize(size)])}  # one at a time: each holds an FFmpeg context
        return self._resized[size]

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        decoder = self._decoder_for(size)
        if decoder is None and size is not None and size != self._size:
            return self._read_in_groups(indices, size)
        try:
            frames = (decoder or self.decoder).get_frames_at(indices=indices).data
        except (RuntimeError, ValueError, IndexError) as error:
            raise VideoReadError(
                f"{self.name}: could not decode frames {indices[:5]}{'...' if len(indices) > 5 else ''} "
                f"({_decoder_reason(error)}); the file may be corrupt or truncated"
            ) from error
        # datasets.Video(dimension_order="NHWC") yields channels-last decoders.
        if frames.shape[1] != 3 and frames.shape[-1] == 3:
            frames = frames.permute(0, 3, 1, 2)
        # Left channels-last in memory (FFmpeg's layout) when resized next: torch's uint8 resize is fastest on it.
        return frames


def _describe_unreadable(path: Path) -> str:
    """Why FFmpeg probably failed on `path`, for the error message."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "it looks like a text file, not a video"
        except UnicodeDecodeError:
            pass
    return "it is corrupt, truncated or not a video file"


def _open_decoder(source, name: str, limits: FrameLimits, path: Path | None = None) -> _DecodedVideo:
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError) as error:
        raise ImportError(
            f"Decoding the video {name} needs torchcodec (and FFmpeg's shared libraries): pip install torchcodec"
        ) from error

    def reopen(transforms=None):
        return VideoDecoder(source, dimension_order="NCHW", seek_mode="exact", transforms=transforms)

    try:
        decoder = reopen()
    except (RuntimeError, ValueError) as error:
        reason = _decoder_reason(error)
        if "no video stream" not in reason:
            looks = "the bytes are corrupt, truncated or not a video" if path is None else _describe_unreadable(path)
            reason = f"{looks} ({reason})"
        raise VideoReadError(f"{name}: FFmpeg cannot open it as a video; {reason}") from error
    return _DecodedVideo(decoder, name, limits, reopen)


class _ArrayVideo(VideoSource):
    """Frames already in memory: `(T, H, W, C)`, `(T, C, H, W)`, `(T, H, W)` or one frame `(H, W, C)`."""

    def __init__(self, array, name: str, limits: FrameLimits = FrameLimits(), convert_rgb: bool = True):
        tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
        self.name = name
        self.limits = limits
        tensor = self._four_dimensional(tensor, name)
        # Channels-first when dim 1 looks like channels; otherwise channels-last.
        if tensor.shape[1] in (1, 2, 3, 4):
            pass
        elif tensor.shape[-1] in (1, 2, 3, 4):
            tensor = tensor.permute(0, 3, 1, 2)
        else:
            raise VideoReadError(
                f"{name}: cannot find the channel axis in shape {tuple(tensor.shape)}; expected 1, 3 or 4 channels "
                "in dim 1 (T, C, H, W) or in the last dim (T, H, W, C)"
            )
        if tensor.shape[0] == 0:
            raise VideoReadError(f"{name}: the array has zero frames")
        if not convert_rgb and tensor.shape[1] != 3:
            raise VideoReadError(
                f"{name}: frames with {tensor.shape[1]} channels are not RGB and do_convert_rgb=False; pass RGB frames "
                "or do_convert_rgb=True (grey is repeated to RGB, alpha dropped)"
            )
        limits.check(name, *tensor.shape[-2:])
        if tensor.dtype != torch.uint8:
            self._check_range(tensor, name)
        self.tensor = tensor
        self.num_frames = int(tensor.shape[0])

    @staticmethod
    def _four_dimensional(tensor: torch.Tensor, name: str) -> torch.Tensor:
        """`(T, ., ., .)`: a 3-d array is one `(H, W, C)` frame or `(T, H, W)` greyscale frames, never `H` frames."""
        if tensor.ndim == 3:
            if tensor.shape[-1] in (3, 4):
                return tensor.unsqueeze(0)  # one colour frame (H, W, C)
            if tensor.shape[0] in (3, 4):
                raise VideoReadError(
                    f"{name}: a 3-d array of shape {tuple(tensor.shape)} is ambiguous (one channels-first image, or "
                    f"{tensor.shape[0]} greyscale frames); pass (1, C, H, W) for one frame or (T, H, W, 1) for "
                    "greyscale frames"
                )
            return tensor.unsqueeze(1)  # (T, H, W) greyscale
        if tensor.ndim != 4:
            raise VideoReadError(
                f"{name}: expected frames of shape (T, H, W, C), (T, C, H, W), (T, H, W) or one frame (H, W, C), "
                f"got {tuple(tensor.shape)}"
            )
        return tensor

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.tensor.shape[-2:])

    @staticmethod
    def _check_range(tensor: torch.Tensor, name: str):
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise VideoReadError(f"{name}: frames of dtype {tensor.dtype} are not supported; pass uint8 or float")
        if tensor.is_floating_point():
            check_float_range(tensor, name)
            return
        low, high = tensor.min().item(), tensor.max().item()
        if low < 0 or high > 255:
            raise VideoReadError(f"{name}: integer frames must be in [0, 255], got values in [{low}, {high}]")

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        if size is not None and size != self.frame_size:
            return self._read_in_groups(indices, size)
        frames = self.tensor[indices].cpu()
        if frames.is_floating_point():
            frames = (frames.float() * 255).round()
        frames = frames.to(torch.uint8)
        channels = frames.shape[1]
        # Documented conversion: grayscale (and gray+alpha) is repeated to RGB, RGBA loses its alpha channel.
        if channels in (1, 2):
            frames = frames[:, :1].expand(-1, 3, -1, -1)
        elif channels == 4:
            frames = frames[:, :3]
        return frames.contiguous()


def open_video(
    source, max_pixels: int = MAX_FRAME_PIXELS, max_side: int = MAX_FRAME_SIDE, convert_rgb: bool = True
) -> VideoSource:
    """Opens a video source of any accepted form (see the module docstring) without decoding frames.

    Args:
        source: the video.
        max_pixels (`int`, defaults to `MAX_FRAME_PIXELS`), max_side (`int`, defaults to `MAX_FRAME_SIDE`): the
            largest frame accepted ([`FrameLimits`]), checked from the header before anything is decoded.
        convert_rgb (`bool`, defaults to `True`): convert every image mode and channel count to RGB by the
            documented rules; `False` refuses frames that are not RGB already.

    Raises:
        `VideoReadError`: the source is missing, empty, unreadable, not a video, has no frames or frames above the
            limits.
    """
    if isinstance(source, VideoSource):
        return source
    limits = FrameLimits(max_pixels, max_side)
    if _is_decoder(source):
        encoded = getattr(source, "_hf_encoded", None) or {}
        return _DecodedVideo(source, str(encoded.get("path") or "the torchcodec VideoDecoder"), limits)
    if isinstance(source, dict):
        if source.get("bytes"):
            return _open_decoder(source["bytes"], str(source.get("path") or "the video bytes"), limits)
        if source.get("path"):
            return open_video(source["path"], max_pixels, max_side, convert_rgb)
        raise VideoReadError(f"a video dict needs a non-empty 'path' or 'bytes', got keys {sorted(source)} (empty)")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise VideoReadError("the video bytes are empty (0 bytes)")
        return _open_decoder(bytes(source), "the video bytes", limits)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        name = f"the video array of shape {tuple(source.shape)} and dtype {source.dtype}"
        return _ArrayVideo(source, name, limits, convert_rgb)
    if isinstance(source, (list, tuple)):
        return _image_list(source, limits, convert_rgb)
    if isinstance(source, (str, os.PathLike)):
        return _open_path(Path(source), limits, convert_rgb)
    raise VideoReadError(
        f"cannot read a video from a {type(source).__name__}: pass a video path, a frame folder, a list of image "
        "paths, a torchcodec VideoDecoder, a {'path', 'bytes'} dict or a (T, H, W, C) / (T, C, H, W) array"
    )


def _image_list(source: list | tuple, limits: FrameLimits, convert_rgb: bool) -> ImageSequence:
    if not source:
        raise VideoReadError("an empty list is not a video: pass image paths, a path, a decoder or an array")
    if not is_single_video(source):
        raise VideoReadError(
            f"a list is one video only when every element is an image path ({'/'.join(IMAGE_EXTENSIONS)}) or a "
            f"PIL image; got elements of types {sorted({type(x).__name__ for x in source})}"
        )
    first = source[0]
    name = f"the list of {len(source)} frames starting with {first if not is_pil_image(first) else 'a PIL image'}"
    return ImageSequence(source, name, limits, convert_rgb)


def _open_path(path: Path, limits: FrameLimits, convert_rgb: bool) -> VideoSource:
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or folder")
    if path.is_dir():
        return frame_folder(path, limits, convert_rgb)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoReadError(
            f"{path} is a single image, not a video: pass the folder of frames or a list of image paths ([path] "
            "for a one-frame video)"
        )
    if not is_regular_file(path):
        # FFmpeg would block forever reading a FIFO, or read a device such as /dev/zero without end.
        raise VideoReadError(f"{path}: not a regular file (a FIFO, socket or device); pass a video file or folder")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: the video file is empty (0 bytes)")
    return _open_decoder(str(path), str(path), limits, path)


def read_video_frames(
    source,
    indices: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_FRAME_PIXELS,
    max_side: int = MAX_FRAME_SIDE,
) -> torch.Tensor:
    """Decodes the frames at `indices` (all when `None`) of a video in any accepted form.

    Only the requested frames are decoded (video files via `VideoDecoder.get_frames_at`, frame folders open only
    those images).

    Args:
        source: a video path, a frame folder, a list of image paths, a torchcodec `VideoDecoder`, a
            `{"path", "bytes"}` dict, encoded bytes, or an array / tensor (see the module docstring).
        indices (`Sequence[int]`, *optional*): frame indices to read, in output order.
        size (`tuple[int, int]`, *optional*): `(height, width)` to resize to while decoding (see
            [`VideoSource.read`]).
        max_pixels (`int`), max_side (`int`): the largest frame accepted (see [`open_video`]).

    Returns:
        `torch.Tensor`: uint8 RGB frames of shape `(T, 3, H, W)`.

    Example:

    ```python
    >>> frames = read_video_frames("signing.mp4", indices=[0, 10, 20])
    >>> frames.shape, frames.dtype
    (torch.Size([3, 3, 260, 210]), torch.uint8)
    ```
    """
    return open_video(source, max_pixels, max_side).read(indices, size)


def count_frames(source) -> int:
    """Number of frames of a video in any accepted form, without decoding any."""
    return open_video(source).num_frames


def video_fps(source) -> float | None:
    """Average frame rate of a video file or decoder; `None` for frame folders, image lists and arrays."""
    return open_video(source).fps

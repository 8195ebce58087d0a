# Copyright 2026 The beyondgloss authors. MIT license.
"""Reading sign videos in every form users bring them, decoding only the frames that are kept.

Accepted sources (one video each):

- a video file path (`str` / `os.PathLike`; mp4, webm, avi, ... anything FFmpeg reads), decoded with torchcodec;
- a folder of frame images (see `IMAGE_EXTENSIONS` and [`list_frame_images`]), in natural order: `images0002.png`
  before `images0010.png`; hidden files, sub-folders, special files (FIFOs, sockets, devices) and broken links are
  skipped;
- a list of image paths or of `PIL.Image`s, in the given order;
- a `torchcodec.decoders.VideoDecoder` (what a `datasets.Video()` column yields);
- a `{"path": ..., "bytes": ...}` dict (a `datasets.Video(decode=False)` value) or the encoded `bytes` of a file;
- an array or tensor `(T, H, W, C)` or `(T, C, H, W)` (or `(T, H, W)` grayscale), `uint8` or float in [0, 1].

Every reader returns RGB `uint8` frames `(T, 3, H, W)`, optionally resized while they are decoded (`size=`), so
that memory does not grow with the source resolution. Conversions are documented, not silent failures: images of
every Pillow mode by the rule of [`image_to_rgb`]; arrays: grayscale (and gray + alpha) repeated to three channels,
RGBA without its alpha channel, floats in [0, 1] (NaN and infinity are errors). Anything unreadable (including
special files, Pillow's decompression-bomb limit, corrupt or empty files) raises `VideoReadError` naming the file
(and the frame) and what is wrong; nothing is read from a file that is not a regular file, so nothing can block.

This module imports only torch, numpy, Pillow and torchcodec (the last two lazily), so it can travel with
`video_processing_beyondgloss.py` into a checkpoint folder loaded with `trust_remote_code=True`.
"""

import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_EXTENSIONS",
    "ROW_VIDEO_KEYS",
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

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Keys of a `datasets` row (as the beyondgloss builders yield it) that hold its video, in the order they are tried.
ROW_VIDEO_KEYS = ("video", "frames")


class VideoReadError(ValueError):
    """A video source cannot be read: the message names the file (and frame) and what is wrong."""


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: `images0002.png` < `images10.png` < `images0011.png`.

    Text parts compare case-insensitively; the full name breaks ties so the order is total.
    """
    parts = re.split(r"(\d+)", name)
    # (0, int) for digit runs and (1, str) for text never compare an int with a str.
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts), name


def _is_regular_file(path: Path) -> bool:
    """Whether `path` is (or links to) a regular file: FIFOs, sockets, devices and broken links are not."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # broken or looping symlink, no permission, NUL in the name
        return False


def list_frame_images(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a folder, in natural order (`images0002.png` before `images0010.png`).

    Kept: regular files (or symlinks to regular files) whose suffix is one of `IMAGE_EXTENSIONS` (any case).
    Skipped: hidden names (starting with `.`), sub-folders, special files (FIFOs, sockets, devices: opening them
    could block forever) and broken symlinks. Nothing is opened or decoded here.

    Args:
        folder (`str` or `os.PathLike`): a frame folder.

    Returns:
        `list[Path]`: the image files, possibly empty.

    Raises:
        `VideoReadError`: `folder` is not a readable folder.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        raise VideoReadError(f"{folder}: cannot list the frame folder ({error}); pass an existing folder") from error
    files = [
        folder / entry.name
        for entry in entries
        if not entry.name.startswith(".")
        and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
        and _is_regular_file(folder / entry.name)
    ]
    files.sort(key=lambda p: natural_sort_key(p.name))
    return files


def _is_image_path(item) -> bool:
    return isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in IMAGE_EXTENSIONS


def _is_pil_image(item) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(item, pil.Image)


def _is_decoder(item) -> bool:
    # A VideoDecoder instance implies torchcodec is already imported; no need to import it here.
    decoders = sys.modules.get("torchcodec.decoders")
    return decoders is not None and isinstance(item, decoders.VideoDecoder)


def is_single_video(item) -> bool:
    """Whether `item` is one video (as opposed to a batch of videos).

    A list whose elements are image paths or PIL images is one video (its frames); any other list or tuple is a
    batch, and so is a 5-d array `(B, T, ...)`. Everything else (a path, a decoder, a dict, bytes, a 3-d or 4-d array,
    a `VideoSource`) is one video.
    """
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return item.ndim < 5
    if isinstance(item, (list, tuple)):
        return len(item) > 0 and all(_is_image_path(x) or _is_pil_image(x) for x in item)
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


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resizes uint8 frames `(T, C, H, W)` to `size = (height, width)`: bicubic with antialiasing, in 8 bits.

    torch's uint8 antialiased bicubic is Pillow's `Image.resize(..., BICUBIC)` algorithm (rounded to 8 bits), the
    resize of the reference code, and several times faster than resizing floats (docs/benchmarks.md).
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=tuple(size), mode="bicubic", antialias=True)


class VideoSource:
    """An opened video: its frame count, frame rate and frame size are known, frames are decoded on `read`.

    Attributes:
        name (`str`): what the error messages call this video (a path, or a description).
        num_frames (`int`): number of frames (at least 1).
        fps (`float` or `None`): average frame rate, `None` when the source has none (frame folders, arrays).
    """

    name: str
    num_frames: int
    fps: float | None = None

    # Frames are decoded at the source size and resized a group at a time, each group holding at most this many
    # bytes of source frames (and at least one frame): 27 frames of 720x540, 5 of 1080p, 1 of 4K. Peak memory is then
    # this budget plus the resized frames, whatever the source resolution. torchcodec's decoder-side `Resize` would
    # not even need the budget, but it is bilinear only (about 2 grey levels from the bicubic resize of frame
    # folders, so the same video would give other pixels as an mp4 than as frames) and takes more CPU than decoding
    # plus torch's uint8 resize on small videos.
    resize_budget_bytes = 32 * 2**20

    @property
    def frame_size(self) -> tuple[int, int]:
        """`(height, width)` of the frames as stored (before any resize)."""
        raise NotImplementedError

    def read(
        self,
        indices: Sequence[int] | None = None,
        size: tuple[int, int] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Decodes the frames at `indices` (all frames when `None`), in the given order.

        Args:
            indices (`Sequence[int]`, *optional*): frame indices, in output order.
            size (`tuple[int, int]`, *optional*): `(height, width)` to resize every frame to while the video is
                decoded, so that only a few frames ever exist at the source size: image files one by one as they
                are opened, video frames and arrays a group at a time (`resize_budget_bytes`), all with
                [`resize_frames`]. `None` keeps the source size.
            transform (`Callable`, *optional*): applied to each group of frames at the source size, uint8
                `(N, 3, H, W)` to the same shape, before the resize (e.g. a training augmentation defined in source
                pixels); groups are at most `resize_budget_bytes` of frames, as above.

        Returns:
            `torch.Tensor`: uint8 RGB frames of shape `(len(indices), 3, H, W)`.
        """
        if indices is None:
            indices = range(self.num_frames)
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(
                f"{self.name}: frame indices {bad[:5]} are out of range; the video has {self.num_frames} frames"
            )
        if not indices:
            raise VideoReadError(f"{self.name}: no frames were requested; pass at least one frame index")
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if min(size) < 1:
                raise ValueError(f"{self.name}: cannot resize frames to {size}; pass a positive (height, width)")
        if transform is not None:
            return self._read_in_groups(indices, size, transform)
        return self._read(indices, size).contiguous()

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        """The frames `(N, 3, H, W)`, in any memory layout (`read` makes them contiguous)."""
        raise NotImplementedError

    def _read_in_groups(self, indices: list[int], size: tuple[int, int] | None, transform=None) -> torch.Tensor:
        """Reads a group of frames at the source size at a time, transforms and resizes it, then reads the next."""
        height, width = self.frame_size
        step = max(1, self.resize_budget_bytes // (3 * height * width))
        # Written into one tensor allocated up front: collecting the small resized groups in a list instead leaves
        # them scattered between the freed source-size frames, and glibc's heap then grows by about a source frame
        # per group, as if every frame were kept at the source size.
        output = torch.empty(len(indices), 3, *(size or (height, width)), dtype=torch.uint8)
        for start in range(0, len(indices), step):
            frames = self._read(indices[start : start + step], None)
            if transform is not None:
                frames = transform(frames)
            output[start : start + len(frames)] = resize_frames(frames, size) if size is not None else frames
            del frames  # before the next group is decoded
        return output

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, num_frames={self.num_frames}, fps={self.fps})"


class _DecodedVideo(VideoSource):
    """A video file, encoded bytes or an existing torchcodec decoder."""

    def __init__(self, decoder, name: str):
        self.decoder = decoder
        self.name = name
        metadata = decoder.metadata
        self.num_frames = int(metadata.num_frames if metadata.num_frames is not None else len(decoder))
        self.fps = float(metadata.average_fps) if metadata.average_fps else None
        self._size = (metadata.height, metadata.width)
        if self.num_frames == 0:
            raise VideoReadError(f"{name}: the video stream has zero frames; it may be truncated or empty")

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        if size is not None and size != self._size:
            return self._read_in_groups(indices, size)
        try:
            frames = self.decoder.get_frames_at(indices=indices).data
        except (RuntimeError, ValueError, IndexError) as error:
            raise VideoReadError(
                f"{self.name}: could not decode frames {indices[:5]}{'...' if len(indices) > 5 else ''} "
                f"({error}); the file may be corrupt or truncated"
            ) from error
        # datasets.Video(dimension_order="NHWC") yields channels-last decoders.
        if tuple(frames.shape[1:3]) == self._size and frames.shape[1] != 3:
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


def _open_decoder(source, name: str, path: Path | None = None) -> _DecodedVideo:
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError) as error:
        raise ImportError(
            f"Decoding the video {name} needs torchcodec (and FFmpeg's shared libraries): pip install torchcodec"
        ) from error
    try:
        decoder = VideoDecoder(source, dimension_order="NCHW", seek_mode="exact")
    except (RuntimeError, ValueError) as error:
        reason = _describe_unreadable(path) if path is not None else "the bytes are corrupt, truncated or not a video"
        raise VideoReadError(f"{name}: FFmpeg cannot open it as a video; {reason} ({error})") from error
    return _DecodedVideo(decoder, name)


class _ImageSequence(VideoSource):
    """A list of image files (or PIL images), one per frame; each frame is opened only when read."""

    def __init__(self, items: list, name: str):
        self.items = list(items)
        self.name = name
        self.num_frames = len(self.items)
        self._size = None

    @property
    def frame_size(self) -> tuple[int, int]:
        if self._size is None:
            self._size = self._load(0).size
        return self._size[1], self._size[0]

    def _frame_name(self, index: int) -> str:
        item = self.items[index]
        return str(item) if not _is_pil_image(item) else f"{self.name} frame {index}"

    def _load(self, index: int):
        item = self.items[index]
        if _is_pil_image(item):
            return item
        return _open_image(Path(item), f"{item} (frame {index} of {self.name})")

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        if self._size is None:
            self._size = self._load(0).size
        # One output tensor allocated up front (see VideoSource._read_in_groups).
        frames = torch.empty(len(indices), 3, *(size or (self._size[1], self._size[0])), dtype=torch.uint8)
        for position, index in enumerate(indices):
            image = self._load(index)
            if image.size != self._size:
                raise VideoReadError(
                    f"{self._frame_name(index)} (frame {index} of {self.name}) is {image.size[0]}x{image.size[1]} px "
                    f"but the first frame ({self._frame_name(0)}) is {self._size[0]}x{self._size[1]} px; all frames "
                    "of a video must have one size"
                )
            frame = image_to_rgb(image, f"{self._frame_name(index)} (frame {index} of {self.name})")
            del image  # one source-size image at a time
            # Resized one by one, as each image is opened: the same pixels as resizing the stacked frames.
            frames[position] = resize_frames(frame.unsqueeze(0), size)[0] if size is not None else frame
        return frames


def _open_image(path: Path, name: str):
    """Opens and decodes one image file; every failure becomes a `VideoReadError` naming it."""
    from PIL import Image

    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait forever for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as error:
        raise VideoReadError(f"{name}: the image file does not exist") from error
    except OSError as error:
        raise VideoReadError(f"{name}: cannot open the image file ({error})") from error
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VideoReadError(f"{name}: not a regular file (a FIFO, socket or device); pass image files only")
        try:
            image = Image.open(handle)
            image.load()
        except Exception as error:  # noqa: BLE001 - Pillow raises many types (DecompressionBombError, SyntaxError, ...)
            if isinstance(error, Image.DecompressionBombError):
                reason = "the image is too large to decode safely (Pillow's decompression-bomb limit)"
            else:
                reason = "not a readable image, it may be corrupt or truncated"
            raise VideoReadError(f"{name}: {reason} ({type(error).__name__}: {error})") from error
    return image


# Greyscale modes with more than 8 bits, and the largest value of each (mapped to 255).
_WIDE_GREY_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def image_to_rgb(image, name: str = "the image") -> torch.Tensor:
    """Converts a PIL image of any mode to an RGB uint8 frame `(3, H, W)`, by one documented rule per mode.

    - `RGB`: unchanged. Pillow itself opens 16-bit-per-channel RGB(A) files as 8-bit `RGB`/`RGBA`.
    - `1`, `L`, `P`, `LA`, `PA`, `RGBA`, `RGBa`, `RGBX`, `CMYK`, `YCbCr`, `LAB`, `HSV`: Pillow's
      `convert("RGB")`: greyscale is repeated to three channels, palettes are looked up, alpha is dropped (not
      composited onto a background), CMYK uses Pillow's formula.
    - 16-bit greyscale (`I;16`, `I;16L`, `I;16B`, `I;16N`) and 32-bit integer `I` (read as 16-bit, the range
      Pillow stores 16-bit greyscale in): `round(v / 257)`, so 0 -> 0 and 65535 -> 255 (Pillow's own conversion
      clips at 255 instead, which turns most 16-bit images white). `I` values outside [0, 65535] are an error.
    - 32-bit float `F`: values in [0, 1] (as float arrays) become `round(255 v)`; NaN, infinity or values outside
      [0, 1] are an error.

    Raises:
        `VideoReadError`: naming `name`, for the errors above and for modes Pillow cannot convert.
    """
    mode = image.mode
    if mode == "F" or mode in _WIDE_GREY_MODES:
        values = torch.from_numpy(np.asarray(image).astype(np.float64))
        if mode == "F":
            _check_float_range(values, f"{name} (mode F)")
            grey = (values * 255).round()
        else:
            low, high = values.min().item(), values.max().item()
            if low < 0 or high > _WIDE_GREY_MODES[mode]:
                raise VideoReadError(
                    f"{name}: mode {mode} values must be in [0, 65535] (16-bit greyscale), got [{low:.0f}, {high:.0f}]"
                )
            grey = (values / 257).round()
        return grey.to(torch.uint8).unsqueeze(0).expand(3, -1, -1).contiguous()
    try:
        rgb = image if mode == "RGB" else image.convert("RGB")
        array = np.asarray(rgb, dtype=np.uint8)
    except Exception as error:  # noqa: BLE001 - Pillow's conversions raise ValueError, OSError, ...
        raise VideoReadError(f"{name}: cannot convert an image of mode {mode!r} to RGB ({error})") from error
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _check_float_range(tensor: torch.Tensor, name: str):
    """Float frames must be finite and in [0, 1]: NaN would otherwise become silent black pixels."""
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        where = (~finite).nonzero()[0].tolist()
        raise VideoReadError(
            f"{name}: {bad} value(s) are NaN or infinite (first at index {where}); frames must be finite numbers in "
            "[0, 1] (or uint8)"
        )
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0 or high > 1:
        raise VideoReadError(
            f"{name}: float frames must be in [0, 1], got values in [{low:.3g}, {high:.3g}]; pass uint8 frames "
            "or divide by 255 (and undo any normalisation first)"
        )


def _frame_folder(path: Path) -> _ImageSequence:
    files = list_frame_images(path)
    if not files:
        others = sorted(p.name for p in path.iterdir())
        found = f"it holds {len(others)} other entries (e.g. {', '.join(others[:3])})" if others else "it is empty"
        raise VideoReadError(
            f"{path}: the frame folder has no images ({'/'.join(IMAGE_EXTENSIONS)}, regular files); {found}. Pass a "
            "folder of frame images or a video file"
        )
    return _ImageSequence(files, str(path))


class _ArrayVideo(VideoSource):
    """Frames already in memory: `(T, H, W, C)`, `(T, C, H, W)` or `(T, H, W)`."""

    def __init__(self, array, name: str = "the video array"):
        tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
        self.name = name
        if tensor.ndim == 3:
            tensor = tensor.unsqueeze(1)
        if tensor.ndim != 4:
            raise VideoReadError(
                f"{name}: expected frames of shape (T, H, W, C), (T, C, H, W) or (T, H, W), got {tuple(tensor.shape)}"
            )
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
        if tensor.dtype != torch.uint8:
            self._check_range(tensor, name)
        self.tensor = tensor
        self.num_frames = int(tensor.shape[0])

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.tensor.shape[-2:])

    @staticmethod
    def _check_range(tensor: torch.Tensor, name: str):
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise VideoReadError(f"{name}: frames of dtype {tensor.dtype} are not supported; pass uint8 or float")
        if tensor.is_floating_point():
            _check_float_range(tensor, name)
            return
        low, high = tensor.min().item(), tensor.max().item()
        if not tensor.is_floating_point() and (low < 0 or high > 255):
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


def open_video(source) -> VideoSource:
    """Opens a video source of any accepted form (see the module docstring) without decoding frames.

    Raises:
        `VideoReadError`: the source is missing, empty, unreadable, not a video, or has no frames.
    """
    if isinstance(source, VideoSource):
        return source
    if _is_decoder(source):
        encoded = getattr(source, "_hf_encoded", None) or {}
        return _DecodedVideo(source, str(encoded.get("path") or "the torchcodec VideoDecoder"))
    if isinstance(source, dict):
        if source.get("bytes"):
            return _open_decoder(source["bytes"], str(source.get("path") or "the video bytes"))
        if source.get("path"):
            return open_video(source["path"])
        raise VideoReadError(f"a video dict needs a non-empty 'path' or 'bytes', got keys {sorted(source)} (empty)")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise VideoReadError("the video bytes are empty (0 bytes)")
        return _open_decoder(bytes(source), "the video bytes")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return _ArrayVideo(source, f"the video array of shape {tuple(source.shape)} and dtype {source.dtype}")
    if isinstance(source, (list, tuple)):
        if not source:
            raise VideoReadError("an empty list is not a video: pass image paths, a path, a decoder or an array")
        if not is_single_video(source):
            raise VideoReadError(
                f"a list is one video only when every element is an image path ({'/'.join(IMAGE_EXTENSIONS)}) or a "
                f"PIL image; got elements of types {sorted({type(x).__name__ for x in source})}"
            )
        first = source[0]
        name = f"the list of {len(source)} frames starting with {first if not _is_pil_image(first) else 'a PIL image'}"
        return _ImageSequence(source, name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise VideoReadError(f"{path}: no such file or folder")
        if path.is_dir():
            return _frame_folder(path)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise VideoReadError(
                f"{path} is a single image, not a video: pass the folder of frames or a list of image paths ([path] "
                "for a one-frame video)"
            )
        if not _is_regular_file(path):
            # FFmpeg would block forever reading a FIFO, or read a device such as /dev/zero without end.
            raise VideoReadError(f"{path}: not a regular file (a FIFO, socket or device); pass a video file or folder")
        if path.stat().st_size == 0:
            raise VideoReadError(f"{path}: the video file is empty (0 bytes)")
        return _open_decoder(str(path), str(path), path)
    raise VideoReadError(
        f"cannot read a video from a {type(source).__name__}: pass a video path, a frame folder, a list of image "
        "paths, a torchcodec VideoDecoder, a {'path', 'bytes'} dict or a (T, H, W, C) / (T, C, H, W) array"
    )


def read_video_frames(
    source, indices: Sequence[int] | None = None, size: tuple[int, int] | None = None
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

    Returns:
        `torch.Tensor`: uint8 RGB frames of shape `(T, 3, H, W)`.

    Example:

    ```python
    >>> frames = read_video_frames("signing.mp4", indices=[0, 10, 20])
    >>> frames.shape, frames.dtype
    (torch.Size([3, 3, 260, 210]), torch.uint8)
    ```
    """
    return open_video(source).read(indices, size)


def count_frames(source) -> int:
    """Number of frames of a video in any accepted form, without decoding any."""
    return open_video(source).num_frames


def video_fps(source) -> float | None:
    """Average frame rate of a video file or decoder; `None` for frame folders, image lists and arrays."""
    return open_video(source).fps

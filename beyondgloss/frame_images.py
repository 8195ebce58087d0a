# Copyright 2026 The beyondgloss authors. MIT license.
"""Videos stored as image files, one per frame: listing a frame folder, opening each image safely, converting it.

- [`list_frame_images`] lists a frame folder in natural order (`images0002.png` before `images0010.png`), skipping
  hidden files, sub-folders, special files (FIFOs, sockets, devices) and broken links;
- every image is opened without blocking (a FIFO named `x.png` is refused, not waited on), its size is checked
  against the [`~beyondgloss.video_source.FrameLimits`] from its header before it is decoded, its EXIF orientation
  is applied (a portrait JPEG from a phone stands upright), and [`image_to_rgb`] converts every Pillow mode to RGB
  by one documented rule.

Imports only torch, numpy, Pillow (lazily) and its siblings, so it travels into checkpoint folders.
"""

import os
import re
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .video_source import FrameLimits, VideoReadError, VideoSource, resize_frames

__all__ = ["IMAGE_EXTENSIONS", "image_to_rgb", "list_frame_images", "natural_sort_key", "check_float_range"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# EXIF orientations that swap width and height (transposed, rotated by 90 or 270 degrees).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: `images0002.png` < `images10.png` < `images0011.png`.

    Text parts compare case-insensitively; the full name breaks ties so the order is total.
    """
    parts = re.split(r"(\d+)", name)
    # (0, int) for digit runs and (1, str) for text never compare an int with a str.
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts), name


def is_regular_file(path: Path) -> bool:
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
        and is_regular_file(folder / entry.name)
    ]
    files.sort(key=lambda p: natural_sort_key(p.name))
    return files


def is_image_path(item) -> bool:
    return isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in IMAGE_EXTENSIONS


def is_pil_image(item) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(item, pil.Image)


def _oriented_size(image) -> tuple[int, int]:
    """`(width, height)` of `image` once its EXIF orientation is applied, from its header alone."""
    width, height = image.size
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _upright(image):
    """`image` turned as its EXIF orientation says (what a photo viewer shows); unchanged without one."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) in (1, None):
        return image
    from PIL import ImageOps

    return ImageOps.exif_transpose(image)


def _open_image(path: Path, name: str, limits: FrameLimits, decode: bool = True):
    """Opens one image file: its pixels, upright, or (`decode=False`) only its upright `(width, height)` from the
    header; every failure is a `VideoReadError` naming it."""
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
            with warnings.catch_warnings():
                # Pillow warns above 89 M pixels; the frame limits below decide, by a documented rule.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle)  # reads the header only
        except Image.DecompressionBombError as error:
            raise VideoReadError(
                f"{name}: the image is too large to decode safely ({type(error).__name__}: {error}); frames may have "
                f"at most {limits.max_pixels:,} pixels (max_frame_pixels)"
            ) from error
        except Exception as error:  # noqa: BLE001 - Pillow raises many types (SyntaxError, struct.error, ...)
            raise VideoReadError(_unreadable(name, error)) from error
        width, height = image.size
        limits.check(name, height, width)  # before a pixel is decoded
        try:
            if not decode:
                return _oriented_size(image)
            image.load()
            return _upright(image)
        except Exception as error:  # noqa: BLE001 - as above
            raise VideoReadError(_unreadable(name, error)) from error


def _unreadable(name: str, error: Exception) -> str:
    return f"{name}: not a readable image, it may be corrupt or truncated ({type(error).__name__}: {error})"


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
    if mode == "F":
        values = torch.from_numpy(np.asarray(image).astype(np.float64))
        check_float_range(values, f"{name} (mode F)")
        grey = (values * 255).round()
    elif mode in _WIDE_GREY_MODES:
        # In integers: v / 257 is never halfway between two integers (257 is odd), so (2 v + 257) // 514 is its
        # rounding, and an int32 copy is half the memory of a float64 one.
        values = torch.from_numpy(np.asarray(image).astype(np.int32))
        low, high = values.min().item(), values.max().item()
        if low < 0 or high > _WIDE_GREY_MODES[mode]:
            raise VideoReadError(
                f"{name}: mode {mode} values must be in [0, 65535] (16-bit greyscale), got [{low:.0f}, {high:.0f}]"
            )
        grey = (2 * values + 257) // 514
    if mode == "F" or mode in _WIDE_GREY_MODES:
        return grey.to(torch.uint8).unsqueeze(0).expand(3, -1, -1).contiguous()
    try:
        rgb = image if mode == "RGB" else image.convert("RGB")
        array = np.asarray(rgb, dtype=np.uint8)
    except Exception as error:  # noqa: BLE001 - Pillow's conversions raise ValueError, OSError, ...
        raise VideoReadError(f"{name}: cannot convert an image of mode {mode!r} to RGB ({error})") from error
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def check_float_range(tensor: torch.Tensor, name: str):
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


class ImageSequence(VideoSource):
    """A list of image files (or PIL images), one per frame; each frame is opened only when read.

    `convert_rgb=False` refuses frames that are not RGB images instead of converting them ([`image_to_rgb`]).
    """

    backend = "pillow"

    def __init__(self, items: list, name: str, limits: FrameLimits = FrameLimits(), convert_rgb: bool = True):
        self.items = list(items)
        self.name = name
        self.num_frames = len(self.items)
        self.limits = limits
        self.convert_rgb = convert_rgb
        self._size = None  # (width, height), upright

    @property
    def frame_size(self) -> tuple[int, int]:
        if self._size is None:
            self._size = self._probe(0)
        return self._size[1], self._size[0]

    def _frame_name(self, index: int) -> str:
        item = self.items[index]
        described = str(item) if not is_pil_image(item) else "a PIL image"
        return f"{described} (frame {index} of {self.name})"

    def _probe(self, index: int) -> tuple[int, int]:
        """The upright `(width, height)` of a frame from its header, checked against the limits."""
        item = self.items[index]
        if not is_pil_image(item):
            return _open_image(Path(item), self._frame_name(index), self.limits, decode=False)
        self.limits.check(self._frame_name(index), item.size[1], item.size[0])
        return _oriented_size(item)

    def _load(self, index: int):
        item = self.items[index]
        if is_pil_image(item):
            self.limits.check(self._frame_name(index), item.size[1], item.size[0])
            return _upright(item)
        return _open_image(Path(item), self._frame_name(index), self.limits)

    def _read(self, indices: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        width, height = self._size = self._size or self._probe(0)
        # One output tensor allocated up front (see VideoSource._read_in_groups).
        frames = torch.empty(len(indices), 3, *(size or (height, width)), dtype=torch.uint8)
        for position, index in enumerate(indices):
            image = self._load(index)
            if image.size != self._size:
                raise VideoReadError(
                    f"{self._frame_name(index)} is {image.size[0]}x{image.size[1]} px but the first frame "
                    f"({self._frame_name(0)}) is {width}x{height} px; all frames of a video must have one size"
                )
            if not self.convert_rgb and image.mode != "RGB":
                raise VideoReadError(
                    f"{self._frame_name(index)} is a {image.mode} image, not RGB, and do_convert_rgb=False; convert "
                    "it first or pass do_convert_rgb=True"
                )
            frame = image_to_rgb(image, self._frame_name(index))
            del image  # one source-size image at a time
            # Resized one by one, as each image is opened: the same pixels as resizing the stacked frames.
            frames[position] = resize_frames(frame.unsqueeze(0), size)[0] if size is not None else frame
        return frames


def frame_folder(path: Path, limits: FrameLimits = FrameLimits(), convert_rgb: bool = True) -> ImageSequence:
    """The frame folder `path` as a video; a folder without images is a `VideoReadError` saying what it holds."""
    files = list_frame_images(path)
    if not files:
        others = sorted(p.name for p in path.iterdir())
        found = f"it holds {len(others)} other entries (e.g. {', '.join(others[:3])})" if others else "it is empty"
        raise VideoReadError(
            f"{path}: the frame folder has no images ({'/'.join(IMAGE_EXTENSIONS)}, regular files); {found}. Pass a "
            "folder of frame images or a video file"
        )
    return ImageSequence(files, str(path), limits, convert_rgb)

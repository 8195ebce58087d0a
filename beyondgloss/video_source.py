# Copyright 2026 The beyondgloss authors. MIT license.
"""The opened-video interface shared by every reader, and the pixel budget every frame is held to.

[`VideoSource`] is what [`~beyondgloss.video_io.open_video`] returns for every accepted form; [`FrameLimits`] is the
one budget for pixels: frames larger than it are refused, by name, before they are decoded (docs/video_limits.md has
the limits, why they are what they are, and the memory they bound).

This module imports only torch, so it travels with `video_processing_beyondgloss.py` into checkpoint folders loaded
with `trust_remote_code=True`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE",
    "FrameLimits",
    "VideoReadError",
    "VideoSource",
    "resize_frames",
]

# The largest frame read by default: 8K (8192 x 4320) in pixels, 8192 px per side. One such frame is 106 MB of RGB;
# reading any frame up to it stays under 1 GB of peak memory (docs/video_limits.md). A 12000 x 12000 PNG, a
# 1 x 60000 image or a video stream claiming 20000 x 20000 is refused before a pixel of it is decoded.
MAX_FRAME_PIXELS = 8192 * 4320
MAX_FRAME_SIDE = 8192


class VideoReadError(ValueError):
    """A video source cannot be read: the message names the file (and frame) and what is wrong."""


@dataclass(frozen=True)
class FrameLimits:
    """The most pixels a source frame may have, checked from the file's header before anything is decoded.

    Args:
        max_pixels (`int`, defaults to `MAX_FRAME_PIXELS`): width x height of one frame.
        max_side (`int`, defaults to `MAX_FRAME_SIDE`): its width and its height, each.
    """

    max_pixels: int = MAX_FRAME_PIXELS
    max_side: int = MAX_FRAME_SIDE

    def __post_init__(self):
        for name in ("max_pixels", "max_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FrameLimits: {name}={value!r} must be a positive whole number of pixels")

    def check(self, name: str, height: int, width: int) -> None:
        """Raises `VideoReadError` naming `name`, the frame size and the limit when a frame exceeds the limits."""
        if width * height <= self.max_pixels and max(width, height) <= self.max_side:
            return
        raise VideoReadError(
            f"{name}: frames of {width}x{height} px ({width * height:,} pixels) exceed the frame limit of "
            f"{self.max_pixels:,} pixels and {self.max_side} px per side (the video processor's max_frame_pixels and "
            "max_frame_side, or max_pixels= and max_side= of read_video_frames / open_video); downscale the video "
            "first, or raise the limit if this machine has the memory (docs/video_limits.md)"
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
        limits ([`FrameLimits`]): the largest frame this source reads; larger ones are refused before decoding.
        backend (`str`): what decodes it: `"torchcodec"`, `"pillow"` or `"array"`.
    """

    name: str
    num_frames: int
    fps: float | None = None
    limits: FrameLimits = FrameLimits()
    backend: str = "array"

    # Frames are decoded at the source size and resized a group at a time, each group holding at most this many
    # bytes of source frames (and at least one frame): 27 frames of 720x540, 5 of 1080p. Peak memory is then this
    # budget plus the resized frames, whatever the source resolution. Video files larger than 1080p are resized
    # inside FFmpeg instead (see `video_io`), so their frames never exist at the source size in torch.
    resize_budget_bytes = 32 * 2**20

    @property
    def frame_size(self) -> tuple[int, int]:
        """`(height, width)` of the frames as stored (before any resize)."""
        raise NotImplementedError

    @property
    def duration(self) -> float | None:
        """Length in seconds, `None` without a frame rate."""
        return self.num_frames / self.fps if self.fps else None

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
                [`resize_frames`]; video files above 1080p inside FFmpeg. `None` keeps the source size.
            transform (`Callable`, *optional*): applied to each group of frames at the source size, uint8
                `(N, 3, H, W)` to the same shape, before the resize; groups are at most `resize_budget_bytes` of
                frames, as above.

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

"""Cutting a video into segments and tiling a segment into one grid image for a vision-language model.

This follows the reference's Sign Video Descriptor (`describe_segments.py`: `divide_range`,
`create_frame_grid`, `resize_image_grid`): 16-frame segments whose short tail joins the previous segment,
frames tiled row-major on a square grid with 50 px white gaps, the grid scaled down so that its longest
side is at most 1920 px.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["SEGMENT_LENGTH", "GRID_GAP", "GRID_MAX_SIDE", "segment_ranges", "frame_grid"]

SEGMENT_LENGTH = 16  # the reference's `--num_frames`
GRID_GAP = 50  # the reference's `interval_width`
GRID_MAX_SIDE = 1920  # the reference's `resize_image_grid(max_length=1920)`


def segment_ranges(num_frames: int, segment_length: int = SEGMENT_LENGTH) -> list[range]:
    """Splits `num_frames` frames into consecutive, non-overlapping segments.

    Segments have `segment_length` frames, except the last: a tail shorter than `segment_length` joins
    the previous segment (so the last has `segment_length` to `2 * segment_length - 1` frames). A video of
    `segment_length` frames or fewer is one segment.

    Args:
        num_frames (`int`): frames in the video, at least 1.
        segment_length (`int`): frames per segment.

    Returns:
        `list[range]`: the frame indices of each segment, in order; together they cover every frame once.
    """
    if segment_length < 1:
        raise ValueError(f"segment_length must be at least 1, got {segment_length}")
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame to be segmented, got {num_frames} frames")
    starts = list(range(0, num_frames, segment_length))
    if len(starts) > 1 and num_frames - starts[-1] < segment_length:
        starts.pop()
    ends = starts[1:] + [num_frames]
    return [range(start, end) for start, end in zip(starts, ends)]


def _to_pil(frame) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame.convert("RGB")
    array = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim != 3:
        raise ValueError(f"a frame must have 3 dimensions (channels, height, width), got shape {array.shape}")
    if array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (0-255), got {array.dtype}; convert them before tiling")
    if array.shape[-1] == 1:
        array = array.repeat(3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def frame_grid(
    frames: torch.Tensor | Sequence, gap: int = GRID_GAP, max_side: int | None = GRID_MAX_SIDE
) -> Image.Image:
    """Tiles the frames of one segment into a single RGB image.

    The grid is square, `g = ceil(sqrt(n))` columns by `g` rows as in the reference (5 x 5 for 17 to 25
    frames, even though 4 rows would hold 17), frames placed row-major in cells
    the size of the first frame (frames of another size are resized to it), `gap` px of white between
    cells (not around the border) and white empty cells. If the longest side exceeds `max_side`, the
    image is scaled down with bilinear resampling, keeping the aspect ratio.

    Args:
        frames (`torch.Tensor` of shape `(n, 3, H, W)` uint8, or a sequence of PIL images / `(3, H, W)`
            or `(H, W, 3)` uint8 arrays): the frames of the segment, in order.
        gap (`int`): white separator width in pixels.
        max_side (`int`, *optional*): the longest side allowed; `None` keeps the full size.

    Returns:
        `PIL.Image.Image`: the RGB grid image.
    """
    images = [_to_pil(frame) for frame in frames]
    if not images:
        raise ValueError("a grid needs at least one frame")
    width, height = images[0].size
    columns = math.ceil(math.sqrt(len(images)))
    rows = columns
    grid = Image.new("RGB", (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap), "white")
    for index, image in enumerate(images):
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        row, column = divmod(index, columns)
        grid.paste(image, (column * (width + gap), row * (height + gap)))
    if max_side is not None and max(grid.size) > max_side:
        scale = max_side / max(grid.size)
        size = (max(1, round(grid.width * scale)), max(1, round(grid.height * scale)))
        grid = grid.resize(size, Image.Resampling.BILINEAR)
    return grid

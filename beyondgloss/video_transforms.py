# Copyright 2026 The beyondgloss authors. MIT license.
"""The steps of [`BeyondGlossVideoProcessor`] as small functions: which frames to keep, what size to resize to, the
reference's clip augmentation, the crop, rescale and normalisation.

Each works on torch tensors alone (no torchvision, which has no CPU build next to CPU torch on PyPI) and imports only
torch, so it travels with `video_processing_beyondgloss.py` into checkpoint folders.
"""

import math

import torch

__all__ = [
    "FRAME_SAMPLING_MODES",
    "MAX_OUTPUT_SIDE",
    "affine_frames",
    "crop_frames",
    "draw_affine",
    "rescale_and_normalize",
    "resize_output_size",
    "sample_frame_count",
    "select_frame_indices",
]

FRAME_SAMPLING_MODES = ("uniform", "truncate")
# The largest side of a frame the processor outputs (after resize and crop): sizes above it are refused when a
# processor is made or loaded, and `shortest_edge` resizes are clamped to it (docs/video_limits.md).
MAX_OUTPUT_SIDE = 1024


def select_frame_indices(
    num_frames: int,
    max_frames: int,
    frame_sampling: str = "uniform",
    fps: float | None = None,
    target_fps: float | None = None,
) -> list[int]:
    """Which frames of a video the processor keeps under a cap of `max_frames` (the `max_frames` setting).

    1. Frame rate (only when `target_fps` and the video's `fps` are known and `target_fps < fps`): frame
       `floor(k * fps / target_fps)` for `k = 0, 1, ...` while it exists.
    2. Length, when more than `max_frames` frames remain (of `n`):
       - `"uniform"`: position `round(k * (n - 1) / (max_frames - 1))` for `k = 0 .. max_frames - 1`
         (rounding half up), so the first and last frames are kept and the gaps differ by at most one;
       - `"truncate"`: the first `max_frames` (what the reference code does; the tail is lost).

    Args:
        num_frames (`int`): frames in the video (at least 1).
        max_frames (`int`): most frames to keep.
        frame_sampling (`str`, defaults to `"uniform"`): `"uniform"` or `"truncate"`.
        fps (`float`, *optional*): the video's frame rate.
        target_fps (`float`, *optional*): frame rate to subsample to.

    Returns:
        `list[int]`: increasing source frame indices.

    Example:

    ```python
    >>> select_frame_indices(10, 4)
    [0, 3, 6, 9]
    >>> select_frame_indices(10, 4, "truncate")
    [0, 1, 2, 3]
    ```
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    indices = list(range(num_frames))
    if target_fps is not None and fps is not None and target_fps < fps:
        step = fps / target_fps
        indices = [int(k * step) for k in range(math.ceil(num_frames / step)) if int(k * step) < num_frames]
    count = len(indices)
    if count <= max_frames:
        return indices
    if frame_sampling == "truncate":
        return indices[:max_frames]
    if frame_sampling != "uniform":
        raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLING_MODES}, got {frame_sampling!r}")
    if max_frames == 1:
        return [indices[0]]
    # Integer arithmetic for round-half-up of k * (count - 1) / (max_frames - 1).
    span, steps = count - 1, max_frames - 1
    return [indices[(2 * k * span + steps) // (2 * steps)] for k in range(max_frames)]


def sample_frame_count(total_frames: int, num_frames: int, name: str = "the video") -> list[int]:
    """Exactly `num_frames` frames spread uniformly over the video: transformers' rule for its video processors'
    `num_frames` (`default_sample_indices_fn`), frame `k * total_frames // num_frames` for `k = 0 .. num_frames - 1`.

    Raises:
        `ValueError`: naming `name`, when the video has fewer than `num_frames` frames (as transformers).

    Example:

    ```python
    >>> sample_frame_count(10, 4)
    [0, 2, 5, 7]
    ```
    """
    if num_frames > total_frames:
        raise ValueError(
            f"{name} has {total_frames} frames, fewer than num_frames={num_frames} (the exact number of frames to "
            "sample); pass a smaller num_frames, or max_frames= instead to keep at most that many"
        )
    return [k * total_frames // num_frames for k in range(num_frames)]


def resize_output_size(
    height: int, width: int, size: dict[str, int], max_side: int = MAX_OUTPUT_SIDE
) -> tuple[int, int]:
    """`(height, width)` that a `height` x `width` frame is resized to by `size`.

    - `{"height": h, "width": w}`: exactly that (the aspect ratio is not kept);
    - `{"shortest_edge": s}`: the shorter side to `s`, the longer side to `int(s * long / short)` (transformers'
      rule, truncated), then, as transformers does with `"longest_edge": l`, both sides scaled so the longer one is
      at most `l` (default and upper bound `max_side`): a 2 x 8192 frame with `s = 256` becomes 1 x 1024, not
      256 x 1048576. No side is smaller than 1.
    """
    if "shortest_edge" not in size:
        return size["height"], size["width"]
    edge, longest = size["shortest_edge"], min(size.get("longest_edge", max_side), max_side)
    short, long = min(height, width), max(height, width)
    new_short, new_long = edge, int(edge * long / short)
    if new_long > longest:
        new_short, new_long = max(1, int(longest * short / long)), longest
    return (new_short, new_long) if height <= width else (new_long, new_short)


def crop_frames(
    frames: torch.Tensor,
    crop_size: dict[str, int],
    random: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The centre `crop_size` of every frame, or (`random=True`) one random offset for the whole clip in
    `[0, size - crop)` per axis (the reference's `np.random.randint(0, 32)` for 256 -> 224).

    Raises:
        `ValueError`: the crop is larger than the frames.
    """
    height, width = frames.shape[-2:]
    crop_height, crop_width = crop_size["height"], crop_size["width"]
    if crop_height > height or crop_width > width:
        raise ValueError(
            f"crop_size={crop_size} is larger than the {height}x{width} frames; set a size at least as large as the "
            "crop"
        )
    if random:
        top = int(torch.randint(0, max(height - crop_height, 1), (1,), generator=generator))
        left = int(torch.randint(0, max(width - crop_width, 1), (1,), generator=generator))
    else:
        top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return frames[..., top : top + crop_height, left : left + crop_width]


def rescale_and_normalize(
    frames: torch.Tensor,
    do_rescale: bool = True,
    rescale_factor: float = 1 / 255,
    do_normalize: bool = True,
    image_mean: list[float] | None = None,
    image_std: list[float] | None = None,
) -> torch.Tensor:
    """float32 frames `x * rescale_factor` (`do_rescale`), then `(x - mean) / std` per channel (`do_normalize`),
    as transformers' `rescale_and_normalize`; computed as one scale and one shift on a single float copy."""
    # Computed as the earlier versions did, so that saved processors give the same bits: (x / 255 - mean) / std as
    # x * (1 / (255 std)) - mean / std in float32 (1 / (1 / 255) is exactly 255 in float64).
    divisor = 1 / rescale_factor if do_rescale else 1.0
    scale = torch.full((1, 3, 1, 1), 1 / divisor)
    shift = torch.zeros(1, 3, 1, 1)
    if do_normalize:
        std = torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        scale, shift = 1 / (divisor * std), mean / std
    output = frames.to(torch.float32)
    if output is frames:  # already float32: do not change the caller's tensor
        output = output.clone()
    return output.mul_(scale.to(frames.device)).sub_(shift.to(frames.device))


def draw_affine(
    probability: float,
    rotation_degrees: float,
    translate_pixels: int,
    generator: torch.Generator | None = None,
) -> tuple[float, tuple[int, int]]:
    """One clip's random rotation and shift, as the reference draws them: each op with `probability`, an angle from
    U(-rotation_degrees, rotation_degrees), a shift of whole pixels in [-translate_pixels, translate_pixels] per
    axis. `0.0, (0, 0)` when neither op is drawn."""
    draws = torch.rand(3, generator=generator)
    rotate, translate = bool(draws[0] < probability), bool(draws[1] < probability)
    if not (rotate or translate):
        return 0.0, (0, 0)
    angle = (2 * float(draws[2]) - 1) * rotation_degrees if rotate else 0.0
    shift = (0, 0)
    if translate:
        shift = tuple(torch.randint(-translate_pixels, translate_pixels + 1, (2,), generator=generator).tolist())
    return angle, shift


def affine_frames(
    frames: torch.Tensor,
    angle: float = 0.0,
    shift: tuple[int, int] = (0, 0),
    source_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Rotates every frame about its centre, then shifts it: PIL's `rotate(angle)` followed by
    `transform(AFFINE, (1, 0, shift_x, 0, 1, shift_y))`, both nearest-neighbour with black fill, computed as one
    resampling that gives the same pixels.

    `source_size` says which frame geometry `angle` and `shift` are meant in: the reference augments the decoded
    frames (say 260 x 210) and resizes them after; the processor resizes first, so that a 4K frame is never
    resampled at full size, and passes the source size here. The rotation and shift then happen in the source's
    coordinates (a rotation in a frame that is later squeezed to a square is a shear in the square), at the frames'
    own resolution. `None`: the frames' own size (PIL's pixels exactly).

    Args:
        frames (`torch.Tensor`): frames `(T, C, H, W)`, any dtype, on any device.
        angle (`float`): degrees, counter-clockwise on screen (PIL's convention).
        shift (`tuple[int, int]`): `(shift_x, shift_y)` in source pixels; output pixel `(x, y)` shows the rotated
            frame's pixel `(x + shift_x, y + shift_y)`.
        source_size (`tuple[int, int]`, *optional*): `(height, width)` of the frames `angle` and `shift` refer to.

    Returns:
        `torch.Tensor`: frames of the same shape and dtype.
    """
    height, width = frames.shape[-2:]
    source_height, source_width = source_size or (height, width)
    shift_x, shift_y = shift
    # Every output pixel centre, in source pixel units, in float32 at the output size (at most 1024 x 1024, so the
    # grid is a few MB, not the 700 MB of a float64 grid of a 4K frame). At arbitrary angles PIL (in double) breaks
    # a few nearest-neighbour ties otherwise, in float32 as in float64; the tests pin angles where all agree.
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * (source_height / height)
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * (source_width / width)
    ys, xs = torch.meshgrid(ys, xs, indexing="ij")
    # Map it back to where it comes from: the translation reads at p + shift, the rotation about the centre c reads
    # at c + R (q - c) (PIL's inverse rotation matrix).
    qx, qy = xs + shift_x - source_width / 2, ys + shift_y - source_height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    src_x = cos * qx - sin * qy + source_width / 2
    src_y = sin * qx + cos * qy + source_height / 2
    # The nearest output pixel to read (round half to even, as grid_sample's "nearest"), in the frames' own pixels.
    column = torch.round(src_x * (width / source_width) - 0.5)
    row = torch.round(src_y * (height / source_height) - 0.5)
    # PIL shifts the already rotated frame, whose outside is black: points shifted in from beyond its border stay
    # black even where the rotation would find image content there.
    inside = (qx.abs() < source_width / 2) & (qy.abs() < source_height / 2)
    inside &= (column >= 0) & (column < width) & (row >= 0) & (row < height)
    flat = (row.clamp(0, height - 1) * width + column.clamp(0, width - 1)).long().view(-1).to(frames.device)
    # A gather in the frames' own dtype: uint8 frames are never copied to float.
    moved = frames.reshape(*frames.shape[:-2], height * width).index_select(-1, flat)
    return moved.view(frames.shape).masked_fill_(~inside.to(frames.device), 0)

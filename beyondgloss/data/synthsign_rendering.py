# Copyright 2026 The beyondgloss authors. MIT license.
"""Rendering SynthSign clips (see `beyondgloss.data.synthsign`): the frames of a sentence's signs, signed by one of
four signers, with the per-frame hand parameters that the hand-distillation head learns, and their h264 encoding."""

import numpy as np

from .synthsign_language import COLOURS, HEIGHT_NAMES, HEIGHTS, LEXICONS, SHAPES

__all__ = ["FRAME_RATE", "SIGNERS", "SYNTHSIGN_HAND_DIM", "encode_video", "render_clip", "signer_background"]

FRAME_RATE = 25
_HAND_FIELDS = 3 + len(SHAPES)
SYNTHSIGN_HAND_DIM = 2 * _HAND_FIELDS


def _trajectory(kind: int, t: np.ndarray) -> tuple:
    """Offsets (dx, dy) in image fractions along a trajectory, for progress `t` in [0, 1]."""
    tau = 2 * np.pi * t
    if kind == 0:
        return 0.14 * np.cos(tau), 0.14 * np.sin(tau)
    if kind == 1:
        return -0.2 + 0.4 * t, np.zeros_like(t)
    if kind == 2:
        return np.zeros_like(t), 0.18 - 0.36 * t
    if kind == 3:
        return -0.15 + 0.3 * t, 0.15 - 0.3 * t
    if kind == 4:
        return -0.2 + 0.4 * t, 0.1 * (2 * np.abs(2 * ((2 * t) % 1) - 1) - 1)
    if kind == 5:
        return 0.18 * np.cos(np.pi * t), -0.16 * np.sin(np.pi * t)
    if kind == 6:
        return 0.15 * np.sin(tau), 0.09 * np.sin(2 * tau)
    return np.zeros_like(t), -0.12 * np.abs(np.sin(1.5 * tau))


def _shape_mask(shape: int, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of shape `SHAPES[shape]` for pixel offsets (dx, dy) from the hand centre, in pixels."""
    name = SHAPES[shape]
    if name == "disc":
        return dx * dx + dy * dy <= radius * radius
    if name == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= radius * 0.85
    if name == "diamond":
        return np.abs(dx) + np.abs(dy) <= radius * 1.15
    if name == "ring":
        squared = dx * dx + dy * dy
        return (squared <= radius * radius) & (squared >= radius * radius / 4)
    if name == "cross":
        third = radius / 3
        return ((np.abs(dx) <= third) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= third) & (np.abs(dx) <= radius))
    return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
# Signers differ in body colour, hand size and position, not in how signs look.
SIGNERS = (
    {"body": (90, 90, 110), "scale": 1.0, "shift": 0.0},
    {"body": (110, 80, 70), "scale": 1.1, "shift": 0.02},
    {"body": (70, 100, 80), "scale": 0.92, "shift": -0.02},
    {"body": (100, 100, 100), "scale": 1.05, "shift": 0.01},
)


def signer_background(style: dict, size: int) -> np.ndarray:
    """The static picture of a signer without hands: head and torso on the dark background, uint8 (S, S, 3)."""
    grid = np.arange(size, dtype=np.float32) + 0.5
    background = np.full((size, size, 3), 25, dtype=np.uint8)
    gy, gx = np.meshgrid(grid / size, grid / size, indexing="ij")
    body = ((gx - 0.5) ** 2 + (gy - 0.18) ** 2 <= 0.1 ** 2) | ((np.abs(gx - 0.5) <= 0.24) & (gy >= 0.34))
    background[body] = style["body"]
    return background


def render_clip(glosses: list, frames_per_sign: list, signer: int = 0, image_size: int = 32,
                jitter: np.ndarray | None = None, lexicon: str = "standard") -> tuple:
    """Renders one clip.

    Args:
        glosses (`list[str]`): the signs, in signing order.
        frames_per_sign (`list[int]`): frames given to each sign.
        signer (`int`): which of the 4 signers (body colour, hand size, position).
        image_size (`int`): side S of the square frames.
        jitter (`np.ndarray` of shape (num_signs, 2), *optional*): per-sign offset of the sign's centre in
            image fractions (natural variation between repetitions).
        lexicon (`str`): how the signs look, a key of `LEXICONS` ("standard", or "handshape").

    Returns:
        `(frames, hand_params)`: uint8 array (T, 3, S, S) and float32 array (T, SYNTHSIGN_HAND_DIM).
    """
    style = SIGNERS[signer]
    size = image_size
    signs = [LEXICONS[lexicon][gloss] for gloss in glosses]
    jitter = np.zeros((len(signs), 2)) if jitter is None else jitter
    # Per-frame parameters for (right, left) hands: centre x, y (fractions), radius, shape, colour.
    xs, ys, shapes, colours = [], [], [], []
    for sign, count, (jx, jy) in zip(signs, frames_per_sign, jitter):
        t = np.linspace(0.0, 1.0, count)
        dx, dy = _trajectory(sign.trajectory, t)
        height = HEIGHTS[HEIGHT_NAMES[sign.height]] + jy
        right = (0.62 + style["shift"] + jx + dx, height + dy)
        left = (0.38 + style["shift"] + jx - dx, height + dy) if sign.two_handed else (
            np.full(count, 0.3 + style["shift"]), np.full(count, 0.86))
        xs.append(np.stack([right[0], left[0]], axis=1))
        ys.append(np.stack([right[1], left[1]], axis=1))
        shapes.append(np.tile([sign.right_shape, sign.left_shape], (count, 1)))
        colours.append(np.tile([sign.right_colour, sign.left_colour], (count, 1)))
    xs, ys = np.clip(np.concatenate(xs), 0.05, 0.95), np.clip(np.concatenate(ys), 0.05, 0.95)
    shapes, colours = np.concatenate(shapes), np.concatenate(colours)
    num_frames = len(xs)
    radius_fraction = 0.11 * style["scale"]

    grid = np.arange(size, dtype=np.float32) + 0.5
    # Body: head and torso, static, drawn once.
    frames = np.broadcast_to(signer_background(style, size), (num_frames, size, size, 3)).copy()
    radius = radius_fraction * size
    palette = np.array(list(COLOURS.values()), dtype=np.uint8)
    # Shape and colour are constant within a sign, so each sign's frames are painted in one vectorised step;
    # the left hand first, so the right (dominant) hand is on top where they overlap.
    start = 0
    for count in frames_per_sign:
        segment = slice(start, start + count)
        for hand in (1, 0):
            dx = grid[None, None, :] - (xs[segment, hand] * size)[:, None, None]
            dy = grid[None, :, None] - (ys[segment, hand] * size)[:, None, None]
            mask = _shape_mask(int(shapes[start, hand]), dx, dy, radius)
            frames[segment][mask] = palette[colours[start, hand]]
        start += count

    params = np.zeros((num_frames, SYNTHSIGN_HAND_DIM), dtype=np.float32)
    for hand in (0, 1):
        base = hand * _HAND_FIELDS
        params[:, base] = xs[:, hand]
        params[:, base + 1] = ys[:, hand]
        params[:, base + 2] = radius_fraction
        params[np.arange(num_frames), base + 3 + shapes[:, hand]] = 1.0
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)), params


def encode_video(frames: np.ndarray, path) -> None:
    """Writes uint8 frames (T, 3, S, S) as an h264 mp4 at `FRAME_RATE`."""
    import torch
    from torchcodec.encoders import VideoEncoder

    # yuv444p keeps full-resolution colour: at 32 px, 4:2:0 chroma would smear the small coloured hands.
    VideoEncoder(torch.from_numpy(frames), frame_rate=FRAME_RATE).to_file(
        str(path), pixel_format="yuv444p", crf=10, preset="ultrafast")

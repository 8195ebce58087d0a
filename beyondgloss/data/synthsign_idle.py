# Copyright 2026 The beyondgloss authors. MIT license.
"""SynthSign idle clips (see `beyondgloss.data.synthsign`): stretches where nobody signs, the negatives of the signing
gate (docs/streaming.md).

Four kinds, each drawn by one of the four signers (or by nobody):

- `rest`: the hands rest low, below every sign's height, moving only a little (breathing);
- `fidget`: the hands wander slowly about the body, a smooth drift that takes 1.2 to 3.2 seconds per cycle, while
  every sign completes its movement in 6 to 10 frames (a quarter to a third of a second at 25 fps);
- `away`: the signer with the hands out of the picture;
- `empty`: an empty scene, no signer.

Per-frame hand parameters are the real positions where hands are visible (`rest`, `fidget`: same layout as a signing
clip's, hand mask 1) and zeros with hand mask 0 where there are none (`away`, `empty`). A clip is rendered from its
job alone (kind, length, signer, seed), so a corpus is the same in every process.
"""

import numpy as np

from .synthsign_language import COLOURS, SHAPES
from .synthsign_rendering import _HAND_FIELDS, SIGNERS, SYNTHSIGN_HAND_DIM, _shape_mask, signer_background

__all__ = ["IDLE_KINDS", "describe_idle", "idle_clip_count", "idle_jobs", "render_idle_clip"]

IDLE_KINDS = ("rest", "fidget", "away", "empty")
_DESCRIPTIONS = {
    "rest": "both hands rest low and still.",
    "fidget": "the hands drift slowly about the body without signing.",
    "away": "the signer stands with no hands in view.",
    "empty": "the scene is empty.",
}
# Where the hands rest (image fractions, right then left): the resting left hand of a one-handed sign.
_REST = ((0.7, 0.86), (0.3, 0.86))


def describe_idle(kind: str) -> str:
    """The description of an idle clip of `kind` (hands only, as the signing clips' descriptions)."""
    return _DESCRIPTIONS[kind]


def idle_clip_count(settings: dict, split: str) -> int:
    """Idle clips of `split` for corpus `settings`: `round(idle_fraction * num_<split>)` (0 without the setting)."""
    return int(round(float(settings.get("idle_fraction", 0.0)) * int(settings[f"num_{split}"])))


def idle_jobs(settings: dict, split: str, first_number: int, frames_per_sign: tuple) -> list:
    """The jobs of `split`'s idle clips, numbered from `first_number` (after the split's signing clips).

    Their own random stream (`seed`, split), so adding idle clips leaves every signing clip of the corpus as it was.
    Lengths span those of the sentences: 3 to 6 signs of `frames_per_sign` frames.
    """
    low, high = frames_per_sign
    rng = np.random.default_rng([int(settings["seed"]), 27, ("train", "validation", "test").index(split)])
    jobs = []
    for offset in range(idle_clip_count(settings, split)):
        number = first_number + offset
        kind = IDLE_KINDS[offset % len(IDLE_KINDS)]
        jobs.append({
            "id": f"{split}/{number:06d}", "file_name": f"{split}/{number:06d}.mp4", "split": split,
            "glosses": [], "text": "", "idle": kind,
            "num_frames": int(rng.integers(3 * low, 6 * high + 1)),
            "signer": int(rng.integers(len(SIGNERS))),
            "seed": int(rng.integers(2 ** 31)),
            "description": describe_idle(kind),
        })
    return jobs


def _hand_paths(kind: str, count: int, shift: float, rng: np.random.Generator) -> tuple:
    """Centres `(xs, ys)` of shape (count, 2) (right, left) of a `rest` or `fidget` clip."""
    frames = np.arange(count)[:, None]
    rest = np.array(_REST)
    if kind == "rest":
        period = rng.uniform(40, 90, size=2)
        xs = rest[:, 0] + shift + 0.01 * np.sin(2 * np.pi * frames / period + rng.uniform(0, 2 * np.pi, 2))
        ys = rest[:, 1] + 0.012 * np.sin(2 * np.pi * frames / period)
        return xs, ys
    centre_x = rest[:, 0] + shift + rng.uniform(-0.08, 0.08, size=2)
    centre_y = rng.uniform(0.55, 0.85, size=2)
    period_x, period_y = rng.uniform(30, 80, size=2), rng.uniform(30, 80, size=2)
    xs = centre_x + rng.uniform(0.03, 0.1, 2) * np.sin(2 * np.pi * frames / period_x + rng.uniform(0, 2 * np.pi, 2))
    ys = centre_y + rng.uniform(0.03, 0.1, 2) * np.sin(2 * np.pi * frames / period_y + rng.uniform(0, 2 * np.pi, 2))
    return xs, ys


def render_idle_clip(job: dict, image_size: int = 32) -> tuple:
    """Renders the idle clip of a job from [`idle_jobs`].

    Returns:
        `(frames, hand_params, hand_mask)`: uint8 array (T, 3, S, S), float32 array (T, SYNTHSIGN_HAND_DIM) and
        float32 array (T,), 1 where the hands are visible.
    """
    kind, count, size = job["idle"], int(job["num_frames"]), image_size
    style = SIGNERS[job["signer"]]
    rng = np.random.default_rng(job["seed"])
    params = np.zeros((count, SYNTHSIGN_HAND_DIM), dtype=np.float32)
    if kind == "empty":
        frames = np.full((count, size, size, 3), 25, dtype=np.uint8)
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)), params, np.zeros(count, dtype=np.float32)
    frames = np.broadcast_to(signer_background(style, size), (count, size, size, 3)).copy()
    if kind == "away":
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)), params, np.zeros(count, dtype=np.float32)
    xs, ys = _hand_paths(kind, count, style["shift"], rng)
    xs, ys = np.clip(xs, 0.05, 0.95), np.clip(ys, 0.05, 0.95)
    shapes, colours = rng.integers(len(SHAPES), size=2), rng.integers(len(COLOURS), size=2)
    radius_fraction = 0.11 * style["scale"]
    grid = np.arange(size, dtype=np.float32) + 0.5
    palette = np.array(list(COLOURS.values()), dtype=np.uint8)
    for hand in (1, 0):  # the right hand on top, as in a signing clip
        dx = grid[None, None, :] - (xs[:, hand] * size)[:, None, None]
        dy = grid[None, :, None] - (ys[:, hand] * size)[:, None, None]
        frames[_shape_mask(int(shapes[hand]), dx, dy, radius_fraction * size)] = palette[colours[hand]]
        base = hand * _HAND_FIELDS
        params[:, base], params[:, base + 1], params[:, base + 2] = xs[:, hand], ys[:, hand], radius_fraction
        params[:, base + 3 + shapes[hand]] = 1.0
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)), params, np.ones(count, dtype=np.float32)

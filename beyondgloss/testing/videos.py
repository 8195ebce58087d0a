# Copyright 2026 The beyondgloss authors. MIT license.
"""Tiny video fixtures for tests and examples: frames that survive lossy encoding, written as mp4 or PNG folders."""

from pathlib import Path

import numpy as np
import torch

__all__ = ["make_frames", "write_frame_folder", "write_mp4"]


def make_frames(num_frames: int, height: int = 20, width: int = 24, seed: int = 0) -> torch.Tensor:
    """Frames whose brightness rises with the frame index over a fixed smooth pattern.

    Smooth content survives h264 nearly unchanged, and the per-frame brightness step (`200 / num_frames` levels)
    lets a test tell which source frame a decoded frame came from by its mean.

    Returns:
        `torch.Tensor`: uint8 frames `(num_frames, 3, height, width)`.
    """
    generator = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width)
    tint = torch.rand(3, 1, 1, generator=generator) * 40
    pattern = 20 * ys + 20 * xs + tint  # (3, H, W), values below 80
    steps = torch.arange(num_frames).view(-1, 1, 1, 1) * (160 / max(num_frames - 1, 1))
    return (pattern.unsqueeze(0) + steps + 10).round().clamp(0, 255).to(torch.uint8)


def write_mp4(path, frames: torch.Tensor, fps: float = 25) -> Path:
    """Writes uint8 frames `(T, 3, H, W)` (H and W even, for yuv420) as an h264 mp4 with torchcodec."""
    from torchcodec.encoders import VideoEncoder

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    VideoEncoder(frames.contiguous(), frame_rate=fps).to_file(str(path))
    return path


def write_frame_folder(path, frames: torch.Tensor, pattern: str = "images{:04d}.png", start: int = 1) -> Path:
    """Writes uint8 frames `(T, 3, H, W)` as PNG files named `pattern.format(start + t)` (Phoenix14T's naming)."""
    from PIL import Image

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(frame.permute(1, 2, 0).numpy())).save(path / pattern.format(start + t))
    return path

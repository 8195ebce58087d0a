# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss video processor: decode, select frames, augment (training), resize, crop, normalise, pad.

Implemented with torch alone (no torchvision, which has no CPU build next to CPU torch on PyPI). Imports only torch,
transformers and siblings, so `save_pretrained` can copy it into a checkpoint loadable with `trust_remote_code=True`.
"""

import math
from typing import TypedDict

import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BatchFeature
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin

from .video_io import VideoSource, is_single_video, open_video

__all__ = ["BeyondGlossVideoProcessor", "FRAME_SAMPLING_MODES", "affine_frames", "select_frame_indices"]

logger = logging.get_logger(__name__)

FRAME_SAMPLING_MODES = ("uniform", "truncate")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class BeyondGlossVideoProcessorKwargs(TypedDict, total=False):
    """The settings of [`BeyondGlossVideoProcessor`] (also the keys `from_pretrained(..., **overrides)` accepts)."""

    max_frames: int
    frame_sampling: str
    target_fps: float | None
    resize_size: int | None
    crop_size: int | None
    image_mean: list[float]
    image_std: list[float]
    augment: bool
    rotation_degrees: float
    translate_pixels: int
    augment_probability: float


def select_frame_indices(
    num_frames: int,
    max_frames: int,
    frame_sampling: str = "uniform",
    fps: float | None = None,
    target_fps: float | None = None,
) -> list[int]:
    """Which frames of a video the processor keeps.

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


class BeyondGlossVideoProcessor(VideoProcessorMixin):
    r"""
    Turns sign videos into the model's `pixel_values_videos` and `video_attention_mask`.

    For each video: open it (any form [`~beyondgloss.video_io.open_video`] reads: a video file, a frame folder, a
    list of image paths, a torchcodec `VideoDecoder`, a `{"path", "bytes"}` dict, an array), choose the frames to
    keep ([`select_frame_indices`]), decode only those, then

    - at training time only (`training=True` and `augment=True`), the reference's clip augmentation on the
      source-resolution frames: with probability 0.5 a rotation by an angle drawn from U(-30°, 30°), with probability
      0.5 a translation by whole pixels drawn from [-10, 10] per axis; one draw per clip, so every frame of a clip
      moves the same way; nearest-neighbour resampling, black fill (pixel-identical to PIL's two steps);
    - resize to `resize_size` x `resize_size` (bicubic with antialiasing in 8 bits, as PIL; the aspect ratio is not
      kept, as in the reference);
    - crop `crop_size` x `crop_size`: the centre at evaluation (offset 16, 16 for 256 -> 224), one random offset per
      video in `[0, resize_size - crop_size)` at training (the reference's `np.random.randint(0, 32)`);
    - scale to [0, 1] and normalise with the ImageNet mean and std.

    The batch is zero-padded to its longest video; real frames come first and `video_attention_mask` marks them.
    Randomness uses torch's generator (pass `generator=` for reproducibility; DataLoader workers are seeded apart).

    Args:
        max_frames (`int`, defaults to 300): most frames per video (the reference's `max_length`).
        frame_sampling (`str`, defaults to `"uniform"`): how longer videos are shortened: `"uniform"` subsampling
            over the whole video, or `"truncate"` to the first `max_frames` (the reference).
        target_fps (`float`, *optional*): subsample videos with a known, higher frame rate to this rate first.
        resize_size (`int`, *optional*, defaults to 256): square size frames are resized to; `None` keeps the size.
        crop_size (`int`, *optional*, defaults to 224): square crop size; `None` skips cropping.
        image_mean, image_std (`list[float]`): normalisation, ImageNet's by default (DINOv2's).
        augment (`bool`, defaults to `True`): apply the rotation/translation augmentation when `training=True`.
        rotation_degrees (`float`, defaults to 30.0), translate_pixels (`int`, defaults to 10),
        augment_probability (`float`, defaults to 0.5): the augmentation's ranges and per-op probability.

    Example:

    ```python
    >>> from beyondgloss import BeyondGlossVideoProcessor
    >>> processor = BeyondGlossVideoProcessor()
    >>> batch = processor(["signing.mp4", "frames_dir/"], return_frame_indices=True)
    >>> batch["pixel_values_videos"].shape, batch["video_attention_mask"].shape
    (torch.Size([2, 143, 3, 224, 224]), torch.Size([2, 143]))
    ```
    """

    model_input_names = ["pixel_values_videos", "video_attention_mask"]
    valid_kwargs = BeyondGlossVideoProcessorKwargs

    def __init__(
        self,
        max_frames: int = 300,
        frame_sampling: str = "uniform",
        target_fps: float | None = None,
        resize_size: int | None = 256,
        crop_size: int | None = 224,
        image_mean: list[float] | tuple[float, ...] = tuple(IMAGENET_MEAN),
        image_std: list[float] | tuple[float, ...] = tuple(IMAGENET_STD),
        augment: bool = True,
        rotation_degrees: float = 30.0,
        translate_pixels: int = 10,
        augment_probability: float = 0.5,
        **kwargs,
    ):
        # Saved files carry the class name; it is not a setting.
        kwargs.pop("video_processor_type", None)
        super().__init__(**kwargs)
        self.max_frames = int(max_frames)
        self.frame_sampling = frame_sampling
        self.target_fps = float(target_fps) if target_fps is not None else None
        self.resize_size = int(resize_size) if resize_size is not None else None
        self.crop_size = int(crop_size) if crop_size is not None else None
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.augment = bool(augment)
        self.rotation_degrees = float(rotation_degrees)
        self.translate_pixels = int(translate_pixels)
        self.augment_probability = float(augment_probability)
        self._validate()

    def _validate(self):
        def fail(message):
            raise ValueError(f"BeyondGlossVideoProcessor: {message}")

        if self.max_frames < 1:
            fail(f"max_frames={self.max_frames} must be at least 1")
        if self.frame_sampling not in FRAME_SAMPLING_MODES:
            fail(f"frame_sampling={self.frame_sampling!r} must be one of {FRAME_SAMPLING_MODES}")
        if self.target_fps is not None and self.target_fps <= 0:
            fail(f"target_fps={self.target_fps} must be positive, or None to keep every frame")
        for name in ("resize_size", "crop_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                fail(f"{name}={value} must be a positive number of pixels, or None to skip the step")
        if self.resize_size is not None and self.crop_size is not None and self.crop_size > self.resize_size:
            fail(f"crop_size={self.crop_size} is larger than resize_size={self.resize_size}; crop at most the resize")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            fail(f"image_mean={self.image_mean} and image_std={self.image_std} need 3 values each, std positive")
        if not 0 <= self.augment_probability <= 1:
            fail(f"augment_probability={self.augment_probability} must be in [0, 1]")
        if self.rotation_degrees < 0 or self.translate_pixels < 0:
            fail("rotation_degrees and translate_pixels must be non-negative")

    def to_dict(self) -> dict:
        output = super().to_dict()
        output["image_mean"], output["image_std"] = list(self.image_mean), list(self.image_std)
        # The base class leaves None values out, which would bring back the defaults (256 / 224) on loading.
        for name in ("target_fps", "resize_size", "crop_size"):
            output[name] = getattr(self, name)
        return output

    def __call__(self, videos, **kwargs) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def preprocess(
        self,
        videos,
        training: bool = False,
        return_tensors: str | None = "pt",
        return_frame_indices: bool = False,
        generator: torch.Generator | None = None,
    ) -> BatchFeature:
        """Processes one video or a batch of videos.

        Args:
            videos: one video in any form [`~beyondgloss.video_io.open_video`] accepts, or a list of them. A list
                of image paths (or PIL images) is one video; a list of lists of image paths is a batch.
            training (`bool`, defaults to `False`): random crop and (if `augment`) augmentation instead of the
                deterministic centre crop.
            return_tensors (`str`, defaults to `"pt"`): `"pt"` (torch) or `"np"` (numpy).
            return_frame_indices (`bool`, defaults to `False`): also return `frame_indices`, the source frame index
                of every kept frame (to align per-frame targets such as hand features).
            generator (`torch.Generator`, *optional*): random source for the crop and the augmentation.

        Returns:
            [`BatchFeature`] with
            - `pixel_values_videos`: float `(B, T_max, 3, crop_size, crop_size)`, zero after each video's end;
            - `video_attention_mask`: long `(B, T_max)`, 1 for real frames;
            - `frame_indices` (if asked): `list[list[int]]`, kept source frames per video.
        """
        batch = [videos] if is_single_video(videos) else list(videos)
        if not batch:
            raise ValueError("BeyondGlossVideoProcessor got an empty batch of videos")
        clips, kept = [], []
        for video in batch:
            source = open_video(video)
            indices = self.frame_indices_for(source)
            clips.append(self.process_frames(source.read(indices), training=training, generator=generator))
            kept.append(indices)

        sizes = {tuple(clip.shape[1:]) for clip in clips}
        if len(sizes) > 1:
            raise ValueError(
                f"the videos of a batch end up with different frame sizes {sorted(sizes)}; set resize_size and "
                "crop_size so that every video is brought to one size"
            )
        lengths = [clip.shape[0] for clip in clips]
        pixel_values = clips[0].new_zeros((len(clips), max(lengths), *clips[0].shape[1:]))
        attention_mask = torch.zeros(len(clips), max(lengths), dtype=torch.long)
        for i, clip in enumerate(clips):
            pixel_values[i, : lengths[i]] = clip
            attention_mask[i, : lengths[i]] = 1
        data = {"pixel_values_videos": pixel_values, "video_attention_mask": attention_mask}
        if return_frame_indices:
            data["frame_indices"] = kept
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=["frame_indices"])

    def frame_indices_for(self, source: VideoSource) -> list[int]:
        """The source frames kept for an opened video (see [`select_frame_indices`])."""
        if self.target_fps is not None and source.fps is None:
            # Once per process: a dataset of frame folders would otherwise repeat it for every sample.
            logger.warning_once(
                f"target_fps={self.target_fps} is not applied to videos without a known frame rate (frame folders, "
                "image lists, arrays); all their frames are candidates"
            )
        return select_frame_indices(
            source.num_frames, self.max_frames, self.frame_sampling, source.fps, self.target_fps
        )

    def process_frames(
        self, frames: torch.Tensor, training: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augments (training), resizes, crops and normalises the decoded frames of one video.

        Args:
            frames (`torch.Tensor`): uint8 RGB frames `(T, 3, H, W)`.
            training (`bool`, defaults to `False`): random crop and augmentation.
            generator (`torch.Generator`, *optional*): random source.

        Returns:
            `torch.Tensor`: float frames `(T, 3, crop_size, crop_size)`.
        """
        if training and self.augment:
            frames = self.random_affine(frames, generator)
        if self.resize_size is not None and tuple(frames.shape[-2:]) != (self.resize_size, self.resize_size):
            # torch's uint8 antialiased bicubic is Pillow's algorithm (8-bit, rounded): within 0.01 grey levels
            # of PIL's resize on average, and several times faster than resizing floats.
            frames = F.interpolate(frames, size=(self.resize_size, self.resize_size), mode="bicubic", antialias=True)
        if self.crop_size is not None:
            frames = self._crop(frames, training, generator)
        # (x / 255 - mean) / std as one scale and one shift, in place on the single float copy.
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        return frames.float().mul_(1 / (255 * std)).sub_(mean / std)

    def _crop(self, frames: torch.Tensor, training: bool, generator: torch.Generator | None) -> torch.Tensor:
        height, width = frames.shape[-2:]
        size = self.crop_size
        if size > height or size > width:
            raise ValueError(
                f"crop_size={size} is larger than the {height}x{width} frames; set resize_size >= crop_size"
            )
        if training:
            # One offset per video; the reference draws np.random.randint(0, 32), i.e. 0..31 for 256 -> 224.
            top = int(torch.randint(0, max(height - size, 1), (1,), generator=generator))
            left = int(torch.randint(0, max(width - size, 1), (1,), generator=generator))
        else:
            top, left = (height - size) // 2, (width - size) // 2
        return frames[..., top : top + size, left : left + size]

    def random_affine(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reference's clip augmentation: one random rotation and translation shared by every frame.

        Each op happens with probability `augment_probability`: a rotation by U(-rotation_degrees,
        rotation_degrees) degrees about the image centre (counter-clockwise for positive angles, as PIL), and a
        shift by integers in [-translate_pixels, translate_pixels] per axis. Nearest-neighbour, black fill.

        Args:
            frames (`torch.Tensor`): uint8 (or float) frames `(T, 3, H, W)`.
            generator (`torch.Generator`, *optional*): random source.

        Returns:
            `torch.Tensor`: frames of the same shape and dtype.
        """
        draws = torch.rand(3, generator=generator)
        rotate = bool(draws[0] < self.augment_probability)
        translate = bool(draws[1] < self.augment_probability)
        if not (rotate or translate):
            return frames
        angle = (2 * float(draws[2]) - 1) * self.rotation_degrees if rotate else 0.0
        shift = (
            torch.randint(-self.translate_pixels, self.translate_pixels + 1, (2,), generator=generator).tolist()
            if translate
            else (0, 0)
        )
        return affine_frames(frames, angle, shift)


def affine_frames(frames: torch.Tensor, angle: float = 0.0, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Rotates every frame about its centre, then shifts it: PIL's `rotate(angle)` followed by
    `transform(AFFINE, (1, 0, shift_x, 0, 1, shift_y))`, both nearest-neighbour with black fill, computed as one
    resampling that gives the same pixels.

    Args:
        frames (`torch.Tensor`): frames `(T, C, H, W)`, any dtype.
        angle (`float`): degrees, counter-clockwise on screen (PIL's convention).
        shift (`tuple[int, int]`): `(shift_x, shift_y)` in pixels; output pixel `(x, y)` shows the rotated frame's
            pixel `(x + shift_x, y + shift_y)`.

    Returns:
        `torch.Tensor`: frames of the same shape and dtype.
    """
    height, width = frames.shape[-2:]
    shift_x, shift_y = shift
    # Map every output pixel centre back to where it comes from in the input, in pixel units: the translation
    # reads at p + shift, the rotation about the centre c reads at c + R (q - c) (PIL's inverse rotation matrix).
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij"
    )
    qx, qy = xs + shift_x - width / 2, ys + shift_y - height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    src_x = cos * qx - sin * qy + width / 2
    src_y = sin * qx + cos * qy + height / 2
    # grid_sample's normalised coordinates (align_corners=False): -1 and 1 are the outer pixel edges.
    grid = torch.stack((2 * src_x / width - 1, 2 * src_y / height - 1), dim=-1)
    # PIL shifts the already rotated frame, whose outside is black: points shifted in from beyond its border stay
    # black even where the rotation would find image content there.
    inside = (qx.abs() < width / 2) & (qy.abs() < height / 2)
    grid = grid.masked_fill(~inside.unsqueeze(-1), -2.0).float()
    grid = grid.unsqueeze(0).expand(frames.shape[0], -1, -1, -1)
    moved = F.grid_sample(frames.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return moved.round().to(frames.dtype) if not frames.is_floating_point() else moved.to(frames.dtype)


# Saving a processor copies this file (and video_io.py) next to its config, so checkpoints load with
# trust_remote_code=True where beyondgloss is not installed.
BeyondGlossVideoProcessor.register_for_auto_class("AutoVideoProcessor")

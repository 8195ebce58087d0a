# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss video processor: decode, select frames, augment (training), resize, crop, normalise, pad.

Implemented with torch alone (no torchvision, which has no CPU build next to CPU torch on PyPI). Imports only torch,
transformers and siblings, so `save_pretrained` can copy it into a checkpoint loadable with `trust_remote_code=True`.
"""

import copy
import functools
import math
from typing import TypedDict

import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BatchFeature
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin

from .video_io import VideoSource, is_single_video, open_video, resize_frames

__all__ = [
    "BeyondGlossVideoProcessor",
    "FRAME_SAMPLING_MODES",
    "LEGACY_SETTING_NAMES",
    "affine_frames",
    "select_frame_indices",
]

logger = logging.get_logger(__name__)

FRAME_SAMPLING_MODES = ("uniform", "truncate")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class BeyondGlossVideoProcessorKwargs(TypedDict, total=False):
    """The settings of [`BeyondGlossVideoProcessor`]: the keys its constructor, `from_pretrained(..., **overrides)` and
    a call (`processor(videos, **overrides)`) accept. The last three are the names of earlier versions."""

    do_resize: bool | None
    size: dict[str, int] | int | None
    do_center_crop: bool | None
    crop_size: dict[str, int] | int | None
    do_normalize: bool
    image_mean: list[float]
    image_std: list[float]
    do_sample_frames: bool
    num_frames: int | None
    fps: float | None
    frame_sampling: str
    augment: bool
    rotation_degrees: float
    translate_pixels: int
    augment_probability: float
    resize_size: int | None
    max_frames: int | None
    target_fps: float | None


# Earlier versions' names (saved in their processor configs) and the settings they became.
LEGACY_SETTING_NAMES = {"resize_size": "size", "max_frames": "num_frames", "target_fps": "fps"}
# Keys a saved config carries that are bookkeeping of transformers, not settings.
_BOOKKEEPING_KEYS = ("video_processor_type", "image_processor_type", "feature_extractor_type", "processor_class")
_UNSET = object()


def _legacy_alias(legacy: str) -> property:
    """A read-write property under an earlier setting name (see `LEGACY_SETTING_NAMES`) for the current one."""
    current = LEGACY_SETTING_NAMES[legacy]
    return property(lambda self: getattr(self, current), lambda self, value: setattr(self, current, value),
                    doc=f"The earlier name of `{current}`.")


def _size_dict(value, name: str, allow_shortest_edge: bool = True) -> dict[str, int] | None:
    """`None`, an int `n` (a square `{"height": n, "width": n}`) or a size dict, validated, as a size dict."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, dict)):
        raise ValueError(
            f"BeyondGlossVideoProcessor: {name}={value!r} must be a dict such as {{'height': 224, 'width': 224}}"
            f"{' or ' + repr({'shortest_edge': 224}) if allow_shortest_edge else ''}, an int (a square), or None"
        )
    if isinstance(value, int):
        value = {"height": value, "width": value}
    keys = set(value)
    allowed = [{"height", "width"}] + ([{"shortest_edge"}] if allow_shortest_edge else [])
    if keys not in allowed:
        raise ValueError(
            f"BeyondGlossVideoProcessor: {name}={value!r} must have the keys "
            f"{' or '.join(str(sorted(a)) for a in allowed)}"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value.values()):
        raise ValueError(f"BeyondGlossVideoProcessor: {name}={value!r} needs positive whole numbers of pixels")
    return {key: int(v) for key, v in value.items()}


def _translate_legacy(settings: dict) -> dict:
    """Renames the earlier versions' settings (`resize_size`, `max_frames`, `target_fps`) to the current ones."""
    settings = dict(settings)
    for old, new in LEGACY_SETTING_NAMES.items():
        if old in settings:
            if new in settings:
                raise ValueError(
                    f"BeyondGlossVideoProcessor: got both {old}={settings[old]!r} and {new}={settings[new]!r}; "
                    f"{old} is the earlier name of {new}, pass only {new}"
                )
            settings[new] = settings.pop(old)
    return settings


def _merge_settings(base: dict, overrides: dict) -> dict:
    """`base` updated with `overrides`; a new size (or crop) also switches its step on or off unless told."""
    merged = {**base, **overrides}
    for size_name, switch in (("size", "do_resize"), ("crop_size", "do_center_crop")):
        if size_name in overrides and switch not in overrides:
            merged[switch] = None  # derived from the size: on when there is one
    return merged


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
    keep ([`select_frame_indices`]), decode only those, resizing them while the video is decoded, a few frames at a
    time (so that a 4K video needs no more memory than a small one; see [`~beyondgloss.video_io.VideoSource.read`]),
    then

    - at training time only (`training=True` and `augment=True`), the reference's clip augmentation on the
      source-resolution frames: with probability 0.5 a rotation by an angle drawn from U(-30°, 30°), with probability
      0.5 a translation by whole pixels drawn from [-10, 10] per axis; one draw per clip, so every frame of a clip
      moves the same way; nearest-neighbour resampling, black fill (pixel-identical to PIL's two steps); applied in
      source pixels, as the reference, to each group of decoded frames before their resize;
    - resize (`do_resize`) to `size`: `{"height": h, "width": w}` exactly (the aspect ratio is not kept, as in the
      reference: 256 x 256 by default), or `{"shortest_edge": s}`: the shorter side to `s`, the longer side to
      `int(s * long / short)` (as transformers' processors); bicubic with antialiasing in 8 bits, Pillow's
      algorithm (the reference's), for every input form;
    - crop (`do_center_crop`) to `crop_size`: the centre at evaluation (offset 16, 16 for 256 -> 224), one random
      offset per video in `[0, size - crop)` at training (the reference's `np.random.randint(0, 32)`);
    - scale to [0, 1] and (`do_normalize`) normalise with `image_mean` and `image_std` (ImageNet's).

    The batch is zero-padded to its longest video; real frames come first and `video_attention_mask` marks them.
    Randomness uses torch's generator (pass `generator=` for reproducibility; DataLoader workers are seeded apart).

    Every setting can be overridden for one call: `processor(videos, size={"shortest_edge": 32}, num_frames=16)`.
    Configs of earlier versions (`resize_size`, `max_frames`, `target_fps`, `crop_size` as an int) load with the same
    behaviour: `resize_size=n` is `size={"height": n, "width": n}`, `None` turns the step off.

    Args:
        do_resize (`bool`, *optional*): resize the frames; defaults to whether `size` is set.
        size (`dict[str, int]`, *optional*, defaults to `{"height": 256, "width": 256}`): see above; an int `n` is
            `{"height": n, "width": n}`; `None`: no size (see [`~BeyondGlossVideoProcessor.with_default_size`]).
        do_center_crop (`bool`, *optional*): crop the frames; defaults to whether `crop_size` is set.
        crop_size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`): crop size; an int `n`
            is a square.
        do_normalize (`bool`, defaults to `True`): normalise with `image_mean` / `image_std` after scaling to [0, 1].
        image_mean, image_std (`list[float]`): normalisation, ImageNet's by default (DINOv2's).
        do_sample_frames (`bool`, defaults to `True`): select frames with `num_frames` and `fps`; `False` keeps all.
        num_frames (`int`, *optional*, defaults to 300): most frames per video (the reference's `max_length`);
            longer videos are shortened by `frame_sampling`. `None`: no limit.
        fps (`float`, *optional*): subsample videos with a known, higher frame rate to this rate first.
        frame_sampling (`str`, defaults to `"uniform"`): how longer videos are shortened: `"uniform"` subsampling
            over the whole video, or `"truncate"` to the first `num_frames` (the reference).
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
    settings_names = (
        "do_resize", "size", "do_center_crop", "crop_size", "do_normalize", "image_mean", "image_std",
        "do_sample_frames", "num_frames", "fps", "frame_sampling",
        "augment", "rotation_degrees", "translate_pixels", "augment_probability",
    )  # fmt: skip

    def __init__(
        self,
        do_resize: bool | None = None,
        size: dict[str, int] | int | None = _UNSET,
        do_center_crop: bool | None = None,
        crop_size: dict[str, int] | int | None = _UNSET,
        do_normalize: bool = True,
        image_mean: list[float] | tuple[float, ...] = tuple(IMAGENET_MEAN),
        image_std: list[float] | tuple[float, ...] = tuple(IMAGENET_STD),
        do_sample_frames: bool = True,
        num_frames: int | None = _UNSET,
        fps: float | None = _UNSET,
        frame_sampling: str = "uniform",
        augment: bool = True,
        rotation_degrees: float = 30.0,
        translate_pixels: int = 10,
        augment_probability: float = 0.5,
        **kwargs,
    ):
        for key in _BOOKKEEPING_KEYS:
            kwargs.pop(key, None)
        given = {"size": size, "num_frames": num_frames, "fps": fps}
        for old, new in LEGACY_SETTING_NAMES.items():
            if old in kwargs:
                if given[new] is not _UNSET:
                    raise ValueError(
                        f"BeyondGlossVideoProcessor: got both {old}={kwargs[old]!r} and {new}={given[new]!r}; {old} "
                        f"is the earlier name of {new}, pass only {new}"
                    )
                given[new] = _size_dict(kwargs.pop(old), old) if old == "resize_size" else kwargs.pop(old)
        unknown = sorted(set(kwargs) - {"auto_map"})
        if unknown:
            raise TypeError(
                f"BeyondGlossVideoProcessor got unknown settings {unknown}; the settings are "
                f"{list(self.settings_names)} (and the earlier names {list(LEGACY_SETTING_NAMES)})"
            )
        super().__init__(**kwargs)
        self.size = {"height": 256, "width": 256} if given["size"] is _UNSET else given["size"]
        crop_size = {"height": 224, "width": 224} if crop_size is _UNSET else crop_size
        self.crop_size = _size_dict(crop_size, "crop_size", allow_shortest_edge=False)
        self.do_resize = do_resize
        self.do_center_crop = do_center_crop
        self.do_normalize = bool(do_normalize)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.do_sample_frames = bool(do_sample_frames)
        self.num_frames = 300 if given["num_frames"] is _UNSET else given["num_frames"]
        self.fps = None if given["fps"] is _UNSET else given["fps"]
        self.frame_sampling = frame_sampling
        self.augment = bool(augment)
        self.rotation_degrees = float(rotation_degrees)
        self.translate_pixels = int(translate_pixels)
        self.augment_probability = float(augment_probability)
        self._validate()

    def _validate(self):
        """Checks every setting and brings sizes to their dict form (`crop_size=28` -> a 28 x 28 dict)."""

        def fail(message):
            raise ValueError(f"BeyondGlossVideoProcessor: {message}")

        self.size = _size_dict(self.size, "size")
        if isinstance(self.crop_size, int) and not isinstance(self.crop_size, bool):
            # Set after construction in the earlier form (`processor.crop_size = 28`), which meant: crop to it.
            self.do_center_crop = True
        self.crop_size = _size_dict(self.crop_size, "crop_size", allow_shortest_edge=False)
        for switch, size_name in (("do_resize", "size"), ("do_center_crop", "crop_size")):
            value = getattr(self, switch)
            if value is None:
                setattr(self, switch, getattr(self, size_name) is not None)
            elif value and getattr(self, size_name) is None:
                fail(f"{switch}=True needs {size_name}; pass {size_name}= or {switch}=False")
            else:
                setattr(self, switch, bool(value))
        if self.num_frames is not None:
            if isinstance(self.num_frames, bool) or int(self.num_frames) != self.num_frames or self.num_frames < 1:
                fail(f"num_frames={self.num_frames} (max_frames) must be a whole number, at least 1, or None")
            self.num_frames = int(self.num_frames)
        if self.frame_sampling not in FRAME_SAMPLING_MODES:
            fail(f"frame_sampling={self.frame_sampling!r} must be one of {FRAME_SAMPLING_MODES}")
        if self.fps is not None:
            self.fps = float(self.fps)
            if not self.fps > 0:
                fail(f"fps={self.fps} (target_fps) must be positive, or None to keep every frame")
        if self.do_resize and self.do_center_crop:
            crop, size = self.crop_size, self.size
            limit = (size["shortest_edge"],) * 2 if "shortest_edge" in size else (size["height"], size["width"])
            if crop["height"] > limit[0] or crop["width"] > limit[1]:
                fail(f"crop_size={crop} is larger than size={size}; crop at most the resize")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            fail(f"image_mean={self.image_mean} and image_std={self.image_std} need 3 values each, std positive")
        if not 0 <= self.augment_probability <= 1:
            fail(f"augment_probability={self.augment_probability} must be in [0, 1]")
        if self.rotation_degrees < 0 or self.translate_pixels < 0:
            fail("rotation_degrees and translate_pixels must be non-negative")

    # Earlier versions' names, as views of the current settings (read and write).
    @property
    def resize_size(self) -> int | dict | None:
        """The earlier `resize_size`: `n` for a square `size` (or `{"shortest_edge": n}`), `None` when not resizing;
        the `size` dict itself for other sizes."""
        if not self.do_resize:
            return None
        size = self.size
        if "shortest_edge" in size:
            return size["shortest_edge"]
        return size["height"] if size["height"] == size["width"] else dict(size)

    @resize_size.setter
    def resize_size(self, value: int | None):
        self.size, self.do_resize = _size_dict(value, "resize_size"), value is not None

    max_frames = _legacy_alias("max_frames")
    target_fps = _legacy_alias("target_fps")

    def settings(self) -> dict:
        """Every setting of this processor by its current name (what `with_settings` starts from)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.settings_names}

    def with_settings(self, **overrides) -> "BeyondGlossVideoProcessor":
        """A new processor with some settings changed (current or earlier names); this one is left as it is.

        Giving a size (`size`, `crop_size`, `resize_size`) also switches its step on (or off, for `None`) unless
        `do_resize` / `do_center_crop` is given too.

        Raises:
            `TypeError`: a name that is not a setting.
        """
        unknown = sorted(set(overrides) - set(self.settings_names) - set(LEGACY_SETTING_NAMES))
        if unknown:
            raise TypeError(
                f"BeyondGlossVideoProcessor got unknown settings {unknown}; the settings are "
                f"{list(self.settings_names)} (and the earlier names {list(LEGACY_SETTING_NAMES)})"
            )
        return type(self)(**_merge_settings(self.settings(), _translate_legacy(overrides)))

    def with_default_size(self, image_size: int) -> "BeyondGlossVideoProcessor":
        """This processor, with the model's frame size filled in where it has none.

        A processor saved without a size (`size=None`, e.g. the SynthSign demo's) would feed the model frames at
        their source size; pass `model.config.vision_config.image_size` to resize the shorter side to it and crop
        the centre square (`size={"shortest_edge": image_size}`, `crop_size=image_size`). A size or crop the
        processor already has is kept. Returns `self` when nothing is missing, else a new processor.
        """
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(
                f"image_size={image_size!r} must be a positive number of pixels (the model's vision_config.image_size)"
            )
        missing = {}
        if self.size is None:
            missing["size"] = {"shortest_edge": image_size}
        if self.crop_size is None:
            missing["crop_size"] = {"height": image_size, "width": image_size}
        return self.with_settings(**missing) if missing else self

    @classmethod
    def from_dict(cls, video_processor_dict: dict, **kwargs):
        # Overrides may use the earlier names against a config with the current ones (or the reverse): translate
        # both sides before merging, so an override replaces the saved value instead of clashing with it.
        names = set(cls.settings_names) | set(LEGACY_SETTING_NAMES)
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in names}
        merged = _merge_settings(_translate_legacy(video_processor_dict), _translate_legacy(overrides))
        return super().from_dict(merged, **kwargs)

    def to_dict(self) -> dict:
        output = super().to_dict()
        # The base class leaves None values out, which would bring back the defaults (256 / 224) on loading.
        output.update(self.settings())
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
        **overrides,
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
            overrides: settings for this call only (see [`~BeyondGlossVideoProcessor.with_settings`]).

        Returns:
            [`BatchFeature`] with
            - `pixel_values_videos`: float `(B, T_max, 3, H, W)` (`H, W` the crop size), zero after each video's end;
            - `video_attention_mask`: long `(B, T_max)`, 1 for real frames;
            - `frame_indices` (if asked): `list[list[int]]`, kept source frames per video.
        """
        if overrides:
            return self.with_settings(**overrides).preprocess(
                videos, training, return_tensors, return_frame_indices, generator
            )
        batch = [videos] if is_single_video(videos) else list(videos)
        if not batch:
            raise ValueError("BeyondGlossVideoProcessor got an empty batch of videos")
        clips, kept = [], []
        for video in batch:
            source = open_video(video)
            indices = self.frame_indices_for(source)
            transform = None
            if training and self.augment:
                # One draw per clip, applied to each group of source-size frames before the resize (the reference
                # augments in source pixels), so training is bounded in memory too.
                angle, shift = self._draw_affine(generator)
                if angle or any(shift):
                    transform = functools.partial(affine_frames, angle=angle, shift=shift)
            frames = source.read(indices, self.output_size(*source.frame_size), transform)
            clips.append(self.process_frames(frames, training=training, generator=generator, augment=False))
            kept.append(indices)

        sizes = {tuple(clip.shape[1:]) for clip in clips}
        if len(sizes) > 1:
            raise ValueError(
                f"the videos of a batch end up with different frame sizes {sorted(sizes)}; set size (and crop_size) "
                "so that every video is brought to one size"
            )
        lengths = [clip.shape[0] for clip in clips]
        attention_mask = torch.zeros(len(clips), max(lengths), dtype=torch.long)
        if len(clips) == 1:  # nothing to pad: no second copy of the largest tensor
            pixel_values = clips[0].unsqueeze(0)
        else:
            pixel_values = clips[0].new_zeros((len(clips), max(lengths), *clips[0].shape[1:]))
        for i, clip in enumerate(clips):
            if len(clips) > 1:
                pixel_values[i, : lengths[i]] = clip
            attention_mask[i, : lengths[i]] = 1
        data = {"pixel_values_videos": pixel_values, "video_attention_mask": attention_mask}
        if return_frame_indices:
            data["frame_indices"] = kept
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=["frame_indices"])

    def frame_indices_for(self, source: VideoSource) -> list[int]:
        """The source frames kept for an opened video (see [`select_frame_indices`])."""
        if not self.do_sample_frames:
            return list(range(source.num_frames))
        if self.fps is not None and source.fps is None:
            # Once per process: a dataset of frame folders would otherwise repeat it for every sample.
            logger.warning_once(
                f"fps={self.fps} is not applied to videos without a known frame rate (frame folders, image lists, "
                "arrays); all their frames are candidates"
            )
        limit = self.num_frames if self.num_frames is not None else source.num_frames
        return select_frame_indices(source.num_frames, limit, self.frame_sampling, source.fps, self.fps)

    def output_size(self, height: int, width: int) -> tuple[int, int] | None:
        """`(height, width)` that frames of `height` x `width` are resized to, `None` when not resizing."""
        if not self.do_resize:
            return None
        if "shortest_edge" in self.size:
            edge = self.size["shortest_edge"]
            short, long = min(height, width), max(height, width)
            # transformers' rule (get_resize_output_image_size): the longer side is truncated, not rounded.
            other = int(edge * long / short)
            return (edge, other) if height <= width else (other, edge)
        return self.size["height"], self.size["width"]

    def process_frames(
        self,
        frames: torch.Tensor,
        training: bool = False,
        generator: torch.Generator | None = None,
        augment: bool | None = None,
    ) -> torch.Tensor:
        """Augments (training), resizes, crops and normalises the decoded frames of one video.

        Args:
            frames (`torch.Tensor`): uint8 RGB frames `(T, 3, H, W)`, at the source size or already resized.
            training (`bool`, defaults to `False`): random crop and augmentation.
            generator (`torch.Generator`, *optional*): random source.
            augment (`bool`, *optional*): augment at training; defaults to the `augment` setting (`preprocess`
                passes `False`: it has augmented while decoding).

        Returns:
            `torch.Tensor`: float frames `(T, 3, H, W)` (`H, W` the crop size when cropping).
        """
        if training and (self.augment if augment is None else augment):
            frames = self.random_affine(frames, generator)
        size = self.output_size(*frames.shape[-2:])
        if size is not None:
            frames = resize_frames(frames, size)
        if self.do_center_crop:
            frames = self._crop(frames, training, generator)
        if not self.do_normalize:
            return frames.float().mul_(1 / 255)
        # (x / 255 - mean) / std as one scale and one shift, in place on the single float copy.
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        return frames.float().mul_(1 / (255 * std)).sub_(mean / std)

    def _crop(self, frames: torch.Tensor, training: bool, generator: torch.Generator | None) -> torch.Tensor:
        height, width = frames.shape[-2:]
        crop_height, crop_width = self.crop_size["height"], self.crop_size["width"]
        if crop_height > height or crop_width > width:
            raise ValueError(
                f"crop_size={self.crop_size} is larger than the {height}x{width} frames; set a size at least as large "
                "as the crop"
            )
        if training:
            # One offset per video; the reference draws np.random.randint(0, 32), i.e. 0..31 for 256 -> 224.
            top = int(torch.randint(0, max(height - crop_height, 1), (1,), generator=generator))
            left = int(torch.randint(0, max(width - crop_width, 1), (1,), generator=generator))
        else:
            top, left = (height - crop_height) // 2, (width - crop_width) // 2
        return frames[..., top : top + crop_height, left : left + crop_width]

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
        angle, shift = self._draw_affine(generator)
        if not angle and not any(shift):
            return frames
        return affine_frames(frames, angle, shift)

    def _draw_affine(self, generator: torch.Generator | None = None) -> tuple[float, tuple[int, int]]:
        """One clip's random rotation angle and shift (`0.0, (0, 0)` when neither op is drawn)."""
        draws = torch.rand(3, generator=generator)
        rotate = bool(draws[0] < self.augment_probability)
        translate = bool(draws[1] < self.augment_probability)
        if not (rotate or translate):
            return 0.0, (0, 0)
        angle = (2 * float(draws[2]) - 1) * self.rotation_degrees if rotate else 0.0
        shift = (
            tuple(torch.randint(-self.translate_pixels, self.translate_pixels + 1, (2,), generator=generator).tolist())
            if translate
            else (0, 0)
        )
        return angle, shift


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


def _expose_auto_video_processor():
    """Makes `from transformers import AutoVideoProcessor` the working class when torchvision is missing.

    transformers marks `AutoVideoProcessor` as needing torchvision and, without it, exports a placeholder whose every
    method raises "requires the Torchvision library", even for video processors that never use torchvision (this
    one). The real class in `transformers.models.auto.video_processing_auto` dispatches to registered and remote
    classes without torchvision; put it where users import it from. Video processors that do need torchvision still
    fail there, with transformers' own message. tests/test_video_processing.py fails if this stops working.
    """
    import transformers
    import transformers.models.auto as auto_package
    from transformers.models.auto import video_processing_auto

    for namespace in (transformers, auto_package):
        if getattr(namespace.__dict__.get("AutoVideoProcessor"), "is_dummy", True) and not _has_real(namespace):
            setattr(namespace, "AutoVideoProcessor", video_processing_auto.AutoVideoProcessor)


def _has_real(namespace) -> bool:
    """Whether `namespace.AutoVideoProcessor` resolves to a working class (torchvision is installed)."""
    try:
        value = getattr(namespace, "AutoVideoProcessor")
    except ImportError:  # the lazy module raises for classes whose backend is missing
        return False
    return not getattr(value, "is_dummy", False)


_expose_auto_video_processor()

# Saving a processor copies this file (and video_io.py) next to its config, so checkpoints load with
# trust_remote_code=True where beyondgloss is not installed.
BeyondGlossVideoProcessor.register_for_auto_class("AutoVideoProcessor")

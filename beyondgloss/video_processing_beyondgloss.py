# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss video processor: sign videos in, `pixel_values_videos` and `video_attention_mask` out.

The processor holds the settings and runs the steps; reading videos is `video_io`'s job, the steps themselves are
functions of `video_transforms`, the settings' names, defaults and checks are in `video_processor_settings`.
Implemented with torch alone (no torchvision). Imports only torch, transformers and siblings, so `save_pretrained`
copies it (and them) into a checkpoint loadable with `trust_remote_code=True`.
"""

import copy

import torch
from transformers.image_processing_utils import BatchFeature
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

from .video_io import VideoSource, is_single_video, open_video, resize_frames
from .video_processor_settings import (
    BOOKKEEPING_KEYS,
    DEFAULT_SETTINGS,
    LEGACY_SETTING_NAMES,
    BeyondGlossVideoProcessorKwargs,
    check_settings,
    merge_settings,
    size_dict,
    translate_legacy,
    upgrade_saved_config,
)
from .video_transforms import (
    FRAME_SAMPLING_MODES,
    MAX_OUTPUT_SIDE,
    affine_frames,
    crop_frames,
    draw_affine,
    rescale_and_normalize,
    resize_output_size,
    sample_frame_count,
    select_frame_indices,
)

__all__ = [
    "BeyondGlossVideoProcessor",
    "FRAME_SAMPLING_MODES",
    "LEGACY_SETTING_NAMES",
    "affine_frames",
    "select_frame_indices",
]

logger = logging.get_logger(__name__)


class BeyondGlossVideoProcessor(VideoProcessorMixin):
    r"""
    Turns sign videos into the model's `pixel_values_videos` and `video_attention_mask`.

    For each video: open it (any form [`~beyondgloss.video_io.open_video`] reads: a video file, a frame folder, a
    list of image paths, a torchcodec `VideoDecoder`, a `{"path", "bytes"}` dict, an array), refuse it by name if its
    frames exceed `max_frame_pixels` / `max_frame_side` (before decoding) or would come out larger than
    `MAX_OUTPUT_SIDE` (1024) px per side, choose the frames to keep, decode only those, resized while the video is
    decoded (so that a 4K video needs no more memory than a small one), then

    - at training time only (`training=True` and `augment=True`), the reference's clip augmentation: with
      probability 0.5 a rotation by an angle drawn from U(-30°, 30°), with probability 0.5 a translation by whole
      pixels drawn from [-10, 10] per axis; one draw per clip, so every frame of a clip moves the same way;
      nearest-neighbour resampling, black fill. Angle and shift are meant in the source frames' geometry, as the
      reference augments before resizing; they are applied to the resized frames ([`affine_frames`]);
    - crop (`do_center_crop`) to `crop_size`: the centre at evaluation (offset 16, 16 for 256 -> 224), one random
      offset per video in `[0, size - crop)` at training (the reference's `np.random.randint(0, 32)`);
    - rescale (`do_rescale`, by `rescale_factor`, 1/255) and normalise (`do_normalize`) with `image_mean` and
      `image_std` (ImageNet's), in float32.

    Frames kept: `num_frames` given, exactly that many spread uniformly (transformers' rule, an error for shorter
    videos); else, videos with a known higher frame rate subsampled to `fps`, then at most `max_frames` (300, the
    reference's cap) by `frame_sampling` ([`select_frame_indices`]). `do_sample_frames=False` keeps every frame.

    Resize (`do_resize`) to `size`: `{"height": h, "width": w}` exactly (the aspect ratio is not kept, as in the
    reference: 256 x 256 by default), or `{"shortest_edge": s}` (optionally with `"longest_edge": l`): the shorter
    side to `s`, the longer to `int(s * long / short)`, clamped to `l` (at most 1024) with the aspect ratio kept
    ([`~beyondgloss.video_transforms.resize_output_size`]). Bicubic with antialiasing in 8 bits, Pillow's algorithm
    (the reference's); video files above 1080p are resized inside FFmpeg instead (bilinear, antialiased).

    The batch is zero-padded to its longest video; real frames come first and `video_attention_mask` marks them.
    Randomness uses torch's generator (pass `generator=` for reproducibility; DataLoader workers are seeded apart).

    Every setting can be overridden for one call: `processor(videos, size={"shortest_edge": 32}, max_frames=16)`.
    Configs of earlier versions load with the same behaviour: `resize_size=n` is `size={"height": n, "width": n}`,
    `target_fps` is `fps`, and a saved `num_frames` without `max_frames` (the frame cap of configs written before
    `num_frames` took transformers' meaning) is `max_frames`.

    Args:
        do_resize (`bool`, *optional*): resize the frames; defaults to whether `size` is set.
        size (`dict[str, int]`, *optional*, defaults to `{"height": 256, "width": 256}`): see above; an int `n` is
            `{"height": n, "width": n}`; `None`: no size (see [`~BeyondGlossVideoProcessor.with_default_size`]).
        do_center_crop (`bool`, *optional*): crop the frames; defaults to whether `crop_size` is set.
        crop_size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`): an int `n` is a square.
        do_rescale (`bool`, defaults to `True`), rescale_factor (`float`, defaults to `1/255`): multiply the uint8
            values by `rescale_factor` (to [0, 1]).
        do_normalize (`bool`, defaults to `True`): `(x - image_mean) / image_std` per channel, after the rescale.
        image_mean, image_std (`list[float]`): normalisation, ImageNet's by default (DINOv2's).
        do_convert_rgb (`bool`, defaults to `True`): convert greyscale, palette, RGBA, ... frames to RGB by the
            documented rules (`~beyondgloss.video_io.image_to_rgb`); `False` refuses frames that are not RGB.
        do_sample_frames (`bool`, defaults to `True`): select frames as above; `False` keeps all.
        num_frames (`int`, *optional*): the exact number of frames per video (transformers' meaning).
        max_frames (`int`, *optional*, defaults to 300): the most frames per video; `None`: no cap.
        fps (`float`, *optional*): subsample videos with a known, higher frame rate to this rate first.
        frame_sampling (`str`, defaults to `"uniform"`): how `max_frames` shortens longer videos: `"uniform"`
            subsampling over the whole video, or `"truncate"` to the first `max_frames` (the reference).
        augment (`bool`, defaults to `True`): apply the rotation/translation augmentation when `training=True`.
        rotation_degrees (`float`, defaults to 30.0), translate_pixels (`int`, defaults to 10),
        augment_probability (`float`, defaults to 0.5): the augmentation's ranges and per-op probability.
        max_frame_pixels (`int`, defaults to 8192 x 4320), max_frame_side (`int`, defaults to 8192): the largest
            source frame read; larger ones are refused before decoding (docs/video_limits.md).

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
    settings_names = tuple(DEFAULT_SETTINGS)

    def __init__(self, **kwargs):
        names = set(DEFAULT_SETTINGS) | set(LEGACY_SETTING_NAMES)
        given = translate_legacy({key: kwargs.pop(key) for key in list(kwargs) if key in names})
        unknown = sorted(set(kwargs) - set(BOOKKEEPING_KEYS) - {"auto_map"})
        if unknown:
            raise TypeError(
                f"BeyondGlossVideoProcessor got unknown settings {unknown}; the settings are "
                f"{list(self.settings_names)} (and the earlier names {list(LEGACY_SETTING_NAMES)})"
            )
        settings = {**DEFAULT_SETTINGS, **given}
        # auto_map (written by save_pretrained) is kept as the base class keeps it: saved again, it stays.
        super().__init__(**{key: value for key, value in kwargs.items() if key == "auto_map"})
        self.__dict__.update(check_settings(settings))

    def _validate(self):
        """Checks the settings again after they were set as attributes (`processor.crop_size = 28` means: crop)."""
        if isinstance(self.crop_size, int) and not isinstance(self.crop_size, bool):
            self.do_center_crop = True
        self.__dict__.update(check_settings(self.settings()))

    # The earlier names, as views of the current settings (read and write).
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
        self.size, self.do_resize = size_dict(value, "resize_size"), value is not None

    @property
    def target_fps(self) -> float | None:
        """The earlier name of `fps`."""
        return self.fps

    @target_fps.setter
    def target_fps(self, value: float | None):
        self.fps = value

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
        return type(self)(**merge_settings(self.settings(), translate_legacy(overrides)))

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
        # The saved config in today's terms first (see `upgrade_saved_config`), then the overrides, which may use
        # either name of a setting: an override replaces the saved value instead of clashing with it.
        names = set(cls.settings_names) | set(LEGACY_SETTING_NAMES)
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in names}
        merged = merge_settings(upgrade_saved_config(video_processor_dict), translate_legacy(overrides))
        return super().from_dict(merged, **kwargs)

    def to_dict(self) -> dict:
        output = super().to_dict()
        # The base class leaves None values out, which would bring back the defaults (256 / 224) on loading; and
        # num_frames and max_frames are always written, which tells this version's configs from earlier ones.
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
        return_metadata: bool = False,
        device: str | torch.device | None = None,
        **overrides,
    ) -> BatchFeature:
        """Processes one video or a batch of videos.

        Args:
            videos: one video in any form [`~beyondgloss.video_io.open_video`] accepts, or a list of them. A list
                of image paths (or PIL images) is one video; a list of lists of image paths is a batch.
            training (`bool`, defaults to `False`): random crop and (if `augment`) augmentation instead of the
                deterministic centre crop.
            return_tensors (`str`, defaults to `"pt"`): `"pt"` (torch, padded), `"np"` (numpy, padded) or `None`:
                lists, as transformers' video processors return them: `pixel_values_videos` one float tensor
                `(T_i, 3, H, W)` per video, not padded, `video_attention_mask` one list of `T_i` ones per video.
            return_frame_indices (`bool`, defaults to `False`): also return `frame_indices`, the source frame index
                of every kept frame (to align per-frame targets such as hand features).
            generator (`torch.Generator`, *optional*): random source for the crop and the augmentation.
            return_metadata (`bool`, defaults to `False`): also return `video_metadata`, one transformers
                `VideoMetadata` per video (frame count, fps, size, duration, decoder, kept frame indices; no path).
            device (`str` or `torch.device`, *optional*): where the frames are cropped, augmented and normalised (and
                the outputs live), e.g. `"cuda"`; decoding and resizing run on the CPU.
            overrides: settings for this call only (see [`~BeyondGlossVideoProcessor.with_settings`]).

        Returns:
            [`BatchFeature`] with
            - `pixel_values_videos`: float `(B, T_max, 3, H, W)` (`H, W` the crop size), zero after each video's end;
            - `video_attention_mask`: long `(B, T_max)`, 1 for real frames;
            - `frame_indices` (if asked): `list[list[int]]`, kept source frames per video;
            - `video_metadata` (if asked): `list[VideoMetadata]`.
        """
        if overrides:
            return self.with_settings(**overrides).preprocess(
                videos, training, return_tensors, return_frame_indices, generator, return_metadata, device
            )
        batch = [videos] if is_single_video(videos) else list(videos)
        if not batch:
            raise ValueError("BeyondGlossVideoProcessor got an empty batch of videos")
        clips, metadata = [], []
        for video in batch:
            source = open_video(video, self.max_frame_pixels, self.max_frame_side, self.do_convert_rgb)
            indices = self.frame_indices_for(source)
            size = self._checked_output_size(source)
            frames = source.read(indices, size)
            if device is not None:
                frames = frames.to(device)
            clips.append(self._finish(frames, source.frame_size, training, generator))
            metadata.append(_metadata(source, indices))
        data = self._batch(clips, return_tensors)
        if return_frame_indices:
            data["frame_indices"] = [list(m.frames_indices) for m in metadata]
        if return_metadata:
            data["video_metadata"] = metadata
        unconverted = ["frame_indices", "video_metadata"]  # lists of lists and of VideoMetadata
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=unconverted)

    @staticmethod
    def _batch(clips: list[torch.Tensor], return_tensors) -> dict:
        """The clips padded into one tensor with its mask, or (`return_tensors=None`) as lists."""
        sizes = {tuple(clip.shape[1:]) for clip in clips}
        if len(sizes) > 1:
            raise ValueError(
                f"the videos of a batch end up with different frame sizes {sorted(sizes)}; set size (and crop_size) "
                "so that every video is brought to one size"
            )
        lengths = [clip.shape[0] for clip in clips]
        if return_tensors is None:
            return {"pixel_values_videos": clips, "video_attention_mask": [[1] * length for length in lengths]}
        attention_mask = torch.zeros(len(clips), max(lengths), dtype=torch.long, device=clips[0].device)
        if len(clips) == 1:  # nothing to pad: no second copy of the largest tensor
            pixel_values = clips[0].unsqueeze(0)
        else:
            pixel_values = clips[0].new_zeros((len(clips), max(lengths), *clips[0].shape[1:]))
        for i, clip in enumerate(clips):
            if len(clips) > 1:
                pixel_values[i, : lengths[i]] = clip
            attention_mask[i, : lengths[i]] = 1
        return {"pixel_values_videos": pixel_values, "video_attention_mask": attention_mask}

    def frame_indices_for(self, source: VideoSource) -> list[int]:
        """The source frames kept for an opened video (see the class docstring)."""
        if not self.do_sample_frames:
            return list(range(source.num_frames))
        if self.num_frames is not None:
            return sample_frame_count(source.num_frames, self.num_frames, source.name)
        if self.fps is not None and source.fps is None:
            # Once per process: a dataset of frame folders would otherwise repeat it for every sample.
            logger.warning_once(
                f"fps={self.fps} is not applied to videos without a known frame rate (frame folders, image lists, "
                "arrays); all their frames are candidates"
            )
        limit = self.max_frames if self.max_frames is not None else source.num_frames
        return select_frame_indices(source.num_frames, limit, self.frame_sampling, source.fps, self.fps)

    def output_size(self, height: int, width: int) -> tuple[int, int] | None:
        """`(height, width)` that frames of `height` x `width` are resized to, `None` when not resizing."""
        return resize_output_size(height, width, self.size) if self.do_resize else None

    def _checked_output_size(self, source: VideoSource) -> tuple[int, int] | None:
        """The resize target of `source`, after checking that its frames come out within `MAX_OUTPUT_SIDE`."""
        size = self.output_size(*source.frame_size)
        resized = size or source.frame_size
        final = (self.crop_size["height"], self.crop_size["width"]) if self.do_center_crop else resized
        if final[0] > resized[0] or final[1] > resized[1]:
            raise ValueError(
                f"{source.name}: its frames are {resized[1]}x{resized[0]} px"
                f"{f' after the resize (from {source.frame_size[1]}x{source.frame_size[0]})' if size else ''}, smaller "
                f"than crop_size={self.crop_size}; set a size at least as large as the crop"
            )
        if max(final) > MAX_OUTPUT_SIDE:
            raise ValueError(
                f"{source.name}: its frames would come out at {final[1]}x{final[0]} px, above the processor's "
                f"{MAX_OUTPUT_SIDE} px per side; set size= (e.g. {{'shortest_edge': 224}}) so that they are resized"
            )
        return size

    def process_frames(
        self,
        frames: torch.Tensor,
        training: bool = False,
        generator: torch.Generator | None = None,
        augment: bool | None = None,
    ) -> torch.Tensor:
        """Resizes, augments (training), crops and normalises the decoded frames of one video.

        Args:
            frames (`torch.Tensor`): uint8 RGB frames `(T, 3, H, W)` at the source size.
            training (`bool`, defaults to `False`): random crop and augmentation.
            generator (`torch.Generator`, *optional*): random source.
            augment (`bool`, *optional*): augment at training; defaults to the `augment` setting.

        Returns:
            `torch.Tensor`: float frames `(T, 3, H, W)` (`H, W` the crop size when cropping).
        """
        source_size = tuple(frames.shape[-2:])
        size = self.output_size(*source_size)
        if size is not None:
            frames = resize_frames(frames, size)
        return self._finish(frames, source_size, training, generator, augment)

    def _finish(self, frames, source_size, training: bool, generator, augment: bool | None = None) -> torch.Tensor:
        """Augmentation (training), crop, rescale and normalisation of frames already at their resized size."""
        if training and (self.augment if augment is None else augment):
            angle, shift = self._draw_affine(generator)
            if angle or any(shift):
                frames = affine_frames(frames, angle, shift, source_size)
        if self.do_center_crop:
            frames = crop_frames(frames, self.crop_size, random=training, generator=generator)
        return rescale_and_normalize(
            frames, self.do_rescale, self.rescale_factor, self.do_normalize, self.image_mean, self.image_std
        )

    def random_affine(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reference's clip augmentation on `frames` at their own size: one random rotation and translation
        shared by every frame ([`~beyondgloss.video_transforms.draw_affine`], [`affine_frames`])."""
        angle, shift = self._draw_affine(generator)
        if not angle and not any(shift):
            return frames
        return affine_frames(frames, angle, shift)

    def _draw_affine(self, generator: torch.Generator | None = None) -> tuple[float, tuple[int, int]]:
        return draw_affine(self.augment_probability, self.rotation_degrees, self.translate_pixels, generator)


def _metadata(source: VideoSource, indices: list[int]) -> VideoMetadata:
    """What transformers' video processors return as `video_metadata`; no file names (they may be private)."""
    height, width = source.frame_size
    return VideoMetadata(
        total_num_frames=source.num_frames, fps=source.fps, width=width, height=height, duration=source.duration,
        video_backend=source.backend, frames_indices=list(indices),
    )  # fmt: skip


# Saving a processor copies this file (and the sibling files it imports) next to its config, so checkpoints load
# with trust_remote_code=True where beyondgloss is not installed.
BeyondGlossVideoProcessor.register_for_auto_class("AutoVideoProcessor")

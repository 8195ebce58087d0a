# Copyright 2026 The beyondgloss authors. MIT license.
"""The settings of [`BeyondGlossVideoProcessor`]: their names, defaults and checks, and how configs saved by earlier
versions map onto them.

Imports only its siblings, so it travels with
`video_processing_beyondgloss.py` into checkpoint folders.
"""

import copy
from typing import TypedDict

from .video_source import MAX_FRAME_PIXELS, MAX_FRAME_SIDE
from .video_transforms import FRAME_SAMPLING_MODES, MAX_OUTPUT_SIDE

__all__ = [
    "DEFAULT_SETTINGS",
    "BOOKKEEPING_KEYS",
    "LEGACY_SETTING_NAMES",
    "BeyondGlossVideoProcessorKwargs",
    "check_settings",
    "merge_settings",
    "size_dict",
    "translate_legacy",
    "upgrade_saved_config",
]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class BeyondGlossVideoProcessorKwargs(TypedDict, total=False):
    """The keys [`BeyondGlossVideoProcessor`] accepts in its constructor, `from_pretrained(..., **overrides)` and a
    call (`processor(videos, **overrides)`): its settings, the per-call options `return_metadata` and `device`, and
    the earlier names `resize_size` and `target_fps`."""

    do_resize: bool | None
    size: dict[str, int] | int | None
    do_center_crop: bool | None
    crop_size: dict[str, int] | int | None
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: list[float]
    image_std: list[float]
    do_convert_rgb: bool
    do_sample_frames: bool
    num_frames: int | None
    max_frames: int | None
    fps: float | None
    frame_sampling: str
    augment: bool
    rotation_degrees: float
    translate_pixels: int
    augment_probability: float
    max_frame_pixels: int
    max_frame_side: int
    return_metadata: bool
    device: str | None
    resize_size: int | None
    target_fps: float | None


# Every setting and its default; `None` for do_resize / do_center_crop means "whether a size is set".
DEFAULT_SETTINGS = {
    "do_resize": None,
    "size": {"height": 256, "width": 256},  # the reference's resize
    "do_center_crop": None,
    "crop_size": {"height": 224, "width": 224},  # the reference's crop, DINOv2's input size
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": IMAGENET_MEAN,  # DINOv2's
    "image_std": IMAGENET_STD,
    "do_convert_rgb": True,
    "do_sample_frames": True,
    "num_frames": None,
    "max_frames": 300,  # the reference's max_length
    "fps": None,
    "frame_sampling": "uniform",
    "augment": True,
    "rotation_degrees": 30.0,  # the reference's augmentation
    "translate_pixels": 10,
    "augment_probability": 0.5,
    "max_frame_pixels": MAX_FRAME_PIXELS,
    "max_frame_side": MAX_FRAME_SIDE,
}
# Earlier versions' names (saved in their processor configs) and the settings they became.
LEGACY_SETTING_NAMES = {"resize_size": "size", "target_fps": "fps"}
# Keys a saved config carries that are bookkeeping of transformers, not settings.
BOOKKEEPING_KEYS = ("video_processor_type", "image_processor_type", "feature_extractor_type", "processor_class")


def _fail(message: str):
    raise ValueError(f"BeyondGlossVideoProcessor: {message}")


def size_dict(value, name: str, allow_shortest_edge: bool = True) -> dict[str, int] | None:
    """`None`, an int `n` (a square `{"height": n, "width": n}`) or a size dict, validated, as a size dict.

    Every side must be a whole number in [1, `MAX_OUTPUT_SIDE`]: a config asking for 20000 x 20000 frames is refused
    here, when it is loaded, not when 300 such frames are allocated.
    """
    if value is None:
        return None
    shapes = "{'height': 224, 'width': 224}" + (" or {'shortest_edge': 224}" if allow_shortest_edge else "")
    if isinstance(value, bool) or not isinstance(value, (int, dict)):
        _fail(f"{name}={value!r} must be a dict such as {shapes}, an int (a square), or None")
    if isinstance(value, int):
        value = {"height": value, "width": value}
    allowed = [{"height", "width"}]
    if allow_shortest_edge:
        allowed += [{"shortest_edge"}, {"shortest_edge", "longest_edge"}]
    if set(value) not in allowed:
        _fail(f"{name}={value!r} must have the keys {' or '.join(str(sorted(keys)) for keys in allowed)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value.values()):
        _fail(f"{name}={value!r} needs positive whole numbers of pixels")
    if max(value.values()) > MAX_OUTPUT_SIDE:
        _fail(
            f"{name}={value!r} is out of range: the processor's frames are at most {MAX_OUTPUT_SIDE} px per side "
            "(docs/video_limits.md); pass a smaller size"
        )
    if value.get("longest_edge", value.get("shortest_edge", 0)) < value.get("shortest_edge", 0):
        _fail(f"{name}={value!r}: longest_edge must be at least shortest_edge")
    return {key: int(v) for key, v in value.items()}


def translate_legacy(settings: dict) -> dict:
    """Renames the earlier versions' settings (`resize_size`, `target_fps`) to the current ones."""
    settings = dict(settings)
    for old, new in LEGACY_SETTING_NAMES.items():
        if old in settings:
            if new in settings:
                _fail(
                    f"got both {old}={settings[old]!r} and {new}={settings[new]!r}; {old} is the earlier name of "
                    f"{new}, pass only {new}"
                )
            value = settings.pop(old)
            settings[new] = size_dict(value, old) if old == "resize_size" else value
    return settings


def upgrade_saved_config(saved: dict) -> dict:
    """A saved config in today's terms. Configs written between 2026-11-29 and this version held the frame cap under
    `num_frames` (which now means an exact count, as in transformers) and no `max_frames`: their `num_frames` is
    their `max_frames`. Configs of today always hold both."""
    saved = translate_legacy({key: value for key, value in saved.items() if key not in BOOKKEEPING_KEYS})
    if "num_frames" in saved and "max_frames" not in saved:
        saved["max_frames"] = saved.pop("num_frames")
    return saved


def merge_settings(base: dict, overrides: dict) -> dict:
    """`base` updated with `overrides`; a new size (or crop) also switches its step on or off unless told."""
    merged = {**base, **overrides}
    for size_name, switch in (("size", "do_resize"), ("crop_size", "do_center_crop")):
        if size_name in overrides and switch not in overrides:
            merged[switch] = None  # derived from the size: on when there is one
    return merged


def _whole(value, name: str, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        _fail(f"{name}={value!r} must be a whole number, at least 1{', or None' if allow_none else ''}")
    return int(value)


def _check_switches(settings: dict) -> None:
    for switch, size_name in (("do_resize", "size"), ("do_center_crop", "crop_size")):
        value = settings[switch]
        if value is None:
            settings[switch] = settings[size_name] is not None
        elif value and settings[size_name] is None:
            _fail(f"{switch}=True needs {size_name}; pass {size_name}= or {switch}=False")
        else:
            settings[switch] = bool(value)
    if settings["do_resize"] and settings["do_center_crop"]:
        crop, size = settings["crop_size"], settings["size"]
        limit = (size["shortest_edge"],) * 2 if "shortest_edge" in size else (size["height"], size["width"])
        if crop["height"] > limit[0] or crop["width"] > limit[1]:
            _fail(f"crop_size={crop} is larger than size={size}; crop at most the resize")


def _check_frames(settings: dict) -> None:
    settings["num_frames"] = _whole(settings["num_frames"], "num_frames")
    settings["max_frames"] = _whole(settings["max_frames"], "max_frames")
    if settings["fps"] is not None:
        settings["fps"] = float(settings["fps"])
        if not settings["fps"] > 0:
            _fail(f"fps={settings['fps']} (target_fps) must be positive, or None to keep every frame")
    count, cap = settings["num_frames"], settings["max_frames"]
    if count is not None and settings["fps"] is not None:
        _fail(f"num_frames={count} and fps={settings['fps']} are mutually exclusive (as in transformers); pass one")
    if count is not None and cap is not None and count > cap:
        _fail(f"num_frames={count} is more than max_frames={cap}; raise max_frames (or pass max_frames=None)")
    if settings["frame_sampling"] not in FRAME_SAMPLING_MODES:
        _fail(f"frame_sampling={settings['frame_sampling']!r} must be one of {FRAME_SAMPLING_MODES}")


def check_settings(settings: dict) -> dict:
    """Every setting checked and in its canonical form (sizes as dicts, numbers as numbers); a new dict.

    Raises:
        `ValueError`: naming the setting, its value and what to pass instead.
    """
    settings = copy.deepcopy(settings)
    settings["size"] = size_dict(settings["size"], "size")
    settings["crop_size"] = size_dict(settings["crop_size"], "crop_size", allow_shortest_edge=False)
    _check_switches(settings)
    _check_frames(settings)
    for name in ("do_rescale", "do_normalize", "do_convert_rgb", "do_sample_frames", "augment"):
        settings[name] = bool(settings[name])
    settings["image_mean"] = [float(v) for v in settings["image_mean"]]
    settings["image_std"] = [float(v) for v in settings["image_std"]]
    if len(settings["image_mean"]) != 3 or len(settings["image_std"]) != 3 or min(settings["image_std"]) <= 0:
        _fail(f"image_mean={settings['image_mean']} and image_std={settings['image_std']} need 3 values each, "
              "std positive")
    settings["rescale_factor"] = float(settings["rescale_factor"])
    if not settings["rescale_factor"] > 0:
        _fail(f"rescale_factor={settings['rescale_factor']} must be positive (1 / 255 maps uint8 to [0, 1])")
    settings["max_frame_pixels"] = _whole(settings["max_frame_pixels"], "max_frame_pixels", allow_none=False)
    settings["max_frame_side"] = _whole(settings["max_frame_side"], "max_frame_side", allow_none=False)
    for name in ("rotation_degrees", "augment_probability"):
        settings[name] = float(settings[name])
    settings["translate_pixels"] = int(settings["translate_pixels"])
    if not 0 <= settings["augment_probability"] <= 1:
        _fail(f"augment_probability={settings['augment_probability']} must be in [0, 1]")
    if settings["rotation_degrees"] < 0 or settings["translate_pixels"] < 0:
        _fail("rotation_degrees and translate_pixels must be non-negative")
    return settings

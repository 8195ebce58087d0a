"""BeyondGlossVideoProcessor: frame selection, resize/crop/normalise, augmentation, batching, save/load."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from beyondgloss import frame_images, video_io, video_source
from beyondgloss.configuration_beyondgloss import BeyondGlossConfig
from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor, affine_frames, select_frame_indices

from .conftest import BLOCK_BEYONDGLOSS

MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
# The processor normalises in float32 as x * (1 / (255 std)) - mean / std: four roundings (the two constants, the
# product, the difference), each within half a float32 ulp, 2**-24 relative, of a value of magnitude below 4 (the
# outputs lie in [-2.12, 2.64]); so it is within 4 * 4 * 2**-24 ~ 1e-6 of the exact value, computed in float64 here.
NORMALISE_ATOL = 4 * 4 * 2**-24


def normalise(frames):
    """The exact normalisation, in float64."""
    return (frames.double() / 255 - MEAN) / STD


def assert_normalised(actual, frames):
    torch.testing.assert_close(actual.double(), normalise(frames), rtol=0, atol=NORMALISE_ATOL)


@pytest.fixture
def small():
    return BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)


@pytest.fixture(scope="module")
def frames():
    return make_frames(10)


def test_select_frame_indices_documented_rule():
    assert select_frame_indices(10, 4) == [0, 3, 6, 9]
    assert select_frame_indices(8, 5) == [0, 2, 4, 5, 7]  # round half up of k * 7 / 4
    assert select_frame_indices(10, 4, "truncate") == [0, 1, 2, 3]
    assert select_frame_indices(3, 300) == [0, 1, 2]
    assert select_frame_indices(5, 1) == [0]
    for n, m in [(301, 300), (1000, 300), (37, 10)]:
        kept = select_frame_indices(n, m)
        gaps = set(np.diff(kept).tolist())
        assert len(kept) == m and kept[0] == 0 and kept[-1] == n - 1 and max(gaps) - min(gaps) <= 1
    assert select_frame_indices(10, 300, fps=50, target_fps=25) == [0, 2, 4, 6, 8]
    assert select_frame_indices(10, 300, fps=30, target_fps=12) == [0, 2, 5, 7]  # floor(k * 2.5)
    assert select_frame_indices(10, 300, fps=25, target_fps=50) == list(range(10))
    assert select_frame_indices(10, 3, fps=50, target_fps=25) == [0, 4, 8]
    with pytest.raises(ValueError, match="frame_sampling"):
        select_frame_indices(10, 4, "random")


def test_processor_keeps_the_selected_frames_and_decodes_only_them(tmp_path, frames):
    folder = write_frame_folder(tmp_path / "clip", frames)
    for t in (1, 2, 4, 5, 7, 8):  # frames neither uniform nor truncate sampling would read for the uniform case
        (folder / f"images{t + 1:04d}.png").write_bytes(b"corrupt")
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)
    out = processor(folder, return_frame_indices=True)
    assert out["frame_indices"] == [[0, 3, 6, 9]]
    assert torch.equal(out["pixel_values_videos"][0], processor.process_frames(frames[[0, 3, 6, 9]]))

    truncating = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4, frame_sampling="truncate")
    clean = write_frame_folder(tmp_path / "clean", frames)
    out = truncating(clean, return_frame_indices=True)
    assert out["frame_indices"] == [[0, 1, 2, 3]]
    assert torch.equal(out["pixel_values_videos"][0], truncating.process_frames(frames[:4]))


def test_every_input_form_gives_the_same_tensor(tmp_path, small, frames):
    folder = write_frame_folder(tmp_path / "clip", frames)
    expected = small(frames)["pixel_values_videos"]
    for source in (folder, sorted(folder.iterdir()), frames.permute(0, 2, 3, 1).numpy(), frames.float() / 255):
        assert torch.equal(small(source)["pixel_values_videos"], expected)
    mp4 = write_mp4(tmp_path / "clip.mp4", frames)
    from_mp4 = small(mp4)["pixel_values_videos"]
    # h264 is lossy: within a few grey levels (0.05 after dividing by 255 and std ~0.22 is ~3 levels).
    assert (from_mp4 - expected).abs().mean() < 0.05


def test_eval_is_deterministic_centre_crop(frames):
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28)
    square = make_frames(3, 32, 32)
    out = processor(square, training=False)["pixel_values_videos"][0]
    assert_normalised(out, square[..., 2:30, 2:30])
    assert torch.equal(out, processor(square)["pixel_values_videos"][0])

    default = BeyondGlossVideoProcessor()
    big = make_frames(1, 256, 256)
    assert_normalised(default(big)["pixel_values_videos"][0], big[..., 16:240, 16:240])


def test_resize_matches_pillow_bicubic():
    noise = torch.randint(0, 256, (1, 3, 26, 21), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=None, image_mean=[0] * 3, image_std=[1] * 3)
    ours = (processor(noise)["pixel_values_videos"][0, 0].double() * 255).round()  # x / 255 * 255 is x within 1e-4
    pil = Image.fromarray(noise[0].permute(1, 2, 0).numpy()).resize((32, 32), Image.BICUBIC)
    reference = torch.from_numpy(np.array(pil)).permute(2, 0, 1).double()
    assert ours.shape == (3, 32, 32)
    # Two implementations of one algorithm, each rounding its fixed-point filter sums to 8 bits in its own order, so
    # a pixel can land one grey level apart, never more; on white noise (the worst case for the rounding) fewer than
    # 5% of the pixels do.
    assert (ours - reference).abs().max() <= 1 and (ours != reference).double().mean() < 0.05


def test_training_crop_is_random_per_video_and_shared_by_its_frames():
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, augment=False)
    # Noise, so that exactly one offset reproduces a crop.
    square = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    offsets = set()
    for seed in range(8):
        out = processor(square, training=True, generator=torch.Generator().manual_seed(seed))["pixel_values_videos"]
        matches = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.allclose(
                out[0].double(), normalise(square[..., top : top + 28, left : left + 28]), rtol=0, atol=NORMALISE_ATOL
            )
        ]
        assert len(matches) == 1 and max(matches[0]) < 4  # offsets 0..3, like np.random.randint(0, 32) for 256
        offsets.add(matches[0])
    assert len(offsets) > 1


def test_augmentation_is_identical_across_frames_and_off_at_eval():
    one = torch.randint(0, 256, (1, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    clip = one.expand(5, -1, -1, -1)
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, augment_probability=1.0)
    evaluation = processor(clip)["pixel_values_videos"][0]
    assert torch.equal(evaluation, processor(clip)["pixel_values_videos"][0])
    outputs = []
    for seed in range(3):
        out = processor(clip, training=True, generator=torch.Generator().manual_seed(seed))["pixel_values_videos"][0]
        assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
        assert not torch.equal(out, evaluation)
        outputs.append(out)
    assert not torch.equal(outputs[0], outputs[1])

    moved = processor.random_affine(clip, torch.Generator().manual_seed(0))
    assert (moved[0] == 0).all(dim=0).any()  # rotated and shifted: black fill enters
    no_augment = BeyondGlossVideoProcessor(augment_probability=0.0)
    assert torch.equal(no_augment.random_affine(clip), clip)


@pytest.mark.parametrize("angle, shift", [(90, (0, 0)), (-30, (0, 0)), (17.5, (3, -5)), (0, (-10, 10))])
def test_affine_matches_pillow_rotate_then_translate(angle, shift):
    frame = torch.randint(0, 256, (1, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    image = Image.fromarray(frame[0].permute(1, 2, 0).numpy()).rotate(angle, resample=Image.NEAREST)
    image = image.transform(image.size, Image.AFFINE, (1, 0, shift[0], 0, 1, shift[1]), resample=Image.NEAREST)
    expected = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    assert torch.equal(affine_frames(frame, angle, shift)[0], expected)


def test_batch_is_padded_with_a_mask(tmp_path, small, frames):
    mp4 = write_mp4(tmp_path / "one.mp4", frames[:1])
    batch = small([frames, frames[:2], mp4], return_frame_indices=True)
    pixels, mask = batch["pixel_values_videos"], batch["video_attention_mask"]
    assert pixels.shape == (3, 4, 3, 28, 28) and pixels.dtype == torch.float32
    assert mask.dtype == torch.long and mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]
    assert batch["frame_indices"] == [[0, 3, 6, 9], [0, 1], [0]]
    assert torch.equal(pixels[1, :2], small(frames[:2])["pixel_values_videos"][0])
    assert (pixels[1, 2:] == 0).all() and (pixels[2, 1:] == 0).all()
    assert set(small(frames).keys()) == {"pixel_values_videos", "video_attention_mask"}
    stacked = torch.stack([frames, frames.flip(0)])  # a 5-d (B, T, C, H, W) tensor is a batch
    assert torch.equal(small(stacked)["pixel_values_videos"], small([frames, frames.flip(0)])["pixel_values_videos"])


def test_save_and_load_round_trip(tmp_path, frames):
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    processor = BeyondGlossVideoProcessor(resize_size=40, crop_size=30, max_frames=7, frame_sampling="truncate")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["max_frames"] == 7 and saved["video_processor_type"] == "BeyondGlossVideoProcessor"
    assert saved["size"] == {"height": 40, "width": 40} and saved["crop_size"] == {"height": 30, "width": 30}
    loaded = BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert torch.equal(loaded(frames)["pixel_values_videos"], processor(frames)["pixel_values_videos"])
    assert BeyondGlossVideoProcessor.from_pretrained(tmp_path, max_frames=3).max_frames == 3
    assert BeyondGlossVideoProcessor.from_pretrained(tmp_path, num_frames=3).num_frames == 3

    AutoVideoProcessor.register(BeyondGlossConfig, BeyondGlossVideoProcessor, exist_ok=True)
    BeyondGlossConfig().save_pretrained(tmp_path)
    auto = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(auto) is BeyondGlossVideoProcessor and auto.to_dict() == processor.to_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_frames": 0}, r"max_frames=0 must be a whole number"),
        ({"num_frames": 2.5}, "num_frames=2.5"),
        ({"frame_sampling": "random"}, "frame_sampling='random'"),
        ({"resize_size": 200, "crop_size": 224}, "crop_size=.*224.* is larger than size=.*200"),
        ({"size": {"shortest_edge": 100}, "crop_size": {"height": 90, "width": 120}}, "larger than size"),
        ({"target_fps": -1}, r"fps=-1.0 \(target_fps\)"),
        ({"augment_probability": 2}, "augment_probability"),
        ({"size": {"height": 32}}, r"size=\{'height': 32\} must have the keys"),
        ({"crop_size": {"shortest_edge": 32}}, "crop_size=.*must have the keys \\['height', 'width'\\]$"),
        ({"size": "big"}, "size='big' must be a dict"),
        ({"do_resize": True, "size": None}, "do_resize=True needs size"),
        ({"resize_size": 32, "size": 32}, "both resize_size=32 and size=32"),
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BeyondGlossVideoProcessor(**kwargs)


def test_frames_of_different_sizes_need_a_resize(frames):
    processor = BeyondGlossVideoProcessor(resize_size=None, crop_size=None)
    with pytest.raises(ValueError, match="different frame sizes"):
        processor([frames, make_frames(2, 16, 16)])
    with pytest.raises(ValueError, match=r"frames are 24x20 px, smaller than crop_size=\{'height': 28, 'width': 28\}"):
        BeyondGlossVideoProcessor(resize_size=None, crop_size=28)(frames)


def test_none_sizes_survive_save_and_load(tmp_path):
    # A processor that keeps the frames' own size (the SynthSign demo's) must not come back resizing to 256 / 224.
    from beyondgloss import BeyondGlossVideoProcessor

    processor = BeyondGlossVideoProcessor(resize_size=None, crop_size=None, augment=False)
    processor.save_pretrained(tmp_path)
    loaded = BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.resize_size, loaded.crop_size, loaded.target_fps) == (None, None, None)
    frames = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    assert loaded([frames])["pixel_values_videos"].shape == (1, 3, 3, 32, 32)


# What save_pretrained wrote before the settings took transformers' names (beyondgloss 2026-11-30, resize_size=32,
# crop_size=28, max_frames=5, truncate), and the SynthSign demo's processor (no resize, no crop).
OLD_CONFIG = {
    "augment": True,
    "augment_probability": 0.5,
    "auto_map": {"AutoVideoProcessor": "video_processing_beyondgloss.BeyondGlossVideoProcessor"},
    "crop_size": 28,
    "frame_sampling": "truncate",
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "max_frames": 5,
    "resize_size": 32,
    "rotation_degrees": 30.0,
    "target_fps": None,
    "translate_pixels": 10,
    "video_processor_type": "BeyondGlossVideoProcessor",
}
OLD_DEMO_CONFIG = {**OLD_CONFIG, "resize_size": None, "crop_size": None, "max_frames": 300, "augment": False}


def test_settings_have_transformers_names():
    processor = BeyondGlossVideoProcessor()
    assert processor.size == {"height": 256, "width": 256} and processor.crop_size == {"height": 224, "width": 224}
    assert (processor.do_resize, processor.do_center_crop, processor.do_normalize, processor.do_sample_frames) == (
        True, True, True, True,
    )  # fmt: skip
    assert (processor.num_frames, processor.max_frames, processor.fps) == (None, 300, None)
    assert (processor.do_rescale, processor.rescale_factor, processor.do_convert_rgb) == (True, 1 / 255, True)
    saved = processor.to_dict()
    assert set(BeyondGlossVideoProcessor.settings_names) <= set(saved)
    assert not set(saved) & {"resize_size", "target_fps"}
    # The earlier names stay readable and writable as views.
    assert (processor.resize_size, processor.target_fps) == (256, None)
    processor.resize_size, processor.target_fps = None, 8
    assert (processor.do_resize, processor.fps) == (False, 8)
    # As earlier versions' callers do: set the int forms on a processor without sizes, then validate.
    demo = BeyondGlossVideoProcessor(resize_size=None, crop_size=None)
    demo.resize_size, demo.crop_size = 32, 28
    demo._validate()
    assert (demo.do_resize, demo.size, demo.do_center_crop, demo.crop_size) == (
        True, {"height": 32, "width": 32}, True, {"height": 28, "width": 28},
    )  # fmt: skip
    explicit = BeyondGlossVideoProcessor(crop_size=28, do_center_crop=False)
    assert (explicit.do_center_crop, explicit.crop_size) == (False, {"height": 28, "width": 28})


@pytest.mark.parametrize("old", [OLD_CONFIG, OLD_DEMO_CONFIG], ids=["resizing", "demo"])
def test_old_configs_load_with_the_same_behaviour(tmp_path, old, frames):
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(old))
    loaded = BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    out = loaded(frames, return_frame_indices=True)
    kept = list(range(5)) if old["resize_size"] else list(range(10))
    assert out["frame_indices"] == [kept]
    if old["resize_size"]:
        assert loaded.size == {"height": 32, "width": 32} and loaded.crop_size == {"height": 28, "width": 28}
        resized = F.interpolate(frames[kept], size=(32, 32), mode="bicubic", antialias=True)
        assert_normalised(out["pixel_values_videos"][0], resized[..., 2:30, 2:30])
    else:
        assert (loaded.do_resize, loaded.do_center_crop, loaded.size, loaded.crop_size) == (False, False, None, None)
        assert_normalised(out["pixel_values_videos"][0], frames)
    # Saved again, it is written with the current names and loads to the same processor.
    loaded.save_pretrained(tmp_path / "again")
    again = BeyondGlossVideoProcessor.from_pretrained(tmp_path / "again")
    assert again.to_dict() == loaded.to_dict() and "resize_size" not in json.loads(
        (tmp_path / "again" / "video_preprocessor_config.json").read_text()
    )


def test_per_call_settings_apply_and_leave_the_processor_unchanged(frames):
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)
    before = processor.to_dict()
    out = processor(frames, size={"shortest_edge": 10}, crop_size=None, max_frames=3, return_frame_indices=True)
    assert out["pixel_values_videos"].shape == (1, 3, 3, 10, 12)  # 20x24 -> shorter side 10, aspect kept
    assert out["frame_indices"] == [[0, 5, 9]]  # round half up of 4.5
    assert processor(frames, resize_size=16, crop_size=16)["pixel_values_videos"].shape == (1, 4, 3, 16, 16)
    assert processor(frames, do_resize=False, do_center_crop=False)["pixel_values_videos"].shape == (1, 4, 3, 20, 24)
    assert processor(frames, do_sample_frames=False)["pixel_values_videos"].shape[1] == 10
    plain = processor(frames, do_normalize=False)["pixel_values_videos"][0]
    resized = F.interpolate(frames[[0, 3, 6, 9]], size=(32, 32), mode="bicubic", antialias=True)[..., 2:30, 2:30]
    # x * float32(1 / 255): two roundings (the constant, the product), each within 2**-24 of values at most 1.
    torch.testing.assert_close(plain.double(), resized.double() / 255, rtol=0, atol=2 * 2**-24)
    assert processor.to_dict() == before
    with pytest.raises(TypeError, match=r"unknown settings \['resize'\]; the settings are \['do_resize', 'size'"):
        processor(frames, resize=32)
    with pytest.raises(TypeError, match=r"unknown settings \['colour'\]"):
        BeyondGlossVideoProcessor(colour="red")


def test_shortest_edge_resize_keeps_the_aspect_ratio_then_crops_the_centre(frames):
    processor = BeyondGlossVideoProcessor(size={"shortest_edge": 10}, crop_size=8)
    assert processor.output_size(20, 24) == (10, 12) and processor.output_size(24, 20) == (12, 10)
    assert processor.output_size(3, 300) == (10, 1000)  # the longer side is truncated, as in transformers
    # The longer side is clamped to 1024 px (the processor's bound), the aspect ratio kept: a 3 x 1000 strip would
    # otherwise become 10 x 3333.
    assert processor.output_size(3, 1000) == (3, 1024)
    out = processor(frames)["pixel_values_videos"][0]
    resized = F.interpolate(frames, size=(10, 12), mode="bicubic", antialias=True)
    assert_normalised(out, resized[..., 1:9, 2:10])


def test_with_default_size_fills_only_a_missing_size(frames):
    demo = BeyondGlossVideoProcessor(resize_size=None, crop_size=None)
    sized = demo.with_default_size(16)
    assert sized is not demo and demo.size is None
    assert sized.size == {"shortest_edge": 16} and sized.crop_size == {"height": 16, "width": 16}
    assert sized([frames, make_frames(2, 30, 50)])["pixel_values_videos"].shape == (2, 10, 3, 16, 16)
    configured = BeyondGlossVideoProcessor(resize_size=32, crop_size=28)
    assert configured.with_default_size(16) is configured
    with pytest.raises(ValueError, match="image_size=0 must be a positive"):
        demo.with_default_size(0)


def test_auto_video_processor_loads_without_patching_transformers(tmp_path, frames):
    import transformers

    before = transformers.__dict__.get("AutoVideoProcessor")
    import beyondgloss  # noqa: F401 - registers the processor through AutoVideoProcessor.register
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    assert transformers.__dict__.get("AutoVideoProcessor") is before  # transformers' own namespace is left alone

    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=6)
    processor.save_pretrained(tmp_path)
    for kwargs in ({}, {"trust_remote_code": True}, {"trust_remote_code": False}):
        loaded = AutoVideoProcessor.from_pretrained(tmp_path, **kwargs)
        assert type(loaded) is BeyondGlossVideoProcessor, kwargs
        assert torch.equal(loaded(frames)["pixel_values_videos"], processor(frames)["pixel_values_videos"])
    BeyondGlossConfig().save_pretrained(tmp_path)  # with the model's config next to it (a checkpoint folder)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is BeyondGlossVideoProcessor


def test_frames_are_resized_a_few_at_a_time_while_decoded(tmp_path, monkeypatch):
    noise = torch.rand(6, 3, 17, 22, generator=torch.Generator().manual_seed(0))
    frames = (F.interpolate(noise, size=(68, 88), mode="bicubic").clamp(0, 1) * 255).round().to(torch.uint8)
    mp4 = write_mp4(tmp_path / "clip.mp4", frames)
    folder = write_frame_folder(tmp_path / "frames", frames)
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28)
    # What the processor computed before: every kept frame decoded at the source size, then resized.
    before = {
        source: processor.process_frames(video_io.read_video_frames(source))
        for source in (mp4, folder, frames)
    }
    resized_groups = []
    original = video_io.resize_frames
    for module in (video_source, frame_images):  # where frames of videos and of image files are resized
        monkeypatch.setattr(
            module, "resize_frames", lambda x, size: resized_groups.append(tuple(x.shape)) or original(x, size)
        )
    # A budget of two source frames (68 x 88 x 3 bytes each): groups of 2 frames.
    monkeypatch.setattr(video_io.VideoSource, "resize_budget_bytes", 2 * 3 * 68 * 88 + 1)
    for source, expected in before.items():
        resized_groups.clear()
        assert torch.equal(processor(source)["pixel_values_videos"][0], expected)  # the same pixels as before
        one_at_a_time = isinstance(source, type(folder)) and source.is_dir()  # images: one per file as opened
        assert resized_groups == [(1 if one_at_a_time else 2, 3, 68, 88)] * (6 if one_at_a_time else 3), source
    # At least one frame per group, however large the frames.
    monkeypatch.setattr(video_io.VideoSource, "resize_budget_bytes", 1)
    resized_groups.clear()
    assert video_io.read_video_frames(mp4, [0, 1, 2], size=(16, 16)).shape == (3, 3, 16, 16)
    assert resized_groups == [(1, 3, 68, 88)] * 3


def test_training_augmentation_while_decoding_matches_augmenting_the_whole_clip(tmp_path, monkeypatch):
    noise = torch.randint(0, 256, (5, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    folder = write_frame_folder(tmp_path / "frames", noise)
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, augment_probability=1.0)
    monkeypatch.setattr(video_io.VideoSource, "resize_budget_bytes", 2 * 3 * 20 * 24)  # groups of 2 frames
    for seed in range(3):
        for source in (noise, folder):
            grouped = processor(source, training=True, generator=torch.Generator().manual_seed(seed))
            whole = processor.process_frames(noise, training=True, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(grouped["pixel_values_videos"][0], whole), (seed, type(source))


def test_earlier_setting_names_are_aliases_of_the_current_ones():
    processor = BeyondGlossVideoProcessor(max_frames=4, target_fps=25.0)
    assert (processor.max_frames, processor.fps) == (4, 25.0)
    processor.target_fps = 12.5
    assert processor.fps == 12.5


def test_num_frames_is_an_exact_count_as_in_transformers(frames):
    from transformers.video_utils import VideoMetadata, default_sample_indices_fn

    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28)
    for count in (1, 3, 4, 7, 10):
        out = processor(frames, num_frames=count, return_frame_indices=True)
        expected = default_sample_indices_fn(VideoMetadata(total_num_frames=10), num_frames=count).tolist()
        assert out["frame_indices"] == [expected] and out["pixel_values_videos"].shape[1] == count
    # Shorter videos cannot give that many frames: an error, as in transformers; max_frames keeps the cap instead.
    with pytest.raises(ValueError, match=r"has 10 frames, fewer than num_frames=12.*max_frames="):
        processor(frames, num_frames=12)
    assert processor(frames, max_frames=12)["pixel_values_videos"].shape[1] == 10
    assert processor(frames, max_frames=4, return_frame_indices=True)["frame_indices"] == [[0, 3, 6, 9]]
    with pytest.raises(ValueError, match="num_frames=4 and fps=25.0 are mutually exclusive"):
        BeyondGlossVideoProcessor(num_frames=4, fps=25)
    with pytest.raises(ValueError, match="num_frames=400 is more than max_frames=300"):
        BeyondGlossVideoProcessor(num_frames=400)
    assert BeyondGlossVideoProcessor(num_frames=400, max_frames=None).num_frames == 400


def test_configs_saved_with_num_frames_as_the_cap_keep_it(tmp_path):
    # The checkpoint fixture of a5f8f58 saved num_frames=8 when it meant "at most 8" (and no max_frames).
    fixture = Path(__file__).parent / "fixtures" / "checkpoint_a5f8f58" / "translation" / "processor_config.json"
    saved = json.loads(fixture.read_text())["video_processor"]
    assert saved["num_frames"] == 8 and "max_frames" not in saved
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(saved))
    loaded = BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.num_frames, loaded.max_frames) == (None, 8)
    long = make_frames(20, 32, 32)
    assert loaded(long, return_frame_indices=True)["frame_indices"] == [select_frame_indices(20, 8)]
    assert loaded(long[:6])["pixel_values_videos"].shape[1] == 6  # fewer frames than the cap: all of them
    # Saved again, it holds both names, and loads to the same processor.
    loaded.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "video_preprocessor_config.json").read_text())
    assert (again["num_frames"], again["max_frames"]) == (None, 8)
    assert BeyondGlossVideoProcessor.from_pretrained(tmp_path / "again").to_dict() == loaded.to_dict()


def test_do_rescale_and_rescale_factor_mean_what_they_mean_in_transformers(frames):
    plain = BeyondGlossVideoProcessor(resize_size=None, crop_size=None, do_rescale=False)
    out = plain(frames)["pixel_values_videos"][0].double()
    # Normalised without the rescale: (x - mean) / std on 0..255 values; float32 rounding relative to the magnitude.
    expected = (frames.double() - MEAN) / STD
    torch.testing.assert_close(out, expected, rtol=4 * 2**-24, atol=4 * 2**-24 * 255 / 0.225)
    raw = plain(frames, do_normalize=False)["pixel_values_videos"][0]
    assert torch.equal(raw, frames.float())  # neither: the pixel values as floats
    halved = plain(frames, do_rescale=True, rescale_factor=0.5, do_normalize=False)["pixel_values_videos"][0]
    assert torch.equal(halved, frames.float() * 0.5)
    with pytest.raises(ValueError, match="rescale_factor=0.0 must be positive"):
        BeyondGlossVideoProcessor(rescale_factor=0)


def test_do_convert_rgb_false_refuses_frames_that_are_not_rgb(tmp_path, frames):
    strict = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, do_convert_rgb=False)
    assert torch.equal(strict(frames)["pixel_values_videos"], BeyondGlossVideoProcessor(
        resize_size=32, crop_size=28)(frames)["pixel_values_videos"])  # RGB frames pass unchanged
    with pytest.raises(video_io.VideoReadError, match="1 channels are not RGB and do_convert_rgb=False"):
        strict(frames[:, :1])
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(frames[0, 0].numpy(), mode="L").save(grey / "0001.png")
    with pytest.raises(video_io.VideoReadError, match=r"0001\.png \(frame 0 .*is a L image, not RGB"):
        strict(grey)
    assert BeyondGlossVideoProcessor(resize_size=32, crop_size=28)(grey)["pixel_values_videos"].shape == (1, 1, 3, 28,
                                                                                                           28)


def test_return_metadata_gives_transformers_video_metadata_without_paths(tmp_path, frames):
    from transformers.video_utils import VideoMetadata

    mp4 = write_mp4(tmp_path / "clip.mp4", frames, fps=25)
    folder = write_frame_folder(tmp_path / "private" / "frames", frames)
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)
    out = processor([mp4, folder], return_metadata=True)
    video, images = out["video_metadata"]
    assert isinstance(video, VideoMetadata) and isinstance(images, VideoMetadata)
    assert (video.total_num_frames, video.fps, video.width, video.height, video.video_backend) == (
        10, 25.0, 24, 20, "torchcodec")
    assert video.duration == pytest.approx(0.4) and video.frames_indices == [0, 3, 6, 9]
    assert (images.total_num_frames, images.fps, images.duration, images.video_backend) == (10, None, None, "pillow")
    assert "video_metadata" not in processor([mp4])
    # Nothing in what a frame folder gives back holds its path (a user's folder names can be private).
    for value in out.values():
        assert str(tmp_path) not in repr(value) and "private" not in repr(value)


def test_return_tensors_none_gives_lists_and_np_gives_numpy(frames):
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)
    padded = processor([frames, frames[:2]])
    lists = processor([frames, frames[:2]], return_tensors=None)
    assert isinstance(lists["pixel_values_videos"], list) and isinstance(lists["video_attention_mask"], list)
    assert [clip.shape[0] for clip in lists["pixel_values_videos"]] == [4, 2]  # per video, not padded
    assert lists["video_attention_mask"] == [[1, 1, 1, 1], [1, 1]]
    for i, length in enumerate((4, 2)):
        assert torch.equal(lists["pixel_values_videos"][i], padded["pixel_values_videos"][i, :length])
    arrays = processor([frames, frames[:2]], return_tensors="np")
    assert isinstance(arrays["pixel_values_videos"], np.ndarray)
    assert np.array_equal(arrays["pixel_values_videos"], padded["pixel_values_videos"].numpy())


def test_device_is_where_the_frames_are_processed(frames):
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=4)
    on_cpu = processor(frames, device="cpu")
    assert torch.equal(on_cpu["pixel_values_videos"], processor(frames)["pixel_values_videos"])
    # The meta device computes shapes only: the outputs land where they were asked for.
    meta = processor(frames, device="meta", training=True, augment_probability=1.0)
    assert meta["pixel_values_videos"].device.type == "meta" and meta["video_attention_mask"].device.type == "meta"
    assert meta["pixel_values_videos"].shape == (1, 4, 3, 28, 28)


def test_a_single_image_array_is_one_frame(frames):
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28)
    image = frames[0].permute(1, 2, 0).numpy()  # (H, W, 3), as PIL and OpenCV give images
    out = processor(image)
    assert out["pixel_values_videos"].shape == (1, 1, 3, 28, 28)
    assert torch.equal(out["pixel_values_videos"][0], processor(frames[:1])["pixel_values_videos"][0])


FRESH_PROCESS = BLOCK_BEYONDGLOSS + """
import json, sys, torch
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
processor = AutoVideoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
frames = torch.load(sys.argv[2], weights_only=True)
out = processor(frames, num_frames=3, return_metadata=True)
try:
    processor(frames, max_frame_pixels=10)
    refused = ""
except ValueError as error:
    refused = str(error)
torch.save(out["pixel_values_videos"], sys.argv[3])
print(json.dumps({"module": type(processor).__module__, "indices": out["video_metadata"][0].frames_indices,
                  "refused": refused}))
"""


def test_a_saved_video_processor_runs_its_own_code_without_beyondgloss(tmp_path, frames):
    import os
    import subprocess
    import sys

    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=6)
    processor.save_pretrained(tmp_path / "saved")
    shipped = {"video_processing_beyondgloss.py", "video_processor_settings.py", "video_transforms.py", "video_io.py",
               "video_source.py", "frame_images.py"}
    assert shipped <= set(os.listdir(tmp_path / "saved"))
    torch.save(frames, tmp_path / "frames.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "saved"), str(tmp_path / "frames.pt"),
                             str(tmp_path / "out.pt")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules.") and report["indices"] == [0, 3, 6]
    assert "frames of 24x20 px (480 pixels) exceed the frame limit of 10 pixels" in report["refused"]
    expected = processor(frames, num_frames=3)["pixel_values_videos"]
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)

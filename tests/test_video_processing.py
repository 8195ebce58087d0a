"""BeyondGlossVideoProcessor: frame selection, resize/crop/normalise, augmentation, batching, save/load."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from beyondgloss.configuration_beyondgloss import BeyondGlossConfig
from beyondgloss.testing_video import make_frames, write_frame_folder, write_mp4
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor, affine_frames, select_frame_indices

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalise(frames):
    return (frames.float() / 255 - MEAN) / STD


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
    torch.testing.assert_close(out, normalise(square[..., 2:30, 2:30]), rtol=0, atol=1e-5)
    assert torch.equal(out, processor(square)["pixel_values_videos"][0])

    default = BeyondGlossVideoProcessor()
    big = make_frames(1, 256, 256)
    expected = normalise(big[..., 16:240, 16:240])
    torch.testing.assert_close(default(big)["pixel_values_videos"][0], expected, rtol=0, atol=1e-5)


def test_resize_matches_pillow_bicubic():
    noise = torch.randint(0, 256, (1, 3, 26, 21), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=None, image_mean=[0] * 3, image_std=[1] * 3)
    ours = processor(noise)["pixel_values_videos"][0, 0] * 255
    pil = Image.fromarray(noise[0].permute(1, 2, 0).numpy()).resize((32, 32), Image.BICUBIC)
    reference = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float()
    assert ours.shape == (3, 32, 32)
    # torch's uint8 antialiased bicubic follows Pillow's; even on white noise at most a grey level apart.
    assert (ours - reference).abs().max() <= 1.0001 and (ours - reference).abs().mean() < 0.05


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
            if torch.allclose(out[0], normalise(square[..., top : top + 28, left : left + 28]), rtol=0, atol=1e-5)
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
    loaded = BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert torch.equal(loaded(frames)["pixel_values_videos"], processor(frames)["pixel_values_videos"])
    assert BeyondGlossVideoProcessor.from_pretrained(tmp_path, max_frames=3).max_frames == 3

    AutoVideoProcessor.register(BeyondGlossConfig, BeyondGlossVideoProcessor, exist_ok=True)
    BeyondGlossConfig().save_pretrained(tmp_path)
    auto = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(auto) is BeyondGlossVideoProcessor and auto.to_dict() == processor.to_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_frames": 0}, "max_frames=0"),
        ({"frame_sampling": "random"}, "frame_sampling='random'"),
        ({"resize_size": 200, "crop_size": 224}, "crop_size=224 is larger than resize_size=200"),
        ({"target_fps": -1}, "target_fps"),
        ({"augment_probability": 2}, "augment_probability"),
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BeyondGlossVideoProcessor(**kwargs)


def test_frames_of_different_sizes_need_a_resize(frames):
    processor = BeyondGlossVideoProcessor(resize_size=None, crop_size=None)
    with pytest.raises(ValueError, match="different frame sizes"):
        processor([frames, make_frames(2, 16, 16)])
    with pytest.raises(ValueError, match="crop_size=28 is larger than the 20x24 frames"):
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

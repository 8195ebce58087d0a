"""Hostile and careless video inputs: special files, decompression bombs, odd image modes, NaN frames, corrupt files.

Every case ends in a `VideoReadError` naming the input, or in a documented conversion; none may hang. Files that
could block a reader (FIFOs) are only ever touched under a watchdog thread, so a regression fails instead of hanging.
"""

import os
import socket
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4
from beyondgloss.video_io import VideoReadError, image_to_rgb, list_frame_images, read_video_frames
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and sockets need a POSIX system")


def _without_hanging(function, seconds: float = 10.0):
    """Runs `function` in a thread; fails the test if it has not returned within `seconds` (a hang)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed back to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function} did not return within {seconds} s: it hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _png_header_only(path, width: int, height: int):
    """A PNG whose header claims `width` x `height` pixels, with one tiny data chunk (no real pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def frames():
    return make_frames(3)


@posix_only
def test_lister_keeps_only_regular_image_files_in_natural_order(tmp_path, frames):
    folder = write_frame_folder(tmp_path / "clip", frames, pattern="img{}.PNG", start=9)  # img9, img10, img11
    os.mkfifo(folder / "img5.png")
    (folder / ".hidden.png").write_bytes((folder / "img9.PNG").read_bytes())
    (folder / "notes.txt").write_text("x")
    (folder / "sub.png").mkdir()
    (folder / "broken.png").symlink_to(tmp_path / "missing.png")
    (folder / "link12.png").symlink_to(folder / "img9.PNG")
    (folder / "dev.png").symlink_to("/dev/null")
    (folder / "loop.png").symlink_to(folder / "loop.png")  # a symlink to itself: ELOOP on stat
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "sock.png"))
        names = [p.name for p in _without_hanging(lambda: list_frame_images(folder))]
    assert names == ["img9.PNG", "img10.PNG", "img11.PNG", "link12.png"]
    with pytest.raises(VideoReadError, match="cannot list"):
        list_frame_images(tmp_path / "missing")


@posix_only
def test_a_fifo_among_the_frames_never_hangs_the_reader(tmp_path, frames):
    folder = write_frame_folder(tmp_path / "clip", frames)
    os.mkfifo(folder / "images0002b.png")  # sorts between frames 2 and 3
    decoded = _without_hanging(lambda: read_video_frames(folder))
    assert torch.equal(decoded, frames)
    # Given explicitly (a list of paths, or a video path), a special file is refused by name, without blocking.
    fifo = folder / "images0002b.png"
    with pytest.raises(VideoReadError, match=r"images0002b\.png.*not a regular file"):
        _without_hanging(lambda: read_video_frames([folder / "images0001.png", fifo]))
    os.mkfifo(tmp_path / "video.mp4")
    with pytest.raises(VideoReadError, match=r"video\.mp4: not a regular file"):
        _without_hanging(lambda: read_video_frames(tmp_path / "video.mp4"))
    with pytest.raises(VideoReadError, match="not a regular file"):
        _without_hanging(lambda: read_video_frames("/dev/zero"))


def test_decompression_bomb_becomes_a_read_error_naming_the_file(tmp_path, frames):
    folder = write_frame_folder(tmp_path / "clip", frames)
    bomb = _png_header_only(folder / "images0002.png", 15000, 15000)
    with pytest.raises(VideoReadError, match=r"images0002\.png.*too large.*DecompressionBombError"):
        read_video_frames(folder)
    # The frames before it stay readable, and errors="skip"-style callers can catch one type.
    assert torch.equal(read_video_frames(folder, [0]), frames[:1])
    assert bomb.stat().st_size < 200


def test_corrupt_image_and_unexpected_pillow_errors_name_the_file(tmp_path, frames, monkeypatch):
    folder = write_frame_folder(tmp_path / "clip", frames)
    data = (folder / "images0003.png").read_bytes()
    (folder / "images0003.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match=r"images0003\.png \(frame 2 .*corrupt or truncated"):
        read_video_frames(folder)

    def explode(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(VideoReadError, match=r"images0001\.png.*struct\.error|images0001\.png.*error: unpack"):
        read_video_frames(folder)


def _mode_images():
    ramp = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17  # 0 .. 255
    rgb = np.stack([ramp, 255 - ramp, np.full_like(ramp, 7)], axis=-1)
    images = {
        "1": Image.fromarray(ramp > 127).convert("1"),
        "L": Image.fromarray(ramp, "L"),
        "LA": Image.fromarray(np.stack([ramp, 255 - ramp], -1), "LA"),
        "P": Image.fromarray(rgb, "RGB").convert("P"),
        "RGBA": Image.fromarray(np.concatenate([rgb, ramp[..., None]], -1), "RGBA"),
        "CMYK": Image.fromarray(rgb, "RGB").convert("CMYK"),
        "YCbCr": Image.fromarray(rgb, "RGB").convert("YCbCr"),
        "I;16": Image.fromarray(ramp.astype(np.uint16) * 257),
        "I": Image.fromarray(ramp.astype(np.int32) * 257),
        "F": Image.fromarray(ramp.astype(np.float32) / 255),
    }
    return ramp, rgb, images


def test_every_image_mode_becomes_rgb_uint8_by_the_documented_rule():
    ramp, rgb, images = _mode_images()
    grey = torch.from_numpy(ramp).expand(3, -1, -1)
    for mode, image in images.items():
        assert image.mode == mode
        frame = image_to_rgb(image, f"a {mode} image")
        assert frame.dtype == torch.uint8 and frame.shape == (3, 4, 4), mode
    # Wide greyscale is rescaled (round(v / 257)), not clipped at 255 as Pillow's convert does.
    for mode in ("I;16", "I", "F", "L"):
        assert torch.equal(image_to_rgb(images[mode]), grey), mode
    assert torch.equal(image_to_rgb(images["LA"]), grey)  # alpha dropped, not composited
    assert torch.equal(image_to_rgb(images["RGBA"]), torch.from_numpy(rgb).permute(2, 0, 1))
    binary = torch.from_numpy((ramp > 127).astype(np.uint8) * 255)
    assert torch.equal(image_to_rgb(images["1"]), binary.expand(3, -1, -1))
    for mode in ("P", "CMYK", "YCbCr"):  # Pillow's own conversions
        expected = torch.from_numpy(np.array(images[mode].convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(image_to_rgb(images[mode]), expected), mode


def test_mode_images_read_from_files(tmp_path):
    ramp, _, images = _mode_images()
    # 16-bit PNG and float TIFF go through the files' own decoders.
    images["I;16"].save(tmp_path / "a.png")
    images["F"].save(tmp_path / "b.tiff")
    decoded = read_video_frames([tmp_path / "a.png", tmp_path / "b.tiff"])
    assert torch.equal(decoded, torch.from_numpy(ramp).expand(2, 3, -1, -1))


def test_out_of_range_and_non_finite_images_are_errors():
    with pytest.raises(VideoReadError, match=r"bad\.tif \(mode F\).*NaN or infinite"):
        image_to_rgb(Image.fromarray(np.full((2, 2), np.nan, np.float32)), "bad.tif")
    with pytest.raises(VideoReadError, match=r"mode F.*must be in \[0, 1\]"):
        image_to_rgb(Image.fromarray(np.full((2, 2), 3.0, np.float32)))
    with pytest.raises(VideoReadError, match=r"mode I values must be in \[0, 65535\]"):
        image_to_rgb(Image.fromarray(np.full((2, 2), -5, np.int32)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_float_frames_are_an_error_not_black(frames, bad):
    video = frames.float() / 255
    video[1, 0, 2, 3] = bad
    with pytest.raises(VideoReadError, match=r"video array of shape \(3, 3, 20, 24\).*1 value\(s\) are NaN or inf"):
        read_video_frames(video)
    with pytest.raises(VideoReadError, match="NaN or infinite"):
        BeyondGlossVideoProcessor()(video.numpy())


def test_corrupt_and_empty_videos_name_the_file(tmp_path, frames):
    mp4 = write_mp4(tmp_path / "ok.mp4", frames, fps=25)
    data = mp4.read_bytes()
    cases = {
        "empty.mp4": b"",
        "header.mp4": data[:64],
        "noise.mp4": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "half.mp4": data[: len(data) // 2],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(VideoReadError) as error:
            BeyondGlossVideoProcessor()(str(path))
        assert str(path) in str(error.value), name
        # Nothing of torchcodec's internals (its source locations, its request for a bug report).
        assert ".cpp" not in str(error.value) and "report an issue" not in str(error.value), error.value
    assert (tmp_path / "ok.mp4").read_bytes() == data  # the inputs are left as they were


@pytest.mark.parametrize("width, height, what", [(12000, 12000, "pixels"), (60000, 1, "side")])
def test_huge_images_are_refused_from_their_header_naming_file_size_and_limit(tmp_path, frames, width, height, what):
    # Headers only: decoding them would fail differently ("not a readable image"), so the message proves the refusal
    # came first. 12000 x 12000 is below Pillow's own decompression-bomb error (2 x 89.5 M pixels): ours decides.
    folder = write_frame_folder(tmp_path / "clip", frames)
    _png_header_only(folder / "images0002.png", width, height)
    pattern = rf"images0002\.png \(frame 1 of .*\): frames of {width}x{height} px .* exceed the frame limit .*max_frame"
    with pytest.raises(VideoReadError, match=pattern):
        read_video_frames(folder)
    with pytest.raises(VideoReadError, match=pattern):
        BeyondGlossVideoProcessor()(folder)
    # Raised deliberately, the limit lets the frame through to the decoder (which then finds no pixels in it).
    with pytest.raises(VideoReadError, match="not a readable image"):
        read_video_frames([folder / "images0002.png"], max_pixels=width * height, max_side=max(width, height))


def test_a_saved_processor_config_with_a_huge_size_is_refused_when_loaded(tmp_path):
    import json

    BeyondGlossVideoProcessor().save_pretrained(tmp_path)
    path = tmp_path / "video_preprocessor_config.json"
    config = json.loads(path.read_text())
    config["size"] = {"height": 100000, "width": 100000}
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"size=\{'height': 100000, 'width': 100000\} is out of range.*1024 px"):
        BeyondGlossVideoProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="crop_size=.*is out of range"):
        BeyondGlossVideoProcessor(crop_size=5000)
    with pytest.raises(ValueError, match=r"max_frame_pixels=0 must be a whole number"):
        BeyondGlossVideoProcessor(max_frame_pixels=0)


@pytest.mark.parametrize("height, width", [(2, 8192), (8192, 2), (1, 5000)])
def test_extreme_aspect_ratios_are_clamped_to_the_processors_bounds(height, width):
    # Unclamped, {"shortest_edge": 256} would make a 2 x 8192 frame 256 x 1048576 (805 MB of uint8 per frame).
    strip = torch.zeros(1, 3, height, width, dtype=torch.uint8)
    processor = BeyondGlossVideoProcessor(size={"shortest_edge": 256}, crop_size=None)
    long_axis = -1 if width > height else -2
    out = processor(strip)["pixel_values_videos"]
    assert out.shape[long_axis] == 1024 and out.shape[-3 - long_axis] == max(1, min(height, width) * 1024 // 8192)
    capped = processor(strip, size={"shortest_edge": 8, "longest_edge": 64})["pixel_values_videos"]
    assert capped.shape[long_axis] == 64  # transformers' longest_edge, with the aspect ratio kept
    # Cropped to 224 after the clamp: refused by name, before decoding, not deep in the crop.
    too_small = rf"frames are .* px after the resize \(from {width}x{height}\), smaller than crop_size"
    with pytest.raises(ValueError, match=too_small):
        BeyondGlossVideoProcessor(size={"shortest_edge": 256})(strip)
    # Kept at the source size, the frames would come out above the bound: refused by name, before decoding.
    with pytest.raises(ValueError, match=rf"frames would come out at {width}x{height} px, above .* 1024 px"):
        BeyondGlossVideoProcessor(do_resize=False, crop_size=None)(strip)


def test_augmentation_runs_at_the_output_size_in_the_source_geometry():
    from beyondgloss.video_transforms import affine_frames

    frames = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    # A shift of (4, -2) pixels of a 32 x 32 source is (2, -1) pixels of its 16 x 16 resize.
    assert torch.equal(affine_frames(frames, 0.0, (4, -2), source_size=(32, 32)), affine_frames(frames, 0.0, (2, -1)))
    # Rotations by 90 degrees of a square are exact at any scale.
    assert torch.equal(affine_frames(frames, 90.0, source_size=(64, 64)), torch.rot90(frames, 1, dims=(-2, -1)))

"""Reading videos in every accepted form: same frames, natural order, lazy decoding, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4
from beyondgloss.video_io import (
    VideoReadError,
    count_frames,
    natural_sort_key,
    open_video,
    read_video_frames,
    row_video,
    video_fps,
)


@pytest.fixture(scope="module")
def frames():
    return make_frames(6)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, frames):
    return write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=25)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, frames):
    return write_frame_folder(tmp_path_factory.mktemp("frames") / "clip", frames)


def test_image_forms_give_identical_frames(frames, folder):
    files = sorted(folder.iterdir())
    thwc = frames.permute(0, 2, 3, 1)
    forms = {
        "folder": folder,
        "str folder": str(folder),
        "list of paths": files,
        "list of PIL images": [Image.open(f) for f in files],
        "tensor TCHW": frames,
        "tensor THWC": thwc,
        "numpy THWC": thwc.numpy(),
        "float in [0, 1]": frames.float() / 255,
    }
    for name, source in forms.items():
        decoded = read_video_frames(source)
        assert decoded.dtype == torch.uint8 and decoded.shape == (6, 3, 20, 24), name
        assert torch.equal(decoded, frames), name
        assert torch.equal(read_video_frames(source, [4, 1]), frames[[4, 1]]), name
        assert count_frames(source) == 6 and video_fps(source) is None, name


def test_video_file_forms_agree_and_match_the_encoded_frames(frames, mp4):
    from torchcodec.decoders import VideoDecoder

    decoded = read_video_frames(mp4)
    assert decoded.shape == (6, 3, 20, 24) and decoded.dtype == torch.uint8
    # h264 is lossy; the smooth fixture comes back within a few levels, in order.
    assert (decoded.float() - frames.float()).abs().mean() < 3
    assert count_frames(mp4) == 6 and video_fps(mp4) == pytest.approx(25)
    data = mp4.read_bytes()
    for name, source in {
        "str path": str(mp4),
        "decoder": VideoDecoder(str(mp4)),
        "channels-last decoder": VideoDecoder(str(mp4), dimension_order="NHWC"),
        "path dict": {"path": str(mp4), "bytes": None},
        "bytes dict": {"path": "clip.mp4", "bytes": data},
        "bytes": data,
    }.items():
        assert torch.equal(read_video_frames(source), decoded), name
        assert torch.equal(read_video_frames(source, [5, 0, 3]), decoded[[5, 0, 3]]), name


def test_datasets_video_column_is_read(mp4):
    import datasets  # a requirement of beyondgloss (setup.py), not optional
    dataset = datasets.Dataset.from_dict({"video": [str(mp4)]}).cast_column("video", datasets.Video())
    decoder = dataset[0]["video"]
    assert torch.equal(read_video_frames(decoder, [1, 2]), read_video_frames(mp4, [1, 2]))
    assert str(mp4) in open_video(decoder).name


def test_only_requested_frames_are_decoded(tmp_path, frames, mp4):
    folder = write_frame_folder(tmp_path / "clip", frames)
    for name in ("images0002.png", "images0005.png"):
        (folder / name).write_bytes(b"not a png")
    assert torch.equal(read_video_frames(folder, [0, 2, 3, 5]), frames[[0, 2, 3, 5]])
    with pytest.raises(VideoReadError, match=r"images0002\.png \(frame 1 of .*not a readable image"):
        read_video_frames(folder, [0, 1])

    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(mp4))
    requested = []
    original = decoder.get_frames_at
    decoder.get_frames_at = lambda indices: requested.append(list(indices)) or original(indices=indices)
    read_video_frames(decoder, [1, 4])
    assert requested == [[1, 4]]


def test_natural_frame_order(tmp_path, frames):
    names = ["images10.png", "images0002.png", "images1.png", "images0011.png", "images9.png", "images03.png"]
    folder = tmp_path / "clip"
    folder.mkdir()
    for name, frame in zip(names, frames):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / name)
    (folder / "notes.txt").write_text("ignored")
    expected = sorted(range(6), key=lambda i: int(names[i][6:-4]))
    assert torch.equal(read_video_frames(folder), frames[expected])
    assert sorted(["a10b2", "a2b10", "a2b9"], key=natural_sort_key) == ["a2b9", "a2b10", "a10b2"]


def test_grayscale_and_rgba_become_rgb(tmp_path, frames):
    rgb = frames[0].permute(1, 2, 0).numpy()
    gray = rgb[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(gray.shape, 7, np.uint8)]), mode="RGBA").save(tmp_path / "rgba.png")
    from_gray = read_video_frames([tmp_path / "gray.png"])
    assert from_gray.shape == (1, 3, 20, 24)
    assert all(torch.equal(from_gray[0, c], torch.from_numpy(gray)) for c in range(3))
    assert torch.equal(read_video_frames([tmp_path / "rgba.png"])[0], frames[0])
    assert torch.equal(read_video_frames(frames[:, :1])[:, 2], frames[:, 0])  # (T, 1, H, W) array
    assert torch.equal(read_video_frames(frames[:, 0]), frames[:, :1].expand(-1, 3, -1, -1))  # (T, H, W)
    rgba = torch.cat([frames, torch.full_like(frames[:, :1], 9)], dim=1)
    assert torch.equal(read_video_frames(rgba.permute(0, 2, 3, 1)), frames)


def test_one_frame_video(tmp_path, frames):
    path = write_mp4(tmp_path / "one.mp4", frames[:1])
    assert count_frames(path) == 1
    assert read_video_frames(path).shape == (1, 3, 20, 24)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is a text file, not a video\n" * 5, "looks like a text file"),
        (bytes(range(256)) * 8, "corrupt, truncated or not a video"),
    ],
    ids=["empty", "text", "corrupt"],
)
def test_unreadable_video_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match=message) as error:
        count_frames(path)
    assert str(path) in str(error.value)


def test_truncated_video_names_the_file(tmp_path, mp4):
    path = tmp_path / "truncated.mp4"
    data = mp4.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated") as error:
        read_video_frames(path)
    assert str(path) in str(error.value)


def test_bad_folders_and_arrays(tmp_path, frames):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="no images.*it is empty"):
        read_video_frames(empty)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(VideoReadError, match=r"no images.*readme\.txt"):
        read_video_frames(empty)

    mixed = write_frame_folder(tmp_path / "mixed", frames[:3])
    Image.new("RGB", (30, 20)).save(mixed / "images0003.png")
    with pytest.raises(VideoReadError, match=r"images0003\.png \(frame 2 .* is 30x20 px .* 24x20 px"):
        read_video_frames(mixed)
    assert read_video_frames(mixed, [0, 1]).shape == (2, 3, 20, 24)

    with pytest.raises(VideoReadError, match="no such file"):
        read_video_frames(tmp_path / "missing.mp4")
    with pytest.raises(VideoReadError, match="single image"):
        read_video_frames(mixed / "images0001.png")
    with pytest.raises(VideoReadError, match=r"float frames must be in \[0, 1\]"):
        read_video_frames(frames.float())
    with pytest.raises(VideoReadError, match="zero frames"):
        read_video_frames(frames[:0])
    with pytest.raises(VideoReadError, match="channel axis"):
        read_video_frames(torch.zeros(2, 8, 8, 8, dtype=torch.uint8))
    with pytest.raises(IndexError, match="out of range; the video has 6 frames"):
        read_video_frames(frames, [6])


def test_row_video_takes_the_first_set_entry_and_names_an_empty_row():
    from beyondgloss.data import collators

    assert row_video({"video": None, "frames": ["a.png"]}) == ["a.png"]
    assert row_video({"video": "clip.mp4", "frames": ["a.png"]}) == "clip.mp4"
    with pytest.raises(ValueError, match=r"batch row 2 \(id 'x'\) has no video.*it has \['id', 'text'\]"):
        row_video({"id": "x", "text": "hi"}, "batch row 2 (id 'x')")
    # One reader of rows for training and inference: the collators use this very function.
    assert collators.row_video is row_video


def test_jpeg_exif_orientation_is_honoured(tmp_path, frames):
    from PIL import ImageOps

    upright = frames[0].permute(1, 2, 0).numpy()  # 20 x 24
    # A camera stores the sensor's pixels and says in EXIF how to turn them: 6 = rotate 90 degrees clockwise.
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # what the sensor wrote, 24 x 20
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=100)
    expected = torch.from_numpy(np.array(ImageOps.exif_transpose(Image.open(tmp_path / "photo.jpg")))).permute(2, 0, 1)
    decoded = read_video_frames([tmp_path / "photo.jpg"])
    assert decoded.shape == (1, 3, 20, 24) and torch.equal(decoded[0], expected)
    assert open_video([tmp_path / "photo.jpg"]).frame_size == (20, 24)  # from the header, upright
    # JPEG is lossy; upright, the frame is close to the original (turned the wrong way it would not even fit).
    assert (decoded[0].float() - frames[0].float()).abs().mean() < 3


def test_one_hwc_image_array_is_one_frame_never_h_frames(frames):
    image = frames[0].permute(1, 2, 0)  # (20, 24, 3)
    for form in (image, image.numpy(), image.float() / 255):
        decoded = read_video_frames(form)
        assert decoded.shape == (1, 3, 20, 24) and torch.equal(decoded[0], frames[0])
    with pytest.raises(VideoReadError, match=r"shape \(3, 20, 24\) is ambiguous.*\(1, C, H, W\)"):
        read_video_frames(frames[0])
    assert read_video_frames(frames[:, 0]).shape == (6, 3, 20, 24)  # (T, H, W) greyscale frames stay frames


def test_audio_only_file_says_it_has_no_video_stream(tmp_path):
    from torchcodec.encoders import AudioEncoder

    path = tmp_path / "speech.mp3"
    AudioEncoder(torch.linspace(-0.5, 0.5, 8000).view(1, -1), sample_rate=8000).to_file(str(path))
    with pytest.raises(VideoReadError, match="no video stream") as error:
        count_frames(path)
    message = str(error.value)
    assert str(path) in message and "report an issue" not in message and "github.com" not in message


def test_decoder_messages_carry_no_build_paths(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 10)
    with pytest.raises(VideoReadError, match="looks like a text file") as error:
        count_frames(path)
    assert ".cpp" not in str(error.value) and "/__w/" not in str(error.value), str(error.value)


def test_frames_above_the_limits_are_refused_before_decoding(tmp_path, frames, mp4, monkeypatch):
    from torchcodec.decoders import VideoDecoder

    # A video: its header says 24x20; with lower limits it is refused by name before a frame is decoded.
    monkeypatch.setattr(VideoDecoder, "get_frames_at", lambda *args, **kwargs: pytest.fail("decoded a frame"))
    with pytest.raises(VideoReadError, match=r"clip\.mp4: frames of 24x20 px \(480 pixels\) exceed the frame limit "
                                             r"of 479 pixels and 8192 px per side.*max_frame_pixels"):
        read_video_frames(mp4, max_pixels=479)
    with pytest.raises(VideoReadError, match="exceed the frame limit of 35,389,440 pixels and 23 px per side"):
        open_video(mp4, max_side=23)
    with pytest.raises(VideoReadError, match=r"the video array .* frames of 24x20 px"):
        read_video_frames(frames, max_pixels=100)
    assert open_video(mp4, max_pixels=480, max_side=24).frame_size == (20, 24)  # the limits themselves are allowed


def test_large_videos_are_resized_inside_ffmpeg(tmp_path, frames, monkeypatch):
    from beyondgloss import video_io, video_source

    mp4 = write_mp4(tmp_path / "clip.mp4", frames)
    by_torch = read_video_frames(mp4, [0, 3], size=(10, 12))
    resized = []
    original = video_source.resize_frames
    monkeypatch.setattr(video_source, "resize_frames", lambda x, size: resized.append(x.shape) or original(x, size))
    # Frames "above 1080p" (the threshold lowered to these 24 x 20 frames): FFmpeg resizes them as they are decoded,
    # torch never holds them at their source size.
    monkeypatch.setattr(video_io, "DECODER_RESIZE_MIN_PIXELS", 24 * 20 - 1)
    by_ffmpeg = read_video_frames(mp4, [0, 3], size=(10, 12))
    assert resized == [] and by_ffmpeg.shape == (2, 3, 10, 12)
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    expected = VideoDecoder(str(mp4), transforms=[Resize((10, 12))]).get_frames_at(indices=[0, 3]).data
    assert torch.equal(by_ffmpeg, expected)
    # Bilinear against bicubic, both antialiased: close on this smooth content.
    assert (by_ffmpeg.float() - by_torch.float()).abs().mean() < 3
    # Enlarging gains nothing from FFmpeg: torch's resize, as before.
    enlarged = read_video_frames(mp4, [0], size=(40, 48))
    assert resized == [(1, 3, 20, 24)] and torch.equal(enlarged, original(read_video_frames(mp4, [0]), (40, 48)))

#!/usr/bin/env python
"""Peak memory of the video processor: 300 frames of 4K, 1080p and 720x540 video, and one frame of every shape up to
the frame limits (docs/video_limits.md has the figures and what they mean).

Writes synthetic media into a temporary folder, then runs each measurement in its own process under
`/usr/bin/time -v` and reads its "Maximum resident set size":

- `4K`, `1080p`: the default `BeyondGlossVideoProcessor()` (256 x 256 resize, 224 crop, up to 300 frames) on the
  whole video, at evaluation; `4K training`: the same with `training=True` (random crop and augmentation). Videos are
  written by torchcodec's streaming `Encoder`, 4 frames at a time, x264 `ultrafast`, never all in memory;
- `720x540`: the same processor on a textured 720x540 video, the current way and, in the same process, the way of
  earlier versions (every kept frame decoded at the source size, then all resized); frames per second, best of 3
  alternating rounds, per CPU second and wall second;
- `frame ...`: ONE frame at the limits (`MAX_FRAME_PIXELS` = 8192 x 4320, `MAX_FRAME_SIDE` = 8192) in each form a
  frame comes in (PNG, 16-bit PNG, JPEG, h264 video), landscape, portrait and 2 px wide, through the default processor
  and through `size={"shortest_edge": 256}` (whose longer side is clamped to 1024); and a 12000 x 12000 PNG header,
  which is refused before decoding;
- `baseline`: the interpreter with torch, transformers and beyondgloss imported and nothing decoded.

Usage:

    python scripts/measure_video_memory.py              # everything, 300 frames per video (minutes on 2 idle cores)
    python scripts/measure_video_memory.py --frames 60  # quicker, smaller videos
    python scripts/measure_video_memory.py --only frames

Prints one line per measurement and a JSON summary; exits 1 if a target is missed (4K peaks above 1.5 GB, any one
frame above 1 GB, 4K and 1080p peaks more than 20% apart, the current decoding slower per CPU second than the earlier
one on 720x540).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"4K": (2160, 3840), "1080p": (1080, 1920), "720x540": (540, 720)}
# One frame at the limits: (form, height, width). 8192 x 4320 is MAX_FRAME_PIXELS, 8192 MAX_FRAME_SIDE.
FRAME_CASES = [
    ("png", 4320, 8192), ("png", 8192, 4320), ("png", 2, 8192), ("png16", 4320, 8192), ("jpeg", 4320, 8192),
    ("mp4", 4320, 8192), ("mp4", 2, 8192),
]  # fmt: skip
VIDEO_PEAK_TARGET_GB = 1.5
FRAME_PEAK_TARGET_GB = 1.0
RESOLUTION_SPREAD = 0.20


def write_video(path: Path, height: int, width: int, num_frames: int, textured: bool, fps: float = 25.0) -> Path:
    """An h264 video of `num_frames` frames cycling through 4 distinct ones, handed to the encoder 4 at a time.

    `textured`: smooth noise (texture at several scales, like a real scene; what decoding speed is measured on);
    otherwise colour gradients shifted sideways from frame to frame, which x264 encodes about twice as fast (used
    for the memory measurements, where the content does not change the memory).
    """
    import torch
    import torch.nn.functional as F
    from torchcodec.encoders import Encoder

    if textured:
        coarse = torch.rand(4, 3, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
        frames = (F.interpolate(coarse, size=(height, width), mode="bilinear") * 255).round().to(torch.uint8)
    else:
        frames = torch.stack([gradient(height, width).roll(16 * k, dims=2) for k in range(min(4, num_frames))])
    encoder = Encoder()
    stream = encoder.add_video(height=height, width=width, frame_rate=fps, preset="ultrafast", crf=23)
    with encoder.open_file(str(path)):
        for start in range(0, num_frames, 4):
            stream.add_frames(frames[: min(4, num_frames - start)])
    return path


def gradient(height: int, width: int):
    """A uint8 `(3, height, width)` frame of colour gradients."""
    import torch

    y, x = torch.linspace(0, 1, height).view(height, 1), torch.linspace(0, 1, width).view(1, width)
    return (torch.stack([y.expand(height, width), x.expand(height, width), x * y]) * 255).round().to(torch.uint8)


def write_frame(folder: Path, form: str, height: int, width: int) -> Path:
    """A folder holding one frame image (`png`, 16-bit greyscale `png16`, `jpeg`), or a one-frame `mp4`."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    if form == "mp4":
        return write_video(folder / "frame.mp4", height, width, 1, textured=False)
    pixels = gradient(height, width).permute(1, 2, 0).numpy()
    if form == "png16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(pixels)
    image.save(folder / f"frame.{'jpg' if form == 'jpeg' else 'png'}")
    return folder


def _old_processor_call(processor, path: str):
    """What `processor(path)` did before 2026-11-30 12:00: every kept frame decoded at the source size
    (`get_frames_at(...).data.contiguous()`), then all resized and cropped."""
    from torchcodec.decoders import VideoDecoder

    from beyondgloss.video_io import open_video

    decoder = VideoDecoder(path, dimension_order="NCHW", seek_mode="exact")
    kept = processor.frame_indices_for(open_video(path))
    return processor.process_frames(decoder.get_frames_at(indices=kept).data.contiguous())


def child(mode: str, path: str, frames: int) -> None:
    """One measurement, run in its own process (peak RSS is per process)."""
    import torch

    import beyondgloss  # noqa: F401 - what a user imports
    from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

    torch.set_num_threads(2)
    processor = BeyondGlossVideoProcessor(max_frames=frames)
    if mode == "baseline":
        print(json.dumps({}))
        return
    if mode in ("memory", "training", "frame", "frame_shortest_edge"):
        if mode == "frame_shortest_edge":
            processor = processor.with_settings(size={"shortest_edge": 256}, crop_size=None)
        start = time.perf_counter()
        try:
            pixels = processor(path, training=mode == "training")["pixel_values_videos"]
        except ValueError as error:  # a refusal is a result here: its message is printed
            print(json.dumps({"refused": str(error)[:300]}))
            return
        seconds = time.perf_counter() - start
        print(json.dumps({"frames": pixels.shape[1], "shape": list(pixels.shape[-2:]), "seconds": seconds}))
        return
    # "speed": both ways alternately, best of 3 rounds each; CPU time (this process, FFmpeg's threads included) is
    # what the other processes sharing the machine disturb least, wall time is reported too.
    calls = {
        "new": lambda: processor(path)["pixel_values_videos"][0],
        "old": lambda: _old_processor_call(processor, path),
    }
    best = {name: {"wall": float("inf"), "cpu": float("inf")} for name in calls}
    same = None
    for _ in range(3):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            pixels = call()
            best[name]["wall"] = min(best[name]["wall"], time.perf_counter() - wall)
            best[name]["cpu"] = min(best[name]["cpu"], time.process_time() - cpu)
            if same is not None and not torch.equal(pixels, same):
                raise AssertionError("the current and the earlier way gave different pixels")
            same = pixels
    kept = int(same.shape[0])
    print(json.dumps({name: {"frames": kept, "fps_wall": kept / t["wall"], "fps_cpu": kept / t["cpu"]}
                      for name, t in best.items()}))


def measure(mode: str, path: Path | str, frames: int) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", mode, str(path), "--frames", str(frames)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} on {path} failed:\n{result.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "peak_rss_gb": peak_kb / 1024**2}


def measure_videos(folder: Path, frames: int) -> dict:
    results = {}
    for name, (height, width) in SIZES.items():
        start = time.perf_counter()
        textured = name == "720x540"
        path = write_video(folder / f"{name}.mp4", height, width, frames, textured)
        print(f"wrote {frames} frames of {width}x{height} in {time.perf_counter() - start:.1f} s", flush=True)
        results[name] = row = measure("speed" if textured else "memory", path, frames)
        if textured:
            print(f"{name:>12}: peak RSS {row['peak_rss_gb']:.2f} GB (both ways in one process); frames/s now "
                  f"{row['new']['fps_cpu']:.1f} per CPU second ({row['new']['fps_wall']:.1f} wall), before "
                  f"{row['old']['fps_cpu']:.1f} ({row['old']['fps_wall']:.1f} wall)", flush=True)
            continue
        print(f"{name:>12}: peak RSS {row['peak_rss_gb']:.2f} GB, {row['frames']} frames in {row['seconds']:.1f} s",
              flush=True)
        if name == "4K":
            results["4K training"] = row = measure("training", path, frames)
            print(f"{'4K training':>12}: peak RSS {row['peak_rss_gb']:.2f} GB, {row['frames']} frames in "
                  f"{row['seconds']:.1f} s", flush=True)
    return results


def measure_frames(folder: Path) -> dict:
    results = {}
    for form, height, width in FRAME_CASES:
        path = write_frame(folder / f"{form}_{width}x{height}", form, height, width)
        for mode in ("frame", "frame_shortest_edge"):
            name = f"frame {form} {width}x{height}{' shortest_edge' if mode != 'frame' else ''}"
            results[name] = row = measure(mode, path, 1)
            got = f"refused: {row['refused'][:90]}"
            if "shape" in row:
                got = f"-> {row['shape']} in {row['seconds']:.1f} s"
            print(f"{name:>40}: peak RSS {row['peak_rss_gb']:.2f} GB {got}", flush=True)
    # A 12000 x 12000 PNG header (no pixels): refused from the header.
    bomb = folder / "png_12000x12000"
    bomb.mkdir()
    _png_header(bomb / "frame.png", 12000, 12000)
    results["frame png 12000x12000 (header only)"] = row = measure("frame", bomb, 1)
    print(f"{'frame png 12000x12000 (header only)':>40}: peak RSS {row['peak_rss_gb']:.2f} GB, "
          f"{'refused' if 'refused' in row else 'NOT refused'}", flush=True)
    return results


def _png_header(path: Path, width: int, height: int) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00"))
                     + chunk(b"IEND", b""))


def checks_of(results: dict) -> dict:
    checks = {}
    if "4K" in results:
        peak_4k, peak_1080p = results["4K"]["peak_rss_gb"], results["1080p"]["peak_rss_gb"]
        spread = abs(peak_4k - peak_1080p) / min(peak_4k, peak_1080p)
        ratio = results["720x540"]["new"]["fps_cpu"] / results["720x540"]["old"]["fps_cpu"]
        peak_training = results["4K training"]["peak_rss_gb"]
        checks[f"4K peak <= {VIDEO_PEAK_TARGET_GB} GB (eval {peak_4k:.2f}, training {peak_training:.2f})"] = (
            max(peak_4k, peak_training) <= VIDEO_PEAK_TARGET_GB)
        checks[f"4K vs 1080p peak within {RESOLUTION_SPREAD:.0%} (got {spread:.1%})"] = spread <= RESOLUTION_SPREAD
        checks[f"720x540 decoding at least as fast as before (x{ratio:.2f} per CPU second)"] = ratio >= 1.0
    frame_rows = {name: row for name, row in results.items() if name.startswith("frame ")}
    if frame_rows:
        worst = max(row["peak_rss_gb"] for row in frame_rows.values())
        checks[f"any one frame up to the limits <= {FRAME_PEAK_TARGET_GB} GB (worst {worst:.2f})"] = (
            worst <= FRAME_PEAK_TARGET_GB)
        checks["the 12000x12000 PNG is refused"] = "refused" in results["frame png 12000x12000 (header only)"]
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per video (default 300)")
    parser.add_argument("--only", choices=("videos", "frames"), help="one group of measurements only")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, args.frames)
        return 0
    if not Path("/usr/bin/time").exists():
        sys.exit("needs GNU time at /usr/bin/time (Debian: apt-get install time)")

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "videos"):
            results.update(measure_videos(Path(folder), args.frames))
        if args.only in (None, "frames"):
            results.update(measure_frames(Path(folder)))
        results["baseline"] = measure("baseline", "-", args.frames)
        print(f"{'baseline':>12}: peak RSS {results['baseline']['peak_rss_gb']:.2f} GB (imports only)")
    checks = checks_of(results)
    print(json.dumps({"frames": args.frames, "results": results, "checks": checks}, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`beyondgloss caption <video|frames folder|url> --model_name_or_path M [--output_srt F] [--output_vtt F]`.

Live captions of one video ([`beyondgloss.streaming.StreamingTranslator`], docs/streaming.md): the video is decoded a
few frames at a time (torchcodec for files and URLs) and each frame is encoded once as it is read. Every
`--stride_seconds` a model with a signing gate asks it about the last `--gate_seconds` and translates each stretch of
signing once, when it ends; any model can instead translate the sliding window and keep what consecutive windows agree
on (`--segmentation agreement`). Each caption is printed as soon as it is decided,
`[start --> end] text  (confidence, latency)` (with a signing gate, its probability after the confidence), and with
`--output_srt` / `--output_vtt` appended to those files and flushed, so that they hold every caption so far whenever
the command stops. In the files a caption starts no earlier than the previous one ends (the windows overlap; players
show overlapping cues stacked). Exit codes: `beyondgloss.cli`.
"""

import os
from pathlib import Path

from ..inference_precision import PRECISIONS
from ._common import CommandError, accept_dashed_spellings, command_parser, run_command
from ..sign_translation_inputs import open_stream, stream_frames
from ._loading import load_translation_folder

__all__ = ["caption", "srt_time", "vtt_time"]

_DESCRIPTION = (
    "Caption a sign video as it plays: every --stride_seconds, a model with a signing gate asks it whether the last "
    "--gate_seconds hold signing and translates each stretch of signing once it ends; without a gate (or with "
    "--segmentation agreement) a sliding window of --window_seconds is translated and a caption printed once "
    "consecutive windows agree on it. Each caption is printed with its times and written to SRT / WebVTT files. "
    "The video is read progressively (a video file, a frame folder or an http(s) URL that FFmpeg reads)."
)


def caption(argv: list) -> int:
    """`beyondgloss caption`: print and write the live captions of one video. Exit status: 0 when the whole video
    was captioned; 1 for an unreadable video or model folder or a window the model cannot take; 2 for a bad flag."""
    return run_command("caption", _caption, argv)


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be positive, got {value}")
    return number


def _parser():
    parser = command_parser("caption", _DESCRIPTION)
    parser.add_argument("video", help="a video file, a folder of frame images, or an http(s) URL")
    parser.add_argument("--model_name_or_path", required=True, help="a saved translation model folder")
    parser.add_argument("--window_seconds", type=_positive, default=4.0,
                        help="span translated at once; with the gate, the longest stretch of signing translated at "
                             "once (default 4)")
    parser.add_argument("--stride_seconds", type=_positive,
                        help="how often the translator decides: asks the gate (default 0.2), or translates the window "
                             "(default 1)")
    parser.add_argument("--segmentation", choices=("auto", "gate", "agreement"), default="auto",
                        help="gate: one caption per stretch of signing the signing gate finds; agreement: every "
                             "window translated, captions confirmed by --agreement windows; auto: gate for a model "
                             "with a gate (default auto)")
    parser.add_argument("--gate_seconds", type=_positive,
                        help="the tail the gate looks at each stride (default 0.8, or the window less one stride)")
    parser.add_argument("--gate_patience", type=int, default=3, choices=range(1, 11), metavar="{1..10}",
                        help="idle decisions in a row that end a stretch of signing (default 3)")
    parser.add_argument("--agreement", type=int, default=2, choices=range(1, 11), metavar="{1..10}",
                        help="consecutive windows that must agree on a caption (agreement; default 2)")
    parser.add_argument("--fps", type=_positive, default=25.0,
                        help="frame rate of a frame folder (video files carry theirs; default 25)")
    parser.add_argument("--output_srt", help="write the captions to this SubRip (.srt) file")
    parser.add_argument("--output_vtt", help="write the captions to this WebVTT (.vtt) file")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    parser.add_argument("--inference_precision", choices=PRECISIONS, default="auto",
                        help="fp32, bf16 (bfloat16 frame encoder and mBART), int8 (int8 mBART on the CPU, the frame "
                             "encoder in bfloat16 where faster) or auto (measured here, kept only where faster and "
                             "within the quality guard); see docs/streaming.md (default auto)")
    parser.add_argument("--num_beams", type=int, choices=range(1, 65), metavar="{1..64}", help="beam width")
    parser.add_argument("--max_new_tokens", type=int, choices=range(1, 1025), metavar="{1..1024}",
                        help="most tokens per caption")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the folder's own model code")
    parser.add_argument("--allow_missing_weights", action="store_true",
                        help="load a checkpoint that lacks some weights (they stay random)")
    parser.add_argument("--allow_untrained_decoder", action="store_true",
                        help="load a model whose decoder was never trained to translate (its output is noise)")
    return accept_dashed_spellings(parser)


def srt_time(seconds: float) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def vtt_time(seconds: float) -> str:
    return srt_time(seconds).replace(",", ".")


class _CaptionFiles:
    """The SRT and WebVTT files: each cue appended with one `write` and flushed, so the files are whole at any stop."""

    def __init__(self, srt: str | None, vtt: str | None):
        self.files = {}
        for kind, path in (("srt", srt), ("vtt", vtt)):
            if path:
                try:
                    self.files[kind] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                except OSError as error:
                    self.close()
                    raise CommandError(f"cannot write --output_{kind} {path}: {error.strerror}; choose a writable "
                                       "path") from error
        if "vtt" in self.files:
            os.write(self.files["vtt"], b"WEBVTT\n\n")
        self.count, self.previous_end = 0, 0.0

    def add(self, start: float, end: float, text: str) -> None:
        start = max(start, self.previous_end)
        end = max(end, start + 0.001)
        self.count, self.previous_end = self.count + 1, end
        cues = {"srt": f"{self.count}\n{srt_time(start)} --> {srt_time(end)}\n{text}\n\n",
                "vtt": f"{vtt_time(start)} --> {vtt_time(end)}\n{text}\n\n"}
        for kind, descriptor in self.files.items():
            os.write(descriptor, cues[kind].encode("utf-8"))
            os.fsync(descriptor)

    def close(self) -> None:
        for descriptor in self.files.values():
            os.close(descriptor)
        self.files = {}


def _open_source(video: str):
    """The opened video, read as it goes (`open_stream`: a URL through torchcodec)."""
    from ..video_io import VideoReadError

    try:
        return open_stream(video)
    except VideoReadError as error:
        raise CommandError(str(error)) from error


def _load(args):
    model, processor = load_translation_folder(args, "caption")
    try:
        model = model.to(args.device).eval()
    except (RuntimeError, ValueError) as error:
        raise CommandError(f"--device {args.device}: {error}") from error
    try:
        model.set_inference_precision(args.inference_precision)
    except ValueError as error:
        raise CommandError(f"--inference_precision {args.inference_precision}: {error}") from error
    return model, processor


def _caption(argv: list) -> int:
    from ..streaming import StreamingTranslator
    from ..video_io import VideoReadError

    args = _parser().parse_args(argv)
    source = _open_source(args.video)
    model, processor = _load(args)
    target_fps = processor.video_processor.fps
    fps = source.fps or args.fps
    rate = min(fps, target_fps) if target_fps else fps
    generation = {key: value for key, value in (("num_beams", args.num_beams),
                                                 ("max_new_tokens", args.max_new_tokens)) if value is not None}
    try:
        translator = StreamingTranslator(model, processor, args.window_seconds, args.stride_seconds, rate,
                                         args.agreement, generation, segmentation=args.segmentation,
                                         gate_seconds=args.gate_seconds, gate_patience=args.gate_patience)
    except ValueError as error:
        raise CommandError(f"--window_seconds / --stride_seconds / --segmentation: {error}") from error
    files = _CaptionFiles(args.output_srt, args.output_vtt)
    try:
        for item in translator(stream_frames(source, fps, target_fps)):
            print(_caption_line(item), flush=True)
            files.add(item.start, item.end, item.text)
    except VideoReadError as error:  # a frame that does not decode, midway: the captions so far are kept
        raise CommandError(f"{error}; the captions before it are in the output files") from error
    finally:
        files.close()
    return 0


def _caption_line(item) -> str:
    latency = item.latency
    gate = "" if item.signing_probability is None else f", signing {item.signing_probability:.2f}"
    return (f"[{vtt_time(item.start)} --> {vtt_time(item.end)}] {item.text}  (confidence {item.confidence:.2f}{gate}, "
            f"latency {latency['total']:.2f} s: frame encoder {latency['frame_encoder']:.2f}, temporal "
            f"{latency['temporal_encoder']:.2f}, decoder {latency['decoder']:.2f})")

"""Live captions, measured: real-time factor, frames dropped at a live frame rate, and caption latency.

    PYTHONPATH=. python scripts/bench_streaming.py --model tiny
    PYTHONPATH=. python scripts/bench_streaming.py --model full --seconds 6 --num_beams 1 --max_new_tokens 30

`--model tiny` is the tests' tiny random model (28 px frames); `--model full` is `BeyondGlossConfig()` with random
weights (DINOv2 ViT-S/14 at 224 px, mBART-large with its 250k vocabulary; the processor's defaults, 256 -> 224 px).
Random weights cost what trained ones do, except that a random decoder rarely ends a sentence early: it runs to
`max_new_tokens`, the worst case of a trained one.

Two runs over the same random video (`--seconds` at `--fps`):

1. offline: frames fed as fast as the translator takes them. Real-time factor = processing seconds / video seconds
   (below 1 keeps up with a live source); the seconds per stage are summed over the run.
2. live: frame k arrives at k / fps seconds after the start; the source holds at most `--queue_frames` frames that
   have arrived and not been taken (a camera's buffer), dropping the oldest when full, and the translator waits
   for a frame that has not arrived yet. Frames dropped are counted; the latency of a window is from the arrival of
   its last frame to the end of its translation (a caption is printed then).

Figures go to stdout; nothing here is a test.
"""

import argparse
import statistics
import time

import torch


def build(kind: str):
    from beyondgloss import BeyondGlossConfig, BeyondGlossForSignTranslation
    from beyondgloss.data.tokenizer_training import train_sign_tokenizer
    from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
    from beyondgloss.testing import tiny_config
    from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

    # A small tokenizer: decoding only skips the ids it does not know, which costs nothing measurable.
    tokenizer = train_sign_tokenizer(["morgen regnet es im norden", "heute sonne im süden"], language="de_DE")
    torch.manual_seed(0)
    if kind == "tiny":
        video_processor = BeyondGlossVideoProcessor(size=28, crop_size=28)
        config = tiny_config(vocab_size=len(tokenizer), max_frames=300)
    else:
        video_processor = BeyondGlossVideoProcessor()
        config = BeyondGlossConfig()
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language="de_DE")
    config.decoder_start_token_id = processor.language_code_id
    model = BeyondGlossForSignTranslation(config).eval()
    model.generation_config.decoder_start_token_id = processor.language_code_id
    return model, processor


def paced(frames: torch.Tensor, fps: float, queue_frames: int, record: dict):
    """`(timestamp, frame)` as a live source delivers them; counts drops and each yielded frame's arrival time."""
    start, next_index = time.perf_counter(), 0
    while next_index < len(frames):
        now = time.perf_counter() - start
        arrived = min(len(frames), int(now * fps) + 1)
        if arrived - next_index > queue_frames:
            record["dropped"] += arrived - next_index - queue_frames
            next_index = arrived - queue_frames
        wait = next_index / fps - now
        if wait > 0:
            time.sleep(wait)
        record["arrival"] = start + next_index / fps
        yield next_index / fps, frames[next_index]
        next_index += 1


def timed_windows(translator, record: dict):
    """Wraps the translator's window translation to record each window's latency after its last frame arrived."""
    translate_window = translator.translate_window

    def timed(features):
        result = translate_window(features)
        if "arrival" in record:
            record["latencies"].append(time.perf_counter() - record["arrival"])
        return result

    translator.translate_window = timed


def run(args, model, processor, frames, live: bool):
    from beyondgloss.streaming import StreamingTranslator

    generation = {key: value for key, value in (("num_beams", args.num_beams),
                                                 ("max_new_tokens", args.max_new_tokens)) if value is not None}
    translator = StreamingTranslator(model, processor, args.window_seconds, args.stride_seconds, args.fps,
                                     args.agreement, generation)
    record = {"dropped": 0, "latencies": []}
    timed_windows(translator, record)
    windows = []
    translate_window = translator.translate_window

    def counted(features):
        windows.append(features.shape[0])
        return translate_window(features)

    translator.translate_window = counted
    source = paced(frames, args.fps, args.queue_frames, record) if live else iter(frames)
    began = time.perf_counter()
    captions = list(translator(source))
    return time.perf_counter() - began, windows, captions, record


def report(name, args, wall, windows, captions, record, frames: int, live: bool):
    seconds = frames / args.fps
    print(f"{name}: {frames} frames ({seconds:.1f} s at {args.fps:g} frames/s), {len(windows)} windows of "
          f"{max(windows, default=0)} frames, {len(captions)} captions, wall {wall:.2f} s")
    if not live:
        print(f"  real-time factor {wall / seconds:.3f} (processing seconds per video second)")
        return
    latencies = record["latencies"]
    print(f"  frames dropped {record['dropped']} of {frames} ({100 * record['dropped'] / frames:.1f} %), "
          f"queue {args.queue_frames} frames")
    if latencies:
        print(f"  window latency after its last frame: median {statistics.median(latencies):.3f} s, "
              f"max {max(latencies):.3f} s")


def stage_seconds(model, processor, args, frames):
    """Seconds of each stage for one frame and one full window, measured alone (median of a few)."""
    from beyondgloss.streaming import StreamingTranslator

    generation = {key: value for key, value in (("num_beams", args.num_beams),
                                                 ("max_new_tokens", args.max_new_tokens)) if value is not None}
    translator = StreamingTranslator(model, processor, args.window_seconds, args.stride_seconds, args.fps,
                                     args.agreement, generation)
    per_frame = []
    features = []
    for frame in frames[:translator.window]:
        began = time.perf_counter()
        features.append(translator.encode_frame(frame))
        per_frame.append(time.perf_counter() - began)
    window = torch.stack(features)
    runs = [translator.translate_window(window)[2:] for _ in range(2)]
    frame_seconds = statistics.median(per_frame)
    encoder_seconds, decoder_seconds = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"  stages: frame encoder {frame_seconds * 1000:.1f} ms/frame (median of {len(per_frame)}; mean "
          f"{statistics.mean(per_frame) * 1000:.1f}); window of "
          f"{translator.window} frames: temporal encoder + heads {encoder_seconds * 1000:.1f} ms, decoder "
          f"{decoder_seconds * 1000:.1f} ms (best of 2)")
    # Per second of video: fps frames through the frame encoder and 1 / stride windows.
    factor = frame_seconds * args.fps + (encoder_seconds + decoder_seconds) / args.stride_seconds
    print(f"  real-time factor from the stages: {factor:.3f} (frame encoder {frame_seconds * args.fps:.3f} + windows "
          f"{(encoder_seconds + decoder_seconds) / args.stride_seconds:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--window_seconds", type=float, default=4.0)
    parser.add_argument("--stride_seconds", type=float, default=1.0)
    parser.add_argument("--agreement", type=int, default=2)
    parser.add_argument("--queue_frames", type=int, default=25)
    parser.add_argument("--num_beams", type=int)
    parser.add_argument("--max_new_tokens", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip_live", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, processor = build(args.model)
    count = round(args.seconds * args.fps)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (count, 3, 260, 340), dtype=torch.uint8, generator=generator)
    print(f"model {args.model}, {args.threads} threads, torch {torch.__version__}, window {args.window_seconds} s, "
          f"stride {args.stride_seconds} s, num_beams {args.num_beams or model.generation_config.num_beams}, "
          f"max_new_tokens {args.max_new_tokens or model.generation_config.max_new_tokens}")
    stage_seconds(model, processor, args, frames)
    for live in (False,) if args.skip_live else (False, True):
        wall, windows, captions, record = run(args, model, processor, frames, live)
        report("live" if live else "offline", args, wall, windows, captions, record, count, live)


if __name__ == "__main__":
    main()

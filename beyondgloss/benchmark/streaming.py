# Copyright 2026 The beyondgloss authors. MIT license.
r"""`beyondgloss benchmark --only streaming`: live captions ([`StreamingTranslator`]) measured, once per `--precision`.

The model: `--streaming_model full` (`BeyondGlossConfig()` with random weights: DINOv2 ViT-S/14 at 224 px from 260 x
340 frames, mBART-large with the benchmark's `--vocab_size`), `demo` (the demo's model, `demo_config`, 32 px) or, with
`--quick`, the tests' tiny model (28 px). Random weights cost what trained ones do, except that the length of a
caption is the decoder's choice: every window here generates exactly `--new_tokens` tokens (`min_new_tokens` =
`max_new_tokens`), greedy unless `--streaming_beams`, so that every precision and run decodes the same work.

Two ways of captioning (`--streaming_segmentation`, docs/streaming.md):

- `gate` (default): the model has a signing gate; every stride the gate looks at the last `--streaming_gate_seconds`
  and each stretch of signing is translated once, when it ends. A random model's gate knows no signing, so its
  decisions on the tails follow a script: sentences of `--streaming_sentence` s with `--streaming_pause` s between
  them (and before the first). The gate still runs on every tail, as a trained one does (its cost is measured); its
  output layer is set to call every stretch signing, so that each scripted sentence is translated.
- `agreement`: every window of `--streaming_window` s is translated, every `--streaming_stride` s, agreement 2.

Three measurements of one random video of `--streaming_seconds` at 25 frames/s (docs/streaming.md defines each
figure):

1. stages, each alone (median and best): the frame encoder on one frame with its operands made again for every
   call (as before they were kept), on one frame with them kept, and on `BATCH` frames at a time (per frame), in turn;
   the temporal encoder and heads, and the decoder, on one full window (`agreement`) or on one stretch (`gate`: a
   sentence and one gate tail; the gate on one tail too), twice each. `real_time_factor_from_stages`: per second of
   video, the best batched frame time x 25 plus the best window time / stride (`agreement`), or plus the gate's best
   per tail / stride and the best stretch time per sentence and pause (`gate`).
2. file mode: every frame, as fast as the translator takes them. Real-time factor = wall seconds / video seconds.
3. real-time replay (`realtime=True`, a buffer of `--streaming_buffer` s): frame k arrives at k / 25 s. Frames
   dropped; real-time factor = seconds the translator was busy (frame encoder, temporal encoder, decoder) / video
   seconds; window latency = from the arrival of a window's (a stretch's closing tail's) last frame to the end of its
   translation; caption latency = from the arrival of the last frame of a sentence to the end of its caption's
   translation. `gate`: measured, per scripted sentence. `agreement`: to the end of the translation of the second
   window whose last frame is at or after it, taking every frame of the replay in turn as a sentence's last frame:
   what a trained model whose translation of a window is stable once the window holds the whole sentence shows; a
   random model has no sentences, so this is computed from the measured window times (`StreamingStats.window_times`)
   and the frames' arrival times.
"""

import statistics
import time

import torch

__all__ = ["BATCH", "STREAMING_MODELS", "add_streaming_arguments", "streaming"]

STREAMING_MODELS = ("full", "demo")
BATCH = 8  # frames per call of the batched frame-encoder stage
FPS = 25.0
SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]


def add_streaming_arguments(add) -> None:
    """The streaming measurement's flags (`add` is the runner's `_add`)."""
    add("--streaming_model", choices=STREAMING_MODELS, default="full",
        help="streaming: the full-size model or the demo's, random weights (--quick: the tiny test model)")
    add("--streaming_seconds", type=float, default=10.0, help="streaming: seconds of video at 25 frames/s")
    add("--streaming_window", type=float, default=4.0, help="streaming: window seconds (default 4)")
    add("--streaming_stride", type=float, default=1.0, help="streaming: stride seconds (default 1)")
    add("--streaming_buffer", type=float, default=2.0, help="streaming: real-time buffer seconds (default 2)")
    add("--streaming_beams", type=int, default=1, help="streaming: beams per window (default 1, greedy)")
    add("--streaming_segmentation", choices=("gate", "agreement"), default="gate",
        help="streaming: the gate's stretches of signing (scripted sentences) or local agreement of windows")
    add("--streaming_gate_seconds", type=float, default=0.8, help="streaming: the gate's tail (gate; default 0.8)")
    add("--streaming_sentence", type=float, default=2.4, help="streaming: seconds per scripted sentence (gate)")
    add("--streaming_pause", type=float, default=1.6, help="streaming: seconds between scripted sentences (gate)")


def sentence_script(args, seconds: float) -> list[tuple[float, float]]:
    """The scripted sentences of the `gate` way: `(start, end)` seconds, a pause before each, within the video."""
    spans, start = [], args.streaming_pause
    while start + args.streaming_sentence <= seconds:
        spans.append((start, start + args.streaming_sentence))
        start += args.streaming_sentence + args.streaming_pause
    return spans


def _build(args, device):
    """The model and processor measured: `(model, processor, frames of the video)`."""
    from ..configuration_beyondgloss import BeyondGlossConfig
    from ..data.tokenizer_training import train_sign_tokenizer
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation
    from ..processing_beyondgloss import BeyondGlossProcessor
    from ..testing import tiny_config
    from ..training.demo import demo_config
    from ..video_processing_beyondgloss import BeyondGlossVideoProcessor

    # A small tokenizer: decoding skips the ids it does not know, which costs nothing measurable.
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    start = tokenizer.convert_tokens_to_ids("de_DE")
    frames = max(1, round(args.streaming_window * FPS))
    gate = {"signing_gate": args.streaming_segmentation == "gate"}
    if args.quick:
        video_processor = BeyondGlossVideoProcessor(size=28, crop_size=28)
        config = tiny_config(vocab_size=len(tokenizer), max_frames=max(frames, 16), decoder_start_token_id=start,
                             **gate)
    elif args.streaming_model == "demo":
        video_processor = BeyondGlossVideoProcessor(size={"shortest_edge": 32}, crop_size=32, augment=False)
        config = demo_config(args.vocab_size, start, 6, 64, 32, max_frames=max(frames, 300), **gate)
    else:
        video_processor = BeyondGlossVideoProcessor()
        config = BeyondGlossConfig(decoder_start_token_id=start, **gate)
        config.text_config.vocab_size = args.vocab_size
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language="de_DE")
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(config).to(device).eval()
    if model.sign_encoder.signing_gate is not None:  # every stretch is signing; the tails follow the script
        with torch.no_grad():
            model.sign_encoder.signing_gate.out.bias.fill_(50.0)
    generator = torch.Generator().manual_seed(0)
    count = max(1, round(args.streaming_seconds * FPS))
    video = torch.randint(0, 256, (count, 3, 260, 340), dtype=torch.uint8, generator=generator)
    return model, processor, video


def _timed(function, device) -> float:
    """Seconds of one call, synchronising a CUDA device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - began


def _stages(translator, video, device, repeats: int, sentence_seconds: float) -> dict:
    """Milliseconds of each stage, measured alone: the frame encoder's three ways in turn, `repeats` rounds after one
    untimed (so that a change of the machine's load falls on all three alike), and the window's two stages twice each
    (gate: on a stretch of a `sentence_seconds` sentence and one tail, and the gate on one tail). Each as
    `{"median": ..., "best": ...}`."""
    encoder = translator.model.sign_encoder.frame_encoder
    frames = list(video[:BATCH])

    def rebuilt():  # the operands made again for the call, as every call did before they were kept
        encoder._operands = None
        translator.encode_frames(frames[:1])

    ways = {"frame_encoder_per_frame_operands_rebuilt": (rebuilt, 1),
            "frame_encoder_per_frame": (lambda: translator.encode_frames(frames[:1]), 1),
            f"frame_encoder_per_frame_batch_{len(frames)}": (lambda: translator.encode_frames(frames), len(frames))}
    times = {name: [] for name in ways}
    for index in range(repeats + 1):
        for name, (function, count) in ways.items():
            seconds = _timed(function, device) / count
            if index:
                times[name].append(seconds)
    unit = "stretch" if translator.segmentation == "gate" else "window"
    window = translator.encode_frames(list(video[:translator.window]))
    if unit == "stretch":  # a sentence with a gate tail of idle frames, as the segmentation cuts it
        tail = window[-translator.tail:]
        times["gate_per_tail"] = [_timed(lambda: translator.signing_probability(tail), device) for _ in range(2)]
        translator._kept_states = None
        window = window[:min(len(window), round(sentence_seconds * FPS) + translator.tail)]
    runs = []
    for _ in range(2):
        runs.append(translator.translate_window(window)[2:])
        translator._kept_states = None
    times[f"temporal_encoder_per_{unit}"] = [run[0] for run in runs]
    times[f"decoder_per_{unit}"] = [run[1] for run in runs]
    return {name: {"median": round(statistics.median(values) * 1000, 2), "best": round(min(values) * 1000, 2)}
            for name, values in times.items()}


def _paced(video, fps: float):
    """The frames as a camera delivers them: frame k at k / fps seconds after the first is asked for."""
    start = time.perf_counter()
    for index, frame in enumerate(video):
        wait = start + index / fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield frame


def _caption_latencies(stats, fps: float, arrival_start: float, ends: list[int], agreement: int) -> list[float]:
    """For every frame t of `ends` taken as the last frame of a sentence: the end of the translation of the
    `agreement`-th window (gate: the first stretch) whose last frame is at or after t, less t's arrival (see the
    module docstring)."""
    windows = sorted(stats.window_times)
    latencies = []
    for index in ends:
        later = [finished for timestamp, _, finished in windows if timestamp >= index / fps - 1e-9]
        if len(later) >= agreement:
            latencies.append(later[agreement - 1] - (arrival_start + index / fps))
    return latencies


def _summary(values: list[float]) -> dict:
    if not values:
        return {"median_s": None, "max_s": None, "count": 0}
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3), "count": len(values)}


def _run(translator, source) -> float:
    began = time.perf_counter()
    for _ in translator(source):
        pass
    return time.perf_counter() - began


def _file_mode(translator, video) -> dict:
    wall = _run(translator, iter(video))
    stats = translator.stats
    seconds = len(video) / FPS
    return {"wall_s": round(wall, 2), "real_time_factor": round(wall / seconds, 3), "windows": stats.windows,
            "frames_encoded": stats.frames_encoded, "encoder_batches": stats.encoder_batches,
            "stage_seconds": {name: round(value, 3) for name, value in stats.seconds.items()}}


def _realtime(translator, video, agreement: int, script: list) -> dict:
    arrival_start = time.perf_counter()
    wall = _run(translator, _paced(video, FPS))
    stats = translator.stats
    seconds = len(video) / FPS
    busy = sum(value for name, value in stats.seconds.items() if name != "decode")
    windows = [finished - arrival for _, arrival, finished in stats.window_times]
    if translator.segmentation == "gate":  # each scripted sentence's last frame, its first stretch translated after
        captions = _caption_latencies(stats, FPS, arrival_start, [round(end * FPS) - 1 for _, end in script], 1)
    else:
        captions = _caption_latencies(stats, FPS, arrival_start, list(range(len(video))), agreement)
    return {"wall_s": round(wall, 2), "real_time_factor": round(busy / seconds, 3),
            "frames_received": stats.frames_received, "frames_dropped": stats.frames_dropped,
            "frames_subsampled": stats.frames_subsampled, "frames_encoded": stats.frames_encoded,
            "encoder_batches": stats.encoder_batches, "windows": stats.windows,
            "window_latency": _summary(windows), "caption_latency": _summary(captions),
            "stage_seconds": {name: round(value, 3) for name, value in stats.seconds.items()}}


def streaming(args, device, precision: str) -> dict:
    """The streaming measurement of one inference precision (see the module docstring)."""
    from ..streaming import StreamingTranslator

    model, processor, video = _build(args, device)
    generation = {"num_beams": args.streaming_beams, "min_new_tokens": args.new_tokens,
                  "max_new_tokens": args.new_tokens}
    agreement, gated = 2, args.streaming_segmentation == "gate"
    script = sentence_script(args, len(video) / FPS) if gated else []

    class Scripted(StreamingTranslator):  # the tails' decisions follow the script (see the module docstring)
        def is_signing(self, probability, start, end):
            return any(start < last and end >= first for first, last in script)

    translator = Scripted(model, processor, args.streaming_window, args.streaming_stride, FPS, agreement, generation,
                          inference_precision=precision, segmentation=args.streaming_segmentation,
                          gate_seconds=args.streaming_gate_seconds if gated else None)
    stages = _stages(translator, video, device, repeats=max(3, args.steps), sentence_seconds=args.streaming_sentence)
    # Per second of video: 25 frames through the frame encoder (batched, as both modes run it), and 1 / stride
    # windows, or 1 / stride gate tails and one stretch per sentence and pause.
    batched = stages[f"frame_encoder_per_frame_batch_{BATCH}"]["best"]
    if gated:
        stretch = stages["temporal_encoder_per_stretch"]["best"] + stages["decoder_per_stretch"]["best"]
        per_second = (stages["gate_per_tail"]["best"] / args.streaming_stride
                      + stretch / (args.streaming_sentence + args.streaming_pause))
    else:
        per_second = (stages["temporal_encoder_per_window"]["best"]
                      + stages["decoder_per_window"]["best"]) / args.streaming_stride
    from_stages = batched * FPS + per_second
    file_mode = _file_mode(translator, video)
    translator.realtime = True
    translator.buffer_frames = max(1, round(args.streaming_buffer * translator.rate))
    live = _realtime(translator, video, agreement, script)
    return {
        "precision": model.inference_precision, "requested_precision": precision,
        "inference_precision_report": model.inference_precision_report,
        "model": "tiny" if args.quick else args.streaming_model, "video_seconds": len(video) / FPS,
        "frames_per_second": FPS, "window_seconds": args.streaming_window, "stride_seconds": args.streaming_stride,
        "buffer_seconds": args.streaming_buffer, "segmentation": translator.segmentation,
        "gate_seconds": translator.tail / FPS if gated else None, "sentences": script,
        "agreement": None if gated else agreement, "beams": args.streaming_beams,
        "new_tokens": args.new_tokens, "stages_ms": stages,
        "real_time_factor_from_stages": round(from_stages / 1000, 3), "file_mode": file_mode, "realtime": live,
        "targets": {
            "real_time_factor_at_most_1_no_frames_dropped": live["real_time_factor"] <= 1.0
            and live["frames_dropped"] == 0,
            "caption_latency_median_at_most_2_s": live["caption_latency"]["median_s"] is not None
            and live["caption_latency"]["median_s"] <= 2.0,
        },
    }

# Copyright 2026 The beyondgloss authors. MIT license.
"""`beyondgloss benchmark`: speed and memory of BeyondGloss with random weights (nothing downloads).

Each measurement runs in its own subprocess, so that its peak resident memory (`ru_maxrss`) is its own:

- `matmul_peak`: the machine's fp32 matmul throughput (best of several square and ViT-shaped GEMMs);
- `pretrain_step`: contrastive pre-training step (forward, backward, AdamW) on B videos x T frames with 16-token
  targets, hand targets and description embeddings;
- `reference_pretrain_step`: the same step with the sign video encoder replaced by
  [`~beyondgloss.benchmark.reference_impl.ReferenceSignEncoder`] (the authors' computation, same math);
- `translation`: one video, beam search with exactly `--new-tokens` generated tokens;
- `encoder_inference`: frames per second and achieved GFLOP/s of the frame encoder (DINOv2 CLS features) and of
  the whole sign video encoder, next to the matmul peak measured in the same process;
- `long_video`: the sign video encoder on one `--long-frames`-frame video, inference (bounded by frame chunking).

The parent prints one JSON object with every result and the derived ratios. `--quick` uses tiny random configs
so that the benchmark runs in seconds (CI).

Example:

```
beyondgloss benchmark                   # full size, 2 threads, fp32 on CPU (a few minutes)
beyondgloss benchmark --quick           # tiny, seconds
beyondgloss benchmark --rounds 3        # the pre-training pair alternated 3 times (noisy, shared machines)
beyondgloss benchmark --device cuda --dtype bf16
```
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import torch

__all__ = ["main", "MEASUREMENTS", "build_config", "count_frame_encoder_flops", "measure_matmul_peak"]

MEASUREMENTS = ("matmul_peak", "pretrain_step", "reference_pretrain_step", "translation", "encoder_inference",
                "long_video")
PAIRED = ("pretrain_step", "reference_pretrain_step")  # compared with each other, so alternated under --rounds
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beyondgloss benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="videos per pre-training step (default 2)")
    parser.add_argument("--frames", type=int, default=32, help="frames per pre-training video (default 32)")
    parser.add_argument("--target-tokens", type=int, default=16, help="target sentence length (default 16)")
    parser.add_argument("--translation-frames", type=int, default=64, help="frames of the translated video")
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=20, help="exactly this many generated tokens")
    parser.add_argument("--long-frames", type=int, default=300, help="frames of the long-video memory test")
    parser.add_argument("--vocab-size", type=int, default=2454,
                        help="mBART vocabulary (default 2454, a trimmed Phoenix14T-sized vocabulary)")
    parser.add_argument("--chunk-size", type=int, default=None, help="override config.frame_chunk_size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="fp32, or bf16/fp16 autocast (meant for GPUs; bf16 is slow on most CPUs)")
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions per measurement (median)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="pre-training step with activation checkpointing (bounded training memory for long "
                             "videos; the reference step is unchanged)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the two pre-training steps this many times, alternating, so that both see the same "
                             "machine load; medians are over every round (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--quick", action="store_true", help="tiny random configs: finishes in seconds (CI)")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the reference pre-training step")
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS, help="run only these measurements")
    parser.add_argument("--output", help="also write the JSON to this file")
    parser.add_argument("--child", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------------------------------------------
# Helpers shared by the measurements


def build_config(args):
    """The full-size default config (ViT-S/14 at 224 px, mBART-large shapes, `--vocab-size` tokens) or, with
    `--quick`, the tiny test config."""
    from ..configuration_beyondgloss import BeyondGlossConfig
    from ..testing import tiny_config

    if args.quick:
        config = tiny_config()
    else:
        config = BeyondGlossConfig(decoder_start_token_id=3)
        config.text_config.vocab_size = args.vocab_size
    if args.chunk_size:
        config.frame_chunk_size = args.chunk_size
    return config


def _image_size(config) -> int:
    return config.vision_config.image_size


def _build(model_class, args, device, training: bool = False):
    """A randomly initialised `model_class` of the benchmark config: `(model, config, image_size)`."""
    config = build_config(args)
    torch.manual_seed(0)
    model = model_class(config).to(device).train(training)
    return model, config, _image_size(config)


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Timer:
    """Times repetitions with device synchronisation; `median` / `best` in seconds."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, function, warmup: int, steps: int):
        for index in range(warmup + steps):
            self._sync()
            start = time.perf_counter()
            result = function()
            self._sync()
            if index >= warmup:
                self.times.append(time.perf_counter() - start)
        return result

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def fields(self) -> dict:
        return {"median_s": round(self.median, 3), "best_s": round(self.best, 3),
                "times_s": [round(t, 3) for t in self.times]}


def _autocast(args, device):
    if args.dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[args.dtype])


def _memory_fields(device, rss_after_build) -> dict:
    fields = {"peak_rss_mb": round(_peak_rss_mb(), 1), "rss_after_build_mb": rss_after_build}
    if device.type == "cuda":
        fields["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return fields


def measure_matmul_peak(device, quick: bool = False, repeats: int = 5) -> dict:
    """Best fp32 matmul throughput over square GEMMs and the frame encoder's own GEMM shapes, in GFLOP/s."""
    sizes = [(256, 256, 256)] if quick else [(2048, 2048, 2048), (3072, 3072, 3072), (64 * 257, 384, 1536),
                                             (64 * 257, 1536, 384)]
    results = {}
    for m, k, n in sizes:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        c = torch.empty(m, n, device=device)  # written in place: a fresh output would time the page faults too
        timer = _Timer(device)
        timer.run(lambda: torch.mm(a, b, out=c), warmup=1, steps=repeats)
        results[f"{m}x{k}x{n}"] = round(2 * m * k * n / timer.best / 1e9, 1)
    return {"gflops": max(results.values()), "per_shape_gflops": results}


def count_frame_encoder_flops(model, frames: int = 1) -> int:
    """FLOPs the frame encoder of `model` (a `BeyondGlossModel` or `ReferenceSignEncoder`) executes on `frames`
    frames, counted by `FlopCounterMode` with the math attention kernel (so attention matmuls are counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    size = _image_size(model.config)
    pixels = torch.zeros(frames, 3, size, size, device=parameter.device, dtype=parameter.dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        model.encode_frames(pixels)
    return counter.get_total_flops()


# --------------------------------------------------------------------------------------------------------------
# Measurements (each runs in a child process)


def _pretrain_step(args, device, reference: bool) -> dict:
    from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining
    from .reference_impl import ReferenceSignEncoder

    model, config, size = _build(BeyondGlossForContrastivePretraining, args, device, training=True)
    if reference:
        model.sign_encoder = ReferenceSignEncoder.from_beyondgloss(model.sign_encoder)
    elif args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch, frames = args.batch, args.frames
    inputs = {
        "pixel_values_videos": torch.randn(batch, frames, 3, size, size, device=device),
        "video_attention_mask": torch.ones(batch, frames, dtype=torch.long, device=device),
        "input_ids": torch.randint(4, config.text_config.vocab_size, (batch, args.target_tokens), device=device),
        "attention_mask": torch.ones(batch, args.target_tokens, dtype=torch.long, device=device),
        "description_embeds": torch.randn(batch, config.description_dim, device=device),
        "hand_features": torch.randn(batch, frames, config.hand_dim, device=device),
    }
    scaler = torch.amp.GradScaler(device.type, enabled=args.dtype == "fp16" and device.type == "cuda")
    rss_after_build = _current_rss_mb()

    def step():
        with _autocast(args, device):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    timer = _Timer(device)
    loss = timer.run(step, args.warmup, args.steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {**timer.fields(), "loss": round(loss, 4), "trainable_parameters": trainable,
            **_memory_fields(device, rss_after_build)}


def _translation(args, device) -> dict:
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation

    model, config, size = _build(BeyondGlossForSignTranslation, args, device)
    video = torch.randn(1, args.translation_frames, 3, size, size, device=device)
    rss_after_build = _current_rss_mb()

    def translate():
        with _autocast(args, device):
            return model.generate(video, num_beams=args.beams, min_new_tokens=args.new_tokens,
                                  max_new_tokens=args.new_tokens)

    timer = _Timer(device)
    ids = timer.run(translate, args.warmup, args.steps)
    return {**timer.fields(), "generated_tokens": ids.shape[1] - 1, "beams": args.beams, "frames": args.translation_frames,
            **_memory_fields(device, rss_after_build)}


def _encoder_inference(args, device) -> dict:
    from ..modeling_beyondgloss import BeyondGlossModel

    peak = measure_matmul_peak(device, quick=args.quick)
    model, config, size = _build(BeyondGlossModel, args, device)
    frames = args.batch * args.frames
    # The difference of two counts leaves out the once-per-chunk work (folding the LoRA into the weights).
    flops_per_frame = count_frame_encoder_flops(model, frames=2) - count_frame_encoder_flops(model, frames=1)
    pixels = torch.randn(frames, 3, size, size, device=device)
    rss_after_build = _current_rss_mb()

    def encode():
        with torch.inference_mode(), _autocast(args, device):
            return model.encode_frames(pixels)

    def sign_encoder():
        with torch.inference_mode(), _autocast(args, device):
            return model(pixels[None])

    frame_timer = _Timer(device)
    frame_timer.run(encode, args.warmup, args.steps)
    video_timer = _Timer(device)
    video_timer.run(sign_encoder, 0, max(1, args.steps - 1))
    gflops = flops_per_frame * frames / frame_timer.median / 1e9
    return {
        "frames": frames,
        "frame_encoder_fps": round(frames / frame_timer.median, 2),
        "frame_encoder_best_fps": round(frames / frame_timer.best, 2),
        "sign_encoder_fps": round(frames / video_timer.median, 2),
        "flops_per_frame": flops_per_frame,
        "gflop_per_frame": round(flops_per_frame / 1e9, 3),
        # Three significant digits: the quick mode's tiny model runs at well under 1 GFLOP/s.
        "achieved_gflops": float(f"{gflops:.3g}"),
        "best_achieved_gflops": float(f"{flops_per_frame * frames / frame_timer.best / 1e9:.3g}"),
        "matmul_peak_gflops": peak["gflops"],
        "matmul_peak_per_shape_gflops": peak["per_shape_gflops"],
        "fraction_of_matmul_peak": round(gflops / peak["gflops"], 3),
        **_memory_fields(device, rss_after_build),
    }


def _long_video(args, device) -> dict:
    from ..modeling_beyondgloss import BeyondGlossModel

    model, config, size = _build(BeyondGlossModel, args, device)
    video = torch.randn(1, args.long_frames, 3, size, size, device=device)
    rss_before = _current_rss_mb()
    start = time.perf_counter()
    with torch.inference_mode(), _autocast(args, device):
        output = model(video)
    seconds = time.perf_counter() - start
    return {"frames": args.long_frames, "chunk_size": config.frame_chunk_size, "seconds": round(seconds, 2),
            "steps": output.last_hidden_state.shape[1], "input_mb": round(video.numel() * 4 / 2**20, 1),
            **_memory_fields(device, rss_before)}


def _run_child(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child == "matmul_peak":
        return measure_matmul_peak(device, quick=args.quick)
    if args.child in ("pretrain_step", "reference_pretrain_step"):
        return _pretrain_step(args, device, reference=args.child == "reference_pretrain_step")
    if args.child == "translation":
        return _translation(args, device)
    if args.child == "encoder_inference":
        return _encoder_inference(args, device)
    return _long_video(args, device)


# --------------------------------------------------------------------------------------------------------------
# Parent


def _quick_sizes(args) -> None:
    args.batch, args.frames = min(args.batch, 2), min(args.frames, 4)
    args.translation_frames, args.long_frames = min(args.translation_frames, 8), min(args.long_frames, 12)
    args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)


def _spawn(name: str, argv: list[str]) -> dict:
    command = [sys.executable, "-m", "beyondgloss.benchmark.runner", *argv, "--child", name]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        return {"error": f"exit code {completed.returncode}", "stderr_tail": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _machine(args) -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": args.threads or torch.get_num_threads(),
        "device": args.device,
        "dtype": args.dtype,
    }


def _merge_rounds(runs: list[dict]) -> dict:
    """One measurement's result over `--rounds` runs: every timed step pooled, the largest peak memory."""
    failed = [run for run in runs if "error" in run]
    if failed or len(runs) == 1:
        return (failed or runs)[0]
    times = [t for run in runs for t in run["times_s"]]
    return {**runs[-1], "median_s": round(statistics.median(times), 3), "best_s": min(times), "times_s": times,
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs), "rounds": len(runs)}


def _derived(results: dict) -> dict:
    derived = {}
    ours, reference = results.get("pretrain_step", {}), results.get("reference_pretrain_step", {})
    if "median_s" in ours and "median_s" in reference:
        derived["pretrain_speedup_vs_reference"] = round(reference["median_s"] / ours["median_s"], 3)
        derived["pretrain_peak_rss_ratio_vs_reference"] = round(ours["peak_rss_mb"] / reference["peak_rss_mb"], 3)
    return derived


def main(argv=None) -> int:
    """Runs the benchmark; prints the JSON results (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    for name in ("batch", "frames", "target_tokens", "translation_frames", "beams", "new_tokens", "long_frames",
                 "vocab_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            _parser().error(f"--{name.replace('_', '-')}={getattr(args, name)} must be a positive integer.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        _parser().error(f"--device {args.device}: CUDA is not available on this machine; use --device cpu.")
    if args.quick:
        _quick_sizes(args)
    if args.child:
        sys.stdout.write(json.dumps(_run_child(args)) + "\n")
        return 0

    selected = [m for m in (args.only or MEASUREMENTS)
                if not (args.skip_reference and m == "reference_pretrain_step")]
    # The encoder measurement measures its own matmul peak in the same process; the separate one is only for --only.
    if "encoder_inference" in selected and "matmul_peak" in selected and not args.only:
        selected.remove("matmul_peak")
    child_argv = [a for a in argv if a != "--output" and a != args.output]
    start = time.perf_counter()
    results = {"machine": _machine(args),
               "settings": {k: v for k, v in vars(args).items() if k not in ("child", "output", "only")}}
    if not args.quick:
        results["settings"]["note"] = (f"full-size default config (ViT-S/14 at 224 px, mBART-large shapes) with "
                                       f"the mBART vocabulary trimmed to {args.vocab_size}; random weights")
    rounds = {name: [] for name in selected}
    for round_index in range(args.rounds):
        for name in selected:
            if round_index == 0 or name in PAIRED:
                rounds[name].append(_spawn(name, child_argv))
    results.update({name: _merge_rounds(runs) for name, runs in rounds.items()})
    results["derived"] = _derived(results)
    if all(name in selected for name in PAIRED) and args.rounds > 1:
        results["derived"]["pretrain_speedup_per_round"] = [
            round(reference["median_s"] / ours["median_s"], 3)
            for ours, reference in zip(*(rounds[name] for name in PAIRED))
            if "median_s" in ours and "median_s" in reference]
    if "encoder_inference" in results and "fraction_of_matmul_peak" in results["encoder_inference"]:
        results["derived"]["frame_encoder_fraction_of_matmul_peak"] = results["encoder_inference"]["fraction_of_matmul_peak"]
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    failed = [name for name in selected if "error" in results[name]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

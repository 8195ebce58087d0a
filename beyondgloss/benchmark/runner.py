# Copyright 2026 The beyondgloss authors. MIT license.
"""`beyondgloss benchmark`: speed and memory of BeyondGloss with random weights (nothing downloads).

Each measurement runs in its own subprocess, so that its peak resident memory (`ru_maxrss`) is its own:

- `matmul_peak`: the machine's matmul throughput (best of several square and ViT-shaped GEMMs), in fp32 and in each
  reduced precision measured;
- `pretrain_step`: contrastive pre-training step (forward, backward, AdamW) on B videos x T frames with 16-token
  targets, hand targets and description embeddings, once per `--dtype` (fp32, or bf16/fp16 autocast);
- `reference_pretrain_step`: the same step, in each `--dtype` too, with the sign video encoder replaced by
  [`~beyondgloss.benchmark.reference_impl.ReferenceSignEncoder`] (the authors' computation, same math): the baseline;
- `translation`: one `--translation_frames`-frame video, beam search with exactly `--new_tokens` generated tokens,
  once per `--precision` (the models' inference precision, `set_inference_precision`), with the reduced mode's
  encoder-output cosine to fp32 on the same video;
- `encoder_inference`: frames per second and achieved GFLOP/s of the frame encoder (DINOv2 CLS features) and of
  the whole sign video encoder, per `--precision`, next to the matmul peak of that precision measured in the same
  process;
- `long_video`: the sign video encoder on one `--long_frames`-frame video, fp32 inference (bounded by frame
  chunking).

The parent prints one JSON object: every result under its measurement and precision, and the derived ratios
(`derived`), each computed from two figures of the same run. `--quick` uses tiny random configs so that the benchmark
runs in seconds (CI). docs/benchmarks.md explains each figure and the baseline.

Example:

```
beyondgloss benchmark                   # full size, fp32 and bf16 inference, fp32 pre-training (many minutes)
beyondgloss benchmark --quick           # tiny, seconds
beyondgloss benchmark --threads 2 --rounds 2 --only translation encoder_inference matmul_peak
beyondgloss benchmark --dtype fp32 bf16 # the pre-training step also under bf16 autocast, beside fp32
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
from torch.utils.flop_counter import FlopCounterMode

from ..inference_precision import GUARD_MIN_COSINE, PRECISIONS, step_cosines
from ..utils.allocator import keep_freed_memory

__all__ = ["MEASUREMENTS", "REFERENCE_IMPL_VS_AUTHORS", "build_config", "build_parser", "count_frame_encoder_flops",
           "main", "measure_matmul_peak"]

MEASUREMENTS = ("matmul_peak", "pretrain_step", "reference_pretrain_step", "translation", "encoder_inference",
                "long_video")
PAIRED = ("pretrain_step", "reference_pretrain_step")  # compared with each other, so alternated under --rounds
PER_PRECISION = ("translation", "encoder_inference")  # measured once per --precision, alternated under --rounds
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# How much slower `reference_impl` is than the authors' own code, timed side by side in November 2026 (full-size default
# config, 2 threads, fp32, alternating rounds, on the 2-core machine described in docs/benchmarks.md): a pre-training
# step took 13.79 s with reference_impl and 11.76 s with the authors' code; 13.79 / 11.76 = 1.17. A speed-up
# measured against reference_impl, divided by this, estimates the speed-up against the authors' code; it is an
# estimate because the factor was measured once, on one machine.
REFERENCE_IMPL_VS_AUTHORS = 1.17


def _add(parser: argparse.ArgumentParser, flag: str, **kwargs) -> None:
    """Adds `flag` (underscored, as transformers' example scripts spell flags) and its hyphenated spelling as a
    hidden alias, so that command lines written before the rename keep working."""
    parser.add_argument(flag, **kwargs)
    if "_" in flag:
        alias = {k: v for k, v in kwargs.items() if k in ("type", "nargs", "choices", "action")}
        parser.add_argument(flag.replace("_", "-"), dest=flag[2:], default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                            **alias)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beyondgloss benchmark", description=__doc__.split("\n\n")[0])
    _add(parser, "--batch", type=int, default=2, help="videos per pre-training step (default 2)")
    _add(parser, "--frames", type=int, default=32, help="frames per pre-training video (default 32)")
    _add(parser, "--target_tokens", type=int, default=16, help="target sentence length (default 16)")
    _add(parser, "--translation_frames", type=int, default=64, help="frames of the translated video (default 64)")
    _add(parser, "--beams", type=int, default=5)
    _add(parser, "--new_tokens", type=int, default=20, help="exactly this many generated tokens (default 20)")
    _add(parser, "--long_frames", type=int, default=300, help="frames of the long-video memory test")
    _add(parser, "--vocab_size", type=int, default=2454,
         help="mBART vocabulary (default 2454, a trimmed Phoenix14T-sized vocabulary)")
    _add(parser, "--chunk_size", type=int, default=None, help="override config.frame_chunk_size")
    _add(parser, "--threads", type=int, default=None, help="torch threads (default: all cores)")
    _add(parser, "--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    _add(parser, "--dtype", nargs="+", choices=sorted(DTYPES), default=["fp32"],
         help="the pre-training step's precision(s): fp32, and/or bf16/fp16 autocast (default fp32); the reference "
              "step runs in each of them too")
    _add(parser, "--precision", nargs="+", choices=PRECISIONS, default=["fp32", "bf16"],
         help="inference precision(s) of translation and encoder_inference (set_inference_precision; default: fp32 "
              "and bf16, alternated under --rounds); 'auto' takes what the model chooses on this machine; 'int8' "
              "quantizes mBART's GEMMs (encoder_inference then measures the frame encoder as 'auto' runs it)")
    _add(parser, "--steps", type=int, default=3, help="timed repetitions per measurement (median)")
    _add(parser, "--gradient_checkpointing", action="store_true",
         help="pre-training step with activation checkpointing (bounded training memory for long videos; the "
              "reference step is unchanged)")
    _add(parser, "--rounds", type=int, default=1,
         help="run the compared measurements (the two pre-training steps; the inference precisions) this many times, "
              "alternating, so that both see the same machine load; medians are over every round (default 1)")
    _add(parser, "--warmup", type=int, default=1,
         help="untimed repetitions first (at least one for the pre-training steps, which count their matmul work "
              "in it)")
    _add(parser, "--quick", action="store_true", help="tiny random configs: finishes in seconds (CI)")
    _add(parser, "--skip_reference", action="store_true", help="do not run the reference pre-training step")
    _add(parser, "--only", nargs="+", choices=MEASUREMENTS, help="run only these measurements")
    _add(parser, "--output", help="also write the JSON to this file")
    parser.add_argument("--child", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    parser.add_argument("--child_precision", choices=sorted({*DTYPES, *PRECISIONS}), help=argparse.SUPPRESS)
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
        return {"median_s": _significant(self.median), "best_s": _significant(self.best),
                "times_s": [_significant(t) for t in self.times]}


def _significant(seconds: float) -> float:
    # Significant digits rather than decimals: the quick mode's calls take well under a millisecond, and the
    # derived ratios divide by these figures.
    return float(f"{seconds:.4g}")


def _autocast(dtype: str, device):
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def _memory_fields(device, rss_after_build) -> dict:
    fields = {"peak_rss_mb": round(_peak_rss_mb(), 1), "rss_after_build_mb": rss_after_build}
    if device.type == "cuda":
        fields["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return fields


def measure_matmul_peak(device, quick: bool = False, repeats: int = 5, dtype: torch.dtype = torch.float32) -> dict:
    """Best matmul throughput in `dtype` over square GEMMs and the frame encoder's own GEMM shapes, in GFLOP/s."""
    sizes = [(256, 256, 256)] if quick else [(2048, 2048, 2048), (3072, 3072, 3072), (64 * 257, 384, 1536),
                                             (64 * 257, 1536, 384)]
    results = {}
    for m, k, n in sizes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        c = torch.empty(m, n, device=device, dtype=dtype)  # written in place: a fresh output would time page faults
        timer = _Timer(device)
        timer.run(lambda: torch.mm(a, b, out=c), warmup=1, steps=repeats)
        results[f"{m}x{k}x{n}"] = round(2 * m * k * n / timer.best / 1e9, 1)
    return {"dtype": str(dtype).removeprefix("torch."), "gflops": max(results.values()), "per_shape_gflops": results}


def count_frame_encoder_flops(model, frames: int = 1) -> int:
    """FLOPs the frame encoder of `model` (a `BeyondGlossModel` or `ReferenceSignEncoder`) executes on `frames`
    frames, counted by `FlopCounterMode` with the math attention kernel (so attention matmuls are counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    parameter = next(model.parameters())
    size = _image_size(model.config)
    pixels = torch.zeros(frames, 3, size, size, device=parameter.device, dtype=parameter.dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        model.encode_frames(pixels)
    return counter.get_total_flops()


def _set_precision(model, precision: str, encoder_outputs) -> dict:
    """Puts `model` in inference `precision` and returns what it chose; for a reduced precision, also the cosine to
    fp32 of what `encoder_outputs()` gives (`(states, mask)` pairs: the sign video encoder's output and, for a
    translation model, the mBART encoder's) on the benchmark's own input, measured here rather than taken from the
    model's guard (which runs on its own probe video): the smallest cosine of a real step, as the guard counts."""
    with torch.inference_mode():
        reference = encoder_outputs() if precision != "fp32" else None
        chosen = model.set_inference_precision(precision)
        fields = {"precision": chosen, "requested_precision": precision,
                  "inference_precision_report": model.inference_precision_report}
        if reference is not None:
            cosines = {name: round(step_cosines(states, fp32_states, mask).min().item(), 6)
                       for (name, (states, _)), (_, (fp32_states, mask)) in zip(encoder_outputs().items(),
                                                                                 reference.items())}
            fields["encoder_cosine_to_fp32"] = min(cosines.values())
            fields["encoder_cosines_to_fp32"] = cosines
    return fields


# --------------------------------------------------------------------------------------------------------------
# Measurements (each runs in a child process)


def _pretrain_step(args, device, reference: bool, dtype: str) -> dict:
    from ..modeling_beyondgloss import BeyondGlossForContrastivePretraining
    from .reference_impl import ReferenceSignEncoder

    model, config, size = _build(BeyondGlossForContrastivePretraining, args, device, training=True)
    # beyondgloss's step runs as its training commands run it, which keep freed memory (utils/allocator.py); the
    # reference stands for the authors' code, which does not (to give it the same: the MALLOC_* variables,
    # docs/benchmarks.md).
    kept_freed_memory = False if reference else keep_freed_memory()
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
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16" and device.type == "cuda")
    rss_after_build = _current_rss_mb()

    def step():
        with _autocast(dtype, device):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    # The first untimed step counts the step's matmul work; with the matmul peak of the same run it gives a floor
    # under the step's time (`derived`). A lower bound: FlopCounterMode has no formula for SDPA's fused CPU kernel.
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    timer = _Timer(device)
    loss = timer.run(step, max(args.warmup - 1, 0), args.steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"dtype": dtype, **timer.fields(), "loss": round(loss, 4), "trainable_parameters": trainable,
            "matmul_gflop": round(counter.get_total_flops() / 1e9, 3), "keeps_freed_memory": kept_freed_memory,
            **_memory_fields(device, rss_after_build)}


def _translation(args, device, precision: str) -> dict:
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation

    model, config, size = _build(BeyondGlossForSignTranslation, args, device)
    video = torch.randn(1, args.translation_frames, 3, size, size, device=device)

    def encoder_outputs():
        encoded = model.sign_encoder(video)
        with model.mbart_precision():
            text = model.mbart.get_encoder()(inputs_embeds=encoded.last_hidden_state,
                                             attention_mask=encoded.attention_mask).last_hidden_state
        return {"sign_encoder": (encoded.last_hidden_state, encoded.attention_mask),
                "mbart_encoder": (text.float(), encoded.attention_mask)}

    mode = _set_precision(model, precision, encoder_outputs)
    rss_after_build = _current_rss_mb()

    def translate():
        # min = max: beam search cannot stop early, so every precision and every run decodes the same length.
        return model.generate(video, num_beams=args.beams, min_new_tokens=args.new_tokens,
                              max_new_tokens=args.new_tokens)

    timer = _Timer(device)
    ids = timer.run(translate, args.warmup, args.steps)
    generated = ids.shape[1] - 1  # the first id is the decoder start (the target language code)
    if generated != args.new_tokens:
        raise RuntimeError(f"translation generated {generated} tokens, not --new_tokens={args.new_tokens}: the "
                           "timing would not be comparable; check the model's generation_config (min/max lengths).")
    return {**mode, **timer.fields(), "generated_tokens": generated, "beams": args.beams,
            "frames": args.translation_frames, **_memory_fields(device, rss_after_build)}


def _encoder_rates(result: dict) -> dict:
    """The frame encoder's rates from its timed calls (`times_s`, each on `frames` frames), its FLOPs per frame and
    the matmul peak of its precision; a function so that pooled rounds give their rates the same way."""
    frames, flops, peak = result["frames"], result["flops_per_frame"], result["matmul_peak_gflops"]
    median, best = statistics.median(result["times_s"]), min(result["times_s"])
    gflops = flops * frames / median / 1e9
    return {
        "frame_encoder_fps": round(frames / median, 2),
        "frame_encoder_best_fps": round(frames / best, 2),
        "sign_encoder_fps": round(frames / statistics.median(result["sign_encoder_times_s"]), 2),
        # Three significant digits: the quick mode's tiny model runs at well under 1 GFLOP/s.
        "achieved_gflops": float(f"{gflops:.3g}"),
        "best_achieved_gflops": float(f"{flops * frames / best / 1e9:.3g}"),
        "fraction_of_matmul_peak": round(gflops / peak, 3),
    }


def _encoder_inference(args, device, precision: str) -> dict:
    from ..modeling_beyondgloss import BeyondGlossModel

    model, config, size = _build(BeyondGlossModel, args, device)
    frames = args.batch * args.frames
    # Counted in fp32 before any precision change: the work the frame encoder does, whatever type it is done in.
    # The difference of two counts leaves out the once-per-chunk work (folding the LoRA into the weights).
    flops_per_frame = count_frame_encoder_flops(model, frames=2) - count_frame_encoder_flops(model, frames=1)
    pixels = torch.randn(frames, 3, size, size, device=device)

    def encoder_outputs():
        encoded = model(pixels[None])
        return {"sign_encoder": (encoded.last_hidden_state, encoded.attention_mask)}

    # "int8" quantizes mBART only, which this model lacks: its frame encoder runs as "auto" chooses, so measure that.
    mode = _set_precision(model, "auto" if precision == "int8" else precision, encoder_outputs)
    mode["requested_precision"] = precision
    # The peak of the precision the frame encoder now computes in, so that the fraction compares like with like.
    peak = measure_matmul_peak(device, quick=args.quick,
                               dtype=DTYPES[mode["inference_precision_report"]["frame_encoder"]])
    rss_after_build = _current_rss_mb()

    def encode():
        with torch.inference_mode():
            return model.encode_frames(pixels)

    def sign_encoder():
        with torch.inference_mode():
            return model(pixels[None])

    frame_timer = _Timer(device)
    frame_timer.run(encode, args.warmup, args.steps)
    video_timer = _Timer(device)
    video_timer.run(sign_encoder, 0, max(1, args.steps - 1))
    result = {**mode, "frames": frames, **frame_timer.fields(),
              "sign_encoder_times_s": video_timer.fields()["times_s"],
              "flops_per_frame": flops_per_frame, "gflop_per_frame": round(flops_per_frame / 1e9, 3),
              "matmul_peak_gflops": peak["gflops"], "matmul_peak_per_shape_gflops": peak["per_shape_gflops"]}
    return {**result, **_encoder_rates(result), **_memory_fields(device, rss_after_build)}


def _long_video(args, device) -> dict:
    from ..modeling_beyondgloss import BeyondGlossModel

    model, config, size = _build(BeyondGlossModel, args, device)
    video = torch.randn(1, args.long_frames, 3, size, size, device=device)
    rss_before = _current_rss_mb()
    start = time.perf_counter()
    with torch.inference_mode():
        output = model(video)
    seconds = time.perf_counter() - start
    return {"frames": args.long_frames, "chunk_size": config.frame_chunk_size, "seconds": round(seconds, 2),
            "steps": output.last_hidden_state.shape[1], "input_mb": round(video.numel() * 4 / 2**20, 1),
            **_memory_fields(device, rss_before)}


def _run_child(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = args.child_precision or "fp32"
    if args.child == "matmul_peak":
        return measure_matmul_peak(device, quick=args.quick, dtype=DTYPES[precision])
    if args.child == "pretrain_step":
        return _pretrain_step(args, device, reference=False, dtype=precision)
    if args.child == "reference_pretrain_step":
        return _pretrain_step(args, device, reference=True, dtype=precision)
    if args.child == "translation":
        return _translation(args, device, precision)
    if args.child == "encoder_inference":
        return _encoder_inference(args, device, precision)
    return _long_video(args, device)


# --------------------------------------------------------------------------------------------------------------
# Parent


def _quick_sizes(args) -> None:
    args.batch, args.frames = min(args.batch, 2), min(args.frames, 4)
    args.translation_frames, args.long_frames = min(args.translation_frames, 8), min(args.long_frames, 12)
    args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)


def _spawn(name: str, precision: str, argv: list[str]) -> dict:
    # Through -c rather than -m: the package imports this module, and runpy warns when it runs it again as __main__.
    command = [sys.executable, "-c", "import sys; from beyondgloss.benchmark.runner import main; sys.exit(main())",
               *argv, "--child", name, "--child_precision", precision]
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
        "cpu_flags": _cpu_flags(),
        "torch": torch.__version__,
        "torch_threads": args.threads or torch.get_num_threads(),
        "device": args.device,
    }


def _cpu_flags() -> list[str]:
    # bf16 speed depends on these (docs/benchmarks.md): a CPU without them runs bf16 matmuls slower than fp32.
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(flag for flag in flags if flag in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"))


def _jobs(args, selected: list[str]) -> list[tuple[str, str]]:
    """(measurement, precision) pairs in the order they run in one round."""
    jobs = []
    for name in selected:
        if name in PAIRED:
            jobs += [(name, dtype) for dtype in dict.fromkeys(args.dtype)]
        elif name in PER_PRECISION:
            jobs += [(name, precision) for precision in dict.fromkeys(args.precision)]
        elif name == "matmul_peak":
            # 'auto' and 'int8' choose the frame encoder's fp32 or bf16, so both peaks are wanted to read their figures.
            chooses = {"auto", "int8"} & set(args.precision)
            wanted = [p for p in args.precision if p not in chooses] + (["fp32", "bf16"] if chooses else [])
            jobs += [(name, precision) for precision in dict.fromkeys(wanted)]
        else:
            jobs.append((name, "fp32"))
    return jobs


def _repeated(args, name: str) -> bool:
    """Whether a measurement is compared with another of the same run, and so alternated under --rounds."""
    return name in PAIRED or (name in PER_PRECISION and len(set(args.precision)) > 1)


def _merge_rounds(runs: list[dict]) -> dict:
    """One measurement's result over `--rounds` runs: every timed step pooled, the largest peak memory."""
    failed = [run for run in runs if "error" in run]
    if failed or len(runs) == 1:
        return (failed or runs)[0]
    times = [t for run in runs for t in run["times_s"]]
    merged = {**runs[-1], "median_s": _significant(statistics.median(times)), "best_s": min(times), "times_s": times,
              "peak_rss_mb": max(run["peak_rss_mb"] for run in runs), "rounds": len(runs)}
    if "sign_encoder_times_s" in merged:
        merged["sign_encoder_times_s"] = [t for run in runs for t in run["sign_encoder_times_s"]]
        merged["matmul_peak_gflops"] = max(run["matmul_peak_gflops"] for run in runs)  # a peak is a best
        merged.update(_encoder_rates(merged))
    return merged


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3)


def _per_round(rounds: dict, baseline: tuple[str, str], measured: tuple[str, str]) -> list[float]:
    """The baseline's median time over the measured one's, round by round."""
    return [_ratio(base["median_s"], run["median_s"]) for base, run in zip(rounds[baseline], rounds[measured])
            if "median_s" in base and "median_s" in run]


def _derived(results: dict, rounds: dict) -> dict:
    """Ratios of figures measured in this run (see docs/benchmarks.md for what each means)."""
    sections = {"pretrain_step": _pretrain_ratios(results, rounds)}
    sections |= {name: _precision_ratios(name, results, rounds) for name in PER_PRECISION}
    return {name: section for name, section in sections.items() if section}  # no empty sections


def _put_per_round(section: dict, key: str, per_round: dict) -> None:
    """Adds per-round ratios to `section` when some precision has more than one round."""
    if any(len(values) > 1 for values in per_round.values()):
        section[key] = per_round


def _pretrain_ratios(results: dict, rounds: dict) -> dict:
    """beyondgloss's pre-training step against reference_impl's: each dtype against the same dtype, a reduced one
    also against fp32, and the floor that the step's matmul work puts under its time."""
    ours, reference = ({dtype: result for dtype, result in results.get(name, {}).items() if "median_s" in result}
                       for name in PAIRED)
    if not ours:
        return {}
    pretrain = {"peak_rss_mb": {dtype: result["peak_rss_mb"] for dtype, result in ours.items()}}
    same = [dtype for dtype in ours if dtype in reference]
    if same:
        pretrain["baseline"] = "reference_impl in the same dtype, same run"
        pretrain["reference_peak_rss_mb"] = {dtype: reference[dtype]["peak_rss_mb"] for dtype in same}
        speedup = {dtype: _ratio(reference[dtype]["median_s"], ours[dtype]["median_s"]) for dtype in same}
        pretrain["speedup_vs_reference_impl"] = speedup
        _put_per_round(pretrain, "speedup_vs_reference_impl_per_round", {
            dtype: _per_round(rounds, ("reference_pretrain_step", dtype), ("pretrain_step", dtype)) for dtype in same})
        pretrain["peak_rss_ratio_vs_reference_impl"] = {
            dtype: _ratio(ours[dtype]["peak_rss_mb"], reference[dtype]["peak_rss_mb"]) for dtype in same}
        pretrain["reference_impl_vs_authors"] = REFERENCE_IMPL_VS_AUTHORS
        pretrain["estimated_speedup_vs_authors"] = {
            dtype: _ratio(value, REFERENCE_IMPL_VS_AUTHORS) for dtype, value in speedup.items()}
        pretrain["estimate_note"] = (
            f"estimated_speedup_vs_authors = speedup_vs_reference_impl / {REFERENCE_IMPL_VS_AUTHORS}, the factor "
            "by which reference_impl was measured slower than the authors' code, in fp32 (docs/benchmarks.md); an "
            "estimate, not a measurement of the authors' code")
    # The matmul peak of each type: measured on its own, or by the encoder measurement in its process.
    peaks = {result["precision"]: result["matmul_peak_gflops"]
             for result in results.get("encoder_inference", {}).values() if "matmul_peak_gflops" in result}
    peaks |= {dtype: result["gflops"] for dtype, result in results.get("matmul_peak", {}).items() if "gflops" in result}
    floors = {dtype: ours[dtype]["matmul_gflop"] / peaks[dtype] for dtype in ours if dtype in peaks}
    if floors:  # the step's matmuls at the measured peak: no step of this work is faster on this machine
        pretrain["matmul_floor_s"] = {dtype: _significant(floor) for dtype, floor in floors.items()}
        pretrain["speedup_ceiling_vs_reference_impl"] = {dtype: _ratio(reference[dtype]["median_s"], floor)
                                                         for dtype, floor in floors.items() if dtype in reference}
    reduced = [dtype for dtype in ours if dtype != "fp32"]
    if "fp32" in reference and reduced:
        # The authors' code was timed beside reference_impl in fp32. A reduced precision against the fp32 baseline
        # also counts the precision's own gain, which the authors' code has too: it trains under autocast
        # (docs/benchmarks.md). So this ratio is secondary; speedup_vs_reference_impl compares like with like.
        pretrain["speedup_vs_reference_impl_fp32"] = {
            dtype: _ratio(reference["fp32"]["median_s"], ours[dtype]["median_s"]) for dtype in reduced}
        _put_per_round(pretrain, "speedup_vs_reference_impl_fp32_per_round", {
            dtype: _per_round(rounds, ("reference_pretrain_step", "fp32"), ("pretrain_step", dtype))
            for dtype in reduced})
    return pretrain


def _precision_ratios(name: str, results: dict, rounds: dict) -> dict:
    """Translation or the encoder in each reduced precision against fp32, and the guard's cosine."""
    measured = {p: result for p, result in results.get(name, {}).items() if "median_s" in result}
    section = {}
    base = measured.get("fp32")
    reduced = {p: result for p, result in measured.items() if p != "fp32"}
    if base is not None and reduced:
        section["speedup_vs_fp32"] = {p: _ratio(base["median_s"], result["median_s"]) for p, result in reduced.items()}
        _put_per_round(section, "speedup_vs_fp32_per_round",
                       {p: _per_round(rounds, (name, "fp32"), (name, p)) for p in reduced})
    cosines = {p: result["encoder_cosine_to_fp32"] for p, result in reduced.items()
               if "encoder_cosine_to_fp32" in result}
    if cosines:
        section["encoder_cosine_to_fp32"] = cosines
        section["guard_holds"] = {p: value >= GUARD_MIN_COSINE for p, value in cosines.items()}
    if name == "encoder_inference" and measured:
        for key in ("frame_encoder_fps", "fraction_of_matmul_peak", "matmul_peak_gflops"):
            section[key] = {p: result[key] for p, result in measured.items()}
    if any(p != result.get("precision", p) for p, result in measured.items()):
        section["precision_in_effect"] = {p: result["precision"] for p, result in measured.items()}
    return section


def main(argv=None, parser: argparse.ArgumentParser | None = None) -> int:
    """Runs the benchmark; prints the JSON results (see the module docstring). `parser` (default: [`build_parser`])
    lets the `beyondgloss` command report bad flags under its exit-code policy."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "frames", "target_tokens", "translation_frames", "beams", "new_tokens", "long_frames",
                 "vocab_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be a positive integer.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine; use --device cpu.")
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
               "settings": {k: v for k, v in vars(args).items() if k not in ("child", "child_precision", "output", "only")}}
    if not args.quick:
        results["settings"]["note"] = (f"full-size default config (ViT-S/14 at 224 px, mBART-large shapes) with "
                                       f"the mBART vocabulary trimmed to {args.vocab_size}; random weights")
    jobs = _jobs(args, selected)
    rounds = {job: [] for job in jobs}
    for round_index in range(args.rounds):
        for name, precision in jobs:
            if round_index == 0 or _repeated(args, name):
                rounds[(name, precision)].append(_spawn(name, precision, child_argv))
    for (name, precision), runs in rounds.items():
        results.setdefault(name, {})[precision] = _merge_rounds(runs)
    results["derived"] = _derived(results, rounds)
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    failed = [f"{name} ({precision})" for name, precision in jobs if "error" in results[name][precision]]
    if failed:
        sys.stderr.write(f"Failed: {', '.join(failed)}; the reason is in each one's 'stderr_tail' above.\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

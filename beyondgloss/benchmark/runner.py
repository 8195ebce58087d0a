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
  chunking);
- `streaming`: live captions, per `--precision`: per-stage milliseconds, the real-time factor of a file and of a
  real-time replay at 25 frames/s, frames dropped, window and caption latency (`beyondgloss.benchmark.streaming`).

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
beyondgloss benchmark --threads 2 --only streaming --precision fp32 bf16 int8   # live captions, full size
```
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from ..inference_precision import PRECISIONS
from .derived import PAIRED, PER_PRECISION, REFERENCE_IMPL_VS_AUTHORS, derived_ratios
from .instruments import DTYPES, count_frame_encoder_flops, measure_matmul_peak, significant
from .measurements import MEASUREMENTS, build_config, encoder_rates, run_child
from .streaming import add_streaming_arguments

__all__ = ["MEASUREMENTS", "REFERENCE_IMPL_VS_AUTHORS", "build_config", "build_parser", "count_frame_encoder_flops",
           "main", "measure_matmul_peak"]


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
    add_streaming_arguments(lambda flag, **kwargs: _add(parser, flag, **kwargs))
    parser.add_argument("--child", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    parser.add_argument("--child_precision", choices=sorted({*DTYPES, *PRECISIONS}), help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------------------------------------------
# The parent: runs each measurement in a child process, in rounds


def _quick_sizes(args) -> None:
    args.batch, args.frames = min(args.batch, 2), min(args.frames, 4)
    args.translation_frames, args.long_frames = min(args.translation_frames, 8), min(args.long_frames, 12)
    args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
    args.streaming_seconds, args.streaming_window = min(args.streaming_seconds, 2.0), min(args.streaming_window, 0.64)
    args.streaming_stride = min(args.streaming_stride, 0.32)
    args.streaming_gate_seconds = min(args.streaming_gate_seconds, 0.16)
    args.streaming_sentence, args.streaming_pause = min(args.streaming_sentence, 0.4), min(args.streaming_pause, 0.4)


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
        elif name in PER_PRECISION or name == "streaming":
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
    merged = {**runs[-1], "median_s": significant(statistics.median(times)), "best_s": min(times), "times_s": times,
              "peak_rss_mb": max(run["peak_rss_mb"] for run in runs), "rounds": len(runs)}
    if "sign_encoder_times_s" in merged:
        merged["sign_encoder_times_s"] = [t for run in runs for t in run["sign_encoder_times_s"]]
        merged["matmul_peak_gflops"] = max(run["matmul_peak_gflops"] for run in runs)  # a peak is a best
        merged.update(encoder_rates(merged))
    return merged


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
        sys.stdout.write(json.dumps(run_child(args)) + "\n")
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
    results["derived"] = derived_ratios(results, rounds)
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

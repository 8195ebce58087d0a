# Copyright 2026 The beyondgloss authors. MIT license.
"""The benchmark's instruments: a timer with device synchronisation, memory readings, the machine's matmul peak and
the frame encoder's FLOP count. The measurements (`measurements.py`) are made with them."""

import resource
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["DTYPES", "Timer", "autocast_context", "count_frame_encoder_flops", "current_rss_mb",
           "measure_matmul_peak", "memory_fields", "significant"]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Timer:
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
        return {"median_s": significant(self.median), "best_s": significant(self.best),
                "times_s": [significant(t) for t in self.times]}


def significant(seconds: float) -> float:
    # Significant digits rather than decimals: the quick mode's calls take well under a millisecond, and the
    # derived ratios divide by these figures.
    return float(f"{seconds:.4g}")


def autocast_context(dtype: str, device):
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def memory_fields(device, rss_after_build) -> dict:
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
        timer = Timer(device)
        timer.run(lambda: torch.mm(a, b, out=c), warmup=1, steps=repeats)
        results[f"{m}x{k}x{n}"] = round(2 * m * k * n / timer.best / 1e9, 1)
    return {"dtype": str(dtype).removeprefix("torch."), "gflops": max(results.values()), "per_shape_gflops": results}


def count_frame_encoder_flops(model, frames: int = 1) -> int:
    """FLOPs the frame encoder of `model` (a `BeyondGlossModel` or `ReferenceSignEncoder`) executes on `frames`
    frames, counted by `FlopCounterMode` with the math attention kernel (so attention matmuls are counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    parameter = next(model.parameters())
    size = model.config.vision_config.image_size
    pixels = torch.zeros(frames, 3, size, size, device=parameter.device, dtype=parameter.dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        model.encode_frames(pixels)
    return counter.get_total_flops()

# Copyright 2026 The beyondgloss authors. MIT license.
"""Reduced-precision inference: bfloat16 matrix products where this machine runs them faster, guarded by a check that
the encoder outputs stay what fp32 gives. Shipped in checkpoints beside `modeling_beyondgloss.py`.

In "bf16" mode the GEMMs and attention of the DINOv2 frame encoder and of mBART run in bfloat16, while LayerNorms, the
residual streams, the temporal encoder, the heads and the decoder's scores stay float32. On a CPU with bfloat16
instructions (AVX512-BF16, AMX) this is about twice as fast as fp32; on one without, bf16 can be several times
slower, which is why "auto" measures before it chooses (docs/benchmarks.md).
"""

import contextlib
import time

import torch
from torch import nn
from transformers.utils import logging

__all__ = ["GUARD_MIN_COSINE", "PRECISIONS", "InferencePrecisionMixin", "bf16_matmul_speedup", "step_cosines"]

logger = logging.get_logger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")
# The quality guard: every real step of the encoder output must keep at least this cosine to the fp32 output. One
# bfloat16 rounding has a relative error of at most 2^-9 (0.2%), so the cosine of one rounded vector is above
# 1 - 2e-6; a chain of GEMMs accumulates such errors into cosines near 0.9999. 0.999 leaves a factor ten for that,
# while a broken conversion (a wrong scale, a lost residual) gives cosines far below it.
GUARD_MIN_COSINE = 0.999
# "auto" keeps fp32 unless bf16 GEMMs are at least this much faster here (below it, the rounding buys too little).
AUTO_MIN_SPEEDUP = 1.2


def bf16_matmul_speedup(device: torch.device | str = "cpu", shape: tuple[int, int, int] = (1028, 384, 1536),
                        repeats: int = 5) -> float:
    """How much faster a bfloat16 GEMM `(rows, inner) x (inner, columns)` runs than the float32 one on `device`: best
    of `repeats` timings each. The default shape is the fc1 GEMM of 4 ViT-S/14 frames at 224 px (about 0.1 s in all on
    a CPU); `set_inference_precision` passes the model's own."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    rows, inner, columns = shape
    left = torch.randn(rows, inner, generator=generator).to(device)
    right = torch.randn(inner, columns, generator=generator).to(device)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = left.to(dtype), right.to(dtype)
        out = torch.empty(a.shape[0], b.shape[1], dtype=dtype, device=device)
        timings = []
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(4):
                torch.mm(a, b, out=out)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - start)
        best[dtype] = min(timings[1:])  # the first run pays for the kernel selection
    return best[torch.float32] / best[torch.bfloat16]


def step_cosines(actual: torch.Tensor, expected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each real step `(batch, steps, width)` of two encoder outputs (the mask's 1s)."""
    real = mask.bool()
    return torch.nn.functional.cosine_similarity(actual[real].double(), expected[real].double(), dim=-1)


def _frame_gemm_shape(config) -> tuple[int, int, int]:
    """The fc1 GEMM of the model's frame encoder on up to 4 frames: (tokens, hidden) x (hidden, MLP width)."""
    vision = config.vision_config
    tokens = (vision.image_size // vision.patch_size) ** 2 + 1
    return tokens * min(config.frame_chunk_size, 4), vision.hidden_size, int(vision.hidden_size * vision.mlp_ratio)


def _probe_video(config, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed video for the guard when the caller gives none: 8 frames of smooth, normalised random patterns at the
    model's frame size (in the range a video processor produces)."""
    size = config.vision_config.image_size
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randn(1, 8, 3, 8, 8, generator=generator)
    frames = nn.functional.interpolate(coarse.flatten(0, 1), size=(size, size), mode="bicubic", align_corners=False)
    return frames.view(1, 8, 3, size, size).to(device), torch.ones(1, 8, dtype=torch.long, device=device)


class InferencePrecisionMixin:
    """`set_inference_precision` of the BeyondGloss models."""

    inference_precision = "fp32"
    inference_precision_report = None

    def set_inference_precision(self, precision: str = "auto", probe: tuple | None = None) -> str:
        r"""
        Chooses the precision of inference (`generate`, and `forward` without gradients) and returns the one in effect.

        - `"fp32"`: float32 throughout (the default).
        - `"bf16"`: bfloat16 GEMMs and attention in the frame encoder and in mBART (see the module docstring). The
          mBART weights are converted to bfloat16 in place, which halves what each decoding step reads; a later
          `set_inference_precision("fp32")` computes in float32 again with those rounded weights (reload the model for
          the original ones). A warning says when the quality guard fails.
        - `"auto"`: `"bf16"` when this machine's bfloat16 GEMMs of the frame encoder's shape are at least 1.2x faster
          than float32 ones (measured, about 0.1 s for ViT-S) and the quality guard holds; `"fp32"` otherwise.

        The quality guard runs `probe` (a `(pixel_values_videos, video_attention_mask)` pair; by default a fixed
        synthetic video) through the sign encoder, and for a translation model through the mBART encoder as well, in
        float32 and in bfloat16: every real step must keep a cosine of at least 0.999 to the float32 output.
        `model.inference_precision_report` holds what was measured and why the precision was chosen.

        With gradients enabled the frame encoder runs in the model's own type whatever the precision; mBART keeps its
        bfloat16 weights until `set_inference_precision("fp32")`, so train a model that was never switched (or a
        freshly loaded one).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}.")
        if self.training:
            raise ValueError("set_inference_precision is for inference: call model.eval() first.")
        device = next(self.parameters()).device
        report = {"requested": precision, "device": str(device)}
        if precision == "fp32":
            return self._use_precision(None, report | {"reason": "requested"})
        if precision == "auto":
            report["bf16_matmul_speedup"] = round(bf16_matmul_speedup(device, _frame_gemm_shape(self.config)), 2)
            if report["bf16_matmul_speedup"] < AUTO_MIN_SPEEDUP:
                return self._use_precision(None, report | {
                    "reason": f"bf16 GEMMs are not at least {AUTO_MIN_SPEEDUP}x faster than fp32 here"})
        self._use_precision(None, report)  # the guard compares with a float32 run
        report["guard_min_cosine"] = round(self._guard_cosine(probe, device), 6)
        if report["guard_min_cosine"] >= GUARD_MIN_COSINE:
            return self._use_precision(torch.bfloat16, report | {"reason": "guard holds"})
        reason = f"the quality guard failed: an encoder step's cosine to fp32 is {report['guard_min_cosine']}"
        if precision == "auto":
            return self._use_precision(None, report | {"reason": reason})
        logger.warning("bf16 inference as requested, but %s (at least %s expected)", reason, GUARD_MIN_COSINE)
        return self._use_precision(torch.bfloat16, report | {"reason": "requested; " + reason})

    def _use_precision(self, dtype, report: dict) -> str:
        encoder = self if hasattr(self, "vision") else self.sign_encoder
        encoder._inference_dtype = dtype
        mbart = getattr(self, "mbart", None)
        if mbart is not None:
            # Back in full precision, the model's own type (the sign encoder's, which is never converted).
            target = dtype or next(encoder.parameters()).dtype
            for module in mbart.modules():
                # embed_tokens shares its weight with lm_head: converted with it.
                if isinstance(module, nn.Linear) and module.weight.dtype != target:
                    module.to(target)
            self._mbart_dtype = dtype
        self.inference_precision = "fp32" if dtype is None else "bf16"
        self.inference_precision_report = report | {"chosen": self.inference_precision}
        return self.inference_precision

    def mbart_precision(self):
        """The context the mBART calls of inference run in: bfloat16 autocast in "bf16" mode (where the Linear weights
        already are bfloat16, so nothing is cast per call)."""
        dtype = getattr(self, "_mbart_dtype", None)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(next(self.parameters()).device.type, dtype=dtype)

    @torch.no_grad()
    def _guard_cosine(self, probe, device) -> float:
        """The smallest cosine between a float32 and a bfloat16 encoder step on `probe` (see
        `set_inference_precision`); the bfloat16 run leaves the model in float32."""
        pixels, mask = probe if probe is not None else _probe_video(self.config, device)
        encoder = self if hasattr(self, "vision") else self.sign_encoder
        outputs = {}
        for dtype in (None, torch.bfloat16):
            encoder._inference_dtype = dtype
            encoded = encoder(pixels, mask)
            states = [(encoded.last_hidden_state, encoded.attention_mask)]
            mbart = getattr(self, "mbart", None)
            if mbart is not None:  # autocast rounds the float32 weights as the in-place conversion would
                context = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
                with context:
                    text = mbart.get_encoder()(inputs_embeds=encoded.last_hidden_state,
                                               attention_mask=encoded.attention_mask).last_hidden_state
                states.append((text.float(), encoded.attention_mask))
            outputs[dtype] = states
        encoder._inference_dtype = None
        cosines = [step_cosines(low[0], high[0], high[1]).min()
                   for low, high in zip(outputs[torch.bfloat16], outputs[None])]
        return float(min(cosines))

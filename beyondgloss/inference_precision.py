# Copyright 2026 The beyondgloss authors. MIT license.
"""Reduced-precision inference: bfloat16 matrix products, and int8 ones in mBART, where this machine runs them faster,
guarded by a check that the encoder and decoder outputs stay what fp32 gives. Shipped in checkpoints beside
`modeling_beyondgloss.py`.

In "bf16" mode the GEMMs and attention of the DINOv2 frame encoder and of mBART run in bfloat16, while LayerNorms, the
residual streams, the temporal encoder, the heads and the decoder's scores stay float32. On a CPU with bfloat16
instructions (AVX512-BF16, AMX) this is about twice as fast as fp32; on one without, bf16 can be several times
slower, which is why "auto" measures before it chooses (docs/benchmarks.md).

In "int8" mode mBART's Linear layers (all but the LoRA's own small ones) run as int8 GEMMs on the CPU: their weights
are quantized once per output channel (symmetric, scale = max |w| / 127) and each call quantizes its input per tensor
(torch's dynamic-quantization kernels, `torch.ops.quantized.linear_dynamic`). A decoding step reads a quarter of the
bytes of fp32 and half of bf16, and these kernels run small-batch GEMMs far better than bf16 ones do. The float
weights stay as they are (state dicts, saving and training see them; "fp32" is exact again), and with gradients the
layers compute in float. The frame encoder, whose GEMMs are large and compute-bound, runs in bfloat16 where that is
faster here, else float32.
"""

import contextlib
import functools
import time
import warnings
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from transformers.utils import logging

__all__ = ["GUARD_MIN_COSINE", "PRECISIONS", "InferencePrecision", "Int8Linear", "apply_inference_precision",
           "bf16_matmul_speedup", "choose_inference_precision", "int8_unavailable_reason", "step_cosines"]

logger = logging.get_logger(__name__)

PRECISIONS = ("fp32", "bf16", "int8", "auto")
# The quality guard: every real step of the encoder output must keep at least this cosine to the fp32 output. One
# bfloat16 rounding has a relative error of at most 2^-9 (0.2%), so the cosine of one rounded vector is above
# 1 - 2e-6; a chain of GEMMs accumulates such errors into cosines near 0.9999. 0.999 leaves a factor ten for that,
# while a broken conversion (a wrong scale, a lost residual) gives cosines far below it. int8 rounds each weight and
# input by up to half of 1/127 (1/255 for inputs) of its channel's or tensor's largest value, coarser than bf16: the
# full-size model's chain of them measured 0.99965 (docs/benchmarks.md), inside the same bound.
GUARD_MIN_COSINE = 0.999
# "auto" keeps fp32 unless bf16 GEMMs (or int8 decoding steps) are at least this much faster here (below it, the
# rounding buys too little).
AUTO_MIN_SPEEDUP = 1.2
# The decoder tokens of the guard's teacher-forced decoding (the decoder start and this many more).
GUARD_DECODER_TOKENS = 7


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


def int8_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why "int8" inference cannot run on `device` with this torch, or None when it can."""
    if torch.device(device).type != "cpu":
        return f"int8 inference runs on the CPU only (the model is on {device}); use 'bf16' there"
    try:
        torch.ops.quantized.linear_dynamic, torch.ops.quantized.linear_prepack  # noqa: B018 (looked up, not called)
    except (AttributeError, RuntimeError):
        return f"torch {torch.__version__} has no dynamic-quantization kernels (torch.ops.quantized.linear_dynamic)"
    return None


def _int8_packed(weight: torch.Tensor, bias: torch.Tensor | None):
    """`weight` quantized symmetrically per output channel and packed with `bias` for `linear_dynamic`."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127
    with warnings.catch_warnings():  # torch 2.13 warns that quantized tensors will go; the packed kernels stay for now
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        quantized = torch.quantize_per_channel(weight, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0,
                                               torch.qint8)
    return torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.detach().float())


@functools.cache
def _int8_reduce_range() -> bool:
    """Whether the int8 kernels must quantize inputs to 7 bits: on CPUs without VNNI they sum pairs of u8 x s8 products
    in 16 bits, which saturate at 255 * 127 * 2. Decided by a probe whose exact result those sums would cut in half."""
    inner = 256
    packed = _int8_packed(torch.ones(8, inner), None)
    output = torch.ops.quantized.linear_dynamic(torch.full((2, inner), 3.0), packed, False)
    return not torch.allclose(output, torch.full_like(output, 3.0 * inner), rtol=1e-3)


class Int8Linear:
    """The `forward` of one `nn.Linear` in "int8" inference (set on the module instance; deleting it restores the
    class's). Without gradients, on the CPU: an int8 GEMM on weights quantized from the module's current ones, packed
    again whenever they change (loading, a training step). With gradients, or elsewhere: the float layer itself."""

    def __init__(self, module: nn.Linear):
        self.module = module
        self._packed, self._packed_from = None, None

    def __getstate__(self) -> dict:  # copies (deepcopy, pickle) pack again from their own weights when called
        return {"module": self.module, "_packed": None, "_packed_from": None}

    def refresh(self) -> None:
        """Packs the module's weights unless those packed are still theirs (same tensors, unchanged since)."""
        weight, bias = self.module.weight, self.module.bias
        current = (weight, weight._version, bias, None if bias is None else bias._version)
        if self._packed_from is None or any(a is not b if isinstance(a, torch.Tensor) else a != b
                                            for a, b in zip(current, self._packed_from)):
            self._packed = _int8_packed(weight, bias)
            self._packed_from = current

    def __call__(self, hidden_states: torch.Tensor) -> torch.Tensor:
        module = self.module
        if torch.is_grad_enabled() or hidden_states.device.type != "cpu":
            return nn.functional.linear(hidden_states, module.weight, module.bias)
        self.refresh()
        output = torch.ops.quantized.linear_dynamic(hidden_states.float(), self._packed, _int8_reduce_range())
        return output.to(hidden_states.dtype)


def _int8_targets(mbart: nn.Module) -> list[nn.Linear]:
    """mBART's Linear layers but the LoRA's own (rank-r A and B: too small to gain, and trained)."""
    return [module for name, module in mbart.named_modules()
            if isinstance(module, nn.Linear) and not any(part.startswith("lora_") for part in name.split("."))]


def _set_int8(mbart: nn.Module, enabled: bool) -> None:
    """Installs or removes the [`Int8Linear`] forwards of mBART's Linear layers. Each layer keeps its `Int8Linear`
    (`_int8_forward`) once made, so its weights are packed once, and again only when they change."""
    for module in _int8_targets(mbart):
        installed = isinstance(module.__dict__.get("forward"), Int8Linear)
        if enabled and not installed:
            if not isinstance(getattr(module, "_int8_forward", None), Int8Linear):
                module._int8_forward = Int8Linear(module)
            module.forward = module._int8_forward
            module.forward.refresh()
        elif not enabled and installed:
            del module.forward


def _decoder_step_seconds(mbart: nn.Module, rows: int, repeats: int = 3) -> float:
    """The best of `repeats` timings of one decoding step of mBART's decoder (one new token for `rows` beams, 16
    encoder steps): what a step of beam search costs, dominated by reading the decoder's weights."""
    config = mbart.config
    generator = torch.Generator().manual_seed(0)
    parameter = next(mbart.parameters())
    device = parameter.device
    encoded = torch.randn(rows, 16, config.d_model, generator=generator).to(device, parameter.dtype)
    ids = torch.full((rows, 1), config.decoder_start_token_id or 0, dtype=torch.long, device=device)
    timings = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            mbart.get_decoder()(input_ids=ids, encoder_hidden_states=encoded)
            timings.append(time.perf_counter() - start)
    return min(timings[1:])


@dataclass
class InferencePrecision:
    """The precision a model's inference runs in: the frame encoder's compute type (None: the weights' own), mBART's
    setting (None, a dtype for autocast, or "int8"), the name ("fp32", "bf16", "int8") and what was measured."""

    frame_dtype: torch.dtype | None = None
    text: torch.dtype | str | None = None
    report: dict | None = None

    @property
    def name(self) -> str:
        return _precision_name(self.frame_dtype, self.text)

    def text_context(self, device_type: str):
        """The context of mBART's inference calls: bfloat16 autocast in "bf16" mode (where the Linear weights already
        are bfloat16, so nothing is cast per call), else none."""
        if not isinstance(self.text, torch.dtype):
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.text)


def choose_inference_precision(sign_encoder: nn.Module, mbart: nn.Module | None = None, precision: str = "auto",
                               probe: tuple | None = None, decodes_text: bool = False,
                               num_beams: int = 1) -> InferencePrecision:
    r"""
    Chooses and applies the precision of inference for a sign encoder and, when given, the mBART it feeds; returns
    the [`InferencePrecision`] in effect. The models' `set_inference_precision` calls this (its docstring describes
    the modes and the quality guard).

    Args:
        sign_encoder: a [`BeyondGlossSignEncoder`] in eval mode.
        mbart: its mBART (`MBartForConditionalGeneration`), or None for the encoder alone.
        precision: "fp32", "bf16", "int8" or "auto".
        probe: a `(pixel_values_videos, video_attention_mask)` pair for the guard (default: a fixed synthetic video).
        decodes_text: whether mBART's decoder generates (a translation model): the guard and "auto" also check and
            time the decoder.
        num_beams: the beams of a decoding step that "auto" times.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}.")
    if sign_encoder.training:
        raise ValueError("set_inference_precision is for inference: call model.eval() first.")
    parameter = next(sign_encoder.parameters())
    device, dtype = parameter.device, parameter.dtype
    report = {"requested": precision, "device": str(device)}
    apply_inference_precision(sign_encoder, mbart, InferencePrecision())  # measurements and the guard start from fp32
    if precision == "fp32":
        return apply_inference_precision(sign_encoder, mbart, InferencePrecision(report=report | {"reason": "requested"}))
    if precision == "int8" and (reason := _int8_unavailable(mbart, device)) is not None:
        raise ValueError(f"precision='int8': {reason}.")
    if precision == "bf16" and dtype != torch.float32:
        raise ValueError(f"precision='bf16' runs a float32 model under bfloat16 autocast, and this model is "
                         f"{dtype}: call model.float() first (or use 'int8').")
    candidates = _candidates(sign_encoder, mbart, precision, decodes_text, num_beams, report)
    guard = partial(_guard_cosine, sign_encoder, mbart, decodes_text, probe)
    for frame_dtype, text in candidates:
        choice = InferencePrecision(frame_dtype, text)
        cosine = round(guard(frame_dtype, text), 6)
        report["guard_min_cosine"] = report.setdefault("guard_cosines", {})[choice.name] = cosine
        if cosine >= GUARD_MIN_COSINE:
            choice.report = report | {"reason": f"{choice.name}: the guard holds"}
            return apply_inference_precision(sign_encoder, mbart, choice)
        report["reason"] = f"the quality guard failed for {choice.name}: an output step's cosine to fp32 is {cosine}"
        if precision != "auto":
            logger.warning("%s inference as requested, but %s (at least %s expected)", choice.name, report["reason"],
                           GUARD_MIN_COSINE)
            choice.report = report | {"reason": "requested; " + report["reason"]}
            return apply_inference_precision(sign_encoder, mbart, choice)
    reason = report.get("reason", "no reduced precision is faster here")
    return apply_inference_precision(sign_encoder, mbart, InferencePrecision(report=report | {"reason": reason}))


def _int8_unavailable(mbart, device) -> str | None:
    if mbart is None:
        return "int8 applies to mBART's Linear layers and this model has no mBART"
    return int8_unavailable_reason(device)


def _candidates(sign_encoder, mbart, precision: str, decodes_text: bool, num_beams: int, report: dict) -> list[tuple]:
    """The (frame encoder type, mBART setting) pairs to try in turn, measuring what "auto" and "int8" need."""
    if precision == "bf16":
        return [(torch.bfloat16, torch.bfloat16)]
    parameter = next(sign_encoder.parameters())
    report["bf16_matmul_speedup"] = round(bf16_matmul_speedup(parameter.device, _frame_gemm_shape(sign_encoder.config)), 2)
    # bfloat16 autocast casts float32 tensors only: a model of another type keeps it.
    fast = report["bf16_matmul_speedup"] >= AUTO_MIN_SPEEDUP and parameter.dtype == torch.float32
    frame_dtype = torch.bfloat16 if fast else None
    if precision == "int8":
        return [(frame_dtype, "int8")]
    candidates = []
    if decodes_text and _int8_unavailable(mbart, parameter.device) is None:
        fp32_step = _decoder_step_seconds(mbart, num_beams)
        _set_int8(mbart, True)
        int8_step = _decoder_step_seconds(mbart, num_beams)
        _set_int8(mbart, False)
        report["int8_decoder_step_speedup"] = round(fp32_step / int8_step, 2)
        if report["int8_decoder_step_speedup"] >= AUTO_MIN_SPEEDUP:
            candidates.append((frame_dtype, "int8"))
    if frame_dtype is not None:
        candidates.append((frame_dtype, frame_dtype))
    return candidates


def apply_inference_precision(sign_encoder, mbart, choice: InferencePrecision) -> InferencePrecision:
    """Puts the frame encoder in `choice.frame_dtype` (None: the model's own type) and mBART in `choice.text` (None, a
    dtype, or "int8"); completes and returns `choice`."""
    sign_encoder.frame_encoder.compute_dtype = choice.frame_dtype
    if mbart is not None:
        _set_int8(mbart, choice.text == "int8")
        # Back in full precision, the model's own type (the sign encoder's, which is never converted).
        target = choice.text if isinstance(choice.text, torch.dtype) else next(sign_encoder.parameters()).dtype
        for module in mbart.modules():
            # embed_tokens shares its weight with lm_head: converted with it.
            if isinstance(module, nn.Linear) and module.weight.dtype != target:
                module.to(target)
    choice.report = (choice.report or {}) | {
        "chosen": choice.name, "frame_encoder": _precision_name(choice.frame_dtype, choice.frame_dtype),
        "mbart": _precision_name(choice.text, choice.text) if mbart is not None else None}
    return choice


@torch.no_grad()
def _guard_cosine(sign_encoder, mbart, decodes_text: bool, probe, frame_dtype, text) -> float:
    """The smallest cosine between a float32 and a reduced-precision output step on `probe`: the sign encoder's, the
    mBART encoder's and, for a translation model, the teacher-forced decoder's logits. bf16 mBART runs under autocast
    on the float32 weights (which rounds them as the in-place conversion would), so the model is left in float32
    whatever the outcome."""
    device = next(sign_encoder.parameters()).device
    pixels, mask = probe if probe is not None else _probe_video(sign_encoder.config, device)
    outputs = {}
    for setting in ((None, None), (frame_dtype, text)):
        sign_encoder.frame_encoder.compute_dtype = setting[0]
        encoded = sign_encoder(pixels, mask)
        outputs[setting] = [(encoded.last_hidden_state, encoded.attention_mask)]
        if mbart is not None:
            _set_int8(mbart, setting[1] == "int8")
            autocast = isinstance(setting[1], torch.dtype)
            with torch.autocast(device.type, dtype=setting[1]) if autocast else contextlib.nullcontext():
                outputs[setting].extend(_guard_text_outputs(mbart, encoded, decodes_text))
    sign_encoder.frame_encoder.compute_dtype = None
    if mbart is not None:
        _set_int8(mbart, False)
    cosines = [step_cosines(low[0], high[0], high[1]).min()
               for low, high in zip(outputs[(frame_dtype, text)], outputs[(None, None)])]
    return float(min(cosines))


def _guard_text_outputs(mbart: nn.Module, encoded, decodes_text: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The mBART encoder's output on the sign encoder's, and for a translation model the decoder's logits for fixed
    tokens, each with the mask of its real steps, in float32."""
    states = mbart.get_encoder()(inputs_embeds=encoded.last_hidden_state,
                                 attention_mask=encoded.attention_mask).last_hidden_state
    outputs = [(states.float(), encoded.attention_mask)]
    if decodes_text:
        config = mbart.config
        generator = torch.Generator().manual_seed(0)
        tokens = torch.randint(4, config.vocab_size, (states.shape[0], GUARD_DECODER_TOKENS), generator=generator)
        start = torch.full((states.shape[0], 1), config.decoder_start_token_id or 0)
        ids = torch.cat([start, tokens], dim=1).to(states.device)
        logits = mbart(encoder_outputs=(states,), attention_mask=encoded.attention_mask, decoder_input_ids=ids).logits
        outputs.append((logits.float(), torch.ones_like(ids)))
    return outputs


def _precision_name(frame_dtype, text) -> str:
    """"int8" when mBART is quantized, "bf16" when the rest is bfloat16, else "fp32"."""
    if text == "int8":
        return "int8"
    return "bf16" if frame_dtype is not None or text is not None else "fp32"

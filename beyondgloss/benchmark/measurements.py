# Copyright 2026 The beyondgloss authors. MIT license.
"""The benchmark's measurements, one function each, every one run in a child process of its own (`runner.py` spawns
them): see the `beyondgloss.benchmark.runner` docstring for what each measures."""

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..inference_precision import step_cosines
from ..utils.allocator import keep_freed_memory
from .instruments import (
    DTYPES,
    Timer,
    autocast_context,
    count_frame_encoder_flops,
    current_rss_mb,
    measure_matmul_peak,
    memory_fields,
)

__all__ = ["MEASUREMENTS", "build_config", "encoder_rates", "run_child"]


MEASUREMENTS = ("matmul_peak", "pretrain_step", "reference_pretrain_step", "translation", "encoder_inference",
                "long_video", "streaming")


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


def _build(model_class, args, device, training: bool = False):
    """A randomly initialised `model_class` of the benchmark config: `(model, config, image_size)`."""
    config = build_config(args)
    torch.manual_seed(0)
    model = model_class(config).to(device).train(training)
    return model, config, config.vision_config.image_size


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
    rss_after_build = current_rss_mb()

    def step():
        with autocast_context(dtype, device):
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
    timer = Timer(device)
    loss = timer.run(step, max(args.warmup - 1, 0), args.steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"dtype": dtype, **timer.fields(), "loss": round(loss, 4), "trainable_parameters": trainable,
            "matmul_gflop": round(counter.get_total_flops() / 1e9, 3), "keeps_freed_memory": kept_freed_memory,
            **memory_fields(device, rss_after_build)}


def _translation(args, device, precision: str) -> dict:
    from ..modeling_beyondgloss import BeyondGlossForSignTranslation

    model, config, size = _build(BeyondGlossForSignTranslation, args, device)
    video = torch.randn(1, args.translation_frames, 3, size, size, device=device)

    def encoder_outputs():
        encoded = model.sign_encoder(video)
        # mBART's inference context in the precision in effect, as the model's own forward and generate enter it.
        with model.mbart_precision():
            text = model.mbart.get_encoder()(inputs_embeds=encoded.last_hidden_state,
                                             attention_mask=encoded.attention_mask).last_hidden_state
        return {"sign_encoder": (encoded.last_hidden_state, encoded.attention_mask),
                "mbart_encoder": (text.float(), encoded.attention_mask)}

    mode = _set_precision(model, precision, encoder_outputs)
    rss_after_build = current_rss_mb()

    def translate():
        # min = max: beam search cannot stop early, so every precision and every run decodes the same length.
        return model.generate(video, num_beams=args.beams, min_new_tokens=args.new_tokens,
                              max_new_tokens=args.new_tokens)

    timer = Timer(device)
    ids = timer.run(translate, args.warmup, args.steps)
    generated = ids.shape[1] - 1  # the first id is the decoder start (the target language code)
    if generated != args.new_tokens:
        raise RuntimeError(f"translation generated {generated} tokens, not --new_tokens={args.new_tokens}: the "
                           "timing would not be comparable; check the model's generation_config (min/max lengths).")
    return {**mode, **timer.fields(), "generated_tokens": generated, "beams": args.beams,
            "frames": args.translation_frames, **memory_fields(device, rss_after_build)}


def encoder_rates(result: dict) -> dict:
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
    rss_after_build = current_rss_mb()

    def encode():
        with torch.inference_mode():
            return model.encode_frames(pixels)

    def sign_encoder():
        with torch.inference_mode():
            return model(pixels[None])

    frame_timer = Timer(device)
    frame_timer.run(encode, args.warmup, args.steps)
    video_timer = Timer(device)
    video_timer.run(sign_encoder, 0, max(1, args.steps - 1))
    result = {**mode, "frames": frames, **frame_timer.fields(),
              "sign_encoder_times_s": video_timer.fields()["times_s"],
              "flops_per_frame": flops_per_frame, "gflop_per_frame": round(flops_per_frame / 1e9, 3),
              "matmul_peak_gflops": peak["gflops"], "matmul_peak_per_shape_gflops": peak["per_shape_gflops"]}
    return {**result, **encoder_rates(result), **memory_fields(device, rss_after_build)}


def _long_video(args, device) -> dict:
    from ..modeling_beyondgloss import BeyondGlossModel

    model, config, size = _build(BeyondGlossModel, args, device)
    video = torch.randn(1, args.long_frames, 3, size, size, device=device)
    rss_before = current_rss_mb()
    start = time.perf_counter()
    with torch.inference_mode():
        output = model(video)
    seconds = time.perf_counter() - start
    return {"frames": args.long_frames, "chunk_size": config.frame_chunk_size, "seconds": round(seconds, 2),
            "steps": output.last_hidden_state.shape[1], "input_mb": round(video.numel() * 4 / 2**20, 1),
            **memory_fields(device, rss_before)}


def run_child(args) -> dict:
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
    if args.child == "streaming":
        from .streaming import streaming

        return streaming(args, device, precision)
    return _long_video(args, device)

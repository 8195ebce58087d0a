"""Every speed optimisation of the sign video encoder computes what the straightforward path computes.

The straightforward path is `beyondgloss.benchmark.reference_impl.ReferenceSignEncoder`: the authors' computation (fused qkv
with shared-A LoRA, plain softmax attention, every token of every block, autograd everywhere, one pass over all
frames, the band mask rebuilt in Python). Both sides run in float64, and every output and gradient is held to
`SAME_MATH_RTOL` (1e-10) of its largest entry (see `beyondgloss.testing.assert_same_math`): float64 round-off is about
1e-14 here whatever the CPU's kernels or thread count, so a larger difference is a difference in the math; even a
float32 rounding on the way can show (RoPE angles computed in float32 for a float64 model failed these tests).
`test_float32_fast_path_is_as_accurate_as_the_reference` checks the dtype training uses, with a tolerance derived
from the straightforward path's own float32 error.
"""

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from beyondgloss.benchmark import count_frame_encoder_flops
from beyondgloss.dinov2_fast_path import vision_block
from beyondgloss.frame_encoder import BeyondGlossFrameEncoder
from beyondgloss.modeling_beyondgloss import BeyondGlossModel
from beyondgloss.temporal_encoder import BandMaskCache, BeyondGlossTemporalAttention
from beyondgloss.benchmark.reference_impl import ReferenceSignEncoder, local_1d_pattern
from beyondgloss.testing import assert_same_math, tiny_config

# Gradients that are zero in exact arithmetic, so pure round-off: the biases that shift every frame's feature alike
# before the training-mode BatchNorm (its batch mean removes them: the DINOv2 output norm's and the projection's),
# and the key biases of the DINOv2 softmax attention (they add the same q.b to every score of a row).
ZERO_IN_EXACT_ARITHMETIC = re.compile(
    r"frame_encoder\.vision\.layernorm\.bias|frame_proj\.bias|frame_encoder\.vision\.encoder\.layer\.\d+\.attention\.k_proj\.bias")
OUTPUT_KEYS = ("last_hidden_state", "attention_mask", "hand_predictions", "description_states", "frame_features")
FLOAT_OUTPUT_KEYS = ("last_hidden_state", "hand_predictions", "description_states", "frame_features")
CONFIGS = [dict(vision_tuning="lora"), dict(vision_tuning="lora", reference_compat=True), dict(vision_tuning="full"),
           dict(vision_tuning="frozen")]
CONFIG_IDS = ["lora", "lora-reference-compat", "full", "frozen"]


def _config(**overrides):
    """3 ViT blocks (so there is a frozen prefix), LoRA on the top 2, no dropout (so both paths are deterministic),
    chunks of 5 frames (so 11 frames span 3 chunks)."""
    vision = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                  image_size=28, use_mask_token=False)
    settings = dict(vision_config=vision, vision_lora_layers=[1, 2], temporal_dropout=0.0, drop_path_rate=0.0,
                    head_dropout=0.0, vision_lora_dropout=0.0, frame_chunk_size=5)
    settings.update(overrides)
    return tiny_config(**settings)


def _model(config, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = BeyondGlossModel(config).train()
    with torch.no_grad():
        # LoRA B starts at zero and both LayerScales at a constant (the temporal one at 1e-5, which scales the
        # temporal attention, and any error in it, down 100,000 times): draw them so that every branch matters.
        for name, parameter in model.named_parameters():
            if name.endswith(("_B", "lambda1", "layer_scale")):
                parameter.normal_(0.0, 0.1)
    return model.to(dtype)


def _videos(seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(2, 11, 3, 28, 28, generator=generator, dtype=dtype)
    mask = torch.tensor([[1] * 11, [1] * 6 + [0] * 5])
    pixels[1, 6:] = 0
    return pixels, mask


def _loss(output, seed=2):
    """A random linear functional of every float output, so every gradient path is exercised (drawn in float32, so
    that float32 and float64 runs take the same one)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for key in FLOAT_OUTPUT_KEYS:
        value = output[key]
        total = total + (value * torch.randn(value.shape, generator=generator).to(value.dtype)).sum()
    return total


def _gradients(module):
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def _gradient_scales(expected: dict) -> dict:
    """Each gradient is compared relative to its own largest entry, or, when it is zero in exact arithmetic, to the
    model's largest gradient entry (the magnitudes its round-off comes from)."""
    largest = max(g.abs().max().item() for g in expected.values())
    return {name: largest if ZERO_IN_EXACT_ARITHMETIC.fullmatch(name) else g.abs().max().item()
            for name, g in expected.items()}


def _assert_gradients_close(actual: dict, expected: dict):
    assert set(actual) == set(expected), set(actual) ^ set(expected)
    for name, scale in _gradient_scales(expected).items():
        assert_same_math(actual[name], expected[name], scale=scale, msg=f"gradient of {name}")


def _assert_outputs_close(actual, expected):
    assert torch.equal(actual["attention_mask"], expected["attention_mask"])
    for key in FLOAT_OUTPUT_KEYS:
        assert_same_math(actual[key], expected[key], msg=key)


@pytest.mark.parametrize("overrides", CONFIGS, ids=CONFIG_IDS)
def test_encoder_matches_reference_forward_and_backward(overrides):
    """All optimisations together (packing, chunks, frozen prefix without autograd, CLS-only last block, fused
    qkv GEMM, SDPA, cached band mask) against the authors' computation, train mode (BatchNorm batch statistics)."""
    model = _model(_config(**overrides))
    reference = ReferenceSignEncoder.from_beyondgloss(model)
    pixels, mask = _videos()
    ours, theirs = model(pixels, mask), reference(pixels, mask)
    _assert_outputs_close(ours, theirs)
    with torch.no_grad():
        packed = pixels[mask.bool()]
        assert_same_math(model.encode_frames(packed), reference.encode_frames(packed), msg="DINOv2 CLS features")
    _loss(ours).backward()
    _loss(theirs).backward()
    _assert_gradients_close(_gradients(model.sign_encoder), reference.to_beyondgloss_names(_gradients(reference)))
    trainable_vision = [n for n in _gradients(model.sign_encoder) if n.startswith("frame_encoder.")]
    assert bool(trainable_vision) == (overrides["vision_tuning"] != "frozen")


# float32 round-off bounds of two summation orders of the same sums differ by small constant factors; see below.
FLOAT32_FACTOR = 16


def _float32_errors(overrides) -> list[tuple[str, float, float, float]]:
    """(name, error of the optimised float32 path, error of the straightforward float32 path, scale) for every
    float output and gradient, errors measured against the float64 computation on the same float32 weights and
    inputs (which is exact to 1e-14, see the module docstring)."""
    model = _model(_config(**overrides), dtype=torch.float32)
    pixels, mask = _videos(dtype=torch.float32)
    results = []
    for encoder, inputs in ((model.sign_encoder, pixels), (ReferenceSignEncoder.from_beyondgloss(model), pixels),
                            (ReferenceSignEncoder.from_beyondgloss(copy.deepcopy(model).double()), pixels.double())):
        output = encoder(inputs, mask)
        _loss(output).backward()
        gradients = _gradients(encoder)
        if isinstance(encoder, ReferenceSignEncoder):
            gradients = encoder.to_beyondgloss_names(gradients)
        results.append({**{key: output[key] for key in FLOAT_OUTPUT_KEYS}, **gradients})
    fast, straightforward, exact = results
    scales = {key: exact[key].abs().max().item() for key in FLOAT_OUTPUT_KEYS}
    scales.update(_gradient_scales({name: g for name, g in exact.items() if name not in FLOAT_OUTPUT_KEYS}))
    return [(name, (fast[name].double() - exact[name]).abs().max().item(),
             (straightforward[name].double() - exact[name]).abs().max().item(), scale)
            for name, scale in scales.items()]


# A smoke check: the shared-A LoRA with the reference's rules, and autograd through every DINOv2 block.
@pytest.mark.parametrize("overrides", [CONFIGS[1], CONFIGS[2]], ids=[CONFIG_IDS[1], CONFIG_IDS[2]])
def test_float32_fast_path_is_as_accurate_as_the_reference(overrides):
    """A float32 smoke check (the dtype training uses): the optimised encoder is about as close to the exact result
    as the straightforward one, for every output and gradient.

    The tolerance is derived, not fitted to a CPU: the straightforward path's own float32 error, measured here on the
    machine at hand, is float32's epsilon times the conditioning of this very computation (the training-mode
    BatchNorm divides by the spread of 17 frames' features, its backward cancels) with this CPU's kernels. The
    optimised path does the same operations in other orders and blockings (chunks, fused and low-rank-accumulated
    GEMMs, SDPA, folded LayerScale), whose standard round-off bounds differ from the straightforward ones by small
    constant factors, so its error may be `FLOAT32_FACTOR` (16) times as large, and at least 16 float32 epsilons of
    the result's scale (in case the straightforward path happens to be nearly exact). A precision loss on the way
    (a bfloat16 or float16 cast, epsilon 2^15 or 2^12 times float32's) lands orders of magnitude above; the math
    itself is checked in float64 by the tests above."""
    epsilon = torch.finfo(torch.float32).eps
    too_far = [f"{name}: {fast:.3g} vs {straightforward:.3g} (scale {scale:.3g})"
               for name, fast, straightforward, scale in _float32_errors(overrides)
               if not fast <= FLOAT32_FACTOR * max(straightforward, epsilon * scale)]
    assert not too_far, "float32 errors against float64, optimised vs straightforward: " + "; ".join(too_far)


def test_inference_matches_reference_with_folded_lora():
    """In eval without autograd the LoRA is folded into the frozen weights; the result is the same map."""
    model = _model(_config(vision_lora_dropout=0.1)).eval()
    reference = ReferenceSignEncoder.from_beyondgloss(model).eval()
    pixels, mask = _videos()
    with torch.inference_mode():
        folded = model(pixels, mask)
        straightforward = reference(pixels, mask)
    unfolded = model(pixels, mask)  # autograd on: the low-rank branches run separately
    _assert_outputs_close(folded, straightforward)
    _assert_outputs_close(folded, unfolded)


def _encode_with_grads(model, frames):
    model.zero_grad(set_to_none=True)
    features = model.encode_frames(frames)
    (features * torch.linspace(-1, 1, features.numel(), dtype=features.dtype).view_as(features)).sum().backward()
    return features.detach(), _gradients(model)


def test_chunked_encoding_equals_unchunked():
    model = _model(_config(frame_chunk_size=1000))
    frames = _videos()[0][0]
    whole, whole_grads = _encode_with_grads(model, frames)
    for chunk in (1, 4):
        model.config.frame_chunk_size = chunk
        chunked, chunked_grads = _encode_with_grads(model, frames)
        assert_same_math(chunked, whole, msg=f"chunks of {chunk}")
        _assert_gradients_close(chunked_grads, whole_grads)


def test_cls_only_last_block_equals_full_block():
    model = _model(_config())
    hidden = torch.randn(3, 5, 32, dtype=torch.float64, requires_grad=True)
    results = []
    for cls_only in (True, False):
        model.zero_grad(set_to_none=True)
        hidden.grad = None
        (parts, weights), = model.sign_encoder.frame_encoder.block_operands([2])
        row = vision_block(parts, hidden, weights, cls_only)[:, :1]
        (row * torch.linspace(-1, 1, row.numel(), dtype=row.dtype).view_as(row)).sum().backward()
        results.append((row.detach(), hidden.grad.clone(), _gradients(model)))
    (cls_row, cls_input_grad, cls_grads), (full_row, full_input_grad, full_grads) = results
    assert_same_math(cls_row, full_row, msg="CLS row")
    assert_same_math(cls_input_grad, full_input_grad, msg="input gradient")
    _assert_gradients_close(cls_grads, full_grads)


def test_frozen_prefix_without_autograd_equals_full_autograd(monkeypatch):
    assert BeyondGlossModel(_config(vision_tuning="frozen")).sign_encoder.frame_encoder.first_trainable_block() == 3
    assert BeyondGlossModel(_config(vision_tuning="full")).sign_encoder.frame_encoder.first_trainable_block() == 0
    model = _model(_config())
    # Block 0 and the embeddings have no trainable weight.
    assert model.sign_encoder.frame_encoder.first_trainable_block() == 1
    frames = _videos()[0][0]
    prefix_off, prefix_off_grads = _encode_with_grads(model, frames)
    monkeypatch.setattr(BeyondGlossFrameEncoder, "first_trainable_block", lambda self: 0)
    full, full_grads = _encode_with_grads(model, frames)
    assert_same_math(prefix_off, full, msg="features")
    _assert_gradients_close(prefix_off_grads, full_grads)


def test_sdpa_temporal_attention_equals_plain_attention_with_python_mask():
    """The temporal attention (SDPA, cached band, interleaved RoPE) against the reference (plain softmax, band
    rebuilt by a Python loop, de-interleaved RoPE), forward and backward."""
    config = _config()
    torch.manual_seed(0)
    ours = BeyondGlossTemporalAttention(config).double()
    from beyondgloss.benchmark.reference_impl import _TemporalAttention

    theirs = _TemporalAttention(config.frame_dim, config.temporal_heads, config.temporal_window).double()
    theirs.load_state_dict(ours.state_dict())
    hidden = torch.randn(2, 9, config.frame_dim, dtype=torch.float64)
    key_valid = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    band = BandMaskCache(config.temporal_window)(9, hidden.device)
    bias = ((band[None] & key_valid[:, None]) | torch.eye(9, dtype=torch.bool))[:, None]
    weights = torch.randn(2, 9, config.frame_dim, dtype=torch.float64)
    (ours(hidden, bias) * weights).sum().backward()
    (theirs(hidden, key_valid) * weights).sum().backward()
    assert_same_math(ours(hidden, bias), theirs(hidden, key_valid), msg="attention output")
    _assert_gradients_close(_gradients(ours), _gradients(theirs))


@pytest.mark.parametrize("length", [1, 2, 7, 13])
def test_cached_band_mask_equals_python_loop(length):
    cache = BandMaskCache(7)
    mask = cache(length, torch.device("cpu"))
    assert torch.equal(mask, local_1d_pattern(length, 7))
    assert cache(length, torch.device("cpu")) is mask  # built once per length


def test_frozen_feature_cache_equals_uncached_forward_and_backward():
    model = _model(_config(vision_tuning="frozen"))
    pixels, mask = _videos()
    uncached = model(pixels, mask)
    _loss(uncached).backward()
    uncached_grads = _gradients(model)
    cache = model.enable_frozen_feature_cache()
    for epoch in range(2):
        model.zero_grad(set_to_none=True)
        cached = model(pixels, mask)
        _loss(cached).backward()
        _assert_outputs_close(cached, uncached)
        _assert_gradients_close(_gradients(model), uncached_grads)
    assert (cache.misses, cache.hits, len(cache)) == (2, 2, 2)
    # The second video alone (another batch composition) is still a hit.
    model(pixels[1:, :6], mask[1:, :6])
    assert cache.hits == 3


def test_frozen_feature_cache_misses_on_changed_pixels_and_weights():
    model = _model(_config(vision_tuning="frozen"))
    cache = model.enable_frozen_feature_cache()
    pixels, mask = _videos()
    model(pixels, mask)
    augmented = pixels.clone()
    augmented[0, 0, 0, 0, 0] += 1.0  # one changed value: another video as far as the cache knows
    model(augmented, mask)
    assert (cache.hits, cache.misses) == (1, 3)
    with torch.no_grad():
        model.sign_encoder.frame_encoder.vision.layernorm.weight.mul_(2.0)  # an in-place weight change (optimizer step, load_state_dict)
    changed = model(pixels, mask)
    assert cache.misses == 5
    model.disable_frozen_feature_cache()
    _assert_outputs_close(changed, model(pixels, mask))


def test_frozen_feature_cache_is_bypassed_when_the_frame_encoder_trains_and_bounded_in_size():
    model = _model(_config(vision_tuning="lora"))
    cache = model.enable_frozen_feature_cache()
    model(*_videos())
    assert cache.hits + cache.misses == 0  # LoRA trains: features need their autograd graph
    frozen = _model(_config(vision_tuning="frozen"))
    room = 11 * 32 * torch.float64.itemsize  # one 11-frame video's CLS features
    small = frozen.enable_frozen_feature_cache(max_megabytes=room / 2**20)
    frozen(*_videos())
    assert len(small) == 1
    with pytest.raises(ValueError, match="max_megabytes"):
        frozen.enable_frozen_feature_cache(max_megabytes=0)


def _vit_flops(config, cls_only_last: bool) -> int:
    """FLOPs of the ViT per frame, counted by hand: patch embedding, q/k/v/out, attention, MLP, LoRA (2 per MAC)."""
    vision = config.vision_config
    d, m, r = vision.hidden_size, int(vision.hidden_size * vision.mlp_ratio), config.vision_lora_rank
    t = (vision.image_size // vision.patch_size) ** 2 + 1
    flops = 2 * (t - 1) * 3 * vision.patch_size**2 * d
    lora_layers = set(config.vision_lora_layers) if config.vision_tuning == "lora" else set()
    for index in range(vision.num_hidden_layers):
        rows = 1 if cls_only_last and index == vision.num_hidden_layers - 1 else t  # query / output rows
        flops += 2 * d * d * (rows + 2 * t)  # q for the output rows, k and v for every token
        flops += 2 * 2 * rows * t * d  # scores and weighted values
        flops += 2 * rows * (d * d + 2 * d * m)  # output projection, fc1, fc2
        if index in lora_layers:
            flops += 2 * r * (t * d + d * (rows + 2 * t))  # shared A over every token, B for q (rows) and k, v (t)
            flops += 2 * r * rows * (d + d + d + m + m + d)  # out, fc1, fc2: A and B
    return flops


def test_flop_count_matches_hand_count_and_cls_only_saves_work():
    frozen = _model(_config(vision_tuning="frozen"))
    assert count_frame_encoder_flops(frozen) == _vit_flops(frozen.config, cls_only_last=True)
    assert count_frame_encoder_flops(ReferenceSignEncoder.from_beyondgloss(frozen)) == _vit_flops(
        frozen.config, cls_only_last=False)
    model = _model(_config())
    reference = ReferenceSignEncoder.from_beyondgloss(model)
    assert count_frame_encoder_flops(reference) == _vit_flops(model.config, cls_only_last=False)
    # With LoRA, inference folds it into the weights once per chunk; per frame the CLS-only block still saves work.
    assert count_frame_encoder_flops(model, frames=8) < count_frame_encoder_flops(reference, frames=8)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_lora_dropout_mask_drops_with_its_probability_and_stays_unbiased(p):
    """The CPU mask of the DINOv2 LoRA dropout (16-bit integers, four per 64-bit draw): its keep rate is within
    5 standard deviations of the keep probability it reports, which is within 2^-17 of 1 - p, neighbouring entries
    (the lanes of one draw, and the last of one draw with the first of the next) are uncorrelated, and the masked
    low-rank product is unbiased."""
    from beyondgloss.dinov2_fast_path import BeyondGlossVisionLoRA, dropout_keep_mask

    torch.manual_seed(0)
    reference = torch.empty(1000, 999)
    keep, keep_probability = dropout_keep_mask(reference, p)
    assert keep.shape == reference.shape and keep.dtype == torch.bool
    assert abs(keep_probability - (1 - p)) <= 2**-17
    n = keep.numel()
    sigma = (keep_probability * (1 - keep_probability) / n) ** 0.5
    assert abs(keep.float().mean().item() - keep_probability) < 5 * sigma
    for lane in range(4):  # each 16-bit lane of a draw, the one holding the sign bit included (n / 4 entries each)
        assert abs(keep.flatten()[lane::4].float().mean().item() - keep_probability) < 5 * 2 * sigma, lane
    flat = keep.flatten().float() - keep_probability
    for lag in (1, 2, 3, 4):
        correlation = (flat[:-lag] * flat[lag:]).mean().item() / (keep_probability * (1 - keep_probability))
        assert abs(correlation) < 5 / n**0.5, (lag, correlation)

    lora = BeyondGlossVisionLoRA(hidden_size=8, mlp_size=16, rank=4, alpha=4.0, dropout=p).train()
    torch.nn.init.normal_(lora.qkv_A)
    states = torch.randn(4, 8)
    exact = lora.eval().low_rank(states, "qkv")
    lora.train()
    draws = 4000
    average = torch.stack([lora.low_rank(states, "qkv") for _ in range(draws)]).mean(0)
    # Entry (n, r) of one draw is (scaling / q) sum_j A_rj m_j x_nj with independent m_j ~ Bernoulli(q): its variance
    # is scaling^2 (1 - q) / q sum_j A_rj^2 x_nj^2; the average of the draws is within 5 of its standard deviations.
    variance = lora.scaling**2 * (1 - keep_probability) / keep_probability * (states**2) @ (lora.qkv_A.detach()**2).t()
    assert ((average - exact).abs() <= 5 * (variance / draws).sqrt()).all()


def _saved_bytes_and_gradients(model, pixels, mask):
    """Bytes autograd keeps for the backward during the forward, and the gradients after it."""
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(3)  # the LoRA dropout masks
    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(pixels, mask)
    _loss(output).backward()
    return sum(saved), output, _gradients(model)


def test_activation_checkpointing_recomputes_the_same_values_and_keeps_less():
    """With `activation_checkpointing_enable()` the trainable DINOv2 blocks keep only each chunk's input and are
    recomputed in the backward with the same dropout masks: the same outputs and gradients, and autograd
    keeps less than half the bytes (28 px frames: 5 tokens of width 32)."""
    model = _model(_config(vision_lora_dropout=0.1))
    pixels, mask = _videos()
    plain_bytes, plain, plain_grads = _saved_bytes_and_gradients(model, pixels, mask)
    model.activation_checkpointing_enable()
    assert model.sign_encoder.frame_encoder.gradient_checkpointing
    checkpointed_bytes, checkpointed, checkpointed_grads = _saved_bytes_and_gradients(model, pixels, mask)
    _assert_outputs_close(checkpointed, plain)
    _assert_gradients_close(checkpointed_grads, plain_grads)
    # The chunk inputs checkpointing keeps are held by the checkpoint, outside the hooks: count them here.
    frames, tokens, width = int(mask.sum()), 5, model.config.vision_config.hidden_size
    kept_inputs = frames * tokens * width * pixels.element_size()
    assert checkpointed_bytes + kept_inputs < plain_bytes / 2, (checkpointed_bytes, kept_inputs, plain_bytes)

"""Every speed optimisation of the sign video encoder computes what the straightforward path computes.

The straightforward path is `beyondgloss.reference_impl.ReferenceSignEncoder`: the authors' computation (fused qkv
with shared-A LoRA, plain softmax attention, every token of every block, autograd everywhere, one pass over all
frames, the band mask rebuilt in Python). Tolerances (fp32): outputs within rtol 1e-4 / atol 5e-5 (every output
follows the training-mode BatchNorm, which divides the frame features' round-off, about 4e-7 here, by small
per-channel batch deviations); each gradient within 1e-4 of its own largest entry (plus 1e-7), since sums of many
terms are reordered; see `_assert_gradients_close` for gradients that are zero in exact arithmetic.
"""

import pytest
import torch
import torch.nn.functional as F

from beyondgloss.benchmark import count_frame_encoder_flops
from beyondgloss.modeling_beyondgloss import BandMaskCache, BeyondGlossModel, BeyondGlossTemporalAttention
from beyondgloss.reference_impl import ReferenceSignEncoder, local_1d_pattern
from beyondgloss.testing import tiny_config

OUTPUT_TOLERANCE = dict(rtol=1e-4, atol=5e-5)
GRADIENT_TOLERANCE = 1e-4
ZERO_IN_EXACT_ARITHMETIC = {"frame_proj.bias"}
OUTPUT_KEYS = ("last_hidden_state", "attention_mask", "hand_predictions", "description_states", "frame_features")


def _config(**overrides):
    """3 ViT blocks (so there is a frozen prefix), LoRA on the top 2, no dropout (so both paths are deterministic),
    chunks of 5 frames (so 11 frames span 3 chunks)."""
    vision = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                  image_size=28, use_mask_token=False)
    settings = dict(vision_config=vision, vision_lora_layers=[1, 2], temporal_dropout=0.0, drop_path_rate=0.0,
                    head_dropout=0.0, vision_lora_dropout=0.0, frame_chunk_size=5)
    settings.update(overrides)
    return tiny_config(**settings)


def _model(config, seed=0):
    torch.manual_seed(seed)
    model = BeyondGlossModel(config).train()
    with torch.no_grad():  # LoRA B starts at zero and LayerScale at a constant: make both matter
        for name, parameter in model.named_parameters():
            if name.endswith("_B") or name.endswith("lambda1"):
                parameter.normal_(0.0, 0.1)
    return model


def _videos(seed=1):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(2, 11, 3, 28, 28, generator=generator)
    mask = torch.tensor([[1] * 11, [1] * 6 + [0] * 5])
    pixels[1, 6:] = 0
    return pixels, mask


def _loss(output, seed=2):
    """A random linear functional of every float output, so every gradient path is exercised."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for key in ("last_hidden_state", "hand_predictions", "description_states", "frame_features"):
        value = output[key]
        total = total + (value * torch.randn(value.shape, generator=generator)).sum()
    return total


def _gradients(module):
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def _assert_gradients_close(actual: dict, expected: dict):
    assert set(actual) == set(expected), set(actual) ^ set(expected)
    # Each gradient is held to 1e-4 of its own largest entry or of 10% of the model's largest, whichever is larger.
    # A gradient that is zero in exact arithmetic (the bias before a training-mode BatchNorm) is pure round-off:
    # it is held to 1e-4 of the model's largest gradient entry.
    largest = max(g.abs().max().item() for g in expected.values())
    for name, reference in expected.items():
        scale = largest if name in ZERO_IN_EXACT_ARITHMETIC else max(reference.abs().max().item(), 0.1 * largest)
        limit = GRADIENT_TOLERANCE * scale + 1e-7
        difference = (actual[name] - reference).abs().max().item()
        assert difference <= limit, f"{name}: gradient differs by {difference:.3g} (allowed {limit:.3g})"


def _assert_outputs_close(actual, expected):
    for key in OUTPUT_KEYS:
        torch.testing.assert_close(actual[key].float(), expected[key].float(), **OUTPUT_TOLERANCE, msg=key)


@pytest.mark.parametrize("overrides", [
    dict(vision_tuning="lora"),
    dict(vision_tuning="lora", reference_compat=True),
    dict(vision_tuning="full"),
    dict(vision_tuning="frozen"),
], ids=["lora", "lora-reference-compat", "full", "frozen"])
def test_encoder_matches_reference_forward_and_backward(overrides):
    """All optimisations together (packing, chunks, frozen prefix without autograd, CLS-only last block, fused
    qkv GEMM, SDPA, cached band mask) against the authors' computation, train mode (BatchNorm batch statistics)."""
    model = _model(_config(**overrides))
    reference = ReferenceSignEncoder.from_beyondgloss(model)
    pixels, mask = _videos()
    ours, theirs = model(pixels, mask), reference(pixels, mask)
    _assert_outputs_close(ours, theirs)
    with torch.no_grad():  # before the BatchNorm the frame features agree much more closely
        packed = pixels[mask.bool()]
        torch.testing.assert_close(model.encode_frames(packed), reference.encode_frames(packed), rtol=1e-5, atol=2e-6)
    _loss(ours).backward()
    _loss(theirs).backward()
    _assert_gradients_close(_gradients(model), reference.to_beyondgloss_names(_gradients(reference)))
    trainable_vision = [n for n in _gradients(model) if n.startswith("vision")]
    assert bool(trainable_vision) == (overrides["vision_tuning"] != "frozen")


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
    (features * torch.linspace(-1, 1, features.numel()).view_as(features)).sum().backward()
    return features.detach(), _gradients(model)


def test_chunked_encoding_equals_unchunked():
    model = _model(_config(frame_chunk_size=1000))
    frames = _videos()[0][0]
    whole, whole_grads = _encode_with_grads(model, frames)
    for chunk in (1, 4):
        model.config.frame_chunk_size = chunk
        chunked, chunked_grads = _encode_with_grads(model, frames)
        torch.testing.assert_close(chunked, whole, **OUTPUT_TOLERANCE)
        _assert_gradients_close(chunked_grads, whole_grads)


def test_cls_only_last_block_equals_full_block():
    model = _model(_config())
    hidden = torch.randn(3, 5, 32, requires_grad=True)
    results = []
    for cls_only in (True, False):
        model.zero_grad(set_to_none=True)
        hidden.grad = None
        row = model._vision_block(2, hidden, cls_only, model._block_weights(2))[:, :1]
        (row * torch.linspace(-1, 1, row.numel()).view_as(row)).sum().backward()
        results.append((row.detach(), hidden.grad.clone(), _gradients(model)))
    (cls_row, cls_input_grad, cls_grads), (full_row, full_input_grad, full_grads) = results
    torch.testing.assert_close(cls_row, full_row, **OUTPUT_TOLERANCE)
    torch.testing.assert_close(cls_input_grad, full_input_grad, **OUTPUT_TOLERANCE)
    _assert_gradients_close(cls_grads, full_grads)


def test_frozen_prefix_without_autograd_equals_full_autograd(monkeypatch):
    assert BeyondGlossModel(_config(vision_tuning="frozen"))._first_trainable_block() == 3
    assert BeyondGlossModel(_config(vision_tuning="full"))._first_trainable_block() == 0
    model = _model(_config())
    assert model._first_trainable_block() == 1  # block 0 and the embeddings have no trainable weight
    frames = _videos()[0][0]
    prefix_off, prefix_off_grads = _encode_with_grads(model, frames)
    monkeypatch.setattr(BeyondGlossModel, "_first_trainable_block", lambda self: 0)
    full, full_grads = _encode_with_grads(model, frames)
    torch.testing.assert_close(prefix_off, full, **OUTPUT_TOLERANCE)
    _assert_gradients_close(prefix_off_grads, full_grads)


def test_sdpa_temporal_attention_equals_plain_attention_with_python_mask():
    """The temporal attention (SDPA, cached band, interleaved RoPE) against the reference (plain softmax, band
    rebuilt by a Python loop, de-interleaved RoPE), forward and backward."""
    config = _config()
    torch.manual_seed(0)
    ours = BeyondGlossTemporalAttention(config)
    from beyondgloss.reference_impl import _TemporalAttention

    theirs = _TemporalAttention(config.frame_dim, config.temporal_heads, config.temporal_window)
    theirs.load_state_dict(ours.state_dict())
    hidden = torch.randn(2, 9, config.frame_dim)
    key_valid = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    band = BandMaskCache(config.temporal_window)(9, hidden.device)
    bias = ((band[None] & key_valid[:, None]) | torch.eye(9, dtype=torch.bool))[:, None]
    weights = torch.randn(2, 9, config.frame_dim)
    (ours(hidden, bias) * weights).sum().backward()
    (theirs(hidden, key_valid) * weights).sum().backward()
    torch.testing.assert_close(ours(hidden, bias), theirs(hidden, key_valid), **OUTPUT_TOLERANCE)
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
        model.vision.layernorm.weight.mul_(2.0)  # an in-place weight change (optimizer step, load_state_dict)
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
    small = frozen.enable_frozen_feature_cache(max_megabytes=(11 * 32 * 4) / 2**20)  # room for one 11-frame video
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
    """The CPU mask of the DINOv2 LoRA dropout (16-bit integers, three per 64-bit draw): its keep rate is within
    5 standard deviations of the keep probability it reports, which is within 2^-17 of 1 - p, neighbouring entries
    (the lanes of one draw) are uncorrelated, and the masked low-rank product is unbiased."""
    from beyondgloss.modeling_beyondgloss import BeyondGlossVisionLoRA, dropout_keep_mask

    torch.manual_seed(0)
    reference = torch.empty(1000, 999)
    keep, keep_probability = dropout_keep_mask(reference, p)
    assert keep.shape == reference.shape and keep.dtype == torch.bool
    assert abs(keep_probability - (1 - p)) <= 2**-17
    n = keep.numel()
    sigma = (keep_probability * (1 - keep_probability) / n) ** 0.5
    assert abs(keep.float().mean().item() - keep_probability) < 5 * sigma
    flat = keep.flatten().float() - keep_probability
    for lag in (1, 2, 3):
        correlation = (flat[:-lag] * flat[lag:]).mean().item() / (keep_probability * (1 - keep_probability))
        assert abs(correlation) < 5 / n**0.5, (lag, correlation)

    lora = BeyondGlossVisionLoRA(hidden_size=8, mlp_size=16, rank=4, alpha=4.0, dropout=p).train()
    torch.nn.init.normal_(lora.qkv_A)
    states = torch.randn(4, 8)
    exact = lora.eval().low_rank(states, "qkv")
    lora.train()
    average = torch.stack([lora.low_rank(states, "qkv") for _ in range(4000)]).mean(0)
    torch.testing.assert_close(average, exact, atol=0.1 * exact.abs().max().item(), rtol=0)


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
    recomputed in the backward with the same dropout masks: outputs and gradients equal (rtol 1e-6), and autograd
    keeps less than half the bytes (28 px frames: 5 tokens of width 32)."""
    model = _model(_config(vision_lora_dropout=0.1))
    pixels, mask = _videos()
    plain_bytes, plain, plain_grads = _saved_bytes_and_gradients(model, pixels, mask)
    model.activation_checkpointing_enable()
    assert model.gradient_checkpointing
    checkpointed_bytes, checkpointed, checkpointed_grads = _saved_bytes_and_gradients(model, pixels, mask)
    for key in OUTPUT_KEYS:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-6, atol=1e-7)
    assert set(checkpointed_grads) == set(plain_grads)
    for name, gradient in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], gradient, rtol=1e-6, atol=1e-7, msg=name)
    # The chunk inputs checkpointing keeps are held by the checkpoint, outside the hooks: count them here.
    frames, tokens, width = int(mask.sum()), 5, model.config.vision_config.hidden_size
    kept_inputs = frames * tokens * width * 4
    assert checkpointed_bytes + kept_inputs < plain_bytes / 2, (checkpointed_bytes, kept_inputs, plain_bytes)

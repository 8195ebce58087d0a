"""Tiny random configurations and float64 comparisons for tests, examples and the demo (nothing downloads)."""

import torch

from .configuration_beyondgloss import BeyondGlossConfig

__all__ = ["SAME_MATH_RTOL", "assert_same_math", "tiny_config"]

# Two float64 computations of the same function differ by round-off of order n * 2^-53 * (condition factor) of the
# magnitudes involved: about 1e-14 of a tensor's largest entry for the tiny models of the tests (BatchNorm over a few
# frames included). 1e-10 leaves four orders of magnitude for other CPUs' kernels and summation orders, while a single
# float32 rounding anywhere in the computation (6e-8 relative) exceeds it several hundred times.
SAME_MATH_RTOL = 1e-10


def assert_same_math(actual: torch.Tensor, expected: torch.Tensor, scale: float | None = None, msg: str = "") -> None:
    """Asserts that two float64 results of the same math agree to `SAME_MATH_RTOL` of `scale` (default: the largest
    magnitude in `expected`).

    The bound is on the largest absolute difference relative to the tensor's largest entry, not entry by entry:
    round-off of a sum scales with its terms, so an entry that cancels to nearly zero carries the round-off of the
    large terms it came from. Pass `scale` for a result that is zero in exact arithmetic (pure round-off), e.g. the
    largest gradient entry of the model."""
    if actual.dtype != torch.float64 or expected.dtype != torch.float64:
        raise TypeError(f"{msg}: compare float64 results, got {actual.dtype} and {expected.dtype}; run both "
                        "computations in float64 (`model.double()`, float64 inputs).")
    if actual.shape != expected.shape:
        raise AssertionError(f"{msg}: shapes differ, {tuple(actual.shape)} vs {tuple(expected.shape)}")
    if scale is None:
        scale = expected.abs().max().item() if expected.numel() else 0.0
    limit = SAME_MATH_RTOL * scale + 1e-300
    difference = (actual - expected).abs().max().item() if expected.numel() else 0.0
    if not difference <= limit:  # also fails on NaN
        raise AssertionError(f"{msg}: differs by {difference:.3g}, more than {SAME_MATH_RTOL:g} of {scale:.3g}")


def tiny_config(vocab_size: int = 64, image_size: int = 28, **overrides) -> BeyondGlossConfig:
    """A BeyondGloss config with every part present and tiny: ViT of 2 blocks (hidden 32) on `image_size` px
    frames with patch 14, temporal width 16, mBART of width 32 with 1+1 layers and `vocab_size` tokens."""
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                  image_size=image_size, use_mask_token=False)
    text = dict(vocab_size=vocab_size, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                scale_embedding=True, dropout=0.1)
    settings = dict(vision_config=vision, text_config=text, frame_dim=16, temporal_heads=2, temporal_ffn_dim=32,
                    hand_dim=6, description_dim=24, vision_lora_layers=[1], text_lora_rank=4, text_lora_alpha=8.0,
                    decoder_start_token_id=3, max_new_tokens=20, frame_chunk_size=5)
    settings.update(overrides)
    return BeyondGlossConfig(**settings)

"""Float64 comparisons of two computations of the same math."""

import torch

__all__ = ["SAME_MATH_RTOL", "assert_same_math"]

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

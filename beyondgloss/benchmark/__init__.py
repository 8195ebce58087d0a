"""Speed and memory measurements (`beyondgloss benchmark`) and the reference encoder they compare against.

`reference_impl` is a straightforward reimplementation of the authors' computation: an oracle for tests and the
baseline of the benchmark. It is not used by the models and does not ship in checkpoints. It is slower than the
authors' own code by a measured factor, `REFERENCE_IMPL_VS_AUTHORS` (docs/benchmarks.md).
"""

from .runner import (
    MEASUREMENTS,
    REFERENCE_IMPL_VS_AUTHORS,
    build_config,
    count_frame_encoder_flops,
    main,
    measure_matmul_peak,
)

__all__ = ["MEASUREMENTS", "REFERENCE_IMPL_VS_AUTHORS", "build_config", "count_frame_encoder_flops", "main",
           "measure_matmul_peak"]

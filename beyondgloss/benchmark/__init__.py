"""Speed and memory measurements (`beyondgloss benchmark`) and the reference encoder they compare against.

`reference_impl` is a straightforward reimplementation of the authors' computation: an oracle for tests and the
baseline of the benchmark. It is not used by the models and does not ship in checkpoints.
"""

from .runner import MEASUREMENTS, build_config, count_frame_encoder_flops, main, measure_matmul_peak

__all__ = ["MEASUREMENTS", "build_config", "count_frame_encoder_flops", "main", "measure_matmul_peak"]

"""Helpers for tests, examples and the demo: tiny random configurations, test videos and float64 comparisons.

Nothing here downloads. Not part of the top-level `beyondgloss` API: import from `beyondgloss.testing`.
"""

from .configs import tiny_config
from .numerics import SAME_MATH_RTOL, assert_same_math
from .videos import make_frames, write_frame_folder, write_mp4

__all__ = ["SAME_MATH_RTOL", "assert_same_math", "make_frames", "tiny_config", "write_frame_folder", "write_mp4"]

"""Translation metrics with the sign language translation field's conventions (see docs/metrics.md).

`compute_translation_metrics` scores texts; `make_compute_metrics` plugs it into `Seq2SeqTrainer`;
`METRIC_PATH` is the directory of an `evaluate` metric script (`evaluate.load(METRIC_PATH)` works offline).
Importing this package does not import sacrebleu; scoring does.
"""

from pathlib import Path

from .scoring import (
    CONVENTIONS,
    BleuConvention,
    compute_translation_metrics,
    dataset_defaults,
    default_convention,
    rouge_l,
    rouge_l_multi,
)
from .trainer_metrics import TranslationComputeMetrics, make_compute_metrics

__all__ = [
    "CONVENTIONS",
    "METRIC_PATH",
    "BleuConvention",
    "TranslationComputeMetrics",
    "compute_translation_metrics",
    "dataset_defaults",
    "default_convention",
    "make_compute_metrics",
    "rouge_l",
    "rouge_l_multi",
]

# A str, because evaluate.load expects a path string.
METRIC_PATH = str(Path(__file__).parent / "sign_translation")

"""Training and evaluation: Trainer subclasses, the reference's hyperparameters as presets, callbacks, the demo.

The commands that drive them (`beyondgloss pretrain|finetune|evaluate|demo`) are in `beyondgloss.cli`.

Importing this package imports `transformers.Trainer` (and through it accelerate), so `import beyondgloss` does not
import it; `from beyondgloss.training import ...` does.
"""

from .callbacks import LogFileCallback, ModelCardCallback
from .presets import PRETRAINING_PRESET, TRANSLATION_PRESET, pretraining_arguments, translation_arguments
from .trainers import (
    LOSS_PARTS,
    BeyondGlossPretrainingTrainer,
    BeyondGlossTranslationTrainer,
    LossPartsTracker,
    RetrievalMetrics,
)

__all__ = [
    "BeyondGlossPretrainingTrainer",
    "BeyondGlossTranslationTrainer",
    "LOSS_PARTS",
    "LossPartsTracker",
    "RetrievalMetrics",
    "LogFileCallback",
    "ModelCardCallback",
    "PRETRAINING_PRESET",
    "TRANSLATION_PRESET",
    "pretraining_arguments",
    "translation_arguments",
]

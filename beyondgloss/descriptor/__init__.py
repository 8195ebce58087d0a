"""The Sign Video Descriptor: machine-written descriptions of the hand motion, a teacher of the pre-training.

- `segment_ranges`, `frame_grid`: 16-frame segments and their grid images (reference geometry).
- `SignVideoDescriber`: describes each segment's hands with an image-text-to-text model.
- `DescriptionRefiner`: merges a video's segment texts into one sentence (local chat model or an
  OpenAI-compatible endpoint).
- `DescriptionEncoder`: mean-pooled sentence embeddings (mBART-large-50 style) into a feature store.
- `describe_videos`: the resumable run over many videos (`beyondgloss describe`).

The other hand-centric teacher, HaMeR hand features, is data: `beyondgloss.data.import_hamer_features`.
"""

from .describer import DESCRIBE_PROMPT, NotAnImageTextToTextModelError, SignVideoDescriber
from .encoder import DescriptionEncoder
from .refiner import REFINE_PROMPT, DescriptionRefiner, LocalChatModel, OpenAICompatibleEndpoint, RefinementError
from .runs import DescribeSummary, describe_videos, find_videos, load_descriptions
from .segments import frame_grid, segment_ranges

__all__ = [
    "DESCRIBE_PROMPT",
    "REFINE_PROMPT",
    "SignVideoDescriber",
    "NotAnImageTextToTextModelError",
    "DescriptionRefiner",
    "LocalChatModel",
    "OpenAICompatibleEndpoint",
    "RefinementError",
    "DescriptionEncoder",
    "DescribeSummary",
    "describe_videos",
    "find_videos",
    "load_descriptions",
    "frame_grid",
    "segment_ranges",
]

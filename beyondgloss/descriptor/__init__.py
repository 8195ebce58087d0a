"""The Sign Video Descriptor and the hand-feature import: the method's two hand-centric teachers.

- `segment_ranges`, `frame_grid`: 16-frame segments and their grid images (reference geometry).
- `SignVideoDescriber`: describes each segment's hands with an image-text-to-text model.
- `DescriptionRefiner`: merges a video's segment texts into one sentence (local chat model or an
  OpenAI-compatible endpoint).
- `DescriptionEncoder`: mean-pooled sentence embeddings (mBART-large-50 style) into a feature store.
- `describe_videos`: the resumable run over many videos (`beyondgloss describe`).
- `import_hamer_features`: the reference's HaMeR `.lzma` files into a feature store with a hand mask.
"""

from .describer import DESCRIBE_PROMPT, NotAnImageTextToTextModelError, SignVideoDescriber
from .encoder import DescriptionEncoder
from .hands import HAND_FEATURE_DIM, hand_presence_mask, import_hamer_features, read_hamer_file
from .refiner import REFINE_PROMPT, DescriptionRefiner, LocalChatModel, OpenAICompatibleEndpoint, RefinementError
from .runs import DescribeSummary, describe_videos, find_videos, load_descriptions
from .segments import frame_grid, segment_ranges

__all__ = [
    "DESCRIBE_PROMPT",
    "REFINE_PROMPT",
    "HAND_FEATURE_DIM",
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
    "hand_presence_mask",
    "import_hamer_features",
    "read_hamer_file",
]

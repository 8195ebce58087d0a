"""beyondgloss: gloss-free sign language translation (BeyondGloss, BMVC 2025) for the Hugging Face ecosystem."""

from .configuration_beyondgloss import BeyondGlossConfig

__version__ = "0.1.0"
__all__ = ["BeyondGlossConfig"]

"""Shared fixtures: tiny random models only; nothing in the tests downloads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from beyondgloss.testing import tiny_config  # noqa: E402

# Runs a python snippet where `import beyondgloss` fails, to prove a saved folder stands on its own.
BLOCK_BEYONDGLOSS = """
import sys, importlib.abc
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "beyondgloss" or name.startswith("beyondgloss."):
            raise ImportError("beyondgloss is hidden in this process")
sys.meta_path.insert(0, _Block())
"""


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def videos():
    """Two videos of 7 and 4 frames at 28 px, padded to 7."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 7, 3, 28, 28, generator=generator)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    pixels[1, 4:] = 0
    return pixels, mask

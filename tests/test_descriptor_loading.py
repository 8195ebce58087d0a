"""The descriptor's three wrappers load through one `from_pretrained` (beyondgloss.descriptor.loading)."""

import pytest

from beyondgloss.descriptor import (
    DescriptionEncoder,
    LocalChatModel,
    NotAnImageTextToTextModelError,
    SignVideoDescriber,
)
from beyondgloss.descriptor.loading import PretrainedWrapper


@pytest.fixture
def dinov2_folder(tmp_path):
    """A checkpoint folder whose config names an image backbone: neither a chat model nor a VLM."""
    from transformers import Dinov2Config

    Dinov2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    return tmp_path


def test_the_wrappers_share_one_from_pretrained():
    shared = PretrainedWrapper.from_pretrained.__func__
    for wrapper in (SignVideoDescriber, LocalChatModel, DescriptionEncoder):
        assert wrapper.from_pretrained.__func__ is shared, wrapper


def test_a_checkpoint_of_another_kind_is_refused_by_name_before_loading(dinov2_folder):
    with pytest.raises(NotAnImageTextToTextModelError, match="'dinov2' model, which AutoModelForImageTextToText"):
        SignVideoDescriber.from_pretrained(str(dinov2_folder))
    with pytest.raises(ValueError, match="'dinov2' model, which AutoModelForCausalLM.*chat model"):
        LocalChatModel.from_pretrained(str(dinov2_folder))


def test_a_missing_checkpoint_names_the_path(tmp_path):
    for wrapper in (SignVideoDescriber, LocalChatModel, DescriptionEncoder):
        with pytest.raises(OSError, match="no-such-model'.*neither a checkpoint folder"):
            wrapper.from_pretrained(str(tmp_path / "no-such-model"))

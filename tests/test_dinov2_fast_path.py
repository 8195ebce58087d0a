"""The DINOv2 fast path: it reads transformers' DINOv2 modules by the names it declares, fails loudly when they are
renamed, and computes what transformers' own blocks compute."""

import pytest
import torch
from transformers import Dinov2Config, Dinov2Model
from transformers.models.dinov2 import modeling_dinov2

from beyondgloss import BeyondGlossModel
from beyondgloss.dinov2_fast_path import (
    DINOV2_LAYER_PARTS,
    Dinov2LayoutError,
    block_weights,
    check_dinov2_layout,
    dinov2_layer_parts,
    vision_block,
)
from beyondgloss.testing import assert_same_math, tiny_config


def tiny_dinov2(**overrides) -> Dinov2Model:
    settings = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                    image_size=28, layerscale_value=0.5)
    return Dinov2Model(Dinov2Config(**{**settings, **overrides})).double().eval()


def test_every_declared_part_exists_in_the_installed_transformers():
    """Fails on a transformers release that renames a part of Dinov2Layer the fast path reads."""
    vision = tiny_dinov2()
    check_dinov2_layout(vision)
    parts = dinov2_layer_parts(vision.encoder.layer[0])
    for name in ("q", "k", "v", "out", "fc1", "fc2"):
        assert isinstance(getattr(parts, name), torch.nn.Linear), name
    assert isinstance(parts.norm1, torch.nn.LayerNorm) and isinstance(parts.norm2, torch.nn.LayerNorm)
    assert parts.scale1.shape == parts.scale2.shape == (32,)
    assert parts.heads == 2
    assert set(DINOV2_LAYER_PARTS) == set(vars(parts))


def test_a_renamed_part_fails_where_the_model_is_built(monkeypatch):
    original = modeling_dinov2.Dinov2Layer.__init__

    def renamed(self, config):  # what a transformers release renaming the attention output projection would build
        original(self, config)
        self.attention.out_proj = self.attention.o_proj
        del self.attention.o_proj

    monkeypatch.setattr(modeling_dinov2.Dinov2Layer, "__init__", renamed)
    with pytest.raises(Dinov2LayoutError, match=r"Dinov2Layer has no `attention\.o_proj`.*transformers"):
        BeyondGlossModel(tiny_config())


def test_swiglu_blocks_are_refused():
    with pytest.raises(ValueError, match="use_swiglu_ffn"):
        check_dinov2_layout(tiny_dinov2(use_swiglu_ffn=True))


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_a_block_computes_what_transformers_computes(grad):
    """Without LoRA, a fast-path block is transformers' `Dinov2Layer.forward` (float64, so round-off cannot hide a
    difference); the inference run also goes through the reused buffers and the in-place GELU."""
    vision = tiny_dinov2()
    hidden = torch.randn(3, 5, 32, dtype=torch.float64)
    for layer in vision.encoder.layer:
        expected = layer(hidden)
        expected = expected[0] if isinstance(expected, tuple) else expected
        parts = dinov2_layer_parts(layer)
        with torch.set_grad_enabled(grad):
            actual = vision_block(parts, hidden.clone(), block_weights(parts, None), workspace={}, inplace_gelu=True)
            last_row = vision_block(parts, hidden.clone(), block_weights(parts, None), cls_only=True)
        assert_same_math(actual.detach(), expected.detach(), msg="block output")
        assert_same_math(last_row.detach(), expected[:, :1].detach(), msg="CLS-only block output")
        hidden = expected.detach()


@pytest.mark.parametrize("scores_bytes", [None, 1], ids=["one-group", "a-frame-per-group"])
def test_bfloat16_cpu_attention_is_softmax_attention(monkeypatch, scores_bytes):
    """The bf16 inference path's attention against float64 SDPA: every output row keeps a cosine of at least 0.999 (the
    inference guard's bound; bf16 rounds each input and probability by at most 2^-9 relative), on the layout the fused
    q/k/v GEMM produces."""
    from beyondgloss import dinov2_fast_path
    from beyondgloss.dinov2_fast_path import _bf16_cpu_attention

    if scores_bytes is not None:
        monkeypatch.setattr(dinov2_fast_path, "_ATTENTION_SCORES_BYTES", scores_bytes)

    batch, tokens, heads, head_dim = 2, 17, 3, 8
    qkv = torch.randn(batch, tokens, 3, heads, head_dim, dtype=torch.float64)
    query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(
        batch, tokens, heads * head_dim)
    scaled = qkv.clone()
    scaled[:, :, 0] *= head_dim**-0.5  # the fast path's query weights carry the attention's scale
    with torch.no_grad():
        actual = _bf16_cpu_attention(scaled.to(torch.bfloat16))
    assert actual.dtype == torch.bfloat16 and actual.shape == expected.shape
    cosines = torch.nn.functional.cosine_similarity(actual.double().flatten(0, 1), expected.flatten(0, 1), dim=-1)
    assert cosines.min() >= 0.999, cosines.min()


def test_a_wrapped_block_layer_is_refused_in_every_model():
    """The fast path reads the block's Linear weights: a wrapper that changes a layer's output (a PEFT LoRA layer, here
    a stand-in) would be silently skipped, so the frame encoder refuses it, naming the layer, in any model."""
    model = BeyondGlossModel(tiny_config()).eval()
    layer = model.sign_encoder.frame_encoder.vision.encoder.layer[1].mlp
    layer.fc1 = torch.nn.Sequential(layer.fc1)
    with pytest.raises(ValueError, match=r"vision\.encoder\.layer\.1\.mlp\.fc1 carries a PEFT LoRA layer or another "
                                         r"wrapper \(Sequential\)"):
        model(torch.randn(1, 3, 3, 28, 28))


def _kept_operand_model(vision_lora: bool = True):
    """A tiny float64 frame encoder in eval mode with nonzero LoRA B (so that folding the LoRA changes the weights)."""
    config = tiny_config(vision_tuning="lora" if vision_lora else "frozen")
    model = BeyondGlossModel(config).double().eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for lora in model.sign_encoder.frame_encoder.lora.values():
            for name in ("q_B", "k_B", "v_B", "out_B", "fc1_B", "fc2_B"):
                getattr(lora, name).normal_(0, 0.1)
    encoder = model.sign_encoder.frame_encoder
    assert len(encoder.lora) == (1 if vision_lora else 0)
    return encoder


def _fresh_operand_output(encoder, frames):
    """The output with the operands made again for this call (what every call did before they were kept)."""
    encoder._operands = None
    output = encoder(frames)
    encoder._operands = None
    return output


@pytest.mark.parametrize("vision_lora", [True, False])
def test_kept_block_operands_give_the_same_output_and_follow_weight_changes(vision_lora):
    encoder = _kept_operand_model(vision_lora)
    frames = torch.randn(3, 3, 28, 28, dtype=torch.float64)
    with torch.inference_mode():
        expected = _fresh_operand_output(encoder, frames)
        first = encoder(frames)
        kept = encoder._operands
        second = encoder(frames)
        assert kept is not None and encoder._operands is kept  # made once, reused by the second call
    assert torch.equal(first, expected) and torch.equal(second, expected)
    # An in-place edit (as an optimizer step or load_state_dict makes), in a block and in the LoRA when present.
    edits = [encoder.vision.encoder.layer[-1].mlp.fc1.weight]
    edits += [lora.fc2_B for lora in encoder.lora.values()]
    for parameter in edits:
        with torch.no_grad():
            parameter.add_(0.05)
        with torch.inference_mode():
            after = encoder(frames)
            assert encoder._operands is not kept
            assert torch.equal(after, _fresh_operand_output(encoder, frames)) and not torch.equal(after, expected)
        kept = encoder._operands


def test_kept_block_operands_follow_loading_dtype_and_training_mode():
    encoder = _kept_operand_model()
    frames = torch.randn(2, 3, 28, 28, dtype=torch.float64)
    other = _kept_operand_model()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(0.9)
    with torch.inference_mode():
        encoder(frames)
        encoder.load_state_dict(other.state_dict())
        assert torch.equal(encoder(frames), _fresh_operand_output(other, frames))
        encoder.compute_dtype = torch.float32  # another compute type: operands made in it
        reduced = encoder(frames)
        assert encoder._operands[2][0][1]["qkv"][0].dtype == torch.float32
        assert torch.equal(reduced, _fresh_operand_output(encoder, frames))
    encoder.train()
    assert encoder._operands is None  # training never reuses them (gradients, dropout): dropped
    with torch.inference_mode():
        encoder(frames)
    assert encoder._operands is None

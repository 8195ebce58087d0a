# Copyright 2026 The beyondgloss authors. MIT license.
"""Where each tensor lives in the reference code's checkpoints and what beyondgloss calls it.

One table for the converter ([`~beyondgloss.convert.convert_reference_checkpoint`]) and the reference encoder of
the tests and benchmarks ([`~beyondgloss.benchmark.reference_impl.ReferenceSignEncoder`]), so that the two cannot
disagree on which of the authors' tensors is which. Names only: nothing here computes.
"""

__all__ = [
    "STAGES",
    "ReferenceCheckpointError",
    "SIGN_PREFIX",
    "DINO",
    "IMAGE_ENCODER",
    "TEXT_ENCODER",
    "MBART",
    "DINO_LORA_TARGETS",
    "SIGN_HEAD_NAMES",
    "TEMPORAL_BLOCK_NAMES",
    "dino_names",
    "temporal_reference_indices",
]

STAGES = ("pretraining", "translation")

# Where each part lives in the reference checkpoints.
SIGN_PREFIX = {"pretraining": "model.model_images.model.", "translation": "model.backbone."}
DINO = "conv_2d.dino.spatial_model."  # the authors' vendored DINOv2, below the sign prefix
IMAGE_ENCODER = "model.model_images.trans_encoder.base_model.model."  # PEFT around MBartEncoder
TEXT_ENCODER = "model.model_txt.model_txt."  # plain MBartEncoder
MBART = "model.mbart.base_model.model."  # PEFT around MBartForConditionalGeneration


class ReferenceCheckpointError(ValueError):
    """A reference checkpoint that cannot be read or whose layout is not the reference's."""


# The authors' DINOv2 LoRA: `<module>.lora_w<n>_l1` is the A factor and `..._l2` the B factor of the LoRA on the
# layer named here. The one on `attn.qkv` has one A shared by q, k and v and a fused B (rows q | k | v).
DINO_LORA_TARGETS = {
    "attn.lora_w1": "attn.qkv",
    "attn.lora_w2": "attn.proj",
    "mlp.lora_w1": "mlp.fc1",
    "mlp.lora_w2": "mlp.fc2",
}
# Layers of one DINOv2 block: the authors' name -> the name below `frame_encoder.vision.encoder.layer.<i>.`; a tuple names the
# q, k, v parts of a fused layer, in the order of its rows.
_DINO_BLOCK_LAYERS = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.qkv": ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
    "attn.proj": "attention.o_proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
# The LoRA factor names below `frame_encoder.lora.<i>.`, by adapted layer.
_DINO_LORA_NAMES = {
    "attn.qkv": ("qkv_A", ("q_B", "k_B", "v_B")),
    "attn.proj": ("out_A", "out_B"),
    "mlp.fc1": ("fc1_A", "fc1_B"),
    "mlp.fc2": ("fc2_A", "fc2_B"),
}
_DINO_EMBEDDINGS = {
    "cls_token": "frame_encoder.vision.embeddings.cls_token",
    "mask_token": "frame_encoder.vision.embeddings.mask_token",
    "pos_embed": "frame_encoder.vision.embeddings.position_embeddings",
    "patch_embed.proj.weight": "frame_encoder.vision.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "frame_encoder.vision.embeddings.patch_embeddings.projection.bias",
    "norm.weight": "frame_encoder.vision.layernorm.weight",
    "norm.bias": "frame_encoder.vision.layernorm.bias",
}

# The heads around DINOv2 and the temporal encoder's output (below the sign prefix) -> [`BeyondGlossSignEncoder`] names.
SIGN_HEAD_NAMES = {
    **{f"conv_2d.dino.lin.{p}": f"frame_proj.{p}" for p in ("weight", "bias")},
    **{f"conv_2d.dino.bn.{p}": f"frame_norm.{p}"
       for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
    **{f"hamer_mapper_1.{p}": f"hand_proj.{p}" for p in ("weight", "bias")},
    **{f"hamer_mapper_2.{p}": f"hand_up.{p}" for p in ("weight", "bias")},
    **{f"mapper_1_downsample.0.{p}": f"hand_fuse.{p}" for p in ("weight", "bias")},
    **{f"mapper_1.{p}": f"description_proj.{p}" for p in ("weight", "bias")},
    **{f"mapper_2.{p}": f"description_down.{p}" for p in ("weight", "bias")},
    **{f"conv_1d.output_proj.{p}": f"temporal.output_proj.{p}" for p in ("weight", "bias")},
}
# One temporal block: the name below the authors' `conv_1d.layers.<j>.` -> below `temporal.blocks.<k>.`.
TEMPORAL_BLOCK_NAMES = {
    "attention.layer_scale": "layer_scale",
    **{f"attention.{theirs}_proj.{p}": f"attention.{ours}_proj.{p}"
       for theirs, ours in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out")) for p in ("weight", "bias")},
    **{f"ffn.linear1.{p}": f"ffn_in.{p}" for p in ("weight", "bias")},
    **{f"ffn.linear2.{p}": f"ffn_out.{p}" for p in ("weight", "bias")},
    **{f"norm1.{p}": f"attention_norm.{p}" for p in ("weight", "bias")},
    **{f"norm2.{p}": f"ffn_norm.{p}" for p in ("weight", "bias")},
}


def dino_names(num_blocks: int, lora_blocks=()) -> dict[str, tuple[str, ...]]:
    """The authors' DINOv2 tensor names (below `DINO`) -> the [`BeyondGlossSignEncoder`] tensors each holds.

    A fused tensor (the `qkv` weight and bias, the `qkv` LoRA B) holds several, concatenated along dim 0 in the
    order given; every other holds one.

    Args:
        num_blocks (`int`): transformer blocks of the DINOv2.
        lora_blocks (`Iterable[int]`): the blocks that carry LoRA.
    """
    names = {theirs: (ours,) for theirs, ours in _DINO_EMBEDDINGS.items()}
    lora_blocks = set(lora_blocks)
    for i in range(num_blocks):
        for layer, ours in _DINO_BLOCK_LAYERS.items():
            parts = ours if isinstance(ours, tuple) else (ours,)
            for parameter in ("weight", "bias"):
                names[f"blocks.{i}.{layer}.{parameter}"] = tuple(
                    f"frame_encoder.vision.encoder.layer.{i}.{p}.{parameter}" for p in parts)
        for n in (1, 2):
            names[f"blocks.{i}.ls{n}.gamma"] = (f"frame_encoder.vision.encoder.layer.{i}.layer_scale{n}.lambda1",)
        if i not in lora_blocks:
            continue
        for lora, layer in DINO_LORA_TARGETS.items():
            for level, ours in zip(("l1", "l2"), _DINO_LORA_NAMES[layer]):
                parts = ours if isinstance(ours, tuple) else (ours,)
                names[f"blocks.{i}.{lora}_{level}.weight"] = tuple(f"frame_encoder.lora.{i}.{p}" for p in parts)
    return names


def temporal_reference_indices(temporal_layers) -> list[int]:
    """Indices of the temporal blocks in the reference's `conv_1d.layers`, whose downsampler (no parameters) takes
    the index after the first `temporal_layers[0]` blocks."""
    before, after = temporal_layers
    return list(range(before)) + list(range(before + 1, before + 1 + after))

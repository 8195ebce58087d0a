# Copyright 2026 The beyondgloss authors. MIT license.
"""The frame encoder's fast path: transformers' `Dinov2Model` blocks run with the reference's LoRA, fused GEMMs and
reused buffers, on the model's own weights (the math of `Dinov2Layer.forward` plus the LoRA; tests compare the two).

`Dinov2Model` is kept for its weights, its checkpoint names and its embeddings; the blocks are run here. Every part of
a block this file reads is named once, in `DINOV2_LAYER_PARTS`, and `check_dinov2_layout` verifies them when a model is
built: a renaming in transformers then fails there, naming the part and the version, instead of deep in a forward.
Why the path is written as it is (fused q/k/v, folded LoRA and LayerScale, in-place sums): docs/benchmarks.md.

`frame_encoder.py` runs a DINOv2 with these blocks. Shipped in checkpoints beside `modeling_beyondgloss.py` (imports
only torch, transformers and siblings).
"""

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import transformers
from torch import nn

__all__ = [
    "DINOV2_LAYER_PARTS",
    "BeyondGlossVisionLoRA",
    "Dinov2LayerParts",
    "Dinov2LayoutError",
    "check_dinov2_layout",
    "dinov2_layer_parts",
    "dropout_keep_mask",
]

# What the fast path reads from each `transformers.models.dinov2.modeling_dinov2.Dinov2Layer`, by attribute path.
# The module paths are also the layer's state-dict names, which every DINOv2 checkpoint on the Hub pins.
DINOV2_LAYER_PARTS = {
    "norm1": "norm1",
    "q": "attention.q_proj",
    "k": "attention.k_proj",
    "v": "attention.v_proj",
    "out": "attention.o_proj",
    "heads": "attention.num_attention_heads",
    "scale1": "layer_scale1.lambda1",
    "drop_path": "drop_path",
    "norm2": "norm2",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
    "activation": "mlp.activation_fn",
    "scale2": "layer_scale2.lambda1",
}
# And from the `Dinov2Model` around the layers (the embeddings' parts are read by `embed_frames` under
# `reference_compat`).
DINOV2_MODEL_PARTS = ("embeddings", "encoder.layer", "layernorm", "embeddings.cls_token",
                      "embeddings.position_embeddings", "embeddings.patch_embeddings",
                      "embeddings.patch_embeddings.patch_size", "embeddings.dropout")


_LINEAR_PARTS = ("q", "k", "v", "out", "fc1", "fc2")


class Dinov2LayoutError(AttributeError):
    """transformers' DINOv2 modules do not have a part the fast path reads (renamed or removed)."""


@dataclass
class Dinov2LayerParts:
    """The parts of one DINOv2 block, looked up by [`dinov2_layer_parts`] at each call (loading may replace
    parameters, so none is kept across calls)."""

    norm1: nn.Module
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    out: nn.Linear
    heads: int
    scale1: torch.Tensor
    drop_path: nn.Module
    norm2: nn.Module
    fc1: nn.Linear
    fc2: nn.Linear
    activation: nn.Module
    scale2: torch.Tensor


def _missing_part(owner: str, path: str) -> Dinov2LayoutError:
    return Dinov2LayoutError(
        f"transformers {transformers.__version__}: {owner} has no `{path}`, which beyondgloss's DINOv2 fast path "
        "reads (beyondgloss/dinov2_fast_path.py, DINOV2_LAYER_PARTS). This transformers version renamed DINOv2's "
        "modules: install the transformers version pinned in requirements/constraints.txt, or update the table."
    )


def dinov2_layer_parts(layer: nn.Module, where: str = "a DINOv2 block") -> Dinov2LayerParts:
    """The parts of a transformers `Dinov2Layer` the fast path uses; a [`Dinov2LayoutError`] names a missing one.

    The fast path reads the Linear layers' weights rather than calling them, so a layer wrapped by something that
    changes its output (a PEFT LoRA layer) would have no effect: it is refused here, named by `where` and its path."""
    found = {}
    for name, path in DINOV2_LAYER_PARTS.items():
        try:
            found[name] = operator.attrgetter(path)(layer)
        except AttributeError:
            raise _missing_part(type(layer).__name__, path) from None
        if name in _LINEAR_PARTS and not isinstance(found[name], nn.Linear):
            raise ValueError(
                f"{where}.{path} carries a PEFT LoRA layer or another wrapper ({type(found[name]).__name__}), which the "
                "DINOv2 fast path does not apply (it reads the block's weights); leave DINOv2 out of target_modules "
                "(its LoRA is the config's vision_lora_layers / vision_lora_rank), e.g. target mBART with a regex "
                r"such as '.*mbart.*\.(q_proj|v_proj)'.")
    return Dinov2LayerParts(**found)


def check_dinov2_layout(vision: nn.Module) -> None:
    """Verifies, when a model is built, that `vision` (a transformers `Dinov2Model`) has every part the fast path
    reads, and that its blocks are the ones it implements (an MLP, not SwiGLU)."""
    for path in DINOV2_MODEL_PARTS:
        try:
            operator.attrgetter(path)(vision)
        except AttributeError:
            raise _missing_part(type(vision).__name__, path) from None
    if getattr(vision.config, "use_swiglu_ffn", False):
        raise ValueError("vision_config.use_swiglu_ffn=True (DINOv2 giant): the fast path implements the MLP blocks "
                         "of DINOv2 small/base/large only.")
    for layer in vision.encoder.layer:
        dinov2_layer_parts(layer)


class BeyondGlossVisionLoRA(nn.Module):
    r"""The reference's LoRA of one DINOv2 block: one A shared by q, k and v with separate B blocks, and LoRA on
    the attention output, fc1 and fc2. Init A ~ N(0, 0.02), B = 0 (`rng_init=False`)."""

    def __init__(self, hidden_size: int, mlp_size: int, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)
        self._scratch = {}  # the dropout's random draws, reused (not state: nothing is saved)
        self.qkv_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.q_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.k_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.v_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.out_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.out_B = nn.Parameter(torch.zeros(hidden_size, rank))
        self.fc1_A = nn.Parameter(torch.empty(rank, hidden_size))
        self.fc1_B = nn.Parameter(torch.zeros(mlp_size, rank))
        self.fc2_A = nn.Parameter(torch.empty(rank, mlp_size))
        self.fc2_B = nn.Parameter(torch.zeros(hidden_size, rank))

    def low_rank(self, hidden_states, name: str):
        """`scaling * A(dropout(x))`; in training the dropout mask comes from [`dropout_keep_mask`] and its
        `1 / keep_probability` is folded into the scaling of the rank-r output instead of a pass over `x`."""
        weight = getattr(self, f"{name}_A")
        if not (self.training and self.dropout.p > 0):
            return F.linear(hidden_states, weight) * self.scaling
        keep, keep_probability = dropout_keep_mask(hidden_states, self.dropout.p, self._scratch)
        return F.linear(torch.where(keep, hidden_states, 0.0), weight) * (self.scaling / keep_probability)


def dropout_keep_mask(reference: torch.Tensor, p: float, scratch: dict | None = None) -> tuple[torch.Tensor, float]:
    r"""A Bernoulli keep mask shaped like `reference` that drops each entry with probability `p`, and its keep
    probability (exact for the mask, so the dropout stays unbiased).

    On the CPU each 64-bit draw of torch's generator (over the full 64-bit range) gives four 16-bit uniform integers,
    so `p` is rounded to a multiple of 2^-16 (0.1 -> 0.1000061); the draws go into `scratch["draws"]` when given,
    reused from call to call. Other devices draw `torch.rand >= p`. Why: the LoRA dropout of one pre-training step
    masks about 88 M entries (docs/benchmarks.md)."""
    if reference.device.type != "cpu":
        return torch.rand(reference.shape, device=reference.device) >= p, 1.0 - p
    dropped = min(round(p * 65536), 65535)
    numel = reference.numel()
    count = (numel + 3) // 4
    draws = None if scratch is None else scratch.get("draws")
    if draws is None or draws.numel() < count:
        draws = torch.empty(count, dtype=torch.int64)
        if scratch is not None:
            scratch["draws"] = draws
    # From the lowest int64 up, torch draws all 64 bits (from 0 it would draw 63, leaving a sign bit always zero).
    lanes = draws[:count].random_(torch.iinfo(torch.int64).min, None).view(torch.int16)
    keep = (lanes[:numel] >= dropped - 32768).view(reference.shape)
    return keep, 1.0 - dropped / 65536


def block_weights(parts: Dinov2LayerParts, lora: BeyondGlossVisionLoRA | None, dtype: torch.dtype | None = None) -> dict:
    """The GEMM operands of one block, prepared once per frame-encoder call and shared by its chunks: `(weight,
    bias)` of "qkv", "out", "fc1" and "fc2", and the block's LoRA ("lora", or None) with its B matrices ("lora_B").

    - q, k and v are concatenated into one weight (and their LoRA B into one): one GEMM makes all three, or k and v
      alone for the last block, where only the CLS row is needed.
    - When the LoRA needs neither gradients nor dropout (inference), it is folded into the frozen weights,
      `W + scaling * B A`, the same linear map.
    - The attention's `head_dim ** -0.5` is folded into the query weight, bias and LoRA B (a power of two for every
      DINOv2 size, so exact in any type): the attention then takes its queries as they come, with no pass over them.
    - LayerScale is folded into the output and fc2 weights, biases and LoRA B, `diag(l) (W x + b + B a) =
      (diag(l) W) x + l b + (diag(l) B) a` (the products stay differentiable for whatever trains).
    - `dtype` (bfloat16 inference, see `inference_precision.py`): the operands in that type, once the LoRA is folded;
      the block's GEMMs then run in it, its LayerNorms and residual sums in the type of the hidden states."""
    weights = {name: (getattr(parts, name).weight, getattr(parts, name).bias)
               for name in ("q", "k", "v", "out", "fc1", "fc2")}
    if lora is not None and not torch.is_grad_enabled() and not (lora.dropout.training and lora.dropout.p > 0):
        for name, a_name in (("q", "qkv"), ("k", "qkv"), ("v", "qkv"), ("out", "out"), ("fc1", "fc1"), ("fc2", "fc2")):
            weight, bias = weights[name]
            update = getattr(lora, f"{name}_B") @ getattr(lora, f"{a_name}_A")
            weights[name] = (weight + lora.scaling * update.to(weight.dtype), bias)
        lora = None
    query_scale = (parts.q.weight.shape[0] // parts.heads) ** -0.5
    weights["q"] = tuple(tensor * query_scale for tensor in weights["q"])
    lora_B = None if lora is None else {"qkv": torch.cat([lora.q_B * query_scale, lora.k_B, lora.v_B]),
                                        "out": lora.out_B, "fc1": lora.fc1_B, "fc2": lora.fc2_B}
    for name, scale in (("out", parts.scale1), ("fc2", parts.scale2)):
        weight, bias = weights[name]
        weights[name] = (weight * scale[:, None], bias * scale)
        if lora_B is not None:
            lora_B[name] = lora_B[name] * scale[:, None]
    weights["qkv"] = tuple(torch.cat([weights[p][i] for p in ("q", "k", "v")]) for i in range(2))
    operands = {name: weights[name] for name in ("qkv", "out", "fc1", "fc2")}
    if dtype is not None and lora is None:
        operands = {name: (weight.to(dtype), bias.to(dtype)) for name, (weight, bias) in operands.items()}
    return operands | {"lora": lora, "lora_B": lora_B}


def _project(states, weight, bias, workspace=None, buffer=None, low=None, low_weight=None) -> torch.Tensor:
    """`states W^T + b (+ low B^T)` over the rows of `(..., features)` states, as a 2-D tensor; into the reusable
    `workspace[buffer]` when a workspace is given."""
    rows = states.reshape(-1, states.shape[-1])
    if workspace is not None and buffer:
        size = rows.shape[0] * weight.shape[0]
        store = workspace.get(buffer)
        if store is None or store.numel() < size or store.dtype != rows.dtype:
            store = workspace[buffer] = rows.new_empty(size)
        output = torch.addmm(bias, rows, weight.t(), out=store[:size].view(-1, weight.shape[0]))
    else:
        output = F.linear(rows, weight, bias)
    if low is not None:  # the output of a GEMM is not saved for its backward: accumulate in place
        # Under autocast the GEMM's output is of the autocast type while in-place ops are not cast: match it.
        low, low_weight = low.to(output.dtype), low_weight.to(output.dtype)
        output = output.addmm_(low.reshape(-1, low.shape[-1]), low_weight.t())
    return output


def _project_with_lora(states, weights: dict, name: str, workspace=None, buffer=None) -> torch.Tensor:
    """The output, fc1 or fc2 projection, with its own LoRA A when the block has a LoRA that is not folded."""
    weight, bias = weights[name]
    lora = weights["lora"]
    if lora is None:
        return _project(states, weight, bias, workspace, buffer)
    return _project(states, weight, bias, workspace, buffer, lora.low_rank(states, name), weights["lora_B"][name])


def _attention(parts: Dinov2LayerParts, normed: torch.Tensor, weights: dict, cls_only: bool, workspace) -> torch.Tensor:
    """Multi-head self-attention of the block on its normed input, `(batch, rows, width)`; with `cls_only` only the
    CLS row (its keys and values still come from every token). The query weights carry the attention's scale."""
    lora, lora_B = weights["lora"], weights["lora_B"]
    qkv_weight, qkv_bias = weights["qkv"]
    batch, tokens, width = normed.shape
    shared = lora.low_rank(normed, "qkv") if lora is not None else None  # one A, one dropout mask for q, k, v
    if cls_only:  # the rows of k and v (and of their LoRA B) are a contiguous slice of the fused weight
        fused = _project(normed, qkv_weight[width:], qkv_bias[width:], workspace, "qkv", shared,
                         None if lora is None else lora_B["qkv"][width:])
        key, value = fused.view(batch, tokens, 2 * width).split(width, dim=-1)
        query = _project(normed[:, :1], qkv_weight[:width], qkv_bias[:width], None, None,
                         None if lora is None else shared[:, :1], None if lora is None else lora_B["qkv"][:width])
        query = query.view(batch, 1, width)
    else:
        fused = _project(normed, qkv_weight, qkv_bias, workspace, "qkv", shared, None if lora is None else lora_B["qkv"])
        if fused.dtype == torch.bfloat16 and fused.device.type == "cpu":
            return _bf16_cpu_attention(fused.view(batch, tokens, 3, parts.heads, width // parts.heads))
        query, key, value = fused.view(batch, tokens, 3 * width).split(width, dim=-1)

    def heads(states):
        return states.reshape(batch, -1, parts.heads, width // parts.heads).transpose(1, 2)

    attended = F.scaled_dot_product_attention(heads(query), heads(key), heads(value), scale=1.0)
    return attended.transpose(1, 2).reshape(batch, -1, width)


# Frames per group of `_bf16_cpu_attention`: its scores, `(frames, heads, tokens, tokens)` in bfloat16, stay within this
# many bytes, so that they are still in the core's cache when the softmax and the second GEMM read them.
_ATTENTION_SCORES_BYTES = 2 << 20


def _bf16_cpu_attention(qkv: torch.Tensor) -> torch.Tensor:
    """Softmax attention of bfloat16 `(batch, tokens, 3, heads, head_dim)` q/k/v on the CPU (bf16 inference, and
    training under bf16 autocast), the queries already scaled by `head_dim ** -0.5` (see [`block_weights`]): two batched
    GEMMs and a softmax (computed in float32 inside, its output rounded to bfloat16) on a head-major copy of q/k/v, a
    few frames at a time (`_ATTENTION_SCORES_BYTES`). torch's CPU flash attention runs no faster in bfloat16 than in
    float32; this takes about half its time at ViT-S's shapes, and the grouping takes another 14% off the frame
    encoder's time (docs/benchmarks.md). Returns `(batch, tokens, heads * head_dim)`."""
    batch, tokens, _, heads, head_dim = qkv.shape
    group = max(1, _ATTENTION_SCORES_BYTES // (heads * tokens * tokens * qkv.element_size()))
    attended = []
    for frames in qkv.split(group):
        query, key, value = frames.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # each (group, heads, tokens, dim)
        scores = torch.matmul(query, key.transpose(-1, -2))
        attended.append(torch.matmul(scores.softmax(dim=-1), value).transpose(1, 2))
    return torch.cat(attended).reshape(batch, tokens, heads * head_dim)


def vision_block(parts: Dinov2LayerParts, hidden_states: torch.Tensor, weights: dict, cls_only: bool = False,
                 workspace: dict | None = None, inplace_gelu: bool = False) -> torch.Tensor:
    """One DINOv2 block with the reference LoRA, on the operands of [`block_weights`]; with `cls_only` only the CLS
    row of the output is computed.

    Few large tensors are fresh (docs/benchmarks.md): the LoRA term is accumulated into the output of the frozen GEMM
    in place, the residual sums are in place, and without autograd the two widest outputs (q/k/v and fc1) go into
    `workspace` buffers that every block and chunk of one call reuses, and GELU (`inplace_gelu`) is in place."""
    grad = torch.is_grad_enabled()
    if grad or workspace is None or torch.is_autocast_enabled(hidden_states.device.type):
        workspace = None
    batch, _, width = hidden_states.shape
    compute = weights["qkv"][0].dtype  # the GEMMs' type: the hidden states', or bfloat16 in reduced precision

    def lowered(states):
        return states if states.dtype == compute else states.to(compute)

    attended = _attention(parts, lowered(parts.norm1(hidden_states)), weights, cls_only, workspace)
    output = parts.drop_path(_project_with_lora(attended, weights, "out").view(batch, -1, width))
    hidden_states = _add_residual(output, hidden_states[:, :1] if cls_only else hidden_states)

    inner = _project_with_lora(lowered(parts.norm2(hidden_states)), weights, "fc1", workspace, "fc1")
    inner = torch.ops.aten.gelu_(inner) if inplace_gelu and not grad else parts.activation(inner)
    output = parts.drop_path(_project_with_lora(inner, weights, "fc2").view(batch, -1, width))
    return _add_residual(output, hidden_states)


def _add_residual(output: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """`output + residual`, in place into the block's fresh output, or into a new tensor of the residual stream's type
    when the output is of a narrower type (reduced precision keeps the residual stream in float32)."""
    return output.add_(residual) if output.dtype == residual.dtype else residual + output

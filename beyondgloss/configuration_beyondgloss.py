# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss configuration.

Imports only transformers (relatively for siblings) so that `save_pretrained` can copy this file into a
checkpoint that loads with `trust_remote_code=True` where beyondgloss is not installed.
"""

import math

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

__all__ = ["BeyondGlossConfig", "VISION_TUNING_MODES"]

# How a backbone trains: LoRA on a frozen backbone (the paper), every weight, or nothing.
VISION_TUNING_MODES = ("lora", "full", "frozen")

# DINOv2 ViT-S/14 (facebook/dinov2-small) at 224 px, the frame encoder of the paper.
_DINOV2_SMALL = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 224,
    "layer_norm_eps": 1e-6,
    "use_mask_token": False,
}
# mBART-large-cc25 (facebook/mbart-large-cc25) shapes; the reference trims its vocabulary per dataset.
_MBART_LARGE_CC25 = {
    "vocab_size": 250027,
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "scale_embedding": True,
    "dropout": 0.1,
}


def _text_config_token(name: str) -> property:
    """A generic token attribute (`pad_token_id`, `eos_token_id`) that the text config owns: read from it and
    written to it."""

    def get(self):
        return getattr(self.text_config, name)

    def set(self, value):
        # PreTrainedConfig assigns the generic token attributes; the text config owns them.
        if value is not None and self.text_config is not None and not isinstance(self.text_config, dict):
            setattr(self.text_config, name, value)

    return property(get, set, doc=f"The text config's `{name}`.")


@strict(accept_kwargs=True)
class BeyondGlossConfig(PreTrainedConfig):
    r"""
    Configuration of the BeyondGloss sign video encoder and its two task models.

    A composite config: `vision_config` (a [`Dinov2Config`], the frame encoder) and `text_config` (an
    [`MBartConfig`], the encoder that reads the video sequence and, for translation, the decoder), plus the
    settings of the parts BeyondGloss adds in between. Defaults reproduce the paper and the authors' code
    (BMVC 2025, arXiv 2507.23575); the note beside each says where the number comes from.

    Args:
        vision_config (`dict` or `Dinov2Config`, *optional*): DINOv2 ViT-S/14 at 224 px by default.
        text_config (`dict` or `MBartConfig`, *optional*): mBART-large-cc25 shapes by default.
        frame_dim (`int`, defaults to 512): width of the per-frame features after `Linear(384, 512)` + BatchNorm.
        hand_dim (`int`, defaults to 288): HaMeR target width, 2 hands x (15 + 1) joints x 3x3 rotation matrices.
        description_dim (`int`, defaults to 1024): width of the description embeddings (mBART-large-50 encoder).
        temporal_layers (`list[int]`, defaults to `[2, 2]`): temporal blocks before and after the x2 downsampling.
        temporal_heads (`int`, defaults to 8), temporal_ffn_dim (`int`, defaults to 2048): temporal block shape.
        temporal_window (`int`, defaults to 7): local attention window (odd, centred).
        temporal_dropout (`float`, defaults to 0.1): dropout after the attention output and inside the FFN.
        drop_path_rate (`float`, defaults to 0.1): DropPath of the last temporal block (linear from 0).
        layer_scale_init (`float`, defaults to 1e-5): LayerScale of the temporal attention branch.
        head_dropout (`float`, defaults to 0.1): dropout in the hand and description heads.
        vision_tuning (`str`, defaults to `"lora"`): `"lora"` (frozen DINOv2 with LoRA in the top blocks),
            `"full"` (every DINOv2 weight trains, no LoRA) or `"frozen"` (no LoRA, nothing trains).
        text_tuning (`str`, defaults to `"lora"`): `"lora"` (frozen mBART with LoRA on every q_proj/v_proj, the
            paper), `"full"` (every mBART weight the task uses trains, no LoRA: for randomly initialised text
            backbones such as the SynthSign demo's) or `"frozen"`. The pre-training text side stays frozen.
        vision_lora_layers (`list[int]`, *optional*): DINOv2 blocks with LoRA; the top 3 by default.
        vision_lora_rank, vision_lora_alpha, vision_lora_dropout: DINOv2 LoRA, 4 / 4.0 / 0.1 as the reference.
        text_lora_rank, text_lora_alpha, text_lora_dropout: mBART LoRA on every q_proj/v_proj, 16 / 32 / 0.1.
        description_loss_weight (`float`, defaults to 0.5), hand_loss_weight (`float`, defaults to 0.3):
            weights of the description and hand terms (`scripts/pretrain.sub` of the reference).
        translation_hand_loss_weight (`float`, defaults to 0.0): weight of the hand-distillation term during
            translation training, when hand features are given. The reference has none in stage 2 (0.0); a per-frame
            signal there helps a decoder trained from scratch to read the video (the SynthSign demo uses it).
        signing_gate (`bool`, defaults to `False`): add the signing gate, a small head on the sign encoder's output
            (mean and max over the valid steps -> one logit) that says whether a video holds signing; live captions
            (docs/streaming.md) do not translate a window it calls idle. Not in the paper (issue 27); off, a model has
            no gate weights and computes exactly what it computed before the gate existed.
        signing_threshold (`float`, defaults to 0.5): gate probability below which a window counts as idle.
        signing_loss_weight (`float`, defaults to 1.0): weight of the gate's binary cross-entropy in the translation
            loss, when the batch carries `signing` labels.
        soft_target_scale (`float`, defaults to 10.0): contrastive targets are `softmax(scale * I)`.
        logit_scale_init_value (`float`, defaults to ln(1/0.07)): initial log temperature (CLIP).
        gather_distributed_negatives (`bool`, defaults to `False`): all-gather the contrastive embeddings of every
            process so that each step sees N x B negatives (gradient flows through the local part).
        label_smoothing (`float`, defaults to 0.2): translation cross-entropy label smoothing.
        num_beams (`int`, defaults to 5), max_new_tokens (`int`, *optional*): generation defaults; max_new_tokens is
            150 (the reference's) or, for a text model with fewer positions, as many as its decoder holds.
        decoder_start_token_id (`int`, *optional*): id of the target language code (e.g. `de_DE`); generation
            starts from it. Set by the processor/CLI from the tokenizer.
        max_frames (`int`, defaults to 300): frames kept per video (the processor subsamples longer videos).
        frame_chunk_size (`int`, defaults to 16): frames encoded by DINOv2 at once. Bounds memory on long videos,
            and keeps a chunk's activations (16 x 257 tokens of ViT-S at 224 px) near the CPU's last-level cache
            (measurements: docs/benchmarks.md).
        reference_compat (`bool`, defaults to `False`): compute what the reference code computes where it is
            defective (padding before the hand head and fusion, unmasked means, post-GELU hand prediction, shared
            description temperature, downsampled mask rule, DINOv2's original position-table rule); needed for
            converted reference checkpoints, which then match the reference to float32 round-off. The list and the
            measurements: docs/reference_differences.md.

    Example:

    ```python
    >>> from beyondgloss import BeyondGlossConfig, BeyondGlossModel
    >>> config = BeyondGlossConfig()  # ViT-S/14 + mBART-large shapes, as in the paper
    >>> config.vision_lora_layers
    [9, 10, 11]
    ```
    """

    model_type = "beyondgloss"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2", init_kwargs=_DINOV2_SMALL),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="mbart", init_kwargs=_MBART_LARGE_CC25),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    frame_dim: int = 512
    hand_dim: int = 288
    description_dim: int = 1024
    temporal_layers: list[int] | tuple[int, ...] = (2, 2)
    temporal_heads: int = 8
    temporal_ffn_dim: int = 2048
    temporal_window: int = 7
    temporal_dropout: float | int = 0.1
    drop_path_rate: float | int = 0.1
    layer_scale_init: float | int = 1e-5
    head_dropout: float | int = 0.1
    vision_tuning: str = "lora"
    text_tuning: str = "lora"
    vision_lora_layers: list[int] | tuple[int, ...] | None = None
    vision_lora_rank: int = 4
    vision_lora_alpha: float | int = 4.0
    vision_lora_dropout: float | int = 0.1
    text_lora_rank: int = 16
    text_lora_alpha: float | int = 32.0
    text_lora_dropout: float | int = 0.1
    description_loss_weight: float | int = 0.5
    hand_loss_weight: float | int = 0.3
    translation_hand_loss_weight: float | int = 0.0
    signing_gate: bool = False
    signing_threshold: float | int = 0.5
    signing_loss_weight: float | int = 1.0
    soft_target_scale: float | int = 10.0
    logit_scale_init_value: float | int = math.log(1 / 0.07)
    gather_distributed_negatives: bool = False
    label_smoothing: float | int = 0.2
    num_beams: int = 5
    max_new_tokens: int | None = None
    decoder_start_token_id: int | None = None
    max_frames: int = 300
    frame_chunk_size: int = 16
    reference_compat: bool = False
    initializer_range: float | int = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        # Types are checked as each field is set (`@strict`, as transformers' own configs): a string from a
        # hand-edited config.json fails there, naming the field, instead of later as an arithmetic error.
        super().__post_init__(**kwargs)
        self.temporal_layers = [int(n) for n in self.temporal_layers]
        if self.vision_lora_layers is None:
            depth = self.vision_config.num_hidden_layers
            self.vision_lora_layers = list(range(max(0, depth - 3), depth))
        self.vision_lora_layers = sorted(int(i) for i in self.vision_lora_layers)
        if self.max_new_tokens is None:  # the reference's 150, or what a smaller text model's positions hold
            self.max_new_tokens = max(1, min(150, self.text_config.max_position_embeddings - 1))
        # `@strict` runs every `validate_*` method after this (and again at save), but wraps their errors; called here
        # first, a bad setting is the plain ValueError that names it.
        self.validate_beyondgloss()

    def validate_beyondgloss(self):
        """Checks every BeyondGloss setting; each error names the value and the fix."""

        def fail(message):
            raise ValueError(f"BeyondGlossConfig: {message}")

        if self.vision_config.model_type != "dinov2":
            fail(f"vision_config must be a Dinov2Config, got model_type={self.vision_config.model_type!r}.")
        if getattr(self.vision_config, "use_swiglu_ffn", False):
            fail("vision_config.use_swiglu_ffn=True (DINOv2 giant) is not supported; use a ViT-S/B/L DINOv2.")
        if self.text_config.model_type not in ("mbart", "mbart-50"):
            fail(f"text_config must be an MBartConfig, got model_type={self.text_config.model_type!r}.")
        if self.vision_tuning not in VISION_TUNING_MODES:
            fail(f"vision_tuning={self.vision_tuning!r}; choose one of {VISION_TUNING_MODES}.")
        if self.text_tuning not in VISION_TUNING_MODES:
            fail(f"text_tuning={self.text_tuning!r}; choose one of {VISION_TUNING_MODES}.")
        depth = self.vision_config.num_hidden_layers
        bad = [i for i in self.vision_lora_layers if not 0 <= i < depth]
        if bad:
            fail(f"vision_lora_layers={self.vision_lora_layers} names blocks {bad}, but DINOv2 has blocks 0..{depth - 1}.")
        for name in ("vision_lora_rank", "text_lora_rank", "max_frames", "frame_chunk_size", "hand_dim",
                     "description_dim", "num_beams", "max_new_tokens", "frame_dim", "temporal_heads",
                     "temporal_ffn_dim"):
            if getattr(self, name) < 1:
                fail(f"{name}={getattr(self, name)} must be a positive integer.")
        for owner, config, names in (
                ("vision_config", self.vision_config, ("hidden_size", "num_hidden_layers", "num_attention_heads")),
                ("text_config", self.text_config, ("d_model", "encoder_layers", "decoder_layers", "vocab_size",
                                                   "max_position_embeddings"))):
            for name in names:
                value = getattr(config, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    fail(f"{owner}.{name}={value!r} must be a positive integer.")
        if len(self.temporal_layers) != 2 or min(self.temporal_layers) < 1:
            fail(f"temporal_layers={self.temporal_layers}; give two positive counts, blocks before and after "
                 "the x2 downsampling (the paper uses [2, 2]).")
        if self.frame_dim % self.temporal_heads or (self.frame_dim // self.temporal_heads) % 2:
            fail(f"frame_dim={self.frame_dim} must split into temporal_heads={self.temporal_heads} heads of even "
                 "width (RoPE rotates pairs); e.g. 512 and 8.")
        if self.temporal_window < 1 or self.temporal_window % 2 == 0:
            fail(f"temporal_window={self.temporal_window}; use an odd window (centred), e.g. 7.")
        if 2 * self.frame_dim != self.text_config.d_model:
            fail(f"frame_dim={self.frame_dim}: the video sequence is 2 x frame_dim = {2 * self.frame_dim} wide but text_config.d_model="
                 f"{self.text_config.d_model}; set frame_dim to d_model / 2 (512 for mBART-large).")
        positions = self.text_config.max_position_embeddings
        if self.max_new_tokens >= positions:
            fail(f"max_new_tokens={self.max_new_tokens} does not fit the decoder's {positions} positions "
                 f"(text_config.max_position_embeddings, including the start token); use at most {positions - 1}.")
        for name in ("temporal_dropout", "drop_path_rate", "head_dropout", "vision_lora_dropout",
                     "text_lora_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                fail(f"{name}={getattr(self, name)} must lie in [0, 1).")
        if not 0.0 < self.signing_threshold < 1.0:
            fail(f"signing_threshold={self.signing_threshold} must lie in (0, 1): it is a probability (0.5 by default).")
        for name in ("description_loss_weight", "hand_loss_weight", "translation_hand_loss_weight",
                     "signing_loss_weight"):
            if getattr(self, name) < 0:
                fail(f"{name}={getattr(self, name)} must be >= 0 (0 switches the term off).")

    pad_token_id = _text_config_token("pad_token_id")
    eos_token_id = _text_config_token("eos_token_id")

    @property
    def custom_pipelines(self) -> dict:
        # transformers' pipeline() refuses a task listed here without trust_remote_code even when the installed
        # beyondgloss registered it; show only the tasks this process does not serve. The saved value is kept.
        from transformers.pipelines import PIPELINE_REGISTRY

        saved = self.__dict__.get("_custom_pipelines") or {}
        return {task: info for task, info in saved.items() if task not in PIPELINE_REGISTRY.supported_tasks}

    @custom_pipelines.setter
    def custom_pipelines(self, value):
        self.__dict__["_custom_pipelines"] = value

    def to_dict(self):
        output = super().to_dict()
        saved = output.pop("_custom_pipelines", None)
        if saved:
            output["custom_pipelines"] = saved
        return output

    @classmethod
    def from_vision_text_configs(cls, vision_config, text_config, **kwargs):
        """Builds a config from a DINOv2 config and an mBART config (CLIP-style constructor)."""
        return cls(vision_config=vision_config, text_config=text_config, **kwargs)



# Copyright 2026 The beyondgloss authors. MIT license.
"""BeyondGloss models: the sign video encoder as a model (`AutoModel`) and the pre-training and translation models.

Their parts, each in its own file and shipped with it: the sign video encoder (`sign_encoder.py`: the frame encoder of
`frame_encoder.py` with the DINOv2 fast path of `dinov2_fast_path.py`, the heads, the temporal encoder of
`temporal_encoder.py`), the mBART LoRA (`text_lora.py`) and adapters (`adapters_beyondgloss.py`), the losses
(`losses.py`), and what the models share (`pretrained_beyondgloss.py`). docs/architecture.md draws them.

Imports only torch, transformers and siblings (relatively), so `save_pretrained` copies it into a checkpoint
that loads with `trust_remote_code=True` where beyondgloss is not installed; peft (the mBART LoRA) only where a
model uses it, so a `text_tuning="full"` checkpoint loads without it.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, MBartForConditionalGeneration
from transformers import initialization as init
from transformers.models.mbart.modeling_mbart import MBartEncoder, shift_tokens_right

from .adapters_beyondgloss import refuse_text_inputs
from .configuration_beyondgloss import BeyondGlossConfig
from .generation_beyondgloss import generation_config_from, saved_generation_config, with_special_tokens
from .losses import (gather_with_grad, hand_distillation_loss, masked_mean, symmetric_contrastive_loss,
                     translation_losses)
from .pretrained_beyondgloss import BeyondGlossPreTrainedModel
from .outputs_beyondgloss import (
    BeyondGlossModelOutput,
    BeyondGlossPretrainingOutput,
    BeyondGlossSignTranslationOutput,
)
from .sign_encoder import BeyondGlossSignEncoder
from .text_lora import add_lora_to_mbart, set_text_trainable

__all__ = [
    "BeyondGlossModelOutput",
    "BeyondGlossPretrainingOutput",
    "BeyondGlossSignTranslationOutput",
    "BeyondGlossPreTrainedModel",
    "BeyondGlossModel",
    "BeyondGlossForContrastivePretraining",
    "BeyondGlossForSignTranslation",
]


# --------------------------------------------------------------------------------------------------------------
# Models


class BeyondGlossModel(BeyondGlossPreTrainedModel):
    r"""
    The BeyondGloss sign video encoder as a model of its own (`AutoModel`): a [`BeyondGlossSignEncoder`] (frame
    encoder, temporal encoder and heads), the part the two task models share. Loads from any BeyondGloss checkpoint.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossConfig, BeyondGlossModel
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossModel(tiny_config()).eval()
    >>> video = torch.randn(2, 6, 3, 28, 28)
    >>> mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    >>> output = model(video, mask)
    >>> output.last_hidden_state.shape, output.attention_mask.sum(1).tolist()
    (torch.Size([2, 3, 32]), [3, 2])
    ```
    """

    # Loading the encoder out of a task checkpoint: the task parts are not needed.
    _keys_to_ignore_on_load_unexpected = [r"^mbart\.", r"^text_encoder\.", r"^logit_scale"]

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        self.sign_encoder = BeyondGlossSignEncoder(config)
        self._initialize_now(self.sign_encoder)
        self.set_trainable()
        self.post_init()

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BeyondGlossModelOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`):
                normalised frames, zero-padded after each video's end (see [`BeyondGlossVideoProcessor`]).
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*):
                1 for real frames (first), 0 for padding. All frames are real when omitted.
            output_hidden_states, output_attentions (`bool`, *optional*): also return the temporal encoder's hidden
                states and attention weights (default: the config's).
            return_dict (`bool`, *optional*): a [`BeyondGlossModelOutput`] (default) or its tuple.

        Returns:
            [`BeyondGlossModelOutput`], or its `to_tuple()` with `return_dict=False`.
        """
        self._refuse_unknown_inputs(kwargs)
        output = self.sign_encoder(pixel_values_videos, video_attention_mask, *self._extra_outputs(
            output_hidden_states, output_attentions))
        return output if self._return_dict(return_dict) else output.to_tuple()

    def encode_frames(self, frames: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        r"""DINOv2's layer-normed CLS features of packed frames `(N, 3, H, W)` -> `(N, hidden_size)`: the frame
        encoder's output (see [`BeyondGlossFrameEncoder`]); `lengths` (frames per video) lets its cache look videos
        up."""
        return self.sign_encoder.frame_encoder(frames, lengths)


class BeyondGlossForContrastivePretraining(BeyondGlossPreTrainedModel):
    r"""
    Stage 1 of BeyondGloss: the sign video encoder feeds an mBART encoder with LoRA (the image side); its pooled
    output is aligned CLIP-style with a frozen mBART encoder's pooled embedding of the target sentence, the pooled
    description states with the description embedding, and the hand head is distilled from HaMeR features.

    `loss = alignment_loss + description_loss_weight * description_loss + hand_loss_weight * hand_loss`; a term whose
    inputs are absent is left out, so datasets without descriptions or hand features train too.

    The image-side mBART is kept whole (`self.mbart`, its decoder idle), so that
    `BeyondGlossForSignTranslation.from_pretrained(<this checkpoint>)` finds the encoder with its LoRA and the
    decoder in place.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossForContrastivePretraining
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossForContrastivePretraining(tiny_config())
    >>> out = model(pixel_values_videos=torch.randn(2, 4, 3, 28, 28), input_ids=torch.tensor([[5, 6, 2], [7, 2, 1]]),
    ...             attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), return_loss=True)
    >>> out.loss.shape, out.logits_per_video.shape
    (torch.Size([]), torch.Size([2, 2]))
    ```
    """

    _text_lora_scope = r"mbart\.model\.encoder\."

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        self.sign_encoder = BeyondGlossSignEncoder(config)
        self._initialize_now(self.sign_encoder)
        self.mbart = MBartForConditionalGeneration(config.text_config)
        add_lora_to_mbart(self.mbart.model.encoder, config)
        self.text_encoder = MBartEncoder(config.text_config)
        # Shape (1,), not 0-d: FSDP2 shards no 0-d parameter. Earlier checkpoints (and the authors') hold 0-d
        # temperatures; checkpointing.loading_kwargs reshapes them on load.
        self.logit_scale = nn.Parameter(torch.full((1,), config.logit_scale_init_value))
        self.logit_scale_description = nn.Parameter(torch.full((1,), config.logit_scale_init_value))
        self.set_trainable()
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        if module is self:
            init.constant_(self.logit_scale, self.config.logit_scale_init_value)
            init.constant_(self.logit_scale_description, self.config.logit_scale_init_value)
        else:
            super()._init_weights(module)

    def set_trainable(self) -> None:
        self.sign_encoder.set_trainable()
        self.mbart.requires_grad_(False)  # the decoder is idle in pre-training
        set_text_trainable(self.mbart.model.encoder, self.config.text_tuning)
        self.mbart.model.encoder.embed_tokens.requires_grad_(False)  # unused: the encoder reads inputs_embeds
        self.text_encoder.requires_grad_(False)

    def _pool(self, states, mask):
        return states.mean(dim=1) if self.config.reference_compat else masked_mean(states, mask)

    def encode_video(self, encoder_output: BeyondGlossModelOutput) -> torch.Tensor:
        """Pooled, L2-normalised video embedding `(B, d_model)` from the image-side mBART encoder."""
        with self.mbart_precision():
            states = self.mbart.model.encoder(
                inputs_embeds=encoder_output.last_hidden_state, attention_mask=encoder_output.attention_mask
            ).last_hidden_state
        return F.normalize(self._pool(states.to(encoder_output.last_hidden_state.dtype), encoder_output.attention_mask),
                           dim=-1)

    def get_input_embeddings(self) -> nn.Module:
        """The embedding of `input_ids`: the text-side encoder's (accelerate's FSDP2 gives it a unit of its own)."""
        return self.text_encoder.embed_tokens

    def encode_text(self, input_ids, attention_mask=None) -> torch.Tensor:
        """Pooled, L2-normalised sentence embedding `(B, d_model)` from the frozen text-side encoder."""
        states = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(self._pool(states, attention_mask), dim=-1)

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        description_embeds: torch.FloatTensor | None = None,
        hand_features: torch.FloatTensor | None = None,
        hand_mask: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BeyondGlossPretrainingOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`),
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`): the videos, see [`BeyondGlossModel`].
            input_ids (`torch.LongTensor` of shape `(batch_size, tokens)`), attention_mask: the target sentences,
                tokenized in target mode (`tokens, </s>, language code`).
            description_embeds (`torch.FloatTensor` of shape `(batch_size, description_dim)`, *optional*):
                embeddings of the hand-motion descriptions; without them the description term is left out.
            hand_features (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`, *optional*): HaMeR targets,
                one row per frame; without them the hand term is left out.
            hand_mask (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*): 1 where a hand target exists
                (the reference uses the frame mask only; so does `reference_compat`).
            return_loss (`bool`, *optional*): compute the losses (default: when `input_ids` is given).
            output_hidden_states, output_attentions (`bool`, *optional*): the sign video encoder's, in `encoder_output`
                (default: the config's).
            return_dict (`bool`, *optional*): a [`BeyondGlossPretrainingOutput`] (default) or its tuple.
        """
        self._refuse_unknown_inputs(kwargs)
        if input_ids is None:
            raise ValueError("input_ids (the tokenized target sentences) are required for contrastive pre-training.")
        return_loss = True if return_loss is None else return_loss
        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask, *self._extra_outputs(
            output_hidden_states, output_attentions))  # validates the videos
        video_attention_mask = encoder_output.video_attention_mask
        batch = pixel_values_videos.shape[0]
        if input_ids.shape[0] != batch:
            raise ValueError(f"input_ids has {input_ids.shape[0]} rows but there are {batch} videos.")
        if description_embeds is not None and tuple(description_embeds.shape) != (batch, self.config.description_dim):
            raise ValueError(
                f"description_embeds must have shape (batch, description_dim) = ({batch}, {self.config.description_dim}); "
                f"got {tuple(description_embeds.shape)}."
            )

        video_embeds = self.encode_video(encoder_output)
        text_embeds = self.encode_text(input_ids, attention_mask)

        gather = self.config.gather_distributed_negatives
        all_video, offset = gather_with_grad(video_embeds) if gather else (video_embeds, 0)
        all_text, _ = gather_with_grad(text_embeds) if gather else (text_embeds, 0)
        alignment_loss, logits_per_video = symmetric_contrastive_loss(
            video_embeds, text_embeds, self.logit_scale, self.config.soft_target_scale, all_video, all_text, offset)
        loss = alignment_loss

        description_loss = logits_per_description = None
        if description_embeds is not None:
            step_description = F.normalize(self._pool(encoder_output.description_states, encoder_output.attention_mask), dim=-1)
            description = F.normalize(description_embeds.to(step_description.dtype), dim=-1)
            all_steps, offset_d = gather_with_grad(step_description) if gather else (step_description, 0)
            all_desc, _ = gather_with_grad(description) if gather else (description, 0)
            scale = self.logit_scale if self.config.reference_compat else self.logit_scale_description
            description_loss, logits_per_description = symmetric_contrastive_loss(
                step_description, description, scale, self.config.soft_target_scale, all_steps, all_desc, offset_d)
            loss = loss + self.config.description_loss_weight * description_loss

        hand_loss = None
        if hand_features is not None:
            hand_loss = hand_distillation_loss(encoder_output.hand_predictions, hand_features, video_attention_mask,
                                               hand_mask, self.config.reference_compat)
            loss = loss + self.config.hand_loss_weight * hand_loss

        output = BeyondGlossPretrainingOutput(
            loss=loss if return_loss else None,
            alignment_loss=alignment_loss,
            description_loss=description_loss,
            hand_loss=hand_loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t() if not gather else None,
            logits_per_description=logits_per_description,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            encoder_output=encoder_output,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class BeyondGlossForSignTranslation(BeyondGlossPreTrainedModel):
    r"""
    Stage 2 of BeyondGloss: the sign video encoder feeds `inputs_embeds` to a frozen mBART encoder-decoder with LoRA
    on every q_proj/v_proj; trained with label-smoothed cross-entropy (computed here), decoded by beam search.

    `BeyondGlossForSignTranslation.from_pretrained(<pre-training checkpoint>)` takes over the sign video encoder and
    the image-side mBART (encoder with its LoRA, and the decoder); the decoder's LoRA starts fresh, as in the
    reference.

    Example:

    ```python
    >>> import torch
    >>> from beyondgloss import BeyondGlossForSignTranslation
    >>> from beyondgloss.testing import tiny_config
    >>> model = BeyondGlossForSignTranslation(tiny_config()).eval()
    >>> ids = model.generate(torch.randn(1, 4, 3, 28, 28), num_beams=2, max_new_tokens=5)
    >>> ids.shape[0]
    1
    ```
    """

    # Loading a pre-training checkpoint: its text side and temperatures are not needed, the decoder LoRA starts fresh.
    _keys_to_ignore_on_load_unexpected = [r"^text_encoder\.", r"^logit_scale"]
    _keys_to_ignore_on_load_missing = [r"^mbart\.model\.decoder\..*\.lora_[AB]\.default\.weight$"]
    _text_lora_scope = r"mbart\."
    _decodes_text = True
    output_modalities = ("text",)

    def __init__(self, config: BeyondGlossConfig):
        super().__init__(config)
        self.sign_encoder = BeyondGlossSignEncoder(config)
        self._initialize_now(self.sign_encoder)
        self.mbart = MBartForConditionalGeneration(config.text_config)
        add_lora_to_mbart(self.mbart, config)
        self.set_trainable()
        self.post_init()
        # As transformers' generative models: a mutable attribute, saved to and loaded from generation_config.json;
        # the config only gives its initial values.
        self.generation_config = generation_config_from(config)

    def set_trainable(self) -> None:
        self.sign_encoder.set_trainable()
        set_text_trainable(self.mbart, self.config.text_tuning)

    def get_input_embeddings(self) -> None:
        """None, as `get_output_embeddings`: mBART's one embedding is tied across four modules, and accelerate's FSDP2
        gives these two units of their own, a split tie torch refuses. mBART's: `model.mbart.get_input_embeddings()`."""
        return None

    get_output_embeddings = get_input_embeddings

    def initialize_weights(self):
        super().initialize_weights()
        # A gate missing from the checkpoint (`from_pretrained(<pre-training checkpoint>, signing_gate=True)`) starts
        # from its own init: the sign encoder counts as initialised once built, so transformers' pass would skip it.
        gate = self.sign_encoder.signing_gate
        for layer in () if gate is None else (gate.proj, gate.out):
            if not getattr(layer.weight, "_is_hf_initialized", False):
                layer.reset_parameters()
                layer.weight._is_hf_initialized = layer.bias._is_hf_initialized = True

    def _with_special_tokens(self, generation_config: GenerationConfig) -> GenerationConfig:
        # This model's tokens: from its generation config, else from its config.
        return with_special_tokens(generation_config, getattr(self, "generation_config", None),
                                   generation_config_from(self.config))

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path,
                             cache_dir=None, force_download=False, proxies=None, local_files_only=False, token=None,
                             revision=None, subfolder="", **kwargs):
        # PreTrainedModel.from_pretrained calls this hook (GenerationMixin's) on models that can generate. As there:
        # a `generation_config=` argument wins, then the checkpoint's generation_config.json; a checkpoint without
        # one (a pre-training checkpoint) keeps the settings __init__ derived from the config.
        if generation_config is not None:
            self.generation_config = self._with_special_tokens(copy.deepcopy(generation_config))
            return
        if pretrained_model_name_or_path is not None:
            saved = saved_generation_config(
                pretrained_model_name_or_path, cache_dir=cache_dir, force_download=force_download, proxies=proxies,
                local_files_only=local_files_only, token=token, revision=revision, subfolder=subfolder,
                _from_auto=from_auto_class, _from_pipeline=from_pipeline)
            self.generation_config = saved or self.generation_config

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_attention_mask: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        hand_features: torch.FloatTensor | None = None,
        hand_mask: torch.LongTensor | None = None,
        signing: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        input_ids: None = None,  # (peft) see adapters_beyondgloss.refuse_text_inputs
        attention_mask: None = None,
        inputs_embeds: None = None,
        decoder_inputs_embeds: None = None,
        **kwargs,
    ) -> BeyondGlossSignTranslationOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, frames, 3, height, width)`),
            video_attention_mask (`torch.LongTensor` of shape `(batch_size, frames)`): see [`BeyondGlossModel`].
            labels (`torch.LongTensor` of shape `(batch_size, tokens)`, *optional*): target ids in target mode
                (`tokens, </s>, language code`) with -100 on padding; the decoder input is mBART's right shift
                (the language code wraps to the front).
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, tokens)`, *optional*): instead of labels.
            hand_features (`torch.FloatTensor` of shape `(batch_size, frames, hand_dim)`, *optional*), hand_mask:
                hand targets; used only when `config.translation_hand_loss_weight > 0` (not in the reference).
            signing (`torch.LongTensor` of shape `(batch_size,)`, *optional*): 1 for a clip that holds signing, 0 for
                an idle one (no sentence: its row of `labels` is left out of the translation loss). With a signing gate
                (`config.signing_gate`) the gate's binary cross-entropy against them joins the loss.
            output_hidden_states, output_attentions (`bool`, *optional*): mBART's hidden states and attentions (as
                transformers returns them; attentions need `attn_implementation="eager"`), and the sign video encoder's
                in `sign_encoder_output` (default: the config's).
            return_dict (`bool`, *optional*): a [`BeyondGlossSignTranslationOutput`] (default) or its tuple.
            input_ids, attention_mask, inputs_embeds, decoder_inputs_embeds: must be None; accepted because peft's
                `PeftModelForSeq2SeqLM` passes them (the encoder's input is the video).

        Returns:
            [`BeyondGlossSignTranslationOutput`]: the label-smoothed loss when labels are given, plus the weighted hand
            term when it is switched on and the weighted gate term when `signing` is given to a gated model, and each
            part; the gate's logits with a gate.
        """
        self._refuse_unknown_inputs(kwargs)
        refuse_text_inputs(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                           decoder_inputs_embeds=decoder_inputs_embeds)
        if labels is None and decoder_input_ids is None:
            raise ValueError("Give labels (training) or decoder_input_ids; to translate, call generate().")
        hidden, attentions = self._extra_outputs(output_hidden_states, output_attentions)
        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask, hidden, attentions)
        if labels is not None and labels.shape[0] != pixel_values_videos.shape[0]:
            raise ValueError(f"labels has {labels.shape[0]} rows but there are {pixel_values_videos.shape[0]} videos.")
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.text_config.pad_token_id)
        with self.mbart_precision():
            outputs = self.mbart(
                inputs_embeds=encoder_output.last_hidden_state,
                attention_mask=encoder_output.attention_mask,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                output_hidden_states=hidden,
                output_attentions=attentions,
                return_dict=True,
            )
        parts = translation_losses(outputs.logits, encoder_output, labels, signing, hand_features, hand_mask, self.config)
        output = BeyondGlossSignTranslationOutput(
            logits=outputs.logits, encoder_last_hidden_state=encoder_output.last_hidden_state,
            decoder_hidden_states=outputs.decoder_hidden_states, decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions, encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions, **parts, signing_logits=encoder_output.signing_logits,
            sign_encoder_output=encoder_output if hidden or attentions else None)
        return output if self._return_dict(return_dict) else output.to_tuple()

    @torch.inference_mode()
    def signing_probability(self, pixel_values_videos=None, video_attention_mask=None) -> torch.Tensor:
        r"""The signing gate's probability that each video holds signing, `(batch_size,)` (`config.signing_gate`)."""
        if self.sign_encoder.signing_gate is None:
            raise ValueError("This model has no signing gate (config.signing_gate is False); train one with "
                             "signing_gate=True and `signing` labels.")
        return torch.sigmoid(self.sign_encoder(pixel_values_videos, video_attention_mask).signing_logits.float())

    # ---- peft (PeftModelForSeq2SeqLM; see adapters_beyondgloss.py) ----------------------------------------------
    def prepare_inputs_for_generation(self, *args, **kwargs):
        """mBART's: peft's PeftModelForSeq2SeqLM reads this method; `generate` runs mBART's own."""
        return self.mbart.prepare_inputs_for_generation(*args, **kwargs)
    # ---- end peft ----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, pixel_values_videos=None, video_attention_mask=None, generation_config=None, **kwargs):
        r"""
        Translates videos: beam search over the mBART decoder, settings from [`generation_config`] overridden by
        keyword arguments (`num_beams`, `max_new_tokens`, ...).

        Returns:
            `torch.LongTensor` of shape `(batch_size, tokens)`: generated ids, starting with the target language code.
        """
        for key in ("input_ids", "attention_mask", "labels"):  # peft passes text inputs; the input is the video
            kwargs.pop(key, None)
        encoder_output = self.sign_encoder(pixel_values_videos, video_attention_mask)  # validates the videos
        return self.generate_from_encoder_states(encoder_output.last_hidden_state, encoder_output.attention_mask,
                                                 generation_config, **kwargs)

    @torch.inference_mode()
    def generate_from_encoder_states(self, inputs_embeds, attention_mask=None, generation_config=None, **kwargs):
        r"""
        [`generate`] from the sign video encoder's output instead of videos (a caller that computed it itself, as live
        captions do from kept frame features): mBART's generation in the model's inference precision.

        Args:
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, steps, hidden_size)`): the sign encoder's
                `last_hidden_state`.
            attention_mask (`torch.LongTensor` of shape `(batch_size, steps)`, *optional*): its step mask.
            generation_config, kwargs: as for [`generate`] (`return_dict_in_generate=True, output_scores=True` give
                mBART's `generate` output with its scores).

        Returns:
            What mBART's `generate` returns: the ids `(batch_size, tokens)`, or its output object when asked.
        """
        generation_config = self._with_special_tokens(copy.deepcopy(generation_config or self.generation_config))
        kwargs = generation_config.update(**kwargs)  # returns the arguments that are not generation settings
        if generation_config.decoder_start_token_id is None:
            raise ValueError(
                "No decoder start token: set model.generation_config.decoder_start_token_id to the target language "
                "code id, e.g. tokenizer.convert_tokens_to_ids('de_DE')."
            )
        with self.mbart_precision():
            return self.mbart.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                       generation_config=generation_config, **kwargs)

"""`reference_compat=True` computes what the authors' code computes, on padded batches of unequal lengths; the default
mode keeps its padding-free, batch-invariant behaviour.

The oracle is `beyondgloss.benchmark.reference_impl.ReferenceSignEncoder`, written from the authors' order of operations (pad
right after the BatchNorm, hand head and fusion on the padded tensor, unmasked pooling), and, for the task heads, the
authors' formulas written out here (plain means over every step, one temperature for both contrastive terms). Both
sides run in float64 and are held to `SAME_MATH_RTOL` (1e-10) of each tensor's largest entry, at every position,
padded ones included (see `beyondgloss.testing.assert_same_math`). Each test also checks that what it compares is
sensitive to the difference it guards (the padded frames, the order of the scale factors), so it can fail.
What the reference does differently and how converted checkpoints compare with the authors' code:
docs/reference_differences.md.
"""

import pytest
import torch
import torch.nn.functional as F
from transformers.models.mbart.modeling_mbart import shift_tokens_right

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation, BeyondGlossModel
from beyondgloss.benchmark.reference_impl import ReferenceSignEncoder
from beyondgloss.testing import assert_same_math, tiny_config

LENGTHS = (12, 9)  # unequal, and the short one odd: its last real step is pooled with a padded frame
FLOAT_KEYS = ("last_hidden_state", "hand_predictions", "description_states", "frame_features")


def _config(**overrides):
    settings = dict(temporal_dropout=0.0, drop_path_rate=0.0, head_dropout=0.0, vision_lora_dropout=0.0)
    settings.update(overrides)
    return tiny_config(**settings)


def _build(model_class, seed=0, **overrides):
    """A float64 model with fixed random weights (whatever ran before), drawn where the init leaves a branch idle
    (LoRA B at zero, LayerScale 1e-5, BatchNorm statistics at 0 and 1), so that every part of the computation shows
    in the outputs."""
    torch.manual_seed(seed)
    model = model_class(_config(**overrides))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("_B", "lambda1", "layer_scale")):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    return model.double()


def _videos(lengths=LENGTHS, height=28, width=28, seed=1):
    generator = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    pixels = torch.randn(len(lengths), frames, 3, height, width, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1] * n + [0] * (frames - n) for n in lengths])
    return pixels * mask[..., None, None, None], mask


def _assert_encoders_agree(ours, theirs):
    assert torch.equal(ours.attention_mask, theirs.attention_mask)
    for key in FLOAT_KEYS:
        assert_same_math(ours[key], theirs[key], msg=key)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_reference_compat_encoder_follows_the_authors_order_on_padded_batches(training):
    """Every output at every position, padded ones included, in eval mode (running statistics) and in training mode
    (BatchNorm statistics of the batch's real frames)."""
    model = _build(BeyondGlossModel, reference_compat=True).train(training)
    reference = ReferenceSignEncoder.from_beyondgloss(model).train(training)
    pixels, mask = _videos()
    ours, theirs = model(pixels, mask), reference(pixels, mask)
    _assert_encoders_agree(ours, theirs)
    # What the reference does to padded frames shows: the heads' output on a zero feature is not zero, and the x2
    # pooling carries it into the short video's last real step, so the video alone gives another value there.
    assert theirs.hand_predictions[1, LENGTHS[1]:].abs().min() > 0
    model.eval(), reference.eval()
    batched = reference(pixels, mask).last_hidden_state[1, (LENGTHS[1] - 1) // 2]
    alone = reference(pixels[1:, : LENGTHS[1]], mask[1:, : LENGTHS[1]]).last_hidden_state[0, -1]
    assert (batched - alone).abs().max() > 1e-3 * alone.abs().max()


def test_default_mode_oracle_pads_after_the_heads():
    """The oracle's default mode (the package's correction: padded frames are zeros before the temporal encoder)
    is the package's, and it differs from the reference order on the short video's last real step."""
    model = _build(BeyondGlossModel).eval()
    reference = ReferenceSignEncoder.from_beyondgloss(model).eval()
    pixels, mask = _videos()
    ours = model(pixels, mask)
    _assert_encoders_agree(ours, reference(pixels, mask))
    compat = ReferenceSignEncoder(_config(reference_compat=True)).double().eval()
    compat.load_state_dict(reference.state_dict())
    step = (LENGTHS[1] - 1) // 2
    difference = (compat(pixels, mask).last_hidden_state[1, step] - ours.last_hidden_state[1, step]).abs().max()
    assert difference > 1e-3 * ours.last_hidden_state.abs().max()


def test_reference_compat_position_table_takes_rows_then_columns():
    """Non-square frames (2 x 3 patches) on a 3 x 3 table: the authors' `interpolate_pos_encoding` scales rows by
    (2 + 0.1) / 3 and columns by (3 + 0.1) / 3. Swapping the two factors gives a 3 x 2 grid read as 2 x 3: it differs."""
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                  image_size=42, use_mask_token=False)
    model = _build(BeyondGlossModel, reference_compat=True, vision_config=vision).eval()
    reference = ReferenceSignEncoder.from_beyondgloss(model).eval()
    pixels, mask = _videos(height=28, width=42)
    _assert_encoders_agree(model(pixels, mask), reference(pixels, mask))
    frames = pixels[0, :3]
    embeddings = model.sign_encoder.frame_encoder.vision.embeddings
    table = embeddings.position_embeddings
    grid = table[:, 1:].reshape(1, 3, 3, 32).permute(0, 3, 1, 2)
    swapped = F.interpolate(grid, scale_factor=(3.1 / 3, 2.1 / 3), mode="bicubic", align_corners=False)
    swapped = torch.cat([table[:, :1], swapped.permute(0, 2, 3, 1).reshape(1, 6, 32)], dim=1)
    with torch.no_grad():
        tokens = torch.cat([embeddings.cls_token.expand(3, -1, -1), embeddings.patch_embeddings(frames)], dim=1)
        difference = (model.sign_encoder.frame_encoder.embed(frames) - (tokens + swapped)).abs().max()
    assert difference > 1e-3 * table.abs().max()


def _pretraining_models(reference_compat=True):
    model = _build(BeyondGlossForContrastivePretraining, reference_compat=reference_compat).eval()
    with torch.no_grad():
        model.logit_scale_description.fill_(1.0)  # unused by the reference: it must not matter under reference_compat
    return model, ReferenceSignEncoder.from_beyondgloss(model.sign_encoder).eval()


def test_reference_compat_contrastive_logits_are_the_authors():
    """The four logits as `SLRCLIP.forward`: plain means over every step (padded ones included) of the image-side
    mBART encoder's output, of the description states and of the text encoder's output; `logit_scale` for both."""
    model, reference = _pretraining_models()
    pixels, mask = _videos()
    ids = torch.tensor([[5, 6, 7, 8, 2, 3], [9, 10, 2, 3, 1, 1]])
    text_mask = (ids != 1).long()
    description = torch.randn(2, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(pixels, mask, input_ids=ids, attention_mask=text_mask, description_embeds=description)
        encoded = reference(pixels, mask)
        images = model.mbart.model.encoder(inputs_embeds=encoded.last_hidden_state,
                                           attention_mask=encoded.attention_mask).last_hidden_state.mean(dim=1)
        texts = model.text_encoder(input_ids=ids, attention_mask=text_mask).last_hidden_state.mean(dim=1)
        steps = encoded.description_states.mean(dim=1)
    scale = model.logit_scale.exp()
    normalise = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    per_video = scale * normalise(images) @ normalise(texts).t()
    per_description = scale * normalise(steps) @ normalise(description).t()
    assert_same_math(out.logits_per_video, per_video, msg="logits_per_video")
    assert_same_math(out.logits_per_text, per_video.t(), msg="logits_per_text")
    assert_same_math(out.logits_per_description, per_description, msg="logits_per_description")
    assert_same_math(out.logits_per_description.t(), scale * normalise(description) @ normalise(steps).t(),
                     msg="description rows")


def _distinct_videos():
    """The two videos, the second one brighter and flatter: a tiny random ViT gives nearly the same CLS feature to
    any two noise frames, and translations that depend on the video need videos that differ for it."""
    pixels, mask = _videos()
    pixels[1] = (0.3 * pixels[1] + 1.5) * mask[1, :, None, None, None]
    return pixels, mask


def _translation_model(pixels, mask, reference_compat=True, seed=0):
    """A tiny translation model whose greedy output depends on the video and changes along the sequence (the tests
    check it). A random decoder with tied embeddings repeats its start token, so position embeddings and
    cross-attention outputs are enlarged; the frame BatchNorm's running statistics are those of the videos (as
    after training), so that frame features vary at unit scale."""
    model = _build(BeyondGlossForSignTranslation, seed, reference_compat=reference_compat)
    norm = model.sign_encoder.frame_norm
    norm.reset_running_stats()
    norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
    with torch.no_grad():
        model.sign_encoder.train()(pixels, mask)
        decoder = model.mbart.model.decoder
        decoder.embed_positions.weight.mul_(30.0)
        for layer in decoder.layers:
            layer.encoder_attn.out_proj.weight.mul_(30.0)
    return model.eval()


def _assert_not_degenerate(ids):
    assert not torch.equal(ids[0], ids[1]), ids
    assert all(len(set(row[1:].tolist())) > 1 for row in ids), ids


def test_reference_compat_translation_logits_and_greedy_ids_are_the_authors():
    pixels, mask = _distinct_videos()
    model = _translation_model(pixels, mask)
    reference = ReferenceSignEncoder.from_beyondgloss(model.sign_encoder).eval()
    labels = torch.tensor([[5, 6, 7, 8, 2, 3], [9, 10, 2, 3, 1, 1]])
    decoder_mask = (labels != 1).long()
    with torch.no_grad():
        ours = model(pixels, mask, decoder_input_ids=shift_tokens_right(labels, 1), decoder_attention_mask=decoder_mask)
        encoded = reference(pixels, mask)
        theirs = model.mbart(inputs_embeds=encoded.last_hidden_state, attention_mask=encoded.attention_mask,
                             labels=labels, decoder_attention_mask=decoder_mask)  # gloss_free_model.forward
    assert_same_math(ours.logits, theirs.logits, msg="translation logits")
    ids = model.generate(pixels, mask, num_beams=1, max_new_tokens=8)
    expected = model.mbart.generate(inputs_embeds=encoded.last_hidden_state, attention_mask=encoded.attention_mask,
                                    num_beams=1, max_new_tokens=8, decoder_start_token_id=3)
    assert torch.equal(ids, expected)
    _assert_not_degenerate(ids)


def test_default_mode_is_batch_invariant():
    """A video's outputs do not depend on what it is batched with (eval mode): encoder outputs at its real
    positions, pooled embeddings, contrastive logits against the same texts, translation logits and greedy ids."""
    pixels, mask = _videos()
    short, short_mask = pixels[1:, : LENGTHS[1]], mask[1:, : LENGTHS[1]]
    steps = (LENGTHS[1] + 1) // 2
    model, _ = _pretraining_models(reference_compat=False)
    with torch.no_grad():
        batched, alone = model.sign_encoder(pixels, mask), model.sign_encoder(short, short_mask)
        assert alone.attention_mask.sum().item() == batched.attention_mask[1].sum().item() == steps
        assert_same_math(batched.last_hidden_state[1, :steps], alone.last_hidden_state[0], msg="sequence")
        assert_same_math(batched.description_states[1, :steps], alone.description_states[0], msg="description states")
        assert_same_math(batched.hand_predictions[1, : LENGTHS[1]], alone.hand_predictions[0], msg="hands")
        assert_same_math(model.encode_video(batched)[1], model.encode_video(alone)[0], msg="video embedding")
    pixels, mask = _distinct_videos()
    short, short_mask = pixels[1:, : LENGTHS[1]], mask[1:, : LENGTHS[1]]
    translation = _translation_model(pixels, mask, reference_compat=False)
    labels = torch.tensor([[5, 6, 7, 8, 2, 3], [9, 10, 2, 3, 1, 1]])
    decoder_input_ids = shift_tokens_right(labels, 1)
    with torch.no_grad():
        both = translation(pixels, mask, decoder_input_ids=decoder_input_ids).logits[1]
        one = translation(short, short_mask, decoder_input_ids=decoder_input_ids[1:]).logits[0]
    assert_same_math(both, one, msg="translation logits")
    ids = translation.generate(pixels, mask, num_beams=1, max_new_tokens=8)
    _assert_not_degenerate(ids)
    assert torch.equal(translation.generate(short, short_mask, num_beams=1, max_new_tokens=8)[0], ids[1])

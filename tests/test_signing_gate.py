"""The signing gate (issue 27): off by default and invisible then, its loss, idle clips left out of the translation
loss, the streaming translator's use of it, and SynthSign's idle clips."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers.models.mbart.modeling_mbart import shift_tokens_right

from beyondgloss import BeyondGlossConfig, BeyondGlossForSignTranslation, BeyondGlossModel
from beyondgloss.data import PretrainingCollator, TranslationCollator
from beyondgloss.data.synthsign import generate_synthsign
from beyondgloss.data.synthsign_idle import IDLE_KINDS, render_idle_clip
from beyondgloss.streaming import StreamingTranslator
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames

from .test_streaming import make_model_and_processor, words_only


def batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(4, 6, 3, 28, 28, generator=generator)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 6, [1] * 5 + [0]])
    labels = torch.tensor([[5, 6, 2, 3], [7, 8, 2, 3], [9, 2, 3, -100], [6, 5, 2, 3]])
    return pixels, mask, labels


def test_gate_is_off_by_default_and_adds_nothing():
    assert BeyondGlossConfig().signing_gate is False
    torch.manual_seed(0)
    plain = BeyondGlossForSignTranslation(tiny_config()).eval()
    torch.manual_seed(0)
    gated = BeyondGlossForSignTranslation(tiny_config(signing_gate=True)).eval()
    assert plain.sign_encoder.signing_gate is None
    assert not any("signing_gate" in name for name in plain.state_dict())
    plain_names = set(plain.state_dict())
    assert set(gated.state_dict()) - plain_names == {f"sign_encoder.signing_gate.{name}" for name in (
        "proj.weight", "proj.bias", "out.weight", "out.bias")}
    # A config saved before the gate existed (no signing_* keys) builds the same model, weight for weight.
    old = {key: value for key, value in tiny_config().to_dict().items() if not key.startswith("signing_")}
    torch.manual_seed(0)
    from_old = BeyondGlossForSignTranslation(BeyondGlossConfig.from_dict(old)).eval()
    assert from_old.config.signing_gate is False
    for (name, value), other in zip(plain.state_dict().items(), from_old.state_dict().values()):
        assert torch.equal(value, other), name
    pixels, mask, labels = batch()
    with torch.no_grad():
        output = plain(pixels, mask, labels=labels)
    assert output.signing_logits is None and output.signing_loss is None
    assert BeyondGlossModel(tiny_config())(pixels, mask).signing_logits is None
    with pytest.raises(ValueError, match="no signing gate"):
        plain.signing_probability(pixels, mask)


def test_gated_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config(signing_gate=True)).eval()
    model.save_pretrained(tmp_path)
    loaded = BeyondGlossForSignTranslation.from_pretrained(tmp_path).eval()
    for (name, value), other in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(value, other), name
    pixels, mask, _ = batch()
    assert torch.equal(model.signing_probability(pixels, mask), loaded.signing_probability(pixels, mask))


def test_gate_added_to_an_ungated_checkpoint_starts_from_its_init(tmp_path):
    torch.manual_seed(0)
    BeyondGlossForSignTranslation(tiny_config()).save_pretrained(tmp_path)
    gate = BeyondGlossForSignTranslation.from_pretrained(tmp_path, signing_gate=True).sign_encoder.signing_gate
    # nn.Linear's init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); an uninitialised tensor would be anything.
    for layer in (gate.proj, gate.out):
        bound = layer.weight.shape[1] ** -0.5
        for value in (layer.weight, layer.bias):
            assert torch.isfinite(value).all() and value.abs().max() <= bound and value.abs().max() > 0


@pytest.mark.parametrize("name, value", [("signing_threshold", 0.0), ("signing_threshold", 1.0),
                                         ("signing_loss_weight", -1.0)])
def test_gate_settings_are_validated(name, value):
    with pytest.raises(ValueError, match=name):
        tiny_config(**{name: value})


def test_gate_loss_is_binary_cross_entropy_and_trains_the_gate():
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config(signing_gate=True, head_dropout=0.0))
    pixels, mask, labels = batch()
    pixels[2:] = 0.0  # the idle clips: still frames
    signing = torch.tensor([1, 1, 0, 0])
    output = model(pixels, mask, labels=labels, signing=signing)
    expected = F.binary_cross_entropy_with_logits(output.signing_logits, signing.float())
    assert output.signing_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert output.loss.item() == pytest.approx(
        (output.translation_loss + model.config.signing_loss_weight * output.signing_loss).item(), rel=1e-6)
    # The total loss, but only the gate learns (the rest of the model's gradient is not what this test is about).
    optimizer = torch.optim.Adam(model.sign_encoder.signing_gate.parameters(), lr=5e-2)
    first = None
    for _ in range(10):
        optimizer.zero_grad()
        output = model(pixels, mask, labels=labels, signing=signing)
        output.loss.backward()
        optimizer.step()
        first = output.signing_loss.item() if first is None else first
    # Measured: 0.70 -> 0.002 in 10 steps; in training mode (eval mode's BatchNorm statistics are another input).
    probability = torch.sigmoid(output.signing_logits.detach())
    assert output.signing_loss.item() < first / 10
    assert (probability[:2] > 0.9).all() and (probability[2:] < 0.1).all(), probability


def test_idle_clips_leave_the_translation_loss():
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config(signing_gate=True)).eval()
    pixels, mask, labels = batch()
    signing = torch.tensor([1, 0, 1, 0])
    with torch.no_grad():
        idle_aware = model(pixels, mask, labels=labels, signing=signing)
        other_idle_labels = labels.clone()
        other_idle_labels[[1, 3]] = torch.tensor([11, 12, 2, 3])
        changed = model(pixels, mask, labels=other_idle_labels, signing=signing)
        only_signing = labels.clone()
        only_signing[[1, 3]] = -100
        shifted = shift_tokens_right(labels, model.config.pad_token_id)  # the decoder reads what it read above
        reference = model(pixels, mask, labels=only_signing, decoder_input_ids=shifted)
        everything = model(pixels, mask, labels=labels)
    assert idle_aware.translation_loss.item() == pytest.approx(reference.translation_loss.item(), rel=1e-6)
    assert changed.translation_loss.item() == pytest.approx(idle_aware.translation_loss.item(), rel=1e-6)
    assert abs(everything.translation_loss.item() - idle_aware.translation_loss.item()) > 1e-3
    # A batch of idle clips only: no translation target at all, the gate term alone, and finite gradients.
    model.train()
    output = model(pixels, mask, labels=labels, signing=torch.zeros(4, dtype=torch.long))
    assert output.translation_loss.item() == 0.0
    assert output.loss.item() == pytest.approx(output.signing_loss.item(), rel=1e-6)
    output.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="signing must have shape"):
        model(pixels, mask, labels=labels, signing=torch.ones(3, dtype=torch.long))


def streamed(bias: float, segmentation: str = "agreement"):
    model, processor = make_model_and_processor(seed=2, signing_gate=True)
    with torch.no_grad():
        model.sign_encoder.signing_gate.out.bias.fill_(bias)
    calls = []
    generate = model.mbart.generate
    model.mbart.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16, agreement=1,
                                     generate_kwargs=words_only(processor.tokenizer, 2), segmentation=segmentation)
    windows = []
    record = translator._window
    translator._window = lambda *args: windows.append(record(*args)) or windows[-1]
    captions = list(translator(make_frames(20, height=30, width=30, seed=4)))
    return captions, windows, calls, translator.stats


def test_streaming_skips_windows_the_gate_calls_idle():
    captions, windows, calls, _ = streamed(-50.0)
    assert windows and not captions and not calls  # no caption, and mBART never ran
    assert all(w.text == "" and w.signing_probability < 0.5 for w in windows)


def test_streaming_fills_the_gate_probability():
    captions, windows, calls, _ = streamed(50.0)
    assert len(calls) == len(windows) and captions
    assert all(w.signing_probability > 0.99 for w in windows)
    assert all(c.signing_probability > 0.99 for c in captions)


def test_gate_segmentation_translates_nothing_while_idle_and_each_frame_once_while_signing():
    captions, windows, calls, stats = streamed(-50.0, "gate")
    assert not captions and not windows and not calls
    # 20 frames, a tail of 4 (the window of 8 less one stride), a decision every 4 frames and one at the end.
    assert len(stats.gate_checks) == 5 and all(probability < 0.5 for _, _, probability in stats.gate_checks)
    captions, windows, calls, stats = streamed(50.0, "gate")
    # Signing throughout: stretches cut at the window (8 frames) before they outgrow it, the rest at the end.
    assert [round(c.start * 16) for c in captions] == [0, 8, 16] and [round(c.end * 16) for c in captions] == [8, 16, 20]
    assert len(calls) == len(windows) == stats.windows == 3
    assert all(c.signing_probability > 0.99 for c in captions)


def test_auto_segmentation_follows_the_gate():
    gated, processor = make_model_and_processor(seed=2, signing_gate=True)
    plain, _ = make_model_and_processor(seed=2)
    assert StreamingTranslator(gated, processor, window_seconds=0.5, stride_seconds=0.25, fps=16).segmentation == "gate"
    assert StreamingTranslator(plain, processor, window_seconds=0.5, stride_seconds=0.25, fps=16).segmentation \
        == "agreement"
    with pytest.raises(ValueError, match="needs a model with a signing gate"):
        StreamingTranslator(plain, processor, window_seconds=0.5, stride_seconds=0.25, fps=16, segmentation="gate")
    with pytest.raises(ValueError, match="segmentation must be one of"):
        StreamingTranslator(gated, processor, window_seconds=0.5, stride_seconds=0.25, fps=16, segmentation="vad")
    with pytest.raises(ValueError, match="lengthen the window"):
        StreamingTranslator(gated, processor, window_seconds=0.5, stride_seconds=0.25, fps=16, gate_seconds=0.4)


class ScriptedGate(StreamingTranslator):
    """Calls a tail signing when it holds a frame of `self.signing` (seconds), whatever the random gate says."""

    def is_signing(self, probability, start, end):
        return start < self.signing[1] and end >= self.signing[0]


def test_a_stretch_of_signing_is_translated_once_from_exactly_its_frames():
    model, processor = make_model_and_processor(seed=2, signing_gate=True)
    with torch.no_grad():
        model.sign_encoder.signing_gate.out.bias.fill_(50.0)  # the stretch's own check passes
    fps, stride, tail = 10, 0.2, 0.4
    translator = ScriptedGate(model, processor, window_seconds=1.6, stride_seconds=stride, fps=fps,
                              generate_kwargs=words_only(processor.tokenizer, 2), gate_seconds=tail, gate_patience=2)
    translator.signing = (1.0, 1.6)  # frames 10 to 15 of 30
    seen = []
    record = translator._window
    translator._window = lambda features, *args: seen.append(torch.stack(list(features))) or record(features, *args)
    video = make_frames(30, height=28, width=28, seed=5)
    captions = list(translator(video))
    assert len(captions) == 1 and len(seen) == 1
    caption = captions[0]
    # The union of the signing tails and the look-back: from half a tail before the first one's first frame (at most
    # one tail and a half before the sentence) to the last one's end (at most a tail after it, less a stride).
    assert 1.0 - 1.5 * tail - 1e-9 <= caption.start <= 1.0 and 1.6 <= caption.end <= 1.6 + tail - stride + 1e-9
    first, end = round(caption.start * fps), round(caption.end * fps)
    assert seen[0].shape[0] == end - first
    with torch.no_grad():
        pixels = processor.video_processor.process_frames(video[first:end])
        expected = model.sign_encoder.frame_features(pixels)
    torch.testing.assert_close(seen[0], expected)  # one frame-encoder batch against another: float32 round-off
    # The caption comes once its stretch has ended: at the second idle tail in a row (gate_patience 2), the first
    # idle one having its first frame after the sentence.
    idle = [end for start, end, _ in translator.stats.gate_checks if start >= 1.6 and end > caption.end]
    assert translator.stats.window_times[0][0] == pytest.approx(idle[1])


def test_streaming_without_a_gate_has_no_probability():
    model, processor = make_model_and_processor(seed=2)
    translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16, agreement=1,
                                     generate_kwargs={"max_new_tokens": 3})
    features = torch.stack([translator.encode_frame(frame) for frame in make_frames(8, 30, 30, seed=1)])
    assert translator.signing_probability(features) is None


@pytest.mark.parametrize("kind", IDLE_KINDS)
def test_idle_clips_render_with_their_hands(kind):
    job = {"idle": kind, "num_frames": 12, "signer": 1, "seed": 5}
    frames, params, mask = render_idle_clip(job, 32)
    assert frames.shape == (12, 3, 32, 32) and frames.dtype.name == "uint8" and params.shape == (12, 18)
    again = render_idle_clip(job, 32)
    assert (frames == again[0]).all() and (params == again[1]).all()
    visible = kind in ("rest", "fidget")
    assert (mask == float(visible)).all()
    if visible:  # real positions: x, y in the picture, the radius, one shape per hand
        assert ((params[:, [0, 1, 9, 10]] > 0) & (params[:, [0, 1, 9, 10]] < 1)).all()
        assert (params[:, 3:9].sum(1) == 1).all() and (params[:, 12:18].sum(1) == 1).all()
    else:
        assert not params.any()
    if kind == "empty":
        assert (frames == 25).all()


def test_synthsign_idle_clips_have_labels(tmp_path):
    root = generate_synthsign(tmp_path / "corpus", num_train=4, num_validation=2, num_test=2, description_dim=8,
                              idle_fraction=0.5, num_workers=1)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    train = [row for row in rows if row["split"] == "train"]
    assert [row["signing"] for row in train] == [True] * 4 + [False] * 2
    assert all(row["text"] == "" and row["gloss"] == "" for row in train if not row["signing"])
    assert json.loads((root / "settings.json").read_text())["idle_fraction"] == 0.5
    # Without idle clips the corpus is the one it always was: same settings, same sentences, no signing column.
    plain = generate_synthsign(tmp_path / "plain", num_train=4, num_validation=2, num_test=2, description_dim=8,
                               num_workers=1)
    plain_rows = [json.loads(line) for line in (plain / "metadata.jsonl").read_text().splitlines()]
    assert "idle_fraction" not in json.loads((plain / "settings.json").read_text())
    assert all("signing" not in row for row in plain_rows)
    assert [row["text"] for row in plain_rows] == [row["text"] for row in rows if row["signing"]]
    with pytest.raises(ValueError, match="idle_fraction"):
        generate_synthsign(tmp_path / "bad", num_train=4, idle_fraction=1.5)


def test_collators_pass_the_label_and_pretraining_refuses_idle_rows():
    model, processor = make_model_and_processor()
    video = make_frames(5, 28, 28, seed=0)
    rows = [{"id": "a", "video": video, "text": "heute sonne im süden", "signing": True},
            {"id": "b", "video": video, "text": "", "signing": False}]
    batch_ = TranslationCollator(processor, training=False)(rows)
    assert batch_["signing"].tolist() == [1, 0]
    assert "signing" not in TranslationCollator(processor, training=False)([{**rows[0], "signing": None}])
    with pytest.raises(ValueError, match="idle clips"):
        PretrainingCollator(processor, training=False)(rows)
    assert "signing" not in PretrainingCollator(processor, training=False)(rows[:1])


def test_demo_collator_renders_fresh_idle_clips_and_adds_margins():
    from beyondgloss.data.synthsign_rendering import SYNTHSIGN_HAND_DIM
    from beyondgloss.training.demo_captions import IdleMarginCollator

    seen = []
    frames = {"a": torch.zeros(30, 3, 32, 32, dtype=torch.uint8), "b": torch.zeros(25, 3, 32, 32, dtype=torch.uint8)}
    rows = [{"id": "a", "signing": False, "signer": "signer1", "hand_features": [[0.0] * SYNTHSIGN_HAND_DIM] * 30,
             "hand_mask": [1.0] * 30},
            {"id": "b", "signing": True, "signer": "signer2", "hand_features": [[0.0] * SYNTHSIGN_HAND_DIM] * 25,
             "hand_mask": [1.0] * 25}]
    collator = IdleMarginCollator(lambda batch: seen.append(batch) or batch, frames, 32, fresh_idle=1.0,
                                  probability=1.0, idle_frames=(12, 20))
    idle, signing = collator(rows)
    # The idle clip is a new rendering of 12 to 20 frames, drawn (it is not the stored blank clip), with its hands.
    assert 12 <= len(idle["video"]) <= 20 and idle["video"].float().std() > 0
    assert len(idle["hand_features"]) == len(idle["hand_mask"]) == len(idle["video"])
    # The signing clip keeps its frames, between idle margins of 0 to 20 frames, its hands extended alike.
    assert 25 <= len(signing["video"]) <= 65 and len(signing["hand_features"]) == len(signing["video"])
    assert signing["signing"] is True and idle["signing"] is False


def test_caption_command_line_shows_the_gate_probability():
    from beyondgloss.cli.caption import _caption_line
    from beyondgloss.streaming import Caption

    latency = {"total": 0.5, "frame_encoder": 0.2, "temporal_encoder": 0.1, "decoder": 0.2}
    gated = _caption_line(Caption(1.0, 2.0, "the man sees the ball", -0.25, latency, 0.973))
    assert "(confidence -0.25, signing 0.97, latency 0.50 s" in gated
    assert "signing" not in _caption_line(Caption(1.0, 2.0, "the man sees the ball", -0.25, latency))


def test_tail_scores_leave_out_tails_across_a_sentence_edge():
    from beyondgloss.training.demo_captions import tail_scores

    spans = [(2.0, 3.0)]
    checks = [(0.0, 0.5, 0.1), (1.8, 2.3, 0.9), (2.1, 2.6, 0.8), (2.2, 2.7, 0.3), (3.5, 4.0, 0.7)]
    scores = tail_scores(checks, spans, 0.5)
    # (1.8, 2.3) crosses the sentence's start: left out. Signing: 2 tails, 1 said; idle: 2 tails, 1 said idle.
    assert (scores["signing_tails"], scores["idle_tails"]) == (2, 2)
    assert scores["signing_recall"] == 0.5 and scores["signing_precision"] == 0.5
    assert scores["idle_recall"] == 0.5 and scores["idle_precision"] == 0.5

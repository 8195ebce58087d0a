"""Live captions (beyondgloss.streaming): the window's encoder output from cached per-frame features, the caption
merge rule, the window schedule, and bad settings."""

import time

import pytest
import torch
from transformers import GenerationConfig

from beyondgloss import BeyondGlossForSignTranslation
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.streaming import (
    Caption,
    CaptionMerger,
    SigningSegmenter,
    StreamingTranslator,
    WindowTranslation,
    window_encoder_states,
)
from beyondgloss.testing import tiny_config
from beyondgloss.testing.numerics import assert_same_math
from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]


def make_model_and_processor(seed: int = 0, **config_overrides):
    """A tiny random translation model (28 px frames, at most 16 frames) and its processor."""
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    video_processor = BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=16)
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language="de_DE")
    torch.manual_seed(seed)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=1,
                         max_frames=16, **config_overrides)
    return BeyondGlossForSignTranslation(config).eval(), processor


@pytest.fixture(scope="module")
def model_and_processor():
    return make_model_and_processor()


@pytest.mark.parametrize("reference_compat", [False, True])
@pytest.mark.parametrize("frames", [7, 8])
def test_window_from_cached_features_equals_the_sign_encoder(frames, reference_compat):
    # Float64: the two computations are the same math in a different order (one frame at a time through the frame
    # encoder, then the heads on the stacked features), so they agree to float64 round-off (SAME_MATH_RTOL, derived
    # in beyondgloss.testing.numerics), far below one float32 rounding. Odd and even lengths: the x2 pooling.
    model, processor = make_model_and_processor(seed=1, reference_compat=reference_compat)
    model.double()
    with torch.no_grad():  # BatchNorm running statistics away from (0, 1), so that the test sees them used
        model.sign_encoder.frame_norm.running_mean.uniform_(-0.5, 0.5)
        model.sign_encoder.frame_norm.running_var.uniform_(0.5, 2.0)
    video = make_frames(frames, height=32, width=36, seed=3)
    translator = StreamingTranslator(model, processor, window_seconds=frames, stride_seconds=1, fps=1)
    streamed = torch.stack([translator.encode_frame(frame) for frame in video])
    states, step_mask = window_encoder_states(model.sign_encoder, streamed)
    pixels = processor.video_processor.process_frames(video).double()[None]
    with torch.no_grad():
        expected = model.sign_encoder(pixels)
    assert_same_math(states, expected.last_hidden_state, msg="window encoder output")
    assert torch.equal(step_mask, expected.attention_mask)
    assert_same_math(streamed, expected.frame_features[0], msg="frame features")


def windows(*texts, start=0.0):
    return [WindowTranslation(start + i, start + i + 4, text, -0.5 - i, {"total": 0.1 * i})
            for i, text in enumerate(texts)]


def merged(texts, agreement=2):
    merger = CaptionMerger(agreement)
    out = [merger.push(window) for window in windows(*texts)] + [merger.flush()]
    return [caption for caption in out if caption is not None]


def test_merge_emits_a_sentence_once_when_two_windows_agree():
    captions = merged(["hallo", "guten morgen", "guten  morgen ", "guten morgen", "es regnet", "es regnet"])
    assert [c.text for c in captions] == ["guten morgen", "es regnet"]
    first = captions[0]
    assert (first.start, first.end, first.confidence) == (1.0, 6.0, -2.5)  # run starts at window 1, confirmed at 2
    assert first.latency == {"total": 0.2}


def test_merge_drops_flicker_and_empty_texts_and_repeats():
    # An unconfirmed text between two runs of the same text (a flicker inside one sentence) does not repeat it.
    assert [c.text for c in merged(["a", "b", "a", "", "a", "a", "b", "a", "a"])] == ["a"]
    assert [c.text for c in merged(["a", "a", "a", "", "", "a", "a"])] == ["a"]
    # The same sentence again after another confirmed one is a new caption.
    assert [c.text for c in merged(["a", "a", "b", "b", "a", "a"])] == ["a", "b", "a"]


@pytest.mark.parametrize("patience", [1, 2])
def test_segmenter_joins_the_signing_tails_into_one_stretch(patience):
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=20, patience=patience)
    decisions = {6: False, 8: False, 10: True, 12: True, 14: True, 16: False, 18: False, 20: False}
    stretches = {position: segmenter.push(position, signing) for position, signing in decisions.items()}
    # From half a tail before the first signing tail's first frame (10 - 4 - 2) to the last signing tail's end (14),
    # told at the `patience`-th idle tail in a row.
    told = 14 + 2 * patience
    assert stretches == {position: (4, 14) if position == told else None for position in decisions}
    # The next stretch starts no earlier than the last one ended (22 - 4 - 2 = 16 > 14 here), and the stream's end
    # closes an open one.
    assert segmenter.push(22, True) is None and segmenter.flush(25) == (16, 25)
    assert segmenter.flush(27) is None


def test_segmenter_patience_bridges_a_dip_of_the_gate():
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=40, patience=2)
    decisions = [(4, True), (6, True), (8, False), (10, True), (12, True), (14, False), (16, True)]
    assert [segmenter.push(position, signing) for position, signing in decisions] == [None] * 7
    # One idle decision inside the sentence: still one stretch. At the end, an idle decision since the last signing
    # one leaves the frames after it out.
    assert segmenter.push(18, False) is None and segmenter.flush(19) == (0, 16)
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=40, patience=2, lookback=0)
    assert segmenter.push(10, True) is None and segmenter.push(12, False) is None and segmenter.push(14, False) == (6, 10)
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=40)
    assert segmenter.push(10, True) is None and segmenter.flush(12) == (4, 12)  # half a tail before (4 - 4 // 2)
    segmenter.push(14, True)
    assert segmenter.flush(16) == (12, 16)  # never before the last stretch ended (14 - 6 = 8 < 12)
    # Waiting out the patience, a stretch that the next decision would push out of the window closes at once.
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=10, patience=3, lookback=0)
    assert [segmenter.push(position, signing) for position, signing in ((4, True), (6, True), (8, False))] == [None] * 3
    assert segmenter.push(10, False) == (0, 6)
    # A look-back that would reach past the window starts at the window's oldest frame, and is cut at once.
    segmenter = SigningSegmenter(tail=6, stride=2, max_frames=8, lookback=3)
    assert segmenter.push(20, True) == (12, 20) and segmenter.flush(21) == (20, 21)
    with pytest.raises(ValueError, match="patience must be at least 1"):
        SigningSegmenter(tail=4, stride=2, max_frames=40, patience=0)


def test_segmenter_cuts_continuous_signing_before_it_outgrows_the_window():
    segmenter = SigningSegmenter(tail=4, stride=2, max_frames=10)
    stretches = [segmenter.push(position, True) for position in range(4, 24, 2)]
    cuts = [stretch for stretch in stretches if stretch is not None]
    final = segmenter.flush(24)
    # Every frame once, in stretches of at most 10 frames, cut where the next decision would not fit.
    assert cuts == [(0, 10), (10, 20)] and final == (20, 24)
    with pytest.raises(ValueError, match="at most the window"):
        SigningSegmenter(tail=12, stride=2, max_frames=10)


def test_merge_flush_emits_the_unconfirmed_last_text():
    assert [c.text for c in merged(["a", "a", "b"])] == ["a", "b"]
    assert [c.text for c in merged(["a", "a"])] == ["a"]  # already emitted: not twice
    assert [c.text for c in merged(["a", ""])] == []
    assert [c.text for c in merged(["a", "b", "c"], agreement=1)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="agreement"):
        CaptionMerger(0)


def scripted(translator, texts):
    """Replaces the translator's window translation by a script; records each window's number of frames."""
    sizes, script = [], iter(texts)

    def translate_window(features):
        sizes.append(features.shape[0])
        return next(script), -1.0, 0.0, 0.0

    translator.translate_window = translate_window
    return sizes


@pytest.mark.parametrize("frames, sizes", [(10, [4, 4, 4, 4]), (11, [4, 4, 4, 4, 4]), (3, [3]), (4, [4])])
def test_window_schedule(model_and_processor, frames, sizes):
    model, processor = model_and_processor
    translator = StreamingTranslator(model, processor, window_seconds=4, stride_seconds=2, fps=1)
    seen = scripted(translator, ["x"] * 10)
    captions = list(translator(make_frames(frames, seed=2)))
    assert seen == sizes
    assert [(c.text, c.start) for c in captions] == [("x", 0.0)]
    assert captions[0].end == (6.0 if len(sizes) > 1 else float(frames))  # confirmed by the 2nd window (frames 2-5)


def test_timestamps_and_caption_times(model_and_processor):
    model, processor = model_and_processor
    translator = StreamingTranslator(model, processor, window_seconds=0.2, stride_seconds=0.1, fps=10)
    scripted(translator, ["", "a", "a", "b", "b", "b"])  # windows of 2 frames, one per frame from the 2nd
    video = make_frames(7, seed=2)
    captions = list(translator((10.0 + 0.1 * i, frame) for i, frame in enumerate(video)))
    assert [c.text for c in captions] == ["a", "b"]
    # "a": windows 2 (frames 1-2) and 3 (frames 2-3); "b": windows 4 (frames 3-4) and 5 (frames 4-5).
    assert [(c.start, c.end) for c in captions] == [pytest.approx((10.1, 10.4)), pytest.approx((10.3, 10.6))]


def words_only(tokenizer, min_new_tokens: int) -> dict:
    """Generation settings under which a random model emits whole words (else mostly special tokens, decoded to
    nothing)."""
    words = {i for token, i in tokenizer.get_vocab().items() if token.startswith("\u2581") and len(token) > 1}
    words -= set(tokenizer.all_special_ids)
    suppress = sorted(set(range(len(tokenizer))) - words - {tokenizer.eos_token_id})
    return {"suppress_tokens": suppress, "min_new_tokens": min_new_tokens, "max_new_tokens": 5}


def test_real_model_captions(model_and_processor):
    model, processor = model_and_processor
    translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16,
                                     agreement=1, generate_kwargs=words_only(processor.tokenizer, 2))
    video = make_frames(20, height=30, width=30, seed=4)
    captions = list(translator(video.permute(0, 2, 3, 1).numpy()))  # (H, W, 3) arrays are frames too
    assert captions
    for caption in captions:
        assert isinstance(caption, Caption) and caption.text
        assert set(caption.latency) == {"decode", "frame_encoder", "temporal_encoder", "decoder", "total",
                                        "since_last_frame"}
        assert 0.0 <= caption.start < caption.end <= 20 / 16
    # The confidence is the mean of the generated tokens' log-probabilities, as transformers computes them.
    features = torch.stack([translator.encode_frame(frame) for frame in video[-8:]])
    text, confidence, _, _ = translator.translate_window(features)
    states, step_mask = window_encoder_states(model.sign_encoder, features)
    with torch.no_grad():
        output = model.mbart.generate(inputs_embeds=states, attention_mask=step_mask, output_scores=True,
                                      generation_config=model.generation_config, return_dict_in_generate=True,
                                      **words_only(processor.tokenizer, 2))
    scores = model.mbart.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
    assert confidence == pytest.approx(scores[0].mean().item(), rel=1e-5)
    assert text == processor.tokenizer.decode(output.sequences[0], skip_special_tokens=True).strip()


def test_bad_settings_and_frames(model_and_processor):
    model, processor = model_and_processor
    with pytest.raises(ValueError, match="max_frames=16"):
        StreamingTranslator(model, processor, window_seconds=2, fps=25)
    with pytest.raises(ValueError, match="stride_seconds=3"):
        StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=3, fps=25)
    with pytest.raises(ValueError, match="fps"):
        StreamingTranslator(model, processor, fps=0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.2, fps=25)
        list(translator([torch.zeros(3, 8, 8)]))
    model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.2, fps=25)
    finally:
        model.eval()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, model_and_processor):
    model, processor = model_and_processor
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    # Whole words only, so that the random model's captions are not empty (the settings live in the folder).
    generation_config = GenerationConfig.from_pretrained(folder)
    generation_config.update(**words_only(processor.tokenizer, 2))
    generation_config.save_pretrained(folder)
    return folder


def run_caption(folder, video, *flags):
    from beyondgloss.cli import main

    return main(["caption", str(video), "--model_name_or_path", str(folder), "--allow_untrained_decoder", *flags])


def test_caption_command_prints_and_writes_srt_and_vtt(saved_model, tmp_path, capsys):
    from beyondgloss.cli.caption import srt_time

    video = write_mp4(tmp_path / "v.mp4", make_frames(12, height=32, width=32, seed=5), fps=25)
    srt, vtt = tmp_path / "c.srt", tmp_path / "c.vtt"
    flags = ["--window_seconds", "0.24", "--stride_seconds", "0.08", "--agreement", "1", "--inference_precision",
             "int8", "--output_srt", str(srt), "--output_vtt", str(vtt)]
    assert run_caption(saved_model, video, *flags) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    cues = srt.read_text().strip().split("\n\n") if srt.read_text().strip() else []
    assert printed and len(cues) == len(printed)
    for cue, line in zip(cues, printed):
        number, times, text = cue.split("\n")
        assert line.split("] ")[1].startswith(text + "  (confidence")
    assert vtt.read_text().startswith("WEBVTT\n\n")
    assert vtt.read_text().count(" --> ") == len(printed)
    assert srt_time(3725.0456) == "01:02:05,046"


def test_caption_command_bad_input(saved_model, tmp_path, capsys):
    assert run_caption(saved_model, tmp_path / "missing.mp4") == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("beyondgloss caption: error:") and "missing.mp4" in error and "\n" not in error
    video = write_mp4(tmp_path / "v.mp4", make_frames(4, height=32, width=32, seed=5), fps=25)
    assert run_caption(saved_model, video, "--window_seconds", "10") == 1
    assert "max_frames=16" in capsys.readouterr().err
    assert run_caption(saved_model, video, "--window_seconds", "-1") == 2
    assert run_caption(saved_model, video, "--segmentation", "gate") == 1  # this model has no gate
    assert "needs a model with a signing gate" in capsys.readouterr().err
    assert run_caption(saved_model, video, "--inference_precision", "half") == 2
    assert run_caption(tmp_path, video) == 1
    assert "processor_config.json" in capsys.readouterr().err


def test_caption_command_reads_a_frame_folder_at_its_fps(saved_model, tmp_path, capsys):
    folder = write_frame_folder(tmp_path / "frames", make_frames(6, height=32, width=32, seed=6))
    assert run_caption(saved_model, folder, "--fps", "10", "--window_seconds", "0.4", "--stride_seconds", "0.2",
                       "--agreement", "1") == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    # 6 frames at 10 frames/s: windows end at 0.4, 0.6 s; the first caption starts at 0.
    assert printed and printed[0].startswith("[00:00:00.000 --> 00:00:00.400]")


def scripted_windows(translator, texts):
    """`scripted`, recording each window's frames (their features) too."""
    seen, script = [], iter(texts)

    def translate_window(features):
        seen.append(features.clone())
        return next(script), -1.0, 0.0, 0.0

    translator.translate_window = translate_window
    return seen


def test_frames_encoded_together_match_one_at_a_time():
    # Float64, as the window test: the batched GEMMs sum in another order, so the features agree to round-off.
    model, processor = make_model_and_processor(seed=2)
    model.double()
    translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16)
    video = make_frames(6, height=30, width=34, seed=7)
    together = translator.encode_frames(list(video))
    assert_same_math(together, torch.stack([translator.encode_frame(frame) for frame in video]), msg="batch")
    mixed = [video[0], make_frames(1, height=40, width=40, seed=8)[0]]  # frames of two sizes, each resized alone
    assert_same_math(translator.encode_frames(mixed), torch.stack([translator.encode_frame(f) for f in mixed]),
                     msg="two sizes")


@pytest.mark.parametrize("frames", [9, 16])
def test_realtime_mode_without_pressure_translates_the_windows_of_file_mode(frames):
    model, processor = make_model_and_processor(seed=3)
    model.double()  # the two modes batch frames differently: compared to float64 round-off
    video = make_frames(frames, seed=2)
    runs = []
    for realtime in (False, True):
        translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=8,
                                         realtime=realtime, buffer_seconds=10)
        seen = scripted_windows(translator, [str(i) for i in range(20)])
        captions = list(translator(video))
        runs.append((seen, [(c.text, c.start, c.end) for c in captions], translator.stats))
    (file_seen, file_captions, file_stats), (live_seen, live_captions, live_stats) = runs
    assert live_captions == file_captions and len(live_seen) == len(file_seen)
    for file_window, live_window in zip(file_seen, live_seen):
        assert_same_math(live_window, file_window, msg="window features")  # batched differently: round-off only
    for stats in (file_stats, live_stats):
        assert stats.frames_received == stats.frames_encoded == frames
        assert stats.frames_dropped == stats.frames_subsampled == 0 and stats.windows == len(file_seen)


def test_realtime_mode_drops_and_counts_frames_when_translation_falls_behind(model_and_processor):
    model, processor = model_and_processor
    translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16,
                                     realtime=True, buffer_seconds=0.25)
    delivered = []

    def camera(count=32):  # 16 frames/s, never held up by the translator
        start = time.perf_counter()
        for index, frame in enumerate(make_frames(count, seed=3)):
            time.sleep(max(0.0, start + index / 16 - time.perf_counter()))
            delivered.append(time.perf_counter() - start - index / 16)
            yield frame

    def slow(features):  # a window takes 0.4 s: longer than the stride of 0.25 s
        time.sleep(0.4)
        return "x", -1.0, 0.0, 0.4

    translator.translate_window = slow
    captions = list(translator(camera()))
    stats = translator.stats
    assert stats.frames_received == 32 and stats.frames_dropped > 0
    assert stats.frames_encoded + stats.frames_dropped == 32
    assert stats.encoder_batches < stats.frames_encoded  # frames that waited were encoded together
    assert max(delivered) < 0.2  # the camera kept its pace (the translator alone would hold it up by 0.4 s a window)
    assert [c.text for c in captions] == ["x"] and captions[0].latency["since_last_frame"] >= 0.4


def test_a_stream_faster_than_the_processor_fps_is_sampled_at_it(model_and_processor):
    model, processor = model_and_processor
    processor.video_processor.fps = 8.0
    try:
        translator = StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16)
        assert (translator.window, translator.stride) == (4, 2)  # counted at 8 frames/s
        seen = scripted(translator, ["x"] * 10)
        list(translator((i / 16, frame) for i, frame in enumerate(make_frames(16, seed=2))))
    finally:
        processor.video_processor.fps = None
    assert translator.stats.frames_subsampled == 8 and translator.stats.frames_encoded == 8
    assert translator.stats.frames_dropped == 0 and seen == [4, 4, 4]


def test_a_source_error_in_realtime_mode_comes_after_the_frames_before_it(model_and_processor):
    model, processor = model_and_processor
    translator = StreamingTranslator(model, processor, window_seconds=0.25, stride_seconds=0.25, fps=16,
                                     agreement=1, realtime=True, buffer_seconds=5)
    scripted(translator, ["a", "b", "c"])

    def broken():
        yield from make_frames(8, seed=2)
        raise OSError("frame 8 does not decode")

    captions = []
    with pytest.raises(OSError, match="frame 8"):
        for caption in translator(broken()):
            captions.append(caption.text)
    assert captions == ["a", "b"] and translator.stats.frames_encoded == 8


def test_inference_precision_is_set_on_the_model(model_and_processor):
    model, processor = model_and_processor
    try:
        StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16,
                            inference_precision="bf16")
        assert model.inference_precision == "bf16"
        with pytest.raises(ValueError, match="precision='half'"):
            StreamingTranslator(model, processor, window_seconds=0.5, stride_seconds=0.25, fps=16,
                                inference_precision="half")
    finally:
        model.set_inference_precision("fp32")

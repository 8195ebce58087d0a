"""The "sign-translation" pipeline's streaming mode (`pipe.stream(...)`, `pipe(..., streaming=True)`): a generator of
frames or a video in, a generator of caption dicts out, the same captions as `StreamingTranslator`; bad settings and
inputs get one clear error."""

import inspect
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import GenerationConfig

from beyondgloss.pipeline_sign_translation import SignTranslationInputError
from beyondgloss.sign_translation_inputs import open_stream, stream_frames
from beyondgloss.streaming import StreamingTranslator
from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4

from .conftest import BLOCK_BEYONDGLOSS
from .test_pipeline import make_translator, words_only

# Streams a frame folder with a saved pipeline in a process where beyondgloss cannot be imported.
CHILD = BLOCK_BEYONDGLOSS + """
import json, sys
from transformers import pipeline
folder, frames, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
translator = pipeline("sign-translation", model=folder, trust_remote_code=True)
records = list(translator(frames, streaming=True, fps=10, window_seconds=0.4, stride_seconds=0.2, agreement=1,
                          **settings))
print(json.dumps({"records": records, "beyondgloss_loaded": any(n.startswith("beyondgloss") for n in sys.modules)}))
"""

KEYS = {"start", "end", "text", "confidence", "signing_probability", "latency"}
STAGES = {"decode", "frame_encoder", "temporal_encoder", "decoder", "total", "since_last_frame"}
# 0.4 s windows every 0.2 s at 10 frames/s: 4-frame windows every 2 frames, each caption confirmed by one window.
WINDOW = {"window_seconds": 0.4, "stride_seconds": 0.2, "agreement": 1}


@pytest.fixture(scope="module")
def translator():
    return make_translator()


@pytest.fixture(scope="module")
def settings(translator):
    return {**words_only(translator.tokenizer, min_new_tokens=2), "max_new_tokens": 4}


@pytest.fixture(scope="module")
def frames():
    return make_frames(12, height=32, width=32)


def _direct(translator, frames, fps, settings, **window):
    """The captions of `StreamingTranslator` itself on the pipeline's model, video processor and tokenizer."""
    direct = StreamingTranslator(translator.model, translator.processor, fps=fps, generate_kwargs=settings,
                                 **{**WINDOW, **window})
    return [(c.start, c.end, c.text, c.confidence, c.signing_probability) for c in direct(frames)]


def _plain(records):
    return [(r["start"], r["end"], r["text"], r["confidence"], r["signing_probability"]) for r in records]


def test_a_generator_of_frames_gives_the_streaming_translators_captions(translator, settings, frames):
    stream = translator.stream((frame for frame in frames), fps=10, **WINDOW, **settings)
    assert inspect.isgenerator(stream)
    records = list(stream)
    expected = _direct(translator, frames, 10, settings)
    assert _plain(records) == expected
    # A random model says the same words for every window: one caption, the later windows repeating it.
    assert records and all(record["text"] for record in records)
    for record in records:
        assert set(record) == KEYS and set(record["latency"]) == STAGES
        assert record["confidence"] <= 0 and record["signing_probability"] is None  # this model has no gate
        stages = {k: v for k, v in record["latency"].items() if k not in ("total", "since_last_frame")}
        assert record["latency"]["total"] == pytest.approx(sum(stages.values()))
    assert (records[0]["start"], records[0]["end"]) == (0.0, pytest.approx(4 / 10))  # the first 4-frame window
    # The same through a call with streaming=True, with the settings in generate_kwargs, and for (H, W, 3) arrays and
    # (timestamp, frame) pairs.
    called = translator((frame for frame in frames), streaming=True, fps=10, generate_kwargs=settings, **WINDOW)
    assert _plain(called) == expected
    arrays = (frame.permute(1, 2, 0).numpy() for frame in frames)
    assert _plain(translator.stream(arrays, fps=10, **WINDOW, **settings)) == expected
    pairs = ((i / 10, frame) for i, frame in enumerate(frames))
    assert _plain(translator.stream(pairs, fps=10, **WINDOW, **settings)) == expected  # fps: the window in frames


def test_generation_settings_reach_the_decoder(translator, settings, frames):
    short = list(translator.stream(iter(frames), fps=10, **WINDOW, **{**settings, "max_new_tokens": 2}))
    assert _plain(short) == _direct(translator, frames, 10, {**settings, "max_new_tokens": 2})
    assert all(len(record["text"].split()) <= 2 for record in short)
    assert any(len(record["text"].split()) > 2 for record in translator.stream(iter(frames), fps=10, **WINDOW,
                                                                                 **settings))


def test_a_video_file_or_folder_is_read_as_it_goes(translator, settings, frames, tmp_path):
    mp4 = write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    source = open_stream(str(mp4))
    expected = _direct(translator, stream_frames(source, 10, None), 10, settings)
    assert _plain(translator.stream(str(mp4), **WINDOW, **settings)) == expected  # the video's own 10 frames/s
    assert expected
    # A frame folder has no rate: the given one, 25 frames/s by default (10-frame windows every 5 frames here).
    folder = write_frame_folder(tmp_path / "frames", frames)
    assert _plain(translator.stream(folder, **WINDOW, **settings)) == _direct(translator, frames, 25, settings)
    assert _plain(translator.stream(folder, fps=10, **WINDOW, **settings)) == _direct(translator, frames, 10, settings)


def test_a_video_is_sampled_to_the_processors_frame_rate(settings, frames, tmp_path):
    sampled = make_translator(fps=5)  # keeps every other frame of a 10 frames/s video
    mp4 = write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    records = list(sampled.stream(mp4, **WINDOW, **settings))
    expected = _direct(sampled, ((t, f) for t, f in stream_frames(open_stream(mp4), 10, 5)), 5, settings)
    # The first window: 0.4 s at 5 frames/s, source frames 0 and 2 (at 0 and 0.2 s).
    assert _plain(records) == expected and records[0]["end"] == pytest.approx(0.2 + 1 / 5)


def test_bad_settings_and_inputs_get_one_clear_error(translator, frames, tmp_path):
    with pytest.raises(TypeError, match=r"stream got unknown arguments \['beam_count'\]: it takes window_seconds"):
        translator.stream(iter(frames), beam_count=2)
    with pytest.raises(ValueError, match=r"\['num_beams'\] given both as arguments and in generate_kwargs"):
        translator.stream(iter(frames), num_beams=2, generate_kwargs={"num_beams": 3})
    with pytest.raises(TypeError, match="not a generation_config"):
        translator.stream(iter(frames), generation_config=GenerationConfig(num_beams=2))
    with pytest.raises(ValueError, match="stride_seconds=2 is longer than window_seconds=1"):
        translator.stream(iter(frames), window_seconds=1, stride_seconds=2)
    with pytest.raises(ValueError, match="segmentation='gate' needs a model with a signing gate"):
        translator.stream(iter(frames), segmentation="gate")
    missing = tmp_path / "missing.mp4"
    with pytest.raises(SignTranslationInputError, match=r"missing\.mp4 cannot be streamed: "):
        translator.stream(str(missing))
    with pytest.raises(SignTranslationInputError, match=r"cannot stream int: pass an iterable of frames"):
        translator.stream(5)
    # A bad frame fails when the generator reaches it, naming the frame.
    stream = translator.stream(iter([torch.zeros(3, 8, 8, dtype=torch.float32)]))
    with pytest.raises(ValueError, match=r"a frame must be uint8 RGB of shape \(3, H, W\)"):
        next(stream)


def test_the_segmentation_reaches_the_translator(settings, frames):
    """A gated model streams by stretches of signing unless asked for agreement, as `StreamingTranslator` does."""
    gated = make_translator(config_overrides={"signing_gate": True})
    with torch.no_grad():
        gated.model.sign_encoder.signing_gate.out.bias.fill_(50.0)  # signing throughout
    for segmentation, gate_seconds in (("auto", 0.2), ("agreement", None)):
        records = list(gated.stream(iter(frames), fps=10, **WINDOW, **settings, segmentation=segmentation,
                                    gate_seconds=gate_seconds))
        expected = _direct(gated, frames, 10, settings, segmentation=segmentation, gate_seconds=gate_seconds)
        assert _plain(records) == expected and records
        assert all(record["signing_probability"] > 0.99 for record in records)
    # Signing throughout, by stretches: the 12 frames in pieces of at most the 4-frame window, each frame once.
    assert [(r["start"], r["end"]) for r in _plain_records(gated, frames, settings)] == [
        (0.0, pytest.approx(0.4)), (pytest.approx(0.4), pytest.approx(0.8)), (pytest.approx(0.8), pytest.approx(1.2))]


def _plain_records(translator, frames, settings):
    return list(translator.stream(iter(frames), fps=10, **WINDOW, **settings, gate_seconds=0.2))


def test_a_saved_pipeline_streams_without_beyondgloss(translator, settings, frames, tmp_path):
    translator.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "streaming.py").is_file()  # copied with the pipeline, which imports it
    folder = write_frame_folder(tmp_path / "frames", frames)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "saved"), str(folder), json.dumps(settings)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert not child["beyondgloss_loaded"]
    assert [tuple(r[k] for k in ("start", "end", "text")) for r in child["records"]] == [
        record[:3] for record in _direct(translator, frames, 10, settings)]

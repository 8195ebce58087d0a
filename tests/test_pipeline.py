"""The "sign-translation" pipeline: every input form, batching, generation options, bad input."""

import numpy as np
import pytest
import torch
from transformers.utils import logging as hf_logging

from beyondgloss import BeyondGlossForSignTranslation
from beyondgloss.pipeline_sign_translation import TASK, SignTranslationInputError, SignTranslationPipeline
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]


def make_translator(seed: int = 0, config_overrides: dict | None = None, **video_settings) -> SignTranslationPipeline:
    """A tiny random translation model (28 px frames; `config_overrides` change its config) with its processor (by
    default 28 px frames, at most 8 frames; `video_settings` change that) in a pipeline."""
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    video_processor = BeyondGlossVideoProcessor(**{"size": 28, "crop_size": 28, "max_frames": 8, **video_settings})
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language="de_DE")
    torch.manual_seed(seed)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=1,
                         **(config_overrides or {}))
    model = BeyondGlossForSignTranslation(config).eval()
    return SignTranslationPipeline(model=model, processor=processor, task=TASK, device=torch.device("cpu"))


def words_only(tokenizer, min_new_tokens: int) -> dict:
    """Generation settings under which every generated token is a whole word of the vocabulary.

    A random model mostly emits special tokens (decoded to nothing) or stops early; suppressing everything but
    word pieces and EOS, and forbidding EOS before `min_new_tokens`, makes the output length a real signal.
    """
    words = {i for token, i in tokenizer.get_vocab().items() if token.startswith("\u2581") and len(token) > 1}
    words -= set(tokenizer.all_special_ids)
    suppress = sorted(set(range(len(tokenizer))) - words - {tokenizer.eos_token_id})
    return {"suppress_tokens": suppress, "min_new_tokens": min_new_tokens}


@pytest.fixture(scope="module")
def translator():
    return make_translator()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames = make_frames(6, height=32, width=32)
    folder = write_frame_folder(root / "frames", frames)
    return {
        "frames": frames,
        "mp4": write_mp4(root / "clip.mp4", frames),
        "folder": folder,
        "paths": sorted(str(p) for p in folder.iterdir()),
        "short": make_frames(3, height=32, width=32, seed=1),
    }


def test_every_input_form_translates(translator, media):
    settings = words_only(translator.tokenizer, min_new_tokens=3)
    forms = {
        "mp4 path": str(media["mp4"]),
        "frame folder": media["folder"],
        "frame paths": media["paths"],
        "uint8 THWC array": media["frames"].permute(0, 2, 3, 1).numpy(),
        "float TCHW tensor": media["frames"].float() / 255,
        "row with video": {"id": "s1", "video": str(media["mp4"])},
        "row with frames": {"id": "s2", "frames": media["paths"]},
    }
    outputs = {name: translator(value, max_new_tokens=4, **settings) for name, value in forms.items()}
    for name, output in outputs.items():
        assert isinstance(output, list) and len(output) == 1, name  # as transformers' translation pipeline
        output = outputs[name] = output[0]
        assert set(output) == {"translation_text"}, name
        assert len(output["translation_text"].split()) >= 2, (name, output)
    # The same (lossless) pixels give the same sentence whatever form they come in.
    lossless = ["frame folder", "frame paths", "uint8 THWC array", "float TCHW tensor", "row with frames"]
    assert len({outputs[name]["translation_text"] for name in lossless}) == 1


def test_datasets_rows_and_dataset(translator, media):
    import datasets  # a requirement of beyondgloss (setup.py), not optional
    dataset = datasets.Dataset.from_dict({"id": ["a", "b"], "video": [str(media["mp4"])] * 2})
    dataset = dataset.cast_column("video", datasets.Video())
    row = dataset[0]
    assert not isinstance(row["video"], str)  # a torchcodec VideoDecoder, as datasets yields them
    single = translator(row, max_new_tokens=3)
    streamed = list(translator(dataset, max_new_tokens=3, batch_size=2))
    assert streamed == [single, single]


def test_a_row_without_video_is_named_by_its_id(translator, media):
    # The pipeline reads rows with `video_io.row_video`, as the training collators do.
    with pytest.raises(SignTranslationInputError, match=r"input \[1\] of 2 .*id 'empty'.*neither a `video` nor"):
        translator([media["folder"], {"id": "empty", "video": None, "frames": None}], batch_size=2)


def test_batch_equals_one_by_one(translator, media):
    settings = words_only(translator.tokenizer, min_new_tokens=3)
    inputs = [media["folder"], media["short"], {"id": "r", "frames": media["paths"]}]
    alone = [translator(x, max_new_tokens=5, **settings)[0] for x in inputs]
    batched = translator(inputs, batch_size=2, max_new_tokens=5, **settings)
    assert isinstance(batched, list) and len(batched) == 3
    assert batched == alone
    assert translator(inputs[:0]) == []


def test_generation_options_change_the_length(translator, media):
    tokenizer = translator.tokenizer
    short = translator(media["folder"], max_new_tokens=2, **words_only(tokenizer, 2))[0]["translation_text"]
    long = translator(media["folder"], max_new_tokens=6, **words_only(tokenizer, 6))[0]["translation_text"]
    # The last step is reserved for the forced EOS: 1 word against 5.
    assert len(short.split()) == 1
    assert len(long.split()) == 5
    beams = translator(media["folder"], num_beams=2, max_new_tokens=6, **words_only(tokenizer, 6))
    assert len(beams[0]["translation_text"].split()) == 5


def test_unreadable_input_is_named(translator, media, tmp_path):
    broken = tmp_path / "notes.mp4"
    broken.write_text("this is not a video")
    with pytest.raises(SignTranslationInputError, match=r"input \[1\] of 2 .*notes\.mp4.*errors='skip'"):
        translator([media["folder"], str(broken)], batch_size=2)
    with pytest.raises(SignTranslationInputError, match=r"the input .*missing_dir.*no such file"):
        translator(str(tmp_path / "missing_dir"))


def test_skip_translates_the_rest_of_the_batch(translator, media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01" * 64)
    settings = words_only(translator.tokenizer, min_new_tokens=2)
    good = translator(media["folder"], max_new_tokens=3, **settings)[0]
    outputs = translator([media["folder"], str(broken), media["folder"]], batch_size=2, errors="skip",
                         max_new_tokens=3, **settings)
    assert outputs[0] == outputs[2] == good
    assert outputs[1]["translation_text"] is None
    assert "input [1] of 3" in outputs[1]["error"] and "broken.mp4" in outputs[1]["error"]
    # A batch in which nothing is readable still answers per input.
    assert translator([str(broken)], errors="skip")[0]["translation_text"] is None


def test_bad_arguments(translator, media):
    with pytest.raises(TypeError, match="num_beam"):
        translator(media["folder"], num_beam=3)
    with pytest.raises(ValueError, match="errors='ignore'"):
        translator(media["folder"], errors="ignore")
    with pytest.raises(ValueError, match="xx_YY"):
        translator(media["folder"], target_language="xx_YY")


def test_target_language_sets_the_decoder_start(translator, media):
    ids = translator(media["folder"], max_new_tokens=2, return_tensors=True)[0]["translation_token_ids"]
    assert ids[0] == translator.tokenizer.convert_tokens_to_ids("de_DE")
    ids = translator(media["folder"], max_new_tokens=2, return_tensors=True, target_language="en_XX")
    assert ids[0]["translation_token_ids"][0] == translator.tokenizer.convert_tokens_to_ids("en_XX")


def test_needs_a_translation_model_and_a_processor(translator):
    from beyondgloss import BeyondGlossModel

    with pytest.raises(ValueError, match="BeyondGlossModel"):
        SignTranslationPipeline(model=BeyondGlossModel(translator.model.config), processor=translator.processor)
    with pytest.raises(ValueError, match="processor"):
        SignTranslationPipeline(model=translator.model, tokenizer=translator.tokenizer)


def test_numpy_frames_list_is_a_batch(translator, media):
    frames = media["frames"].permute(0, 2, 3, 1).numpy()
    outputs = translator([frames, np.ascontiguousarray(frames[:4])], max_new_tokens=2)
    assert [set(o) for o in outputs] == [{"translation_text"}] * 2


def test_num_return_sequences_for_every_batch_size(media):
    # At initialisation the decoder's cross-attention is too weak for the video to change the words; strengthened,
    # these three videos translate differently.
    translator = make_translator()
    with torch.no_grad():
        for layer in translator.model.mbart.model.decoder.layers:
            layer.encoder_attn.v_proj.weight.mul_(30)
            layer.encoder_attn.out_proj.weight.mul_(30)
    settings = words_only(translator.tokenizer, min_new_tokens=2)
    inputs = [media["folder"], media["short"], make_frames(5, height=32, width=32, seed=2)]
    alone = [translator(x, num_beams=3, num_return_sequences=2, max_new_tokens=4, **settings) for x in inputs]
    # Each input's own beams, straight from generate(): two different hypotheses.
    for value, output in zip(inputs, alone):
        ids = translator.model.generate(**translator.video_processor(value), num_beams=3, num_return_sequences=2,
                                        max_new_tokens=4, **settings)
        texts = translator.tokenizer.batch_decode(ids, skip_special_tokens=True)
        assert [o["translation_text"] for o in output] == texts
        assert len(output) == 2 and output[0] != output[1]
    # The inputs translate differently, so a beam handed to the wrong input would show.
    assert len({tuple(o["translation_text"] for o in output) for output in alone}) == 3
    for batch_size in (1, 2, 3):
        batched = translator(inputs, batch_size=batch_size, num_beams=3, num_return_sequences=2, max_new_tokens=4,
                             **settings)
        assert batched == alone, batch_size
    # One sequence per input: a dict per input, as transformers' translation pipeline.
    assert [len(x) for x in translator(inputs, batch_size=2, max_new_tokens=2)] == [1, 1, 1]
    assert all(isinstance(x, dict) for x in translator(inputs, batch_size=2, max_new_tokens=2))


def test_frame_size_from_the_model_and_batches_of_sizes(media):
    sizeless = make_translator(size=None, crop_size=None)
    sized = make_translator(size={"shortest_edge": 28}, crop_size=28)  # same seed: the same weights
    # The checkpoint's processor is left as it is; the pipeline's brings frames to vision_config.image_size.
    assert sizeless.processor.video_processor.size is None and sizeless.processor.video_processor.crop_size is None
    assert sizeless.model.config.vision_config.image_size == 28
    assert sizeless.video_processor.settings() == sized.video_processor.settings()
    wide = make_frames(5, height=24, width=40, seed=2)
    inputs = [media["frames"], wide, media["short"]]
    expected = sized(inputs, batch_size=3, max_new_tokens=3)
    assert sizeless(inputs, batch_size=3, max_new_tokens=3) == expected
    # A processor that keeps every frame size: one generate() per size, each input still gets its own translation.
    sizeless.video_processor = sizeless.processor.video_processor
    settings = words_only(sizeless.tokenizer, min_new_tokens=2)
    alone = [sizeless(x, max_new_tokens=3, **settings)[0] for x in inputs]
    assert sizeless(inputs, batch_size=3, max_new_tokens=3, **settings) == alone


def test_progress_bar(translator, media, capsys):
    inputs = [media["folder"], media["short"]]
    translator(inputs, max_new_tokens=2)
    assert "sign-translation" in capsys.readouterr().err  # a list of several inputs: a bar by default
    translator(inputs, max_new_tokens=2, progress=False)
    translator(media["folder"], max_new_tokens=2)  # one short video: no bar
    assert capsys.readouterr().err == ""
    translator(media["folder"], max_new_tokens=2, progress=True)
    assert "sign-translation" in capsys.readouterr().err
    translator.LONG_VIDEO_FRAMES = 6  # the folder's 6 frames count as a long video
    translator.progress = False  # as pipeline("sign-translation", ..., progress=False)
    hf_logging.disable_progress_bar()
    try:
        translator(inputs, max_new_tokens=2)
        translator(inputs, max_new_tokens=2, progress=None)
        translator.progress = None
        translator(inputs, max_new_tokens=2, progress=True)  # transformers' switch wins
        assert capsys.readouterr().err == ""
        hf_logging.enable_progress_bar()
        translator(media["folder"], max_new_tokens=2)
        assert "sign-translation" in capsys.readouterr().err
    finally:
        hf_logging.enable_progress_bar()
        del translator.LONG_VIDEO_FRAMES
        translator.progress = None

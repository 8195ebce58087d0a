"""The "sign-translation" pipeline as a transformers user calls it: generation arguments, token ids, scores, output
shapes, datasets, generators, URLs, and pipelines built from objects."""

import functools
import http.server
import json
import subprocess
import sys
import threading

import pytest
import torch
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

from beyondgloss import BeyondGlossForSignTranslation
from beyondgloss.pipeline_sign_translation import TASK, SignTranslationInputError
from beyondgloss.testing.videos import make_frames, write_frame_folder, write_mp4

from .conftest import BLOCK_BEYONDGLOSS
from .test_pipeline import make_translator, words_only


@pytest.fixture(scope="module")
def translator():
    # Cross-attention strengthened, so that different videos translate differently (see test_pipeline.py).
    translator = make_translator()
    with torch.no_grad():
        for layer in translator.model.mbart.model.decoder.layers:
            layer.encoder_attn.v_proj.weight.mul_(30)
            layer.encoder_attn.out_proj.weight.mul_(30)
    return translator


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames = make_frames(6, height=32, width=32)
    return {
        "mp4": str(write_mp4(root / "clip.mp4", frames)),
        "folder": str(write_frame_folder(root / "frames", frames)),
        "short": str(write_frame_folder(root / "short", make_frames(3, height=32, width=32, seed=1))),
        "other": str(write_frame_folder(root / "other", make_frames(5, height=32, width=32, seed=2))),
    }


def settings(translator, tokens=4):
    return {"max_new_tokens": tokens, **words_only(translator.tokenizer, min_new_tokens=2)}


def test_generate_kwargs_as_a_dict_or_as_arguments(translator, media):
    plain = translator(media["folder"], num_beams=2, **settings(translator))
    assert translator(media["folder"], generate_kwargs={"num_beams": 2, **settings(translator)}) == plain
    # Split between the two, as transformers' pipelines allow.
    assert translator(media["folder"], num_beams=2, generate_kwargs=settings(translator)) == plain
    with pytest.raises(ValueError, match=r"\['num_beams'\] given both as arguments and in generate_kwargs"):
        translator(media["folder"], num_beams=2, generate_kwargs={"num_beams": 3})
    # A GenerationConfig passed as generate() takes it.
    config = translator.model.generation_config
    config = type(config)(**{**config.to_diff_dict(), "num_beams": 2, **settings(translator)})
    assert translator(media["folder"], generation_config=config) == plain


def test_return_tensors_gives_the_generated_ids(translator, media):
    kwargs = {"num_beams": 2, **settings(translator, tokens=5)}
    ids = translator.model.generate(**translator.video_processor(media["folder"]), **kwargs)[0].tolist()
    eos = translator.tokenizer.eos_token_id
    ids = ids[: ids.index(eos, 1) + 1] if eos in ids[1:] else ids
    only_ids = translator(media["folder"], return_tensors=True, **kwargs)
    assert only_ids == [{"translation_token_ids": ids}]  # as text2text: ids instead of the text
    both = translator(media["folder"], return_tensors=True, return_text=True, **kwargs)[0]
    assert both["translation_token_ids"] == ids
    assert both["translation_text"] == translator.tokenizer.decode(ids, skip_special_tokens=True)
    raw = translator(media["folder"], skip_special_tokens=False, **kwargs)[0]["translation_text"]
    assert raw == translator.tokenizer.decode(ids, skip_special_tokens=False) and "de_DE" in raw
    for clean in (True, False):
        text = translator(media["folder"], clean_up_tokenization_spaces=clean, **kwargs)[0]["translation_text"]
        assert text == translator.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean)
    with pytest.raises(ValueError, match="nothing to return"):
        translator(media["folder"], return_tensors=False, return_text=False)
    # Batched with longer and shorter outputs, each input's ids lose the batch's padding.
    inputs = [media["folder"], media["short"], media["other"]]
    alone = [translator(x, return_tensors=True, max_new_tokens=6)[0] for x in inputs]
    assert translator(inputs, batch_size=3, return_tensors=True, max_new_tokens=6) == alone
    assert translator.tokenizer.pad_token_id not in [i for a in alone for i in a["translation_token_ids"]]


def teacher_forced_score(translator, video, ids, length_penalty, max_new_tokens):
    """The sum of the log-probabilities of `ids[1:]` under the model, over `length ** length_penalty`.

    A sequence that reached `max_new_tokens` ends with the end-of-sentence token that `forced_eos_token_id` forces:
    generate() picked it from a distribution that holds nothing else, so it counts as probability 1.
    """
    features = translator.video_processor(video)
    with torch.no_grad():
        logits = translator.model(**features, decoder_input_ids=torch.tensor([ids[:-1]])).logits[0]
    log_probs = logits.double().log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    forced = translator.model.generation_config.forced_eos_token_id
    if len(ids) - 1 == max_new_tokens and ids[-1] == forced:
        log_probs[-1] = 0.0
    return float(log_probs.sum()) / (len(ids) - 1) ** length_penalty


def test_return_scores(translator, media):
    beams = {"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 5, "length_penalty": 0.7}
    outputs = translator(media["folder"], return_scores=True, return_tensors=True, return_text=True, **beams)
    generated = translator.model.generate(**translator.video_processor(media["folder"]), **beams,
                                          return_dict_in_generate=True, output_scores=True)
    assert [o["score"] for o in outputs] == generated.sequences_scores.tolist()  # generate()'s own numbers
    assert [o["score"] for o in outputs] == sorted((o["score"] for o in outputs), reverse=True)  # best first
    assert set(outputs[0]) == {"translation_text", "translation_token_ids", "score"}
    # The same quantity under greedy search, and what the beams' numbers mean: the model's log-probability of the
    # sequence over length ** length_penalty. Recomputed in one teacher-forced pass (float32 logits of another
    # matrix shape than the cached decoding steps: differences of order 1e-6 per token; 1e-4 is the margin).
    greedy = translator(media["folder"], return_scores=True, return_tensors=True, max_new_tokens=5,
                        length_penalty=0.7)[0]
    for output in (greedy, outputs[0]):
        expected = teacher_forced_score(translator, media["folder"], output["translation_token_ids"], 0.7, 5)
        assert output["score"] == pytest.approx(expected, abs=1e-4)
    assert "score" not in translator(media["folder"], max_new_tokens=2)[0]
    # Batched, each input keeps its own scores.
    inputs = [media["folder"], media["short"]]
    alone = [translator(x, return_scores=True, max_new_tokens=4)[0]["score"] for x in inputs]
    batched = translator(inputs, batch_size=2, return_scores=True, max_new_tokens=4)
    assert [o["score"] for o in batched] == pytest.approx(alone, abs=1e-5)  # a padded batch: float32 rounding


def test_one_output_shape_for_one_input_a_list_and_a_generator(translator, media):
    kwargs = {"num_beams": 2, "num_return_sequences": 2, **settings(translator)}
    one = translator(media["folder"], **kwargs)
    assert isinstance(one, list) and len(one) == 2 and all(isinstance(o, dict) for o in one)
    several = translator([media["folder"], media["short"]], **kwargs)
    assert several[0] == one and len(several[1]) == 2
    assert list(translator((x for x in [media["folder"], media["short"]]), **kwargs)) == several
    # One sequence per input: one dict per input for a list, a list of one for each input of an iterator.
    single = translator(media["folder"], max_new_tokens=3)
    assert translator([media["folder"], media["folder"]], max_new_tokens=3) == single * 2
    assert list(translator((x for x in [media["folder"]] * 2), max_new_tokens=3)) == [single] * 2
    # The number may come from the model's generation config: the shape follows it.
    model_settings = translator.model.generation_config
    model_settings.num_beams, model_settings.num_return_sequences = 2, 2
    try:
        assert translator([media["folder"], media["short"]], **settings(translator)) == several
    finally:
        model_settings.num_beams, model_settings.num_return_sequences = 1, 1


def test_datasets_key_datasets_and_streamed_datasets(translator, media, tmp_path):
    import datasets

    from beyondgloss.data import load_sign_dataset

    expected = [translator(x, max_new_tokens=3) for x in (media["mp4"], media["mp4"])]
    table = datasets.Dataset.from_dict({"id": ["a", "b"], "clip": [media["mp4"]] * 2})
    assert list(translator(KeyDataset(table, "clip"), max_new_tokens=3, batch_size=2)) == expected
    folder = tmp_path / "corpus"
    for name in ("a", "b"):
        write_mp4(folder / f"{name}.mp4", make_frames(6, height=32, width=32))
    (folder / "metadata.jsonl").write_text(
        "\n".join(json.dumps({"file_name": f"{name}.mp4", "text": "hallo"}) for name in "ab"), encoding="utf-8")
    streamed = load_sign_dataset(str(folder), cache_dir=tmp_path / "cache", streaming=True)["train"]
    assert list(translator(streamed, max_new_tokens=3, batch_size=2)) == expected


def test_processor_reads_and_pads_each_batch_once(translator, media, monkeypatch):
    # The model gets the video processor's padded batch itself: no unpadding and padding again in the pipeline.
    batches, model_inputs = [], []
    read = translator.video_processor.preprocess
    generate = translator.model.generate

    def spy_read(videos, **kwargs):
        batches.append(read(videos, **kwargs))
        return batches[-1]

    def spy_generate(**kwargs):
        model_inputs.append(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(translator.video_processor, "preprocess", spy_read)
    monkeypatch.setattr(translator.model, "generate", spy_generate)
    outputs = translator([media["folder"], media["short"], media["other"]], batch_size=3, max_new_tokens=3)
    assert len(outputs) == 3 and len(batches) == 1 and len(model_inputs) == 1
    assert model_inputs[0]["pixel_values_videos"] is batches[0]["pixel_values_videos"]
    assert model_inputs[0]["video_attention_mask"] is batches[0]["video_attention_mask"]
    assert batches[0]["video_attention_mask"].sum(dim=1).tolist() == [6, 3, 5]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def video_server(media, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(open(media["mp4"], "rb").read())
    (tmp_path / "empty.mp4").write_bytes(b"")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_urls_are_fetched_not_read_as_paths(translator, media, video_server, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = f"{video_server}/clip.mp4"
    expected = translator(media["mp4"], max_new_tokens=3)
    assert translator(url, max_new_tokens=3) == expected
    assert translator({"id": "r", "video": url}, max_new_tokens=3) == expected  # a dataset row holding a URL
    missing = f"{video_server}/missing.mp4"
    with pytest.raises(SignTranslationInputError, match=r"input \[1\] of 2 \(http://127\.0\.0\.1:\d+/missing\.mp4\)"
                                                        r".*404"):
        translator([url, missing], max_new_tokens=3)
    outputs = translator([url, f"{video_server}/empty.mp4", url], errors="skip", max_new_tokens=3, batch_size=3)
    assert outputs[0] == outputs[2] == expected[0]
    assert "empty.mp4" in outputs[1]["error"] and "no data" in outputs[1]["error"]


def test_pipeline_from_objects(translator, media, tmp_path):
    model, processor = translator.model, translator.processor
    expected = translator(media["folder"], max_new_tokens=3)
    parts = pipeline(TASK, model=model, tokenizer=processor.tokenizer, video_processor=processor.video_processor)
    assert parts(media["folder"], max_new_tokens=3) == expected
    whole = pipeline(TASK, model=model, processor=processor)
    assert whole(media["folder"], max_new_tokens=3) == expected
    with pytest.raises(ValueError, match="needs a BeyondGlossProcessor"):
        pipeline(TASK, model=model, tokenizer=processor.tokenizer)
    # Saved, the pipeline built from parts is a complete checkpoint, loadable where beyondgloss is not installed.
    parts.save_pretrained(tmp_path / "saved")
    script = BLOCK_BEYONDGLOSS + (
        "import json, sys\n"
        "from transformers import pipeline\n"
        f"translator = pipeline({TASK!r}, model=sys.argv[1], trust_remote_code=True)\n"
        "outputs = [translator(sys.argv[2], max_new_tokens=3),\n"
        "           translator([sys.argv[2]] * 2, generate_kwargs={'max_new_tokens': 3}, return_tensors=True,\n"
        "                      return_scores=True, num_beams=2, num_return_sequences=2)]\n"
        "print(json.dumps(outputs))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "saved"), media["folder"]],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    plain, several = json.loads(result.stdout.strip().splitlines()[-1])
    assert plain == expected
    here = parts([media["folder"]] * 2, max_new_tokens=3, return_tensors=True, num_beams=2, num_return_sequences=2)
    assert [[set(o) for o in x] for x in several] == [[{"translation_token_ids", "score"}] * 2] * 2
    assert [[o["translation_token_ids"] for o in x] for x in several] == [
        [o["translation_token_ids"] for o in x] for x in here]
    assert isinstance(BeyondGlossForSignTranslation.from_pretrained(tmp_path / "saved"), BeyondGlossForSignTranslation)

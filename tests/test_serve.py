"""`beyondgloss serve`: the analyser behind the page, and the page itself driven in headless Chromium."""

import asyncio
import base64
import io
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
import beyondgloss.app
from beyondgloss.app import AppInputError, ServeArguments, SignVideoAnalyser, build_app, frame_strip, launch
from beyondgloss.app_live import LiveSession, LiveSettings
from beyondgloss.app_limits import LimitsMiddleware, UploadLedger, one_line, public_model_name
from beyondgloss.cli import main as cli_main
from beyondgloss.data.synthsign import SYNTHSIGN_LEXICON, render_clip
from beyondgloss.pipeline_sign_translation import TASK
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames, write_mp4
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000",
                  # The live tab's camera: Chromium's synthetic one, allowed without asking.
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def _save_checkpoint(folder, model_class, seed: int = 0):
    """A tiny random checkpoint with its processor (28 px frames, at most 8 of them) saved in `folder`."""
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=8), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(seed)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=2,
                         max_new_tokens=5)
    model = model_class(config).eval()
    if model_class is BeyondGlossForSignTranslation:
        # A random model mostly emits special tokens (decoded to nothing): allow only whole words and EOS after 3
        # tokens, so that the page has a sentence of words to show and compare.
        words = {i for token, i in tokenizer.get_vocab().items() if token.startswith("\u2581") and len(token) > 1}
        words -= set(tokenizer.all_special_ids)
        model.generation_config.suppress_tokens = sorted(set(range(len(tokenizer))) - words - {tokenizer.eos_token_id})
        model.generation_config.min_new_tokens = 3
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A SynthSign clip (3 signs of 6 frames at 32 px) as an mp4."""
    glosses = [sign.gloss for sign in SYNTHSIGN_LEXICON[:3]]
    frames, _ = render_clip(glosses, [6, 6, 6], image_size=32)
    return write_mp4(tmp_path_factory.mktemp("clips") / "synthsign.mp4", torch.from_numpy(frames))


@pytest.fixture(scope="module")
def translation_model(tmp_path_factory, clip):
    folder = _save_checkpoint(tmp_path_factory.mktemp("translation"), BeyondGlossForSignTranslation)
    (folder / "examples").mkdir()
    shutil.copy(clip, folder / "examples" / "example.mp4")
    return folder


@pytest.fixture(scope="module")
def pretraining_model(tmp_path_factory):
    return _save_checkpoint(tmp_path_factory.mktemp("pretraining"), BeyondGlossForContrastivePretraining)


@pytest.fixture(scope="module")
def analyser(translation_model):
    return SignVideoAnalyser(str(translation_model), max_duration_seconds=5)


@pytest.fixture(scope="module")
def expected(translation_model, clip):
    """What `pipeline("sign-translation")` gives for the clip: the text the page must show."""
    text = pipeline(TASK, model=str(translation_model))(str(clip))[0]["translation_text"]
    assert len(text.split()) >= 2  # a real sentence, not an empty string both sides would agree on
    return text


def test_analyser_translates_as_the_pipeline(analyser, clip, expected, translation_model):
    result = analyser.analyse(clip)
    assert result.translations[0][0] == expected
    assert len(result.translations) == 2  # the model's two beams
    scores = [score for _, score in result.translations]
    assert scores == sorted(scores, reverse=True) and all(score < 0 for score in scores)
    assert set(result.timings) == {"decode", "encode", "generate"} and all(t > 0 for t in result.timings.values())
    assert analyser.examples == [translation_model / "examples" / "example.mp4"]
    # The strip's frames are the processor's output brought back to pixels: the same as asking it for unnormalised
    # frames, to one grey level (float rounding of the normalisation and its inverse).
    assert result.num_source_frames == 18 and result.frame_indices == [0, 2, 5, 7, 10, 12, 15, 17]
    raw = analyser.video_processor(str(clip), do_normalize=False)["pixel_values_videos"][0]
    assert result.frames.dtype == torch.uint8 and result.frames.shape == (8, 3, 28, 28)
    assert (result.frames.int() - (raw * 255).round().int()).abs().max() <= 1


def test_greedy_scores_are_the_model_log_probabilities(translation_model, clip, expected):
    greedy = SignVideoAnalyser(str(translation_model), num_beams=1)
    ((text, score),) = greedy.analyse(clip).translations
    assert text == pipeline(TASK, model=str(translation_model))(str(clip), num_beams=1)[0]["translation_text"]
    # Reference: one teacher-forced pass of the model over the generated sentence (no cache, no logits processors).
    ids = greedy.processor.tokenizer(text_target=text)["input_ids"]
    sequence = torch.tensor([[greedy.model.generation_config.decoder_start_token_id, *ids[:-1]]])
    pixels = greedy.video_processor(str(clip))
    with torch.no_grad():
        logits = greedy.model(**pixels, decoder_input_ids=sequence[:, :-1]).logits
    chosen = logits.double().log_softmax(-1).gather(-1, sequence[:, 1:, None])
    assert score == pytest.approx(float(chosen.mean()), abs=1e-4)


def test_frame_strip():
    frames = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 32, 32).contiguous()
    strip, shown = frame_strip(frames, limit=3, height=64, gap=2)
    assert shown == [0, 2, 4]
    assert strip.shape == (64, 3 * 64 + 2 * 2, 3)
    assert strip[0, 0, 0] == 0 and strip[0, 64 + 2, 0] == 2 and strip[0, -1, 0] == 4 and strip[0, 64, 0] == 255
    strip, shown = frame_strip(frames, limit=16, height=32)
    assert shown == [0, 1, 2, 3, 4] and strip.shape == (32, 5 * 32 + 4 * 2, 3)  # fewer frames than the limit: all


def test_bad_videos_get_a_clear_message(analyser, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(AppInputError, match=r"notes\.mp4.*") as error:
        analyser.analyse(text)
    assert str(tmp_path) not in str(error.value)  # the file's name, not the server's temporary path
    long = write_mp4(tmp_path / "long.mp4", torch.zeros(150, 3, 16, 16, dtype=torch.uint8), fps=25)
    with pytest.raises(AppInputError, match=r"long\.mp4 lasts 6\.0 s; this app takes videos up to 5 s"):
        analyser.analyse(long)
    small = SignVideoAnalyser.__new__(SignVideoAnalyser)
    small.max_upload_mb, small.max_duration_seconds = 1e-4, 60
    with pytest.raises(AppInputError, match=r"long\.mp4 is .* MB; this app takes videos up to 0\.0001 MB"):
        small.check(long)


def _decoded_image(html: str):
    """The image of an `<img src="data:image/png;base64,...">` as a uint8 `(H, W, 3)` array."""
    import numpy as np
    from PIL import Image

    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_retrieval_for_a_pretraining_checkpoint(pretraining_model, clip):
    analyser = SignVideoAnalyser(str(pretraining_model))
    assert analyser.kind == "retrieval"
    result = analyser.analyse(clip, SENTENCES + ["", "  "])
    assert len(result.similarities) == 3  # blank lines are not sentences
    values = [v for _, v in result.similarities]
    assert values == sorted(values, reverse=True)
    # The same cosine similarities as the model's own contrastive logits (the video once per sentence), divided by
    # their temperature.
    features = analyser.processor(videos=[str(clip)] * 3, text=SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = analyser.model(**features, return_loss=False)
    direct = out.logits_per_video[0] / analyser.model.logit_scale.exp()
    assert dict(result.similarities) == pytest.approx(dict(zip(SENTENCES, direct.tolist())), abs=1e-5)
    with pytest.raises(AppInputError, match="at least one sentence"):
        analyser.analyse(clip, ["", " "])
    # The page's handler: the bar chart gets the same ranking (its data as the browser receives it).
    app = build_app(analyser)
    handler = next(function.fn for function in app.fns.values() if function.name == "run")
    status, plot, strip, timings = handler(str(clip), "\n".join(SENTENCES))
    assert status.startswith("Done. 8 of 18 source frames kept") and "retrieve" in timings
    (bar_plot,) = [block for block in app.blocks.values() if type(block).__name__ == "BarPlot"]
    assert [row[0] for row in bar_plot.postprocess(plot).data] == [s for s, _ in result.similarities]
    assert _decoded_image(strip).shape == (112, 8 * 112 + 7 * 2, 3)


def test_retrieval_caps_and_batches(pretraining_model, clip, monkeypatch):
    analyser = SignVideoAnalyser(str(pretraining_model), max_candidates=3, max_candidate_chars=60)
    with pytest.raises(AppInputError, match=r"^4 sentences given; this app compares a video with at most 3 at once"):
        analyser.analyse(clip, SENTENCES + ["noch ein satz"])
    with pytest.raises(AppInputError, match=r"^The sentences hold 61 characters; this app takes at most 60 per"):
        analyser.analyse(clip, ["x" * 30, "y" * 31])
    # Encoded a few at a time (sorted by length, so batches differ from the order given): the same similarities as
    # all in one batch, to float32 rounding of the padded positions' absence (a padded key has weight exactly 0).
    sentences = [" ".join(SENTENCES[i % 3].split()[: 2 + i % 4]) for i in range(7)]
    analyser.max_candidates, analyser.max_candidate_chars = 7, 1000
    whole = dict(analyser.analyse(clip, sentences).similarities)
    monkeypatch.setattr(beyondgloss.app, "CANDIDATE_BATCH", 2)
    batched = dict(analyser.analyse(clip, sentences).similarities)
    assert batched == pytest.approx(whole, abs=1e-5)
    # The page plots the most similar ones only, and says so.
    monkeypatch.setattr(beyondgloss.app, "PLOTTED_SENTENCES", 2)
    handler = next(function.fn for function in build_app(analyser).fns.values() if function.name == "run")
    status, plot, _, _ = handler(str(clip), "\n".join(sentences))
    assert len(plot) == 2 and "The plot shows the 2 most similar of 7 sentences." in status


def test_messages_name_no_server_path(tmp_path):
    torchcodec_says = (f"{tmp_path}/notes.mp4: FFmpeg cannot open it as a video; it looks like a text file, not a "
                       "video (SingleStreamDecoder, /__w/torchcodec/torchcodec/src/torchcodec/_core/SingleStreamDecod"
                       f"er.cpp:52, Could not open input file: {tmp_path}/notes.mp4 Invalid data)\nmore detail")
    assert one_line(torchcodec_says, (f"{tmp_path}/notes.mp4", "notes.mp4")) == (
        "notes.mp4: FFmpeg cannot open it as a video; it looks like a text file, not a video")
    assert one_line("cannot load /usr/lib/x86_64-linux-gnu/libavcodec.so.59: no such file") == (
        "cannot load libavcodec.so.59: no such file")
    assert public_model_name(str(tmp_path)) == tmp_path.name
    assert public_model_name("your-name/phoenix14t-beyondgloss") == "your-name/phoenix14t-beyondgloss"


def test_cli_documents_and_checks_the_caps(capsys):
    assert cli_main(["serve", "--help"]) == 0
    flags = {part.split()[0]: part for part in capsys.readouterr().out.split("\n  --")[1:]}
    for flag, default in [("max_candidates", "20000"), ("max_candidate_chars", "2000000"), ("max_upload_mb", "50.0"),
                          ("max_upload_disk_mb", "500.0"), ("max_concurrent_uploads", "4"),
                          ("max_requests_per_minute", "60"), ("concurrency_limit", "1"), ("max_queue_size", "16"),
                          ("max_live_sessions", "2"), ("max_live_seconds", "600.0"), ("live_fps", "10.0"),
                          ("caption_confidence_threshold", "-1.0")]:
        assert f"(default: {default})" in " ".join(flags[flag].split()), flag
    for argv, message in [(["--max_upload_disk_mb", "10"], "--max_upload_disk_mb 10: must be at least "
                           "--max_upload_mb (50)"),
                          (["--max_requests_per_minute", "-1"], "--max_requests_per_minute -1: must be 0 (no limit)"),
                          (["--max_candidates", "0"], "--max_candidates 0: must be a positive integer"),
                          (["--live_stride_seconds", "5"], "--live_stride_seconds 5: must be at most "
                           "--live_window_seconds (4)"),
                          (["--max_live_sessions", "0"], "--max_live_sessions 0: must be a positive integer")]:
        assert cli_main(["serve", "--model", "x", *argv]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"beyondgloss serve: error: {message}")


def test_cli_errors_are_one_line(capsys):
    # An input error: one line, status 1. A bad flag: argparse's usage, then one line, status 2.
    assert cli_main(["serve", "--model", "/no/such/folder"]) == 1
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("beyondgloss serve: error: --model /no/such/folder: no such folder")
    assert cli_main(["serve", "--model", "x", "--concurrency_limit", "0"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("usage: beyondgloss serve")
    assert errors[-1] == "beyondgloss serve: error: --concurrency_limit 0: must be a positive integer (1 or more)"
    assert ServeArguments(model="m").port == 7860


# --------------------------------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = "chromium" if chromium is None else "chromedriver"
        reason = (f"{missing} is not installed (apt-get install chromium chromium-driver, as scripts/install.sh "
                  "does)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; under CI the browser test must run")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    # A given driver path: Selenium Manager, which would download a driver, is never asked.
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield session
    session.quit()


# The live tab translates 0.5 s windows (5 frames at 10 frames/s) every 0.2 s, and shows each new text at once: the
# first caption comes about half a second after the camera starts.
LIVE = {"live_window_seconds": 0.5, "live_stride_seconds": 0.2, "live_agreement": 1, "live_fps": 10}


@pytest.fixture(scope="module")
def server(translation_model):
    app = launch(str(translation_model), port=0, block=False, max_duration_seconds=5, max_upload_mb=1, **LIVE)
    yield app
    app.close()


def test_server_turns_away_uploads_over_the_cap(server):
    import httpx

    url = server.local_url.rstrip("/") + "/gradio_api/upload"
    refused = httpx.post(url, files={"files": ("big.mp4", b"\0" * (2**20 + 1), "video/mp4")}, timeout=30)
    assert refused.status_code == 413 and "1048576 bytes" in refused.text
    assert httpx.post(url, files={"files": ("small.mp4", b"\0" * 1000, "video/mp4")}, timeout=30).status_code == 200


def _post_upload(url: str, name: str, content: bytes):
    import httpx

    return httpx.post(url.rstrip("/") + "/gradio_api/upload", files={"files": (name, content, "video/mp4")},
                      timeout=30)


def _uploaded(url: str, name: str, content: bytes) -> str:
    response = _post_upload(url, name, content)
    assert response.status_code == 200, response.text
    (path,) = response.json()
    return path


def _call(url: str, video: str) -> list:
    """The page's function on a video already on the server, through Gradio's HTTP API (as a client calls it)."""
    import httpx

    endpoint = url.rstrip("/") + "/gradio_api/call/run"
    data = [{"path": video, "meta": {"_type": "gradio.FileData"}}]
    event = httpx.post(endpoint, json={"data": data}, timeout=30).json()["event_id"]
    lines = httpx.get(f"{endpoint}/{event}", timeout=120).text.splitlines()
    (answer,) = [lines[i + 1] for i, line in enumerate(lines) if line == "event: complete"]
    return json.loads(answer.removeprefix("data: "))


def test_each_upload_is_deleted_when_its_request_ends(server, clip):
    url = server.local_url
    video = _uploaded(url, "synthsign.mp4", clip.read_bytes())
    assert Path(video).is_file() and server.upload_ledger.holds(video)
    assert _call(url, video)[0].startswith("Done.")
    assert not Path(video).exists() and not server.upload_ledger.holds(video)
    assert video not in server.upload_file_set  # nor kept in Gradio's own list
    assert "no longer on the server" in _call(url, video)[0]
    # A request that fails deletes its upload too.
    text = _uploaded(url, "notes.mp4", b"this is not a video")
    assert "cannot be read as a video" in _call(url, text)[0] and not Path(text).exists()
    # One file uploaded twice (Gradio stores it once): deleted when the second request ends.
    first, second = (_uploaded(url, "synthsign.mp4", clip.read_bytes()) for _ in range(2))
    assert first == second
    _call(url, first)
    assert Path(first).is_file()
    _call(url, second)
    assert not Path(first).exists()
    # The checkpoint's example clip is not an upload: used and kept.
    (example,) = [path for block in server.blocks.values() for path in getattr(block, "keep_in_cache", ())]
    assert _call(url, example)[0].startswith("Done.") and Path(example).is_file()


def test_the_page_names_no_server_path(server, translation_model, clip):
    import httpx

    page = httpx.get(server.local_url, timeout=30).text + httpx.get(server.local_url + "config", timeout=30).text
    assert f"Model: `{translation_model.name}`" in page  # the folder's name, not its path
    outputs = json.dumps(_call(server.local_url, _uploaded(server.local_url, "notes.mp4", b"not a video")))
    assert "notes.mp4" in outputs
    for path in (str(translation_model), sys.prefix, str(Path(torch.__file__).parents[1]), os.getcwd(), "/__w/"):
        assert path not in page and path not in outputs, path
    assert not re.search(r"(?<![\w.])/\w+/\w+", outputs)  # no absolute path at all in the answer


@pytest.fixture
def tight_server(translation_model):
    app = launch(str(translation_model), port=0, block=False, max_upload_mb=0.01, max_upload_disk_mb=0.025,
                 max_requests_per_minute=6, max_candidate_chars=100)
    yield app
    app.close()


def test_server_caps_refuse_with_a_clear_message(tight_server):
    import httpx

    url = tight_server.local_url
    # Two uploads of 9,000 bytes fit under 0.025 MB (26,214 bytes) of uploads on disk; a third does not.
    first, second = (_post_upload(url, f"{i}.mp4", bytes([i]) * 9000) for i in range(2))
    assert first.status_code == second.status_code == 200
    third = _post_upload(url, "2.mp4", bytes([2]) * 9000)
    assert third.status_code == 503 and re.fullmatch(
        r"The server holds 0\.0\d+ MB of uploads and takes at most 0\.025 MB\. Try again in a minute\.", third.text)
    # Any other request: its body at most what 100 characters of sentences need (1,200 bytes and 64 KiB).
    join = httpx.post(url + "gradio_api/queue/join", content=b" " * 70_000, timeout=30)
    assert join.status_code == 413 and join.text == "This request is 0.0668 MB; this server takes at most 0.0636 MB."
    # Six POSTs a minute from one address: the seventh is turned away, with the time to wait.
    for _ in range(2):
        assert httpx.post(url + "gradio_api/queue/join", content=b"{}", timeout=30).status_code != 429
    late = httpx.post(url + "gradio_api/queue/join", content=b"{}", timeout=30)
    assert late.status_code == 429 and late.text.startswith("Too many requests from your address: this server takes "
                                                            "6 a minute. Try again in")
    assert int(late.headers["retry-after"]) <= 60


def test_uploads_beyond_the_concurrent_cap_are_turned_away():
    """The middleware alone, around an app whose upload waits until released: the second upload at once is refused."""
    release = asyncio.Event()

    async def gradio(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    ledger = UploadLedger(max_bytes=10**6)
    middleware = LimitsMiddleware(gradio, ledger, max_upload_bytes=1000, max_body_bytes=1000, max_concurrent_uploads=1,
                                  max_requests_per_minute=0)

    async def post(headers=((b"content-length", b"100"),)):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/gradio_api/upload", "headers": list(headers),
                 "client": ("192.0.2.1", 1234)}
        await middleware(scope, None, send)
        return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:]).decode()

    async def scenario():
        first = asyncio.create_task(post())
        await asyncio.sleep(0)  # the first upload is now inside the app, waiting
        second = await post()
        reserved = ledger.in_use()
        no_length = await post(headers=())
        release.set()
        return await first, second, reserved, no_length

    first, second, reserved, no_length = asyncio.run(scenario())
    assert first == (200, "[]") and reserved == 100 and ledger.in_use() == 0
    assert second == (503, "The server is receiving 1 uploads already, its most at once. Try again in a moment.")
    assert no_length == (411, "This upload has no Content-Length; send its length.")


def _upload(browser, url, path):
    from selenium.webdriver.common.by import By

    browser.get(url)
    # The page renders its components after loading its scripts.
    inputs = _wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#video input[type=file]"), "the upload field")
    inputs[0].send_keys(str(path))


def _wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"the page did not show {what} within {timeout:.0f} s")


def test_page_translates_an_upload_and_explains_a_bad_file(browser, server, clip, expected, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    uploaded = []  # what the page uploads, as the server stores it
    settle = server.upload_ledger.settle
    monkeypatch.setattr(server.upload_ledger, "settle",
                        lambda size, paths: settle(size, uploaded.extend(paths) or paths))

    def field(selector, attribute=None):
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            return ""
        return found[0].get_attribute(attribute) if attribute else found[0].text

    _upload(browser, server.local_url, clip)
    started = time.perf_counter()
    _wait_for(lambda: field("#translation textarea", "value") == expected, f"the translation {expected!r}")
    round_trip = time.perf_counter() - started
    _wait_for(lambda: "ms" in field("#timings"), "the stage timings")
    assert "decode" in field("#timings") and "generate" in field("#timings")
    assert expected in field("#beams")  # the best beam heads the table of alternatives
    strip = browser.find_element(By.CSS_SELECTOR, "#frames img").get_attribute("src")
    assert strip.startswith("data:image/png;base64,")  # the frames come inside the page
    browser.save_screenshot(str(tmp_path / "translated.png"))
    # For the report: the round trip from upload to the text in the page, against the app's own stage total.
    print(f"\nupload -> translation visible: {round_trip * 1000:.0f} ms; app stages: {field('#timings')}")

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    _upload(browser, server.local_url, text)
    message = _wait_for(lambda: "cannot be read as a video" in field("#status") and field("#status"),
                        "the unreadable-video message")
    assert "notes.mp4" in message and "Traceback" not in browser.page_source
    assert field("#translation textarea", "value") == ""
    browser.save_screenshot(str(tmp_path / "unreadable.png"))
    assert (tmp_path / "translated.png").stat().st_size > 0 and (tmp_path / "unreadable.png").stat().st_size > 0

    # Each upload was deleted when its request ended, and the frames came inside the page: no file is left.
    assert sorted(Path(path).name for path in uploaded) == ["notes.mp4", "synthsign.mp4"]
    assert not [path for path in uploaded if Path(path).exists()]


def test_space_app_runs_serve_for_the_named_checkpoint(monkeypatch):
    """model_cards/app.py (a Space's app.py) runs `beyondgloss serve` for BEYONDGLOSS_MODEL on the Space's address.

    The command itself is `beyondgloss.cli.main`, recorded here instead of run: it would serve until interrupted
    (the page it serves is the one the browser test drives).
    """
    import runpy

    import beyondgloss.cli

    script = str(Path(__file__).parents[1] / "model_cards" / "app.py")
    calls = []
    monkeypatch.setattr(beyondgloss.cli, "main", lambda argv: calls.append(argv) or 0)
    for name in ("BEYONDGLOSS_MODEL", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.setenv(name, "")  # recorded, so that what the script sets is undone after the test
        monkeypatch.delenv(name)
    with pytest.raises(SystemExit, match="set BEYONDGLOSS_MODEL"):
        runpy.run_path(script, run_name="__main__")
    monkeypatch.setenv("BEYONDGLOSS_MODEL", "your-name/phoenix14t-beyondgloss")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(script, run_name="__main__")
    assert exit_.value.code == 0
    assert calls == [["serve", "--model", "your-name/phoenix14t-beyondgloss", "--host", "0.0.0.0", "--port", "7860"]]
    assert os.environ["FORWARDED_ALLOW_IPS"] == "*"  # uvicorn: the visitor's address from the Space's proxy


def _image(frame: torch.Tensor, kind: str = "JPEG") -> bytes:
    from PIL import Image

    data = io.BytesIO()
    Image.fromarray(frame.permute(1, 2, 0).numpy()).save(data, format=kind)
    return data.getvalue()


def test_live_session_drops_frames_when_behind_and_ends_when_idle(monkeypatch):
    """A session whose translator is busy: frames beyond its queue are dropped and counted, not held; a frame that
    does not decode is skipped; with no frame for `idle_seconds` the session ends by itself."""
    import beyondgloss.app_live

    monkeypatch.setattr(beyondgloss.app_live, "LIVE_QUEUE_SECONDS", 0.001)  # a queue of one frame at 1000 frames/s
    release, seen = threading.Event(), []

    def translator(frames):  # busy until released, then takes every frame as StreamingTranslator does
        release.wait(10)
        seen.extend((timestamp, frame.shape) for timestamp, frame in frames)
        yield from ()

    session = LiveSession(translator, LiveSettings(fps=1000, idle_seconds=0.5))
    jpeg = _image(make_frames(1, height=32, width=32)[0])
    for index in range(4):
        session.push(index / 1000, jpeg)
        time.sleep(0.002)
    assert (session.received, session.queued, session.dropped) == (4, 1, 3)
    release.set()
    _wait_for(lambda: seen, "the queued frame translated")
    session.push(1.0, jpeg[: len(jpeg) // 2])  # a truncated JPEG: its header passes, its pixels do not decode
    _wait_for(session.done.is_set, "the idle session's end", timeout=5)
    assert seen == [(0.0, (32, 32, 3))] and session.bad == 1 and session.error is None
    # Frames sooner than half an interval after the previous one are dropped too (a page sending too fast).
    steady = LiveSession(translator, LiveSettings(fps=1, idle_seconds=0.2))
    steady.push(0.0, jpeg)
    steady.push(0.01, jpeg)
    assert (steady.queued, steady.dropped) == (1, 1)


def test_live_routes_check_every_frame_and_cap_the_sessions(server):
    import httpx

    url = server.local_url.rstrip("/")
    first = httpx.post(url + "/live/start", timeout=30).json()
    assert first["fps"] == 10 and first["confidence_threshold"] == -1.0
    frame = f"{url}/live/{first['session']}/frame"
    jpeg = _image(make_frames(1, height=32, width=32)[0])
    # Frames do not count against the per-address request rate (60 a minute): the session bounds them.
    answers = [httpx.post(f"{frame}?t={index / 10}", content=jpeg, timeout=30) for index in range(65)]
    assert {answer.status_code for answer in answers} == {200} and answers[-1].json()["received"] == 65
    for query, content, status, message in [
        ("t=1", jpeg, 400, "a number that never decreases; got t='1'"), ("t=x", jpeg, 400, "got t='x'"),
        ("t=9", b"not an image", 415, "This frame is not an image; send JPEG, PNG or WebP frames."),
        ("t=9", _image(make_frames(1, height=32, width=32)[0], "GIF"), 415, "This frame is a GIF image"),
        ("t=9", _image(torch.zeros(3, 1200, 1800, dtype=torch.uint8), "PNG"), 415,
         "This frame is 1800 x 1200 pixels; the live tab takes frames up to 2,073,600 pixels."),
        ("t=9", b"\0" * (2**20 + 1), 413, "A live frame is at most 1024 kB"),
    ]:
        answer = httpx.post(f"{frame}?{query}", content=content, timeout=30)
        assert (answer.status_code, message in answer.text) == (status, True), answer.text
    second = httpx.post(url + "/live/start", timeout=30)
    refused = httpx.post(url + "/live/start", timeout=30)
    assert second.status_code == 200 and refused.status_code == 503
    assert refused.text == "The server runs 2 live sessions already, its most at once. Try again later."
    for key in (first["session"], second.json()["session"]):
        assert httpx.post(f"{url}/live/{key}/stop", timeout=60).json()["ended"]
    assert not server.live_sessions.sessions
    ended = httpx.post(f"{frame}?t=99", content=jpeg, timeout=30)
    assert ended.status_code == 404 and ended.text.startswith("This live session has ended")


def test_live_tab_captions_the_camera(browser, server, tmp_path):
    """Chromium's synthetic camera in the live tab: frames reach the server and captions appear under the picture."""
    from selenium.webdriver.common.by import By

    browser.get(server.local_url)
    tab = _wait_for(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                             if b.text == "Live captions"], "the live tab")
    tab[0].click()
    _wait_for(lambda: browser.find_elements(By.ID, "live-start"), "the start button")[0].click()
    started = time.perf_counter()
    item = _wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#live-captions li"), "a caption")[0]
    first_caption = time.perf_counter() - started
    (session,) = server.live_sessions.sessions.values()
    caption = session.captions[0]
    assert session.received >= 5 and caption["text"]  # a window's worth of frames, translated into words
    clock = [f"{int(seconds // 60)}:{seconds % 60:04.1f}" for seconds in (caption["start"], caption["end"])]
    assert item.text.startswith(f"[{clock[0]} → {clock[1]}] {caption['text']} (confidence "
                                f"{caption['confidence']:.2f} · ")  # then the latency of its window
    assert caption["signing_probability"] is None and "signing" not in item.text  # the tiny model has no gate
    greyed = "live-low" in item.get_attribute("class")
    assert greyed == (caption["confidence"] < ServeArguments(model="m").caption_confidence_threshold)
    status = browser.find_element(By.ID, "live-status").text
    assert re.match(r"frames sent \d+, received by the server \d+, dropped \d+; captions \d+", status), status
    browser.save_screenshot(str(tmp_path / "live.png"))
    assert (tmp_path / "live.png").stat().st_size > 0
    browser.find_element(By.ID, "live-stop").click()
    _wait_for(lambda: not server.live_sessions.sessions and session.done.is_set(), "the session's end")
    _wait_for(lambda: browser.find_element(By.ID, "live-start").is_enabled(), "the start button again")
    print(f"\ncamera start -> first caption visible: {first_caption * 1000:.0f} ms; frames received "
          f"{session.received}, dropped {session.dropped}")

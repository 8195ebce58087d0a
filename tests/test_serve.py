"""`beyondgloss serve`: the analyser behind the page, and the page itself driven in headless Chromium."""

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from beyondgloss.app import AppInputError, ServeArguments, SignVideoAnalyser, build_app, frame_strip, launch
from beyondgloss.cli import main as cli_main
from beyondgloss.data.synthsign import SYNTHSIGN_LEXICON, render_clip
from beyondgloss.pipeline_sign_translation import TASK
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import write_mp4
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000"]


def _save_checkpoint(folder, model_class, seed: int = 0):
    """A tiny random checkpoint with its processor (28 px frames, at most 8 of them) saved in `folder`."""
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, num_frames=8), tokenizer,
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


def test_retrieval_for_a_pretraining_checkpoint(tmp_path, clip):
    folder = _save_checkpoint(tmp_path / "pretraining", BeyondGlossForContrastivePretraining)
    analyser = SignVideoAnalyser(str(folder))
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
    assert strip.shape == (112, 8 * 112 + 7 * 2, 3)


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


@pytest.fixture(scope="module")
def server(translation_model):
    app = launch(str(translation_model), port=0, block=False, max_duration_seconds=5, max_upload_mb=1)
    yield app
    app.close()


def test_server_turns_away_uploads_over_the_cap(server):
    import httpx

    url = server.local_url.rstrip("/") + "/gradio_api/upload"
    refused = httpx.post(url, files={"files": ("big.mp4", b"\0" * (2**20 + 1), "video/mp4")}, timeout=30)
    assert refused.status_code == 413 and "1048576 bytes" in refused.text
    assert httpx.post(url, files={"files": ("small.mp4", b"\0" * 1000, "video/mp4")}, timeout=30).status_code == 200


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


def test_page_translates_an_upload_and_explains_a_bad_file(browser, server, clip, expected, tmp_path):
    from selenium.webdriver.common.by import By

    def field(selector, attribute=None):
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            return ""
        return found[0].get_attribute(attribute) if attribute else found[0].text

    _upload(browser, server.local_url, clip)
    uploaded = time.perf_counter()
    _wait_for(lambda: field("#translation textarea", "value") == expected, f"the translation {expected!r}")
    round_trip = time.perf_counter() - uploaded
    _wait_for(lambda: "ms" in field("#timings"), "the stage timings")
    assert "decode" in field("#timings") and "generate" in field("#timings")
    assert expected in field("#beams")  # the best beam heads the table of alternatives
    assert browser.find_element(By.CSS_SELECTOR, "#frames img").get_attribute("src")
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

    # The uploads and the frame strips live in the app's cache until they age out, and go when the server stops
    # (Gradio keeps its copy of the checkpoint's example clip).
    cached = [Path(name) for names in server.temp_file_sets for name in names if Path(name).name != "example.mp4"]
    assert {"synthsign.mp4", "notes.mp4"} <= {path.name for path in cached} and all(p.exists() for p in cached)
    assert any(path.suffix == ".png" for path in cached)  # a frame strip
    server.close()
    assert not [path for path in cached if path.exists()]



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
    for name in ("BEYONDGLOSS_MODEL", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="set BEYONDGLOSS_MODEL"):
        runpy.run_path(script, run_name="__main__")
    monkeypatch.setenv("BEYONDGLOSS_MODEL", "your-name/phoenix14t-beyondgloss")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(script, run_name="__main__")
    assert exit_.value.code == 0
    assert calls == [["serve", "--model", "your-name/phoenix14t-beyondgloss", "--host", "0.0.0.0", "--port", "7860"]]

"""The Sign Video Descriptor: segments and grids, describer + refiner runs, endpoint failures, the encoder.

Every model is a tiny random transformers model built here and loaded back from tmp_path by path.
"""

import http.server
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from beyondgloss.data.feature_store import FeatureStore
from beyondgloss.descriptor import (
    DescriptionEncoder,
    DescriptionRefiner,
    NotAnImageTextToTextModelError,
    OpenAICompatibleEndpoint,
    SignVideoDescriber,
    describe_videos,
    find_videos,
    frame_grid,
    segment_ranges,
)
from beyondgloss.cli.descriptor import describe, encode_descriptions
from beyondgloss.testing import SAME_MATH_RTOL

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
CORPUS = [
    "the right hand rises from the chest with the palm facing down",
    "both hands form fists and move in a circle in front of the body",
    "the left index finger points up and taps the chin twice",
]


def tiny_tokenizer(extra_special=()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>", *extra_special]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CORPUS, trainer)
    extra = {"image_token": "<image>"} if "<image>" in extra_special else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens=extra,
    )


def tiny_llama_config(vocab_size):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=3,
    )


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A LLaVA (tiny CLIP vision tower + tiny Llama) with a locally trained tokenizer and a chat template."""
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    path = tmp_path_factory.mktemp("tiny_vlm")
    tokenizer = tiny_tokenizer(extra_special=("<image>",))
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
            patch_size=14, projection_dim=16,
        ),
        text_config=tiny_llama_config(len(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    ))
    # No end-of-sequence: a random model then always writes max_new_tokens tokens, never an empty text.
    model.generation_config.eos_token_id = None
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_chat_lm(tmp_path_factory):
    from transformers import LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_chat_lm")
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(1)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer)))
    model.generation_config.eos_token_id = None
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def describer(tiny_vlm):
    return SignVideoDescriber.from_pretrained(str(tiny_vlm), max_new_tokens=4, batch_size=2)


@pytest.fixture(scope="module")
def refiner(tiny_chat_lm):
    return DescriptionRefiner.from_pretrained(str(tiny_chat_lm), max_new_tokens=5)


def write_frame_folder(folder, frames, size=(12, 10)):
    folder.mkdir(parents=True)
    for index in range(frames):
        Image.new("RGB", size, (index * 9 % 256, 40, 200)).save(folder / f"images{index:04d}.png")
    return folder


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "videos"
    for name, frames in (("a", 5), ("b", 33), ("c", 17)):
        write_frame_folder(root / name, frames)
    return root


def run(videos, output_dir, describer, refiner):
    return describe_videos(videos, output_dir, describer, refiner, progress=False)


# --- segments and grids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, expected",
    [
        (1, [(0, 1)]),
        (16, [(0, 16)]),
        (17, [(0, 17)]),
        (31, [(0, 31)]),
        (32, [(0, 16), (16, 32)]),
        (33, [(0, 16), (16, 33)]),
    ],
)
def test_segment_ranges(frames, expected):
    segments = segment_ranges(frames)
    assert [(s.start, s.stop) for s in segments] == expected
    assert [i for s in segments for i in s] == list(range(frames))


def test_segment_ranges_rejects_empty_video():
    with pytest.raises(ValueError, match="at least one frame"):
        segment_ranges(0)


def colored_frames(count, width=30, height=20):
    frames = torch.zeros(count, 3, height, width, dtype=torch.uint8)
    for index in range(count):
        frames[index, 0] = index + 1  # a frame's red value names it; 0 never occurs, white is 255
    return frames


@pytest.mark.parametrize("count, columns", [(1, 1), (16, 4), (17, 5), (31, 6), (32, 6), (33, 6)])
def test_grid_geometry(count, columns):
    width, height, gap = 30, 20, 50
    grid = frame_grid(colored_frames(count, width, height))
    assert grid.size == (columns * width + (columns - 1) * gap, columns * height + (columns - 1) * gap)
    pixels = torch.from_numpy(np.array(grid)).permute(2, 0, 1)
    for cell in range(columns * columns):
        row, column = divmod(cell, columns)
        top, left = row * (height + gap), column * (width + gap)
        block = pixels[:, top : top + height, left : left + width]
        if cell < count:  # row-major: frame `cell` sits at (row, column)
            assert (block[0] == cell + 1).all() and (block[1:] == 0).all()
        else:  # empty cells are white
            assert (block == 255).all()
        if column + 1 < columns:  # the gap to the right is white
            assert (pixels[:, top : top + height, left + width : left + width + gap] == 255).all()


def test_grid_longest_side_capped_at_1920_keeping_aspect():
    frames = colored_frames(17, width=400, height=300)  # 5 x 5 grid: 2200 x 1700 before the cap
    grid = frame_grid(frames)
    assert grid.size == (1920, round(1700 * 1920 / 2200))
    uncapped = frame_grid(colored_frames(16, width=400, height=300))  # 1750 x 1350 stays
    assert uncapped.size == (1750, 1350)
    assert frame_grid(frames, max_side=None).size == (2200, 1700)


# --- describer + refiner runs ----------------------------------------------------------------------------


def test_describe_and_refine_end_to_end(video_folder, tmp_path, describer, refiner):
    videos = find_videos([video_folder])
    assert sorted(videos) == ["a", "b", "c"]
    output = tmp_path / "descriptions"
    summary = run(videos, output, describer, refiner)
    assert sorted(summary.described) == ["a", "b", "c"] and not summary.failed
    expected_keys = {"a": ["chunk_0", "refined"], "b": ["chunk_0", "chunk_1", "refined"], "c": ["chunk_0", "refined"]}
    for name, keys in expected_keys.items():
        record = json.loads((output / f"{name}.json").read_text())
        assert list(record) == keys
        assert all(isinstance(text, str) and text for text in record.values())
    assert sorted(p.name for p in output.iterdir()) == ["a.json", "b.json", "c.json"]

    # A second run skips every finished video, without calling a model and without touching the files.
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    again = describe_videos(videos, output, _Exploding(), _Exploding(), progress=False)
    assert sorted(again.skipped) == ["a", "b", "c"] and not again.described
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


class _Exploding:
    def __getattr__(self, name):
        raise AssertionError(f"a finished video must not reach the models (called {name})")


def test_interrupted_run_resumes(video_folder, tmp_path, describer, refiner, monkeypatch):
    videos = find_videos([video_folder])
    output = tmp_path / "descriptions"
    real = describer.describe_images
    calls = []

    def crash_on_second_video(images):
        calls.append(len(images))
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return real(images)

    monkeypatch.setattr(describer, "describe_images", crash_on_second_video)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(videos, output, describer, refiner)
    assert sorted(p.name for p in output.iterdir()) == ["a.json"]
    first = (output / "a.json").read_bytes()
    monkeypatch.undo()

    summary = run(videos, output, describer, refiner)
    assert summary.skipped == ["a"] and sorted(summary.described) == ["b", "c"]
    assert (output / "a.json").read_bytes() == first
    assert list(json.loads((output / "b.json").read_text())) == ["chunk_0", "chunk_1", "refined"]


def test_describer_batches_segments_and_sends_grids(describer, monkeypatch):
    seen = []
    real_generate = describer.model.generate

    def spy(**inputs):
        seen.append(inputs["pixel_values"].shape[0])
        assert inputs["do_sample"] is False and inputs["max_new_tokens"] == describer.max_new_tokens
        return real_generate(**inputs)

    monkeypatch.setattr(describer.model, "generate", spy)
    texts = describer.describe_video(colored_frames(70, width=8, height=6))  # 4 segments, batches of 2
    assert len(texts) == 4 and seen == [2, 2]
    assert [grid.size for grid in describer.grids(colored_frames(20, width=8, height=6))] == [(5 * 8 + 200, 5 * 6 + 200)]


def test_video_without_frames_is_marked_failed_and_the_run_continues(tmp_path, describer, refiner):
    (tmp_path / "empty").mkdir()
    (tmp_path / "zero.mp4").write_bytes(b"")
    videos = {
        "empty": tmp_path / "empty",
        "zero": tmp_path / "zero.mp4",
        "short": write_frame_folder(tmp_path / "short", 2),
    }
    output = tmp_path / "descriptions"
    summary = run(videos, output, describer, refiner)
    assert summary.described == ["short"] and sorted(summary.failed) == ["empty", "zero"]
    assert "video 'empty'" in summary.failed["empty"] and "no images" in summary.failed["empty"]
    assert "zero.mp4" in summary.failed["zero"] and "empty (0 bytes)" in summary.failed["zero"]
    failure = json.loads((output / "empty.failed.json").read_text())
    assert failure["stage"] == "read" and failure["error"] == summary.failed["empty"]
    assert not (output / "empty.json").exists() and not (output / "zero.json").exists()

    # A counter that reports no frames (a custom reader) is refused before any segmenting.
    summary = describe_videos(
        {"none": "anything"}, output, describer, refiner, read_frames=_Exploding(), count_frames=lambda source: 0,
        progress=False,
    )
    assert "has no frames" in summary.failed["none"]


# --- the endpoint refiner -------------------------------------------------------------------------------


class _Server:
    """A loopback chat-completions server: answers with `status` and `body`, records requests."""

    def __init__(self, status, body):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                outer.requests.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_endpoint_refiner_sends_the_chat_request(monkeypatch):
    monkeypatch.setenv("BEYONDGLOSS_TEST_KEY", "secret-key")
    answer = {"choices": [{"message": {"role": "assistant", "content": " Both flat hands rise together. "}}]}
    with _Server(200, answer) as server:
        refiner = DescriptionRefiner.from_endpoint(server.url, "tiny-chat", api_key_env="BEYONDGLOSS_TEST_KEY")
        assert refiner.refine(["The right hand rises.", "The left hand follows."]) == "Both flat hands rise together."
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer secret-key"
    assert body["model"] == "tiny-chat" and body["messages"][0]["role"] == "user"
    content = body["messages"][0]["content"]
    assert content.index("1. The right hand rises.") < content.index("2. The left hand follows.")


def test_failing_endpoint_retries_with_backoff_then_marks_the_video_failed(
    video_folder, tmp_path, describer, refiner, monkeypatch
):
    videos = find_videos([video_folder])
    output = tmp_path / "descriptions"
    sleeps = []
    with _Server(500, {"error": "overloaded"}) as server:
        endpoint = OpenAICompatibleEndpoint(server.url, "tiny-chat", max_retries=2, backoff=0.5, sleep=sleeps.append)
        summary = run(videos, output, describer, DescriptionRefiner(endpoint))
    assert len(server.requests) == 3 * 3  # every video: one try + two retries, and the run went on
    assert sleeps == [0.5, 1.0] * 3
    assert sorted(summary.failed) == ["a", "b", "c"] and "HTTP 500" in summary.failed["b"]
    assert not list(output.glob("?.json"))
    failure = json.loads((output / "b.failed.json").read_text())
    assert failure["stage"] == "refine" and len(failure["chunks"]) == 2

    # The rerun reuses the saved segment texts (the vision-language model is not called) and finishes.
    monkeypatch.setattr(describer, "describe_images", _Exploding().__getattr__)
    summary = run(videos, output, describer, refiner)
    assert sorted(summary.described) == ["a", "b", "c"]
    record = json.loads((output / "b.json").read_text())
    assert [record["chunk_0"], record["chunk_1"]] == failure["chunks"] and record["refined"]
    assert not list(output.glob("*.failed.json"))


def test_endpoint_client_error_is_not_retried():
    sleeps = []
    with _Server(401, {"error": "bad key"}) as server:
        endpoint = OpenAICompatibleEndpoint(server.url, "m", max_retries=3, sleep=sleeps.append)
        with pytest.raises(Exception, match="HTTP 401.*API key"):
            DescriptionRefiner(endpoint).refine(["text"])
    assert len(server.requests) == 1 and sleeps == []


# --- bad models and the command -------------------------------------------------------------------------


def test_not_an_image_text_to_text_model(tiny_chat_lm, tmp_path):
    with pytest.raises(NotAnImageTextToTextModelError, match="'llama' model.*vision-language"):
        SignVideoDescriber.from_pretrained(str(tiny_chat_lm))
    with pytest.raises(OSError, match="no-such-model'.*neither a checkpoint folder"):
        SignVideoDescriber.from_pretrained(str(tmp_path / "no-such-model"))
    with pytest.raises(OSError, match="no-such-model'.*neither a checkpoint folder"):
        DescriptionRefiner.from_pretrained(str(tmp_path / "no-such-model"))


def test_describe_command(video_folder, tmp_path, tiny_vlm, tiny_chat_lm, capsys):
    from torchcodec.encoders import VideoEncoder

    output = tmp_path / "out"
    clip = torch.randint(0, 256, (18, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    VideoEncoder(clip, frame_rate=25).to_file(str(tmp_path / "clip.mp4"))
    # A model that cannot describe images: one line naming it, exit 1 (the dashed spelling of old scripts still works).
    assert describe([str(video_folder), "--output-dir", str(output), "--vlm", str(tiny_chat_lm),
                     "--refiner", str(tiny_chat_lm)]) == 1
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("beyondgloss describe: error:") and "AutoModelForImageTextToText cannot load" in error
    argv = [str(video_folder / "a"), str(tmp_path / "clip.mp4"), "--output_dir", str(output), "--vlm", str(tiny_vlm),
            "--refiner", str(tiny_chat_lm), "--max_new_tokens", "3", "--refine_max_new_tokens", "3", "--no_progress"]
    assert describe(argv) == 0
    assert sorted(p.name for p in output.iterdir()) == ["a.json", "clip.json"]
    assert list(json.loads((output / "clip.json").read_text())) == ["chunk_0", "refined"]
    # Everything done: the rerun returns before loading any model (these model paths do not exist).
    missing = str(tmp_path / "no-model")
    assert describe([*argv[:4], "--vlm", missing, "--refiner", missing]) == 0


def test_describe_a_dataset_names_files_by_sample_id(video_folder, tmp_path, tiny_vlm, tiny_chat_lm, tiny_mbart):
    rows = [{"file_name": "a", "text": "x", "split": "train", "id": "train/a"},
            {"file_name": "c", "text": "y", "split": "dev", "id": "dev/c"}]
    (video_folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out"
    argv = ["--dataset", str(video_folder), "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(output),
            "--vlm", str(tiny_vlm), "--refiner", str(tiny_chat_lm), "--max_new_tokens", "2",
            "--refine_max_new_tokens", "2", "--no_progress"]
    assert describe(argv) == 0
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*.json")) == ["dev/c.json", "train/a.json"]
    store = tmp_path / "store"
    assert encode_descriptions([str(output), "--model", str(tiny_mbart), "--store", str(store), "--no_progress"]) == 0
    assert sorted(FeatureStore(store).ids()) == ["dev/c", "train/a"]


def test_names_that_escape_the_output_folder_are_refused(tmp_path, describer, refiner):
    with pytest.raises(ValueError, match="'../x' cannot be a file name"):
        run({"../x": tmp_path}, tmp_path / "out", describer, refiner)


# --- the encoder ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_mbart(tmp_path_factory):
    from transformers import MBartConfig, MBartModel

    path = tmp_path_factory.mktemp("tiny_mbart")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(2)
    model = MBartModel(MBartConfig(
        vocab_size=len(tokenizer), d_model=24, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
        pad_token_id=3, bos_token_id=1, eos_token_id=2,
    ))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_encoder_mean_over_real_tokens(tiny_mbart):
    # The same math three ways (padded batch, alone, direct mean), so the model runs in float64 (see
    # beyondgloss.testing.assert_same_math); `encode` returns float32, which rounds each entry by at most eps/2 of it.
    encoder = DescriptionEncoder.from_pretrained(str(tiny_mbart), batch_size=4, dtype=torch.float64)
    assert encoder.dim == 24
    texts = ["the right hand rises", CORPUS[1]]
    batched = encoder.encode(texts)
    assert batched.shape == (2, 24) and batched.dtype == torch.float32
    epsilon = torch.finfo(torch.float32).eps
    # Padding must not change a sentence's embedding: each alone equals its row in the padded batch.
    for text, row in zip(texts, batched):
        alone = encoder.encode([text])[0]
        ids = encoder.tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            direct = encoder.model(input_ids=ids).last_hidden_state[0].mean(0)
        assert direct.dtype == torch.float64
        float64_roundoff = SAME_MATH_RTOL * direct.abs().max().item()
        torch.testing.assert_close(alone.double(), direct, rtol=epsilon / 2, atol=float64_roundoff)
        torch.testing.assert_close(row, alone, rtol=epsilon, atol=float64_roundoff)  # both rounded to float32


def test_encode_descriptions_command_writes_the_store(tiny_mbart, tmp_path):
    descriptions = tmp_path / "descriptions"
    descriptions.mkdir()
    for name, text in (("video-1", CORPUS[0]), ("video-2", CORPUS[2])):
        (descriptions / f"{name}.json").write_text(json.dumps({"chunk_0": "x", "refined": text}))
    (descriptions / "video-3.failed.json").write_text(json.dumps({"stage": "refine", "error": "HTTP 500"}))
    store_dir = tmp_path / "store"
    argv = [str(descriptions), "--model", str(tiny_mbart), "--store", str(store_dir), "--id_prefix", "train/",
            "--no_progress"]
    assert encode_descriptions(argv) == 0
    store = FeatureStore(store_dir)
    assert sorted(store.ids()) == ["train/video-1", "train/video-2"]
    # The command encodes both descriptions in one padded batch; the same batch, encoded here, gives the same bits.
    expected = DescriptionEncoder.from_pretrained(str(tiny_mbart)).encode([CORPUS[0], CORPUS[2]])
    assert store["train/video-1"].shape == (24,)
    assert torch.equal(store["train/video-1"], expected[0]) and torch.equal(store["train/video-2"], expected[1])

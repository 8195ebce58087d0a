"""train_sign_tokenizer and BeyondGlossProcessor: mBART layout, target mode, labels, save/load (also fresh process)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer, MBartTokenizer

from beyondgloss.configuration_beyondgloss import BeyondGlossConfig
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing.videos import make_frames
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

CORPUS = [
    "Morgen regnet es im Süden und Osten.",
    "Über den Bergen schneit es heute Nacht.",
    "Im Süden bleibt es morgen trocken.",
    "明天南方有雨。",
    "今天晚上北方下雪。",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_sign_tokenizer(CORPUS, language="de_DE")


@pytest.fixture
def processor(tokenizer):
    video_processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=8)
    return BeyondGlossProcessor(video_processor, tokenizer, target_language="de_DE")


def test_tokenizer_has_the_mbart_layout(tokenizer):
    assert isinstance(tokenizer, MBartTokenizer)
    special = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert special == (0, 1, 2, 3)
    codes = tokenizer.convert_tokens_to_ids(["de_DE", "zh_CN", "en_XX"])
    assert len(set(codes)) == 3 and min(codes) > 3
    # Every token has a row: the model's vocab_size is len(tokenizer), the codes and <mask> included.
    assert tokenizer.convert_tokens_to_ids("<mask>") == len(tokenizer) - 1
    assert tokenizer.convert_ids_to_tokens(len(tokenizer) - 2) == "zh_CN"  # the last of mBART's 25 codes


def test_target_mode_appends_eos_and_the_language_code(tokenizer):
    tokenizer.tgt_lang = "de_DE"
    ids = tokenizer(text_target="Morgen regnet es.")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["▁Morgen", "▁regnet", "▁es", ".", "</s>", "de_DE"]
    tokenizer.tgt_lang = "zh_CN"
    ids = tokenizer(text_target="明天北方下雪。")["input_ids"]
    assert ids[-2:] == [2, tokenizer.convert_tokens_to_ids("zh_CN")]
    assert tokenizer.convert_ids_to_tokens(ids[:-2]) == ["▁明", "天", "北", "方", "下", "雪", "。"]


@pytest.mark.parametrize(
    "sentence",
    ["Über den Bergen schneit es.", "Übermorgen bleibt es trocken", "今天南方有雨。", "明天晚上下雪"],
)
def test_decode_gives_back_the_text(tokenizer, sentence):
    ids = tokenizer(text_target=sentence)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == sentence


def test_unseen_characters_become_unk(tokenizer):
    ids = tokenizer(text_target="Es regnet")["input_ids"]  # no capital E in the corpus
    assert tokenizer.unk_token_id in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "s regnet"


def test_vocab_size_limits_words_but_keeps_characters():
    small = train_sign_tokenizer(CORPUS, vocab_size=90)
    assert len(small) <= 90
    assert small.decode(small(text_target=CORPUS[1])["input_ids"], skip_special_tokens=True) == CORPUS[1]
    with pytest.raises(ValueError, match="use vocab_size >= "):
        train_sign_tokenizer(CORPUS, vocab_size=40)
    with pytest.raises(ValueError, match="no text"):
        train_sign_tokenizer(["", "  "])
    with pytest.raises(ValueError, match="language='xx_YY'"):
        train_sign_tokenizer(CORPUS, language="xx_YY")
    extra = train_sign_tokenizer(CORPUS, language_codes=("ase_XX",), language="ase_XX")
    assert extra(text_target="Morgen")["input_ids"][-1] == extra.convert_tokens_to_ids("ase_XX")


def test_tokenizer_save_and_load_round_trip(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is MBartTokenizer and len(loaded) == len(tokenizer)
    for lang in ("de_DE", "zh_CN"):
        loaded.tgt_lang = tokenizer.tgt_lang = lang
        assert loaded(text_target=CORPUS)["input_ids"] == tokenizer(text_target=CORPUS)["input_ids"]


def test_processor_labels_use_minus_100_and_the_target_language(processor, tokenizer):
    batch = processor(text_target=["Morgen regnet es.", "Im Osten schneit es heute Nacht."])
    labels = batch["labels"]
    de = tokenizer.convert_tokens_to_ids("de_DE")
    assert labels.dtype == torch.long and labels.shape[0] == 2
    expected = tokenizer.convert_tokens_to_ids(["▁Morgen", "▁regnet", "▁es", ".", "</s>", "de_DE"])
    assert labels[0].tolist()[:6] == expected
    assert (labels[0, 6:] == -100).all() and labels[1, -2:].tolist() == [2, de]
    assert processor.batch_decode(labels) == ["Morgen regnet es.", "Im Osten schneit es heute Nacht."]
    assert processor.decode(labels[0]) == "Morgen regnet es."

    text = processor(text=["Morgen regnet es.", "Im Osten schneit es heute Nacht."])
    assert set(text) == {"input_ids", "attention_mask"}
    assert torch.equal(text["input_ids"].masked_fill(text["attention_mask"] == 0, -100), labels)


def test_processor_language_code_and_reference_compat(tokenizer):
    video_processor = BeyondGlossVideoProcessor()
    chinese = BeyondGlossProcessor(video_processor, tokenizer, target_language="zh_CN")
    zh = tokenizer.convert_tokens_to_ids("zh_CN")
    assert chinese(text_target="明天下雪。")["labels"][0, -1] == zh and chinese.language_code_id == zh
    compat = BeyondGlossProcessor(video_processor, tokenizer, target_language="zh_CN", reference_compat=True)
    assert compat.language_code == "de_DE"
    assert compat(text_target="明天下雪。")["labels"][0, -1] == tokenizer.convert_tokens_to_ids("de_DE")
    with pytest.raises(ValueError, match="language code 'xx_YY' is not in the tokenizer's vocabulary"):
        BeyondGlossProcessor(video_processor, tokenizer, target_language="xx_YY")


def test_processor_truncates_to_max_target_length(processor):
    long = " ".join(["Morgen regnet es im Süden"] * 40)
    assert processor(text_target=long)["labels"].shape[1] == 128
    labels = processor(text_target=long, max_length=6)["labels"][0].tolist()
    assert len(labels) == 6 and labels[-2:] == [2, processor.language_code_id]


def test_processor_videos_and_text_together(processor):
    frames = make_frames(10)
    batch = processor(videos=[frames, frames[:3]], text_target=["Morgen", "Im Süden"], return_frame_indices=True)
    assert batch["pixel_values_videos"].shape == (2, 8, 3, 28, 28)
    assert batch["video_attention_mask"].sum(1).tolist() == [8, 3]
    assert batch["frame_indices"][1] == [0, 1, 2] and batch["labels"].shape[0] == 2
    with pytest.raises(ValueError, match="needs videos, text or text_target"):
        processor()


def test_processor_routes_per_call_settings_by_name(processor):
    frames = make_frames(10)
    before = processor.video_processor.to_dict()
    batch = processor(videos=frames, text_target=["Morgen regnet es."], size={"shortest_edge": 10}, crop_size=None,
                      num_frames=3, max_length=4)
    assert batch["pixel_values_videos"].shape == (1, 3, 3, 10, 12) and batch["labels"].shape == (1, 4)
    assert processor(videos=frames, resize_size=16, crop_size=16)["pixel_values_videos"].shape == (1, 8, 3, 16, 16)
    grouped = processor(videos=frames, text_target=["Morgen"], videos_kwargs={"num_frames": 2},
                        text_kwargs={"max_length": 3})
    assert grouped["pixel_values_videos"].shape[1] == 2 and grouped["labels"].shape == (1, 3)
    assert processor.video_processor.to_dict() == before  # per call only
    with pytest.raises(TypeError, match=r"unknown keyword arguments \['resize'\]: pass video processor settings"):
        processor(videos=frames, resize=32)
    with pytest.raises(TypeError, match=r"tokenizer arguments \['max_length'\] but no text"):
        processor(videos=frames, max_length=4)


def _register():
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    AutoVideoProcessor.register(BeyondGlossConfig, BeyondGlossVideoProcessor, exist_ok=True)
    AutoProcessor.register(BeyondGlossConfig, BeyondGlossProcessor, exist_ok=True)


def test_processor_save_and_load_round_trip(tmp_path, tokenizer):
    _register()
    video_processor = BeyondGlossVideoProcessor(resize_size=32, crop_size=28, max_frames=5, frame_sampling="truncate")
    processor = BeyondGlossProcessor(video_processor, tokenizer, target_language="zh_CN", max_target_length=64)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["auto_map"]["AutoProcessor"] == "processing_beyondgloss.BeyondGlossProcessor"
    # Every module the processors import travels with them (transformers follows the relative imports).
    shipped = {"processing_beyondgloss.py", "video_processing_beyondgloss.py", "video_io.py", "video_source.py",
               "frame_images.py", "video_transforms.py", "video_processor_settings.py"}
    assert shipped <= set(os.listdir(tmp_path))

    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is BeyondGlossProcessor
    assert (loaded.target_language, loaded.max_target_length, loaded.reference_compat) == ("zh_CN", 64, False)
    assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
    inputs = dict(videos=make_frames(7), text_target=["明天下雪。", "Morgen regnet es."])
    for key, value in processor(**inputs).items():
        assert torch.equal(loaded(**inputs)[key], value), key


def test_processor_loads_in_a_fresh_process_without_beyondgloss(tmp_path, tokenizer):
    _register()
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(resize_size=32, crop_size=28), tokenizer, "zh_CN")
    processor.save_pretrained(tmp_path / "checkpoint")
    expected = processor(videos=make_frames(4), text_target=["明天下雪。"])
    torch.save(dict(expected), tmp_path / "expected.pt")
    child = textwrap.dedent(
        """
        import importlib.abc, sys

        class HideBeyondgloss(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "beyondgloss":
                    raise ImportError("beyondgloss is hidden in this test")

        sys.meta_path.insert(0, HideBeyondgloss())
        try:
            import beyondgloss
            sys.exit("beyondgloss is importable; the test would not show anything")
        except ImportError:
            pass
        import torch
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
        assert type(processor).__name__ == "BeyondGlossProcessor"
        assert not type(processor).__module__.startswith("beyondgloss")
        frames = torch.load(sys.argv[2], weights_only=True)
        out = processor(videos=frames, text_target=["明天下雪。"])
        expected = torch.load(sys.argv[3], weights_only=True)
        for key in expected:
            assert torch.equal(out[key], expected[key]), key
        # The video processor alone, through the auto class (its import path: the top-level name needs torchvision
        # until beyondgloss is imported).
        from transformers.models.auto.video_processing_auto import AutoVideoProcessor

        video_processor = AutoVideoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
        assert type(video_processor).__name__ == "BeyondGlossVideoProcessor"
        assert video_processor.to_dict() == processor.video_processor.to_dict()
        print("ok", processor.target_language)
        """
    )
    torch.save(make_frames(4), tmp_path / "frames.pt")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", child, *(str(tmp_path / name) for name in ("checkpoint", "frames.pt", "expected.pt"))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok zh_CN")


def test_processor_passes_transformers_video_options(processor):
    frames = make_frames(10)
    batch = processor(videos=[frames, frames[:3]], text_target=["Morgen", "Im Süden"], return_tensors=None,
                      return_metadata=True, num_frames=3, device="cpu")
    assert isinstance(batch["labels"], list) and isinstance(batch["labels"][0], list)
    assert isinstance(batch["pixel_values_videos"], list) and [len(v) for v in batch["pixel_values_videos"]] == [3, 3]
    assert [m.frames_indices for m in batch["video_metadata"]] == [[0, 3, 6], [0, 1, 2]]
    tensors = processor(videos=frames, text=["Morgen"], return_metadata=True, max_frames=2, do_rescale=False,
                        do_normalize=False)
    assert tensors["pixel_values_videos"].shape == (1, 2, 3, 28, 28) and tensors["pixel_values_videos"].max() > 1
    assert tensors["video_metadata"][0].total_num_frames == 10 and torch.is_tensor(tensors["input_ids"])

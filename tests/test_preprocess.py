"""`beyondgloss preprocess`: frames decoded once give the batches that decoding gives, the folder is keyed by the
decoding settings, a killed run resumes to the same dataset, and the result reads with datasets' own readers."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from beyondgloss import BeyondGlossProcessor, BeyondGlossVideoProcessor
from beyondgloss.cli import main
from beyondgloss.data import PretrainingCollator, load_sign_dataset, train_sign_tokenizer
from beyondgloss.data.preprocess import preprocess_sign_dataset
from beyondgloss.data.preprocessed import load_preprocessed

CORPUS = {"num_train": 6, "num_validation": 2, "num_test": 2, "seed": 0, "image_size": 16, "description_dim": 8,
          "num_workers": 1}
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("preprocess")
    source = load_sign_dataset("synthsign", data_dir=str(root / "synthsign"), cache_dir=str(root / "cache"), **CORPUS)
    return root, source


def video_processor(**overrides):
    # Clips of 24-60 frames are cut to 20 (uniform subsampling), then resized from 16 to 20 pixels: both decoding
    # steps change the frames, so a path that skipped either would not match.
    settings = dict(size=20, crop_size=18, max_frames=20, augment=False)
    return BeyondGlossVideoProcessor(**{**settings, **overrides})


def prepare(root: Path, output: Path, processor=None, **kwargs) -> Path:
    return preprocess_sign_dataset("synthsign", output, processor or video_processor(),
                                   data_dir=str(root / "synthsign"), cache_dir=str(root / "cache"),
                                   shard_size=kwargs.pop("shard_size", 2), **CORPUS, **kwargs)


def rows_of(folder: Path) -> dict:
    dataset = load_preprocessed(folder)
    return {split: [dict(row) for row in part] for split, part in dataset.items()}


def assert_same_rows(left: dict, right: dict):
    assert left.keys() == right.keys()
    for split in left:
        assert len(left[split]) == len(right[split])
        for a, b in zip(left[split], right[split]):
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), (split, a["id"], key)


def test_batches_from_preprocessed_frames_equal_decoded_batches(corpus, tmp_path):
    root, source = corpus
    folder = prepare(root, tmp_path / "out")
    prepared = load_sign_dataset("preprocessed", data_dir=str(tmp_path / "out"))
    assert set(prepared) == set(source)
    tokenizer = train_sign_tokenizer(source["train"]["text"], vocab_size=64, language_codes=["en_XX"],
                                     language="en_XX")
    processor = BeyondGlossProcessor(video_processor=video_processor(), tokenizer=tokenizer, target_language="en_XX")
    collator = PretrainingCollator(processor, training=False)
    for split in source:
        assert prepared[split]["id"] == source[split]["id"]
        row = prepared[split][0]
        assert row["video"].dtype == np.uint8 and row["video"].shape[1:] == (3, 20, 20)
        assert len(row["video"]) == len(row["frame_indices"]) == len(row["hand_features"]) == 20
        decoded = collator([source[split][i] for i in range(len(source[split]))])
        read = collator([prepared[split][i] for i in range(len(prepared[split]))])
        assert decoded.keys() == read.keys()
        for key in decoded:  # the same bytes decoded and resized the same way: exact equality
            assert torch.equal(decoded[key], read[key]), (split, key)
    assert json.loads((folder / "dataset_dict.json").read_text())["splits"] == list(source)
    # Hand features are stored as lists of fixed-size lists (faster to read back than Array2D): the width a new
    # model's hand head takes is still in the schema.
    from beyondgloss.cli._loading import _feature_width

    assert isinstance(source["train"].features["hand_features"], datasets.Array2D)
    assert isinstance(prepared["train"].features["hand_features"], datasets.List)
    assert _feature_width(prepared["train"], "hand_features") == _feature_width(source["train"], "hand_features") == 18
    assert _feature_width(prepared["train"], "description_embedding") == 8


def test_folder_is_keyed_by_decoding_settings(corpus, tmp_path):
    root, _ = corpus
    first = prepare(root, tmp_path / "out", splits=["test"])
    # Cropping, normalisation and augmentation act on the stored frames at training time: same folder, reused.
    mtime = (first / "test" / "data-00000-of-00001.arrow").stat().st_mtime_ns
    assert prepare(root, tmp_path / "out", video_processor(crop_size=16, augment=True), splits=["test"]) == first
    assert (first / "test" / "data-00000-of-00001.arrow").stat().st_mtime_ns == mtime
    # A processor that keeps other frames prepares a new folder beside the first.
    second = prepare(root, tmp_path / "out", video_processor(max_frames=10), splits=["test"])
    assert second != first and second.parent == first.parent
    assert load_preprocessed(second)["test"][0]["video"].shape[0] == 10
    with pytest.raises(ValueError, match="holds 2 preprocessings"):
        load_sign_dataset("preprocessed", data_dir=str(tmp_path / "out"))
    assert len(load_sign_dataset("preprocessed", data_dir=str(tmp_path / "out"),
                                 key=second.name)["test"][0]["video"]) == 10


KILLER = """
import os, signal, sys, types
sys.path.insert(0, {repository!r})
import beyondgloss.data.preprocess as preprocess
from datasets.arrow_writer import ArrowWriter
where, count = {where!r}, [0]

def kill_after(function, target):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        if target(*args):
            count[0] += 1
            if count[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped

if where == "inside a shard":  # the temporary file holds some rows
    ArrowWriter.write_batch = kill_after(ArrowWriter.write_batch, lambda *args: True)
else:  # the shard is in place, the manifest does not list it yet
    real = preprocess.os.replace
    preprocess.os = types.SimpleNamespace(**{{**vars(os), "replace": kill_after(
        real, lambda source, target: str(target).endswith(".arrow"))}})
preprocess.preprocess_sign_dataset("synthsign", {output!r}, preprocess_processor(), data_dir={data!r},
                                   cache_dir={cache!r}, shard_size=2, max_buffer_bytes=1, **{corpus!r})
"""


@pytest.mark.parametrize("where", ["inside a shard", "between a shard and the manifest"])
def test_killed_run_resumes_to_the_same_dataset(corpus, tmp_path, where):
    root, _ = corpus
    reference = prepare(root, tmp_path / "uninterrupted", max_buffer_bytes=1)
    script = KILLER.format(repository=str(REPOSITORY), where=where, output=str(tmp_path / "killed"),
                           data=str(root / "synthsign"), cache=str(root / "cache"), corpus=CORPUS)
    script = script.replace("preprocess_processor()", "__import__('beyondgloss').BeyondGlossVideoProcessor("
                                                      "size=20, crop_size=18, max_frames=20, augment=False)")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    killed = tmp_path / "killed" / reference.name
    manifest = json.loads((killed / "manifest.json").read_text())
    assert not (killed / "dataset_dict.json").exists()
    finished = {index: record for index, record in manifest["splits"]["train"]["shards"].items()}
    assert finished, "the run was killed before its first shard: the test would not test resuming"
    kept = {index: (killed / "train" / record["file"]).stat().st_mtime_ns for index, record in finished.items()}
    if where == "inside a shard":
        assert list((killed / "train").glob(".data-*.tmp*")), "no partial shard was left to clean up"

    resumed = prepare(root, tmp_path / "killed", max_buffer_bytes=1)
    assert resumed == killed
    assert not list((killed / "train").glob(".data-*"))
    for index, record in finished.items():  # finished shards were skipped, not written again
        assert (killed / "train" / record["file"]).stat().st_mtime_ns == kept[index]
    assert_same_rows(rows_of(resumed), rows_of(reference))


def test_datasets_readers(corpus, tmp_path):
    root, _ = corpus
    folder = prepare(root, tmp_path / "out", splits=["validation", "test"])
    on_disk = datasets.load_from_disk(str(folder))
    assert isinstance(on_disk["test"].features["video"], datasets.Array4D)
    files = sorted(str(path) for path in (folder / "test").glob("data-*.arrow"))
    streamed = next(iter(datasets.load_dataset("arrow", data_files={"test": files}, streaming=True)["test"]))
    assert streamed["id"] == on_disk["test"][0]["id"]
    assert np.array_equal(np.asarray(streamed["video"], dtype=np.uint8), load_preprocessed(folder)["test"][0]["video"])
    # Parquet, the Hub's format (what push_to_hub writes), keeps the array type.
    on_disk["test"].to_parquet(str(tmp_path / "test.parquet"))
    parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "test.parquet"), split="train")
    assert parquet.features["video"] == on_disk["test"].features["video"]


def test_command_line(corpus, tmp_path, capsys):
    root, _ = corpus
    common = ["--dataset", "synthsign", "--data_dir", str(root / "synthsign"), "--cache_dir", str(root / "cache"),
              "--dataset_options", json.dumps(CORPUS), "--splits", "test", "--output_dir", str(tmp_path / "out")]
    assert main(["preprocess", *common, "--max_frames", "20", "--resize_size", "20", "--crop_size", "18"]) == 0
    assert "--dataset preprocessed" in capsys.readouterr().out
    # The same flags as the training commands: the folder is the one prepare() makes with the same processor.
    assert [p.name for p in (tmp_path / "out").iterdir()] == [prepare(root, tmp_path / "out", splits=["test"]).name]
    assert main(["preprocess", *common, "--shard_size", "0"]) == 2
    assert main(["preprocess", *common, "--splits", "nope"]) == 1
    assert "no split(s) ['nope']" in capsys.readouterr().err


def test_training_commands_read_the_preprocessed_dataset(corpus, tmp_path, capsys):
    root, _ = corpus
    options = ["--dataset_options", json.dumps(CORPUS), "--max_frames", "12", "--resize_size", "20",
               "--crop_size", "18"]
    assert main(["preprocess", "--dataset", "synthsign", "--data_dir", str(root / "synthsign"), "--cache_dir",
                 str(root / "cache"), "--output_dir", str(tmp_path / "prepared"), *options]) == 0
    training = ["--dataset", "preprocessed", "--data_dir", str(tmp_path / "prepared"), "--tiny", "--max_frames", "12",
                "--resize_size", "20", "--crop_size", "18", "--use_cpu", "true", "--per_device_train_batch_size", "3",
                "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end",
                "false", "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--report_to", "none"]
    assert main(["pretrain", *training, "--output_dir", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 2
    # The feature stores were joined when preprocessing: giving them again is an input to fix (exit 1, named).
    assert main(["pretrain", *training, "--hand_features", str(root / "synthsign"), "--output_dir",
                 str(tmp_path / "run2")]) == 1
    assert "give the feature stores to `beyondgloss preprocess` instead" in capsys.readouterr().err


def write_how2sign(root: Path) -> None:
    """A How2Sign release in miniature: two clips per split, translations at the top or in the clip folder."""
    from beyondgloss.testing import make_frames, write_mp4

    header = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE\n"
    for number, split in enumerate(("train", "val", "test")):
        lines = []
        for clip in range(2):
            name = f"vid{number}_{clip}-1-rgb_front"
            write_mp4(root / f"{split}_rgb_front_clips" / "raw_videos" / f"{name}.mp4",
                      make_frames(6 + clip, height=16, width=24, seed=number * 2 + clip))
            lines.append(f"vid{number}\tvid{number}-1-rgb_front\tvid{number}_{clip}\t{name}\t0.0\t1.0\t"
                         f"sentence {clip} of the {split} split.\n")
        folder = root / (f"{split}_rgb_front_clips" if split == "val" else "")
        (folder / f"how2sign_realigned_{split}.csv").write_text(header + "".join(lines))


def test_how2sign_builder_and_its_preprocessing(tmp_path):
    write_how2sign(tmp_path / "How2Sign")
    source = load_sign_dataset("how2sign", data_dir=str(tmp_path / "How2Sign"), cache_dir=str(tmp_path / "cache"))
    assert sorted(source) == ["test", "train", "validation"]
    row = source["validation"][1]
    assert row["id"] == "val/vid1_1-1-rgb_front" and row["text"] == "sentence 1 of the val split."
    assert (row["language"], row["gloss"]) == ("en", "")
    processor = BeyondGlossVideoProcessor(size=16, crop_size=16, augment=False)
    folder = preprocess_sign_dataset("how2sign", tmp_path / "out", processor, data_dir=str(tmp_path / "How2Sign"),
                                     cache_dir=str(tmp_path / "cache"))
    prepared = load_preprocessed(folder)
    for split in source:
        for decoded, read in zip(source[split], prepared[split]):
            assert read["id"] == decoded["id"] and read["video"].shape == (len(decoded["video"]), 3, 16, 16)
            assert torch.equal(processor(decoded["video"])["pixel_values_videos"],
                               processor(read["video"])["pixel_values_videos"])
    (tmp_path / "How2Sign" / "test_rgb_front_clips" / "raw_videos" / "vid2_0-1-rgb_front.mp4").unlink()
    with pytest.raises(ValueError, match="test/vid2_0-1-rgb_front .*does not exist"):
        load_sign_dataset("how2sign", data_dir=str(tmp_path / "How2Sign"), cache_dir=str(tmp_path / "cache"),
                          rebuild=True)


def test_unfinished_or_missing_folder_is_named(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(ValueError, match="no such folder"):
        load_sign_dataset("preprocessed", data_dir=str(tmp_path / "nothing"))
    folder = prepare(root, tmp_path / "out", splits=["test"])
    (folder / "dataset_dict.json").unlink()
    with pytest.raises(ValueError, match="unfinished: run the same `beyondgloss preprocess` again"):
        load_sign_dataset("preprocessed", data_dir=str(tmp_path / "out"))

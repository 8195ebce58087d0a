"""Dataset builders on tiny fixture trees in the official layouts (written here, in tmp_path)."""

import collections
import gzip
import json
import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from beyondgloss.data import (
    BadSampleError,
    CSLDailyBuilder,
    FeatureStore,
    Phoenix14TBuilder,
    dataset_language_code,
    load_sign_dataset,
)
from beyondgloss.data.safe_pickle import UnsafePickleError

PHOENIX_HEADER = "name|video|start|end|speaker|orth|translation"
PHOENIX_ROWS = {
    "train": [("01April_2010_Thursday_heute-6697", "Signer04", "REGEN MORGEN", "morgen regnet es"),
              ("02April_2010_Friday_tagesschau-1", "Signer01", "SONNE", "die sonne scheint")],
    "dev": [("03April_2010_Saturday_heute-7", "Signer05", "WIND STARK", "starker wind im norden")],
    "test": [("04April_2010_Sunday_heute-8", "Signer08", "SCHNEE", "es schneit")],
}


def write_frames(folder, count, size=(6, 5), offset=0):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((size[1], size[0], 3), (offset * 40 + index * 10) % 255, dtype=np.uint8)
        # images10 after images9: natural, not lexical, order must be kept.
        Image.fromarray(pixels).save(folder / f"images{index + 1:d}.png")


def make_phoenix(root, frames=3, header=PHOENIX_HEADER, skip_frames=()):
    annotations = root / "PHOENIX-2014-T" / "annotations" / "manual"
    annotations.mkdir(parents=True)
    for split, rows in PHOENIX_ROWS.items():
        lines = [header] + [f"{name}|{name}/1/*.png|-1|-1|{signer}|{orth}|{text}" for name, signer, orth, text in rows]
        (annotations / f"PHOENIX-2014-T.{split}.corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for offset, (name, *_rest) in enumerate(rows):
            folder = root / "PHOENIX-2014-T" / "features" / "fullFrame-210x260px" / split / name
            if name in skip_frames:
                folder.mkdir(parents=True)
            else:
                write_frames(folder, frames, offset=offset)
    return root / "PHOENIX-2014-T"


def test_phoenix14t_official_layout(tmp_path):
    root = make_phoenix(tmp_path / "data", frames=11)
    dataset = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert sorted(dataset) == ["test", "train", "validation"]
    train = dataset["train"]
    assert train["id"] == [f"train/{row[0]}" for row in PHOENIX_ROWS["train"]]
    assert train["text"] == ["morgen regnet es", "die sonne scheint"]
    assert train["gloss"] == ["REGEN MORGEN", "SONNE"]
    assert train["signer"] == ["Signer04", "Signer01"]
    assert set(train["language"]) == {"de"}
    assert dataset["validation"]["id"] == ["dev/03April_2010_Saturday_heute-7"]
    assert dataset_language_code(dataset) == "de_DE"
    frames = train[0]["frames"]
    folder = root / "features" / "fullFrame-210x260px" / "train" / PHOENIX_ROWS["train"][0][0]
    assert frames == [str(folder / f"images{i}.png") for i in range(1, 12)]
    write_frames(folder, 12)
    rebuilt = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", rebuild=True)
    assert len(rebuilt["train"][0]["frames"]) == 12


def test_phoenix14t_missing_column_names_file_and_column(tmp_path):
    make_phoenix(tmp_path / "data", header="name|video|start|end|speaker|orth")
    with pytest.raises(ValueError, match=r"PHOENIX-2014-T\.train\.corpus\.csv: missing column\(s\) translation"):
        Phoenix14TBuilder(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache").download_and_prepare()


def test_empty_frame_folder_is_an_error_naming_the_id_or_skipped(tmp_path, caplog):
    bad = PHOENIX_ROWS["train"][1][0]
    make_phoenix(tmp_path / "data", skip_frames=(bad,))
    with pytest.raises(BadSampleError, match=f"train/{bad} \\(frame folder has no images\\)"):
        load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="beyondgloss.data.builders"):
        dataset = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                                    skip_bad_samples=True)
    assert dataset["train"]["id"] == [f"train/{PHOENIX_ROWS['train'][0][0]}"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "skipping" in r.getMessage()]
    assert len(warnings) == 1 and f"train/{bad}" in warnings[0]


def all_phoenix_ids():
    return [f"{split}/{row[0]}" for split, rows in PHOENIX_ROWS.items() for row in rows]


def test_features_joined_by_id_and_missing_file_reported(tmp_path):
    make_phoenix(tmp_path / "data", frames=4)
    hands, descriptions = FeatureStore(tmp_path / "hands"), FeatureStore(tmp_path / "descriptions")
    expected = {}
    for number, sample_id in enumerate(all_phoenix_ids()):
        features = torch.full((4, 6), float(number))
        features[2] = 0  # no hand in frame 2: without a stored mask, the row is masked out
        mask = torch.tensor([1.0, 0.0, 1.0, 1.0]) if number == 0 else None
        hands.write(sample_id, features, mask=mask)
        descriptions.write(sample_id, torch.full((1, 5), float(number)))  # the reference's (1, D) shape
        expected[sample_id] = number
    dataset = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                                hand_features=tmp_path / "hands", descriptions=descriptions)
    for split in dataset.values():
        for row in split:
            number = expected[row["id"]]
            assert np.array(row["hand_features"]).shape == (4, 6)
            assert np.all(np.array(row["hand_features"])[[0, 1, 3]] == number)
            assert row["description_embedding"] == [float(number)] * 5
            assert row["hand_mask"] == ([1.0, 0.0, 1.0, 1.0] if number == 0 else [1.0, 1.0, 0.0, 1.0])

    missing = PHOENIX_ROWS["dev"][0][0]
    hands.file_for(f"dev/{missing}").unlink()
    with pytest.raises(BadSampleError, match=f"dev/{missing} \\(no hand-feature file"):
        load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                          hand_features=hands)
    dataset = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                                hand_features=hands, skip_bad_samples=True)
    assert "validation" not in dataset or dataset["validation"].num_rows == 0


def test_hand_feature_length_must_match_frames(tmp_path):
    make_phoenix(tmp_path / "data", frames=3)
    hands = FeatureStore(tmp_path / "hands")
    for sample_id in all_phoenix_ids():
        hands.write(sample_id, torch.zeros(3 if "test" not in sample_id else 5, 6))
    with pytest.raises(BadSampleError, match="hand features have 5 rows but the video has 3 frames"):
        load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", hand_features=hands)


def make_csl_daily(root, records=None, split_lines=None):
    records = records or [
        {"name": "S000000_P0000_T00", "label_gloss": ["你", "好"], "label_char": ["你", "好", "吗"],
         "label_word": ["你好", "吗"], "signer": 0, "length": 3},
        {"name": "S000001_P0001_T00", "label_gloss": ["谢谢"], "label_char": ["谢", "谢"], "label_word": ["谢谢"],
         "signer": 1, "length": 3},
        {"name": "S000002_P0002_T00", "label_gloss": ["再见"], "label_char": ["再", "见"], "label_word": ["再见"],
         "signer": 2, "length": 3},
    ]
    (root / "sentence_label").mkdir(parents=True)
    with open(root / "sentence_label" / "csl2020ct_v2.pkl", "wb") as handle:
        pickle.dump({"info": records, "gloss_map": [], "char_map": []}, handle)
    split_lines = split_lines or ["Name|Split", "S000000_P0000_T00|train", "S000001_P0001_T00|dev",
                                  "S000002_P0002_T00|test"]
    (root / "sentence_label" / "split_1.txt").write_text("\n".join(split_lines) + "\n", encoding="utf-8")
    for offset, record in enumerate(records):
        write_frames(root / "sentence" / "frames_512x512" / record["name"], 3, offset=offset)
    return root


def test_csl_daily_official_layout(tmp_path):
    make_csl_daily(tmp_path / "csl")
    dataset = load_sign_dataset("csl_daily", data_dir=tmp_path / "csl", cache_dir=tmp_path / "cache")
    assert sorted(dataset) == ["test", "train", "validation"]
    assert dataset["train"]["id"] == ["train/S000000_P0000_T00"]
    assert dataset["train"]["text"] == ["你好吗"]
    assert dataset["train"]["gloss"] == ["你 好"]
    assert dataset["validation"]["id"] == ["dev/S000001_P0001_T00"]
    assert dataset["validation"]["signer"] == ["1"]
    assert dataset_language_code(dataset) == "zh_CN"
    assert len(dataset["test"][0]["frames"]) == 3


def test_csl_daily_refuses_a_pickle_with_objects(tmp_path):
    make_csl_daily(tmp_path / "csl")
    with open(tmp_path / "csl" / "sentence_label" / "csl2020ct_v2.pkl", "wb") as handle:
        pickle.dump({"info": [collections.Counter("ab")]}, handle)  # any non-plain object must be refused
    with pytest.raises(UnsafePickleError, match="csl2020ct_v2.pkl"):
        CSLDailyBuilder(data_dir=tmp_path / "csl", cache_dir=tmp_path / "cache").download_and_prepare()


def test_csl_daily_record_without_field(tmp_path):
    make_csl_daily(tmp_path / "csl", records=[{"name": "S000000_P0000_T00", "label_gloss": ["你"], "signer": 0}],
                   split_lines=["S000000_P0000_T00|train"])
    with pytest.raises(ValueError, match="csl2020ct_v2.pkl: record 0 lacks field\\(s\\) label_char"):
        load_sign_dataset("csl_daily", data_dir=tmp_path / "csl", cache_dir=tmp_path / "cache")


def test_reference_label_pickles_on_explicit_opt_in(tmp_path):
    root = make_phoenix(tmp_path / "data")
    for official, rows in PHOENIX_ROWS.items():
        labels = {f"{official}/{name}": {"name": f"{official}/{name}", "text": text, "gloss": orth, "signer": signer}
                  for name, signer, orth, text in rows}
        with gzip.open(tmp_path / f"labels.{official}", "wb") as handle:
            pickle.dump(labels, handle)
    dataset = load_sign_dataset("phoenix14t", data_dir=root, cache_dir=tmp_path / "cache",
                                reference_labels=str(tmp_path / "labels"))
    assert dataset["validation"]["id"] == ["dev/03April_2010_Saturday_heute-7"]
    assert dataset["validation"]["text"] == ["starker wind im norden"]
    assert len(dataset["train"][0]["frames"]) == 3


def write_video(path, frames, seed=0):
    from torchcodec.encoders import VideoEncoder

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 255, (frames, 3, 16, 16), dtype=torch.uint8, generator=generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    VideoEncoder(pixels, frame_rate=25).to_file(str(path))


def test_sign_video_folder_with_videos_and_csv(tmp_path):
    root = tmp_path / "folder"
    write_video(root / "clips" / "a.mp4", 5)
    write_video(root / "clips" / "b.mp4", 4, seed=1)
    write_video(root / "clips" / "c.mp4", 3, seed=2)
    (root / "metadata.csv").write_text(
        "file_name,text,split,signer\nclips/a.mp4,hello there,train,s1\nclips/b.mp4,good morning,dev,s2\n"
        "clips/c.mp4,thank you,test,s1\n", encoding="utf-8")
    dataset = load_sign_dataset(str(root), cache_dir=tmp_path / "cache", language="en")
    assert sorted(dataset) == ["test", "train", "validation"]
    assert dataset["train"]["id"] == ["clips/a"]
    assert dataset["validation"]["text"] == ["good morning"]
    assert dataset_language_code(dataset) == "en_XX"
    assert dataset["train"][0]["video"].metadata.num_frames == 5


def test_sign_video_folder_bad_inputs(tmp_path):
    root = tmp_path / "folder"
    write_frames(root / "v1", 2)
    (root / "v2").mkdir()
    rows = [{"file_name": "v1", "text": "one", "id": "first"}, {"file_name": "v2", "text": "two", "id": "second"},
            {"file_name": "v3", "text": "three", "id": "third"}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(BadSampleError) as error:
        load_sign_dataset("sign_video_folder", data_dir=root, cache_dir=tmp_path / "cache")
    assert "second (frame folder has no images)" in str(error.value) and "third (frame folder" in str(error.value)
    dataset = load_sign_dataset("sign_video_folder", data_dir=root, cache_dir=tmp_path / "cache", skip_bad_samples=True)
    assert dataset["train"]["id"] == ["first"]

    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "v1", "sentence": "one"}), encoding="utf-8")
    with pytest.raises(ValueError, match="metadata.jsonl: missing column text"):
        load_sign_dataset("sign_video_folder", data_dir=root, cache_dir=tmp_path / "cache")


def test_text_file_named_mp4_is_reported_by_id(tmp_path):
    root = tmp_path / "folder"
    write_video(root / "good.mp4", 3)
    (root / "fake.mp4").write_text("not a video")
    (root / "metadata.jsonl").write_text(
        "\n".join(json.dumps({"file_name": name, "text": "hi"}) for name in ("good.mp4", "fake.mp4")), encoding="utf-8")
    with pytest.raises(BadSampleError, match="fake \\(unreadable video"):
        load_sign_dataset(str(root), cache_dir=tmp_path / "cache")


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ValueError, match="unknown sign dataset 'phoenix15'"):
        load_sign_dataset("phoenix15", data_dir=tmp_path)


def test_metadata_with_a_byte_order_mark(tmp_path):
    # Spreadsheet programs save "CSV UTF-8" with a byte-order mark; the first column is still `file_name`.
    root = tmp_path / "folder"
    write_video(root / "a.mp4", 3)
    write_video(root / "b.mp4", 4, seed=1)
    (root / "metadata.csv").write_bytes("\ufefffile_name,text\na.mp4,grüße\nb.mp4,bis bald\n".encode("utf-8"))
    dataset = load_sign_dataset(str(root), cache_dir=tmp_path / "cache")
    assert dataset["train"]["id"] == ["a", "b"]
    assert dataset["train"]["text"] == ["grüße", "bis bald"]
    (root / "metadata.csv").unlink()
    lines = [json.dumps({"file_name": "a.mp4", "text": "eins"}), json.dumps({"file_name": "b.mp4", "text": "zwei"})]
    (root / "metadata.jsonl").write_bytes(("\ufeff" + "\n".join(lines)).encode("utf-8"))
    dataset = load_sign_dataset(str(root), cache_dir=tmp_path / "cache")
    assert dataset["train"]["text"] == ["eins", "zwei"]


def test_streaming_reads_the_same_rows_without_arrow_tables(tmp_path):
    import datasets

    make_phoenix(tmp_path / "data", frames=4)
    streamed = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "stream_cache",
                                 streaming=True)
    assert isinstance(streamed, datasets.IterableDatasetDict)
    assert sorted(streamed) == ["test", "train", "validation"]
    rows = {split: list(part) for split, part in streamed.items()}
    assert not list((tmp_path / "stream_cache").rglob("*.arrow"))  # nothing was prepared
    built = load_sign_dataset("phoenix14t", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    for split in built:
        assert rows[split] == list(built[split]), split
    # Videos stream as datasets.Video values, as in the prepared dataset.
    root = tmp_path / "folder"
    write_video(root / "a.mp4", 5)
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.mp4", "text": "hallo"}), encoding="utf-8")
    row = next(iter(load_sign_dataset(str(root), cache_dir=tmp_path / "c", streaming=True)["train"]))
    assert row["id"] == "a" and row["video"].metadata.num_frames == 5
    with pytest.raises(ValueError, match="streaming='yes'"):
        load_sign_dataset(str(root), streaming="yes")

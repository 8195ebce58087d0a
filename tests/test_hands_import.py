"""Importing the reference's HaMeR files (LZMA pickles) into the feature store, with a hand-presence mask."""

import lzma
import os
import pickle

import numpy as np
import pytest
import torch

from beyondgloss.data.feature_store import FeatureStore
from beyondgloss.data.safe_pickle import UnsafePickleError
from beyondgloss.cli.descriptor import import_hands
from beyondgloss.data.hands import hand_presence_mask, import_hamer_features, read_hamer_file


def write_reference_file(root, split, video_id, content):
    """`{root}/{split}/{video_id}/{video_id}.lzma`, written as the Hands-On extractor does (lzma + pickle)."""
    folder = root / split / video_id
    folder.mkdir(parents=True)
    with lzma.open(folder / f"{video_id}.lzma", "wb") as handle:
        pickle.dump(content, handle)
    return folder / f"{video_id}.lzma"


def reference_content(frames, seed, empty_rows=()):
    """The dict the Hands-On extractor pickles: features plus per-frame lists (None: no hand) and details."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(-1, 1, size=(frames, 288)).astype(np.float32)
    features[list(empty_rows)] = 0.0
    no_hand = set(empty_rows)
    return {
        "features": features,
        "pred_cam": [None if i in no_hand else rng.normal(size=(2, 3)).tolist() for i in range(frames)],
        "beta": [None if i in no_hand else rng.normal(size=(2, 10)).tolist() for i in range(frames)],
        "details": {
            "num_features": frames,
            "fps": 25.0,
            "focal_length": [[5000.0, 5000.0]],
            "Bounding_Box": np.array([[0.0, 0.0, 210.0, 260.0]], dtype=np.float32),
        },
    }


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.fixture
def hamer_root(tmp_path):
    root = tmp_path / "hamer"
    contents = {
        ("train", "01April_2010_Thursday_heute-6697"): reference_content(9, 0, empty_rows=(0, 4, 8)),
        ("train", "video-b"): reference_content(5, 1),
        ("dev", "video-c"): reference_content(3, 2, empty_rows=(0, 1, 2)),
    }
    for (split, video_id), content in contents.items():
        write_reference_file(root, split, video_id, content)
    return root, contents


def test_import_gives_the_same_array_and_the_hand_mask(hamer_root, tmp_path):
    root, contents = hamer_root
    store = FeatureStore(tmp_path / "store")
    summary = import_hamer_features(root, store, progress=False)
    assert sorted(summary.written) == sorted(f"{split}/{video}" for split, video in contents)
    assert summary.failed == [] and summary.skipped == []
    for (split, video_id), content in contents.items():
        record = store.read(f"{split}/{video_id}")
        assert torch.equal(record["features"], torch.from_numpy(content["features"]))
        expected = (np.abs(content["features"]).sum(axis=1) > 0).astype(np.int64)
        assert record["mask"].dtype == torch.long
        assert record["mask"].tolist() == expected.tolist()
    assert store.read("train/01April_2010_Thursday_heute-6697")["mask"].tolist() == [0, 1, 1, 1, 0, 1, 1, 1, 0]
    assert store.read("dev/video-c")["mask"].sum() == 0

    # A second import skips what is there; --overwrite-style replaces it.
    again = import_hamer_features(root, store, progress=False)
    assert again.written == [] and len(again.skipped) == 3
    assert len(import_hamer_features(root, store, overwrite=True, progress=False).written) == 3


def test_id_formats_and_split_selection(hamer_root, tmp_path):
    root, _ = hamer_root
    store = FeatureStore(tmp_path / "store")
    summary = import_hamer_features(root, store, splits=["train"], id_format="video", progress=False)
    assert sorted(summary.written) == ["01April_2010_Thursday_heute-6697", "video-b"]
    assert sorted(store.ids()) == ["01April_2010_Thursday_heute-6697", "video-b"]
    with pytest.raises(ValueError, match="id_format"):
        import_hamer_features(root, store, id_format="{video}", progress=False)
    with pytest.raises(FileNotFoundError, match="missing-split"):
        import_hamer_features(root, store, splits=["missing-split"], progress=False)


def test_same_video_id_in_two_splits_needs_split_ids(tmp_path):
    root = tmp_path / "hamer"
    write_reference_file(root, "dev", "same", reference_content(2, 0))
    write_reference_file(root, "test", "same", reference_content(2, 1))
    with pytest.raises(ValueError, match="'same' comes from both"):
        import_hamer_features(root, FeatureStore(tmp_path / "store"), id_format="video", progress=False)


def test_pickle_with_anything_but_plain_data_is_refused(hamer_root, tmp_path, capfd):
    root, _ = hamer_root
    bad = write_reference_file(root, "train", "evil", {"features": np.zeros((2, 288)), "extra": _Payload()})
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        read_hamer_file(bad)
    store = FeatureStore(tmp_path / "store")
    summary = import_hamer_features(root, store, progress=False)
    assert [path for path, _ in summary.failed] == [str(bad)]
    assert "train/evil" not in store and len(summary.written) == 3
    assert "this must never run" not in capfd.readouterr().out


def test_wrong_content_is_named(tmp_path):
    root = tmp_path / "hamer"
    no_features = write_reference_file(root, "train", "a", {"pred_cam": np.zeros(3)})
    wrong_width = write_reference_file(root, "train", "b", {"features": np.zeros((4, 10), dtype=np.float32)})
    with pytest.raises(ValueError, match=r"a\.lzma: expected a dict with a 'features' entry.*pred_cam"):
        read_hamer_file(no_features)
    with pytest.raises(ValueError, match=r"b\.lzma: 'features' has shape \(4, 10\), expected \(frames, 288\)"):
        read_hamer_file(wrong_width)
    assert read_hamer_file(wrong_width, feature_dim=10).shape == (4, 10)


def test_hand_presence_mask():
    features = torch.tensor([[0.0, 0.0], [0.0, -0.5], [1.0, 0.0]])
    assert hand_presence_mask(features).tolist() == [0, 1, 1]


def test_import_hands_command(hamer_root, tmp_path, capsys):
    root, contents = hamer_root
    store_dir = tmp_path / "store"
    assert import_hands([str(root), "--store", str(store_dir), "--splits", "dev", "--no-progress"]) == 0
    assert FeatureStore(store_dir).ids() == ["dev/video-c"]
    write_reference_file(root, "dev", "evil", {"features": _Payload()})
    assert import_hands([str(root), "--store", str(store_dir), "--no-progress"]) == 1
    assert sorted(FeatureStore(store_dir).ids()) == sorted(f"{s}/{v}" for s, v in contents)
    # A missing input folder is an input error: exit status 1 and one line naming the folder.
    capsys.readouterr()
    assert import_hands([str(tmp_path / "nowhere"), "--store", str(store_dir)]) == 1
    error = capsys.readouterr().err
    assert str(tmp_path / "nowhere") in error and error.count("\n") == 1, error

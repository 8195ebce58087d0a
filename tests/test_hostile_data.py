"""Careless and hostile data: pickles, SynthSign folders, metadata rows, media and feature stores.

Every case asserts the named error (the file, row or key, and what to do) or the documented result, and that
nothing that was there before changed (`snapshot` hashes a folder before and after).
"""

import hashlib
import json
import lzma
import os
import pickle
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from beyondgloss.data.safe_pickle import (
    PickleLimitError,
    UnsafePickleError,
    load_pickle_file,
    restricted_loads,
)
from beyondgloss.data.hands import import_hamer_features, read_hamer_file


def snapshot(folder) -> dict:
    """Every entry under `folder` (not following links): relative path -> kind and content hash."""
    found = {}
    for directory, names, files in os.walk(folder):
        for name in names + files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[relative] = ("dir",)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[relative] = ("file", hashlib.sha256(handle.read()).hexdigest())
            else:
                found[relative] = ("special",)
    return found


# -- restricted unpickler ------------------------------------------------------------------------------

class _Reduce:
    """Pickles as `func(*args)` (with an optional state), whatever `func` is."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


PLAIN = {
    "features": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "objects": np.array([[1], "x"], dtype=object),
    "strings": np.array(["ab", "c"]),
    "records": np.zeros(2, dtype=[("x", "f4"), ("y", "i2")]),
    "empty": np.zeros((0, 3)),
    "scalar": np.float32(1.5),
    "integer": np.int64(-5),
    "complex": 1 + 2j,
    "bytes": b"\x00\xff",
    "no_bytes": b"",
    "bytearray": bytearray(b"z"),
    "set": {1, "a"},
    "frozenset": frozenset({2}),
    "range": range(3),
    "slice": slice(1, 2),
    "text": "中文 ünïcode",
    "big": 2**100,
    "nested": [(1, (2.5, None)), {"k": [True, False]}],
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_of_plain_data_loads(protocol):
    loaded = restricted_loads(pickle.dumps(PLAIN, protocol=protocol), "plain.pkl")
    assert sorted(loaded) == sorted(PLAIN)
    for key, value in PLAIN.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
            assert (loaded[key] == value).all(), key
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value), key


def test_bytearray_from_a_number_is_refused():
    # The 120-byte file: bytearray(3_460_000_000) through REDUCE.
    payload = lzma.compress(pickle.dumps(_Reduce(bytearray, (3_460_000_000,)), protocol=2))
    assert len(payload) < 200
    with pytest.raises(UnsafePickleError, match=r"bomb\.lzma: refused bytearray\(\) of int"):
        restricted_loads(lzma.decompress(payload), "bomb.lzma")
    for func, args in ((set, (range(10**12),)), (frozenset, (range(10**12),)), (bytes, (10**10,))):
        with pytest.raises(UnsafePickleError, match="refused"):
            restricted_loads(pickle.dumps(_Reduce(func, args), protocol=2), "x.pkl")


def test_numpy_constructs_that_allocate_from_a_shape_are_refused():
    from numpy._core.multiarray import _reconstruct

    huge_empty = _Reduce(_reconstruct, (np.ndarray, (10**10,), b"b"))
    wide_element = _Reduce(_reconstruct, (np.ndarray, (1,), np.dtype(("V", 2**31 - 1))))
    direct = _Reduce(np.ndarray, ((10**10,),))
    # An object array whose list is shorter than its shape crashes numpy's __setstate__ (segfault).
    short_objects = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**6,), np.dtype(object), False, [1]))
    short_bytes = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("f8"), False, b"\0" * 8))
    for hostile in (huge_empty, wide_element, direct, short_objects, short_bytes):
        for protocol in (2, 5):
            with pytest.raises(UnsafePickleError, match="x.pkl: refused"):
                restricted_loads(pickle.dumps(hostile, protocol=protocol), "x.pkl")


def test_memo_index_from_the_file_allocates_nothing():
    # 9 bytes; the C unpickler sizes its memo table from this index (2**25 entries: 512 MB).
    data = b"\x80\x04N" + b"r" + struct.pack("<I", 2**25) + b"."
    tracemalloc.start()
    try:
        assert restricted_loads(data, "memo.pkl") is None
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


def test_decompressed_size_is_capped_while_streaming(tmp_path, monkeypatch):
    big = tmp_path / "big.lzma"
    with lzma.open(big, "wb") as handle:
        pickle.dump({"features": "a" * (2 * 2**20)}, handle, protocol=4)
    with pytest.raises(PickleLimitError, match=r"big\.lzma: the pickle decompresses to more than 1 MiB.*"
                                               r"BEYONDGLOSS_PICKLE_MAX_BYTES"):
        load_pickle_file(big, max_bytes=2**20)
    monkeypatch.setenv("BEYONDGLOSS_PICKLE_MAX_BYTES", str(2**20))
    with pytest.raises(PickleLimitError, match="more than 1 MiB"):
        load_pickle_file(big)
    monkeypatch.setenv("BEYONDGLOSS_PICKLE_MAX_BYTES", str(4 * 2**20))
    assert len(load_pickle_file(big)["features"]) == 2 * 2**20
    monkeypatch.setenv("BEYONDGLOSS_PICKLE_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="BEYONDGLOSS_PICKLE_MAX_BYTES='lots': give a whole number of bytes"):
        load_pickle_file(big)
    # Protocol 0 reads strings line by line: a line without an end hits the cap too.
    with pytest.raises(PickleLimitError, match="more than 1000 bytes"):
        restricted_loads(b"S'" + b"a" * 5000, "line.pkl", max_bytes=1000)


def test_objects_built_from_few_bytes_are_capped():
    # One byte per empty set (216 bytes each), kept alive in a list: 3 bytes of pickle per set.
    flood = b"\x80\x04]" + b"(" + b"\x8f" * 200_000 + b"e."
    with pytest.raises(PickleLimitError, match=r"flood\.pkl: the pickle would build more than 10 MiB of objects "
                                               r"\(estimated\).*BEYONDGLOSS_PICKLE_MAX_MEMORY"):
        restricted_loads(flood, "flood.pkl", max_memory=10 * 2**20)
    assert len(restricted_loads(flood, "flood.pkl", max_memory=100 * 2**20)) == 200_000


def test_malformed_and_foreign_pickle_files_name_the_file(tmp_path):
    cases = {
        "truncated.pkl": pickle.dumps(PLAIN, protocol=4)[:-40],
        "empty.pkl": b"",
        "zeros.lzma": lzma.compress(b"\0" * 10_000),
        "text.pkl": b"just some text\n",
        "stack.pkl": b"\x80\x04a.",  # APPEND on an empty stack
        "memo.pkl": b"\x80\x04h\x07.",  # a memo entry never stored
        "oob.pkl": b"\x80\x05\x97.",  # an out-of-band buffer that is not there
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    before = snapshot(tmp_path)
    for name in cases:
        with pytest.raises(ValueError, match=rf"{name}: not a readable pickle file"):
            load_pickle_file(tmp_path / name)
    (tmp_path / "folder.pkl").mkdir()
    os.mkfifo(tmp_path / "fifo.pkl")
    for name in ("folder.pkl", "fifo.pkl"):
        with pytest.raises(FileNotFoundError, match=rf"{name}: not a regular file"):
            load_pickle_file(tmp_path / name)
    with pytest.raises(UnsafePickleError, match="refused to load `posix.system`"):
        restricted_loads(pickle.dumps(_Reduce(os.system, ("echo no",)), protocol=0), "x.pkl")
    assert {k: v for k, v in snapshot(tmp_path).items() if k not in ("folder.pkl", "fifo.pkl")} == before


def write_lzma(path, content, protocol=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=protocol)
    return path


def test_hand_import_reports_each_bad_file_and_keeps_the_others(tmp_path):
    from beyondgloss.data.feature_store import FeatureStore

    root = tmp_path / "hamer"
    rows = np.ones((4, 288), dtype=np.float32)
    write_lzma(root / "train" / "good" / "good.lzma", {"features": rows}, protocol=0)
    write_lzma(root / "train" / "good5" / "good5.lzma", {"features": rows}, protocol=5)
    write_lzma(root / "train" / "bomb" / "bomb.lzma", _Reduce(bytearray, (3_460_000_000,)))
    write_lzma(root / "train" / "ragged" / "ragged.lzma", {"features": [[1.0] * 288, [1.0]]})
    write_lzma(root / "train" / "nothing" / "nothing.lzma", {"features": np.zeros((0, 288))})
    write_lzma(root / "train" / "complex" / "complex.lzma", {"features": rows.astype(np.complex64)})
    (root / "train" / "torn").mkdir()
    (root / "train" / "torn" / "torn.lzma").write_bytes(lzma.compress(pickle.dumps({"features": rows}))[:50])
    (root / "train" / "fifo").mkdir()
    os.mkfifo(root / "train" / "fifo" / "fifo.lzma")
    before = snapshot(root)
    summary = import_hamer_features(root, FeatureStore(tmp_path / "store"), progress=False)
    assert sorted(summary.written) == ["train/good", "train/good5"]
    failed = dict(summary.failed)
    assert "refused bytearray() of int" in failed[str(root / "train" / "bomb" / "bomb.lzma")]
    assert "not a rectangular array" in failed[str(root / "train" / "ragged" / "ragged.lzma")]
    assert "no rows" in failed[str(root / "train" / "nothing" / "nothing.lzma")]
    assert "expected real numbers" in failed[str(root / "train" / "complex" / "complex.lzma")]
    assert "not a readable pickle file" in failed[str(root / "train" / "torn" / "torn.lzma")]
    assert len(failed) == 5  # the FIFO is not a file: skipped with a warning, never opened
    assert snapshot(root) == before
    with pytest.raises(PickleLimitError, match="good.lzma: the pickle decompresses to more than 100 bytes"):
        read_hamer_file(root / "train" / "good" / "good.lzma", max_bytes=100)


# -- SynthSign: ownership before any deletion ---------------------------------------------------------------

TINY = dict(num_train=3, num_validation=1, num_test=1, image_size=16, description_dim=8, frames_per_sign=(1, 2),
            num_workers=1)


def _synthsign(path, **changes):
    from beyondgloss.data.synthsign import generate_synthsign

    return generate_synthsign(path, **{**TINY, **changes})


def test_synthsign_never_touches_a_foreign_folder_with_settings_json(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "settings.json").write_text('{"theme": "dark"}')
    before = snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="is not empty and is not a SynthSign corpus") as caught:
            _synthsign(project, overwrite=overwrite)
        message = str(caught.value)
        assert "settings.json" in message and "src" in message and "choose a new or empty data_dir" in message
        assert "overwrite=True" not in message  # suggesting it would point at a way to lose data
    # The route: `beyondgloss pretrain --dataset synthsign --dataset_options '{"overwrite": true}'`.
    from beyondgloss.data import load_sign_dataset

    with pytest.raises(ValueError, match="is not a SynthSign corpus"):
        load_sign_dataset("synthsign", data_dir=project, cache_dir=tmp_path / "cache", overwrite=True, **TINY)
    assert snapshot(tmp_path) == before  # no staging folder left next to it either


def test_synthsign_corpus_with_foreign_files_is_neither_reused_nor_replaced(tmp_path):
    corpus = _synthsign(tmp_path / "corpus")
    (corpus / "notes.txt").write_text("my notes")
    (corpus / "train" / "extra.mp4").write_bytes(b"mine")
    os.mkfifo(corpus / "pipe")
    before = snapshot(tmp_path)
    for changes in ({}, {"seed": 1, "overwrite": True}):
        with pytest.raises(ValueError, match=r"also 3 entries the generator did not write \(notes.txt, pipe, "
                                             r"train/extra.mp4\).*move them out"):
            _synthsign(corpus, **changes)
    assert snapshot(tmp_path) == before


def test_synthsign_replaces_only_its_own_corpus(tmp_path):
    from beyondgloss.data.synthsign import MARKER_FILE

    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "keep.txt").write_text("keep")
    corpus = _synthsign(tmp_path / "corpus")
    marker = json.loads((corpus / MARKER_FILE).read_text())
    assert marker["generator"] == "beyondgloss.data.synthsign" and marker["settings"]["seed"] == 0
    with pytest.raises(ValueError, match=r"made with other settings .*pass overwrite=True to replace it \(only the "
                                         r"files the generator wrote are deleted"):
        _synthsign(corpus, seed=1)
    assert _synthsign(corpus, seed=1, overwrite=True) == corpus
    assert json.loads((corpus / MARKER_FILE).read_text())["settings"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "sibling"]  # no staging or old copy left
    assert (tmp_path / "sibling" / "keep.txt").read_text() == "keep"
    # A corpus with files missing is not reused silently.
    (corpus / "test" / "000000.mp4").unlink()
    with pytest.raises(ValueError, match=r"with 1 of its files missing \(test/000000.mp4\)"):
        _synthsign(corpus, seed=1)
    assert _synthsign(corpus, seed=1, overwrite=True) == corpus and (corpus / "test" / "000000.mp4").is_file()


def test_synthsign_recognises_first_version_corpora(tmp_path):
    from beyondgloss.data.synthsign import MARKER_FILE

    corpus = _synthsign(tmp_path / "old")
    (corpus / MARKER_FILE).unlink()  # what the first version wrote: settings.json, no marker
    before = snapshot(corpus)
    assert _synthsign(corpus) == corpus
    after = snapshot(corpus)
    assert after.pop(MARKER_FILE)[0] == "file" and after == before  # adopted: marked, nothing else changed
    # A settings.json with the generator's keys is not enough when the folder holds anything else.
    (corpus / MARKER_FILE).unlink()
    (corpus / "src").mkdir()
    with pytest.raises(ValueError, match="is not a SynthSign corpus"):
        _synthsign(corpus, seed=2, overwrite=True)
    assert (corpus / "src").is_dir() and (corpus / "train" / "000000.mp4").is_file()


def test_synthsign_refuses_odd_targets_and_options(tmp_path):
    from beyondgloss.data.synthsign import MARKER_FILE

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _synthsign(tmp_path / "file")
    with pytest.raises(ValueError, match="overwrite='false': pass True or False"):
        _synthsign(tmp_path / "new", overwrite="false")
    forged = tmp_path / "forged"
    forged.mkdir()
    settings = {"generator": "synthsign", "version": 1, "num_train": 10**12, "num_validation": 0, "num_test": 0,
                "seed": 0, "image_size": 16, "description_dim": 8, "frames_per_sign": [1, 2], "frame_rate": 25}
    (forged / MARKER_FILE).write_text(json.dumps({"generator": "beyondgloss.data.synthsign", "settings": settings}))
    before = snapshot(forged)
    with pytest.raises(ValueError, match="is not a SynthSign corpus"):
        _synthsign(forged, overwrite=True)
    assert snapshot(forged) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _synthsign(empty) == empty and (empty / "metadata.jsonl").is_file()


# -- metadata rows, media and feature stores --------------------------------------------------------------

def _load(data_dir, cache, **kwargs):
    from beyondgloss.data import load_sign_dataset

    return load_sign_dataset("sign_video_folder", data_dir=data_dir, cache_dir=cache, **kwargs)


def _frames(folder, count=3, size=(6, 5), suffix=".png"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((size[1], size[0], 3), index * 40, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"images{index + 1}{suffix}")


def _metadata(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                                           encoding="utf-8")


def _boxes(data, start, end):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        if size < 8:
            return
        yield start, size, kind
        start += size


def faststart(data: bytes) -> bytes:
    """The mp4 with its index (moov) before the media data, as phones and web videos have it: cut short, such a
    file still opens and fails only when its frames are decoded."""
    top = list(_boxes(data, 0, len(data)))
    start, size = next((p, s) for p, s, kind in top if kind == b"moov")
    moov = bytearray(data[start:start + size])

    def shift(begin, end):  # chunk offsets move by the index's size
        for position, length, kind in _boxes(moov, begin, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift(position + 8, position + length)
            elif kind == b"stco":
                for entry in range(struct.unpack(">I", moov[position + 12:position + 16])[0]):
                    at = position + 16 + 4 * entry
                    moov[at:at + 4] = struct.pack(">I", struct.unpack(">I", moov[at:at + 4])[0] + len(moov))

    shift(8, len(moov))
    head = b"".join(data[p:p + s] for p, s, kind in top if kind == b"ftyp")
    return head + bytes(moov) + b"".join(data[p:p + s] for p, s, kind in top if kind not in (b"ftyp", b"moov"))


def _video(path, frames=12):
    import torch
    from torchcodec.encoders import VideoEncoder

    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (frames, 3, 16, 16), dtype=np.uint8))
    VideoEncoder(pixels, frame_rate=25).to_file(str(path))
    return path


def test_duplicate_ids_name_both_rows_even_with_skip(tmp_path):
    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        _frames(data / name)
    _metadata(data, [{"file_name": "a", "text": "one", "id": "x"}, {"file_name": "b", "text": "two"},
                     {"file_name": "c", "text": "three", "id": "x", "split": "test"}])
    before = snapshot(data)
    for skip in (False, True):
        with pytest.raises(ValueError, match=r"1 id\(s\) used by more than one row: 'x' \(metadata.jsonl line 1 and "
                                             r"metadata.jsonl line 3\).*give the rows distinct ids"):
            _load(data, tmp_path / "cache", skip_bad_samples=skip)
    assert snapshot(data) == before


def test_text_of_the_wrong_type_is_an_error_or_skipped(tmp_path, caplog):
    import logging

    data = tmp_path / "data"
    for name in ("a", "b", "c", "d"):
        _frames(data / name)
    _metadata(data, [{"file_name": "a", "text": ["a", "list"]}, {"file_name": "b", "text": {"de": "x"}},
                     {"file_name": "c", "text": "fine", "gloss": 7, "signer": None},
                     {"file_name": "d", "text": "fine too", "signer": ["s1"]}])
    from beyondgloss.data import BadSampleError

    with pytest.raises(BadSampleError, match=r"3 bad sample\(s\): a \(text is a list \(\['a', 'list'\]\), expected a "
                                             r"string \(metadata.jsonl line 1\)\); b \(text is a dict"):
        _load(data, tmp_path / "cache")
    with pytest.raises(BadSampleError, match=r"d \(signer is a list"):
        _load(data, tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="beyondgloss.data.builders"):
        dataset = _load(data, tmp_path / "cache", skip_bad_samples=True)
    assert dataset["train"]["id"] == ["c"] and dataset["train"][0]["gloss"] == "7"
    assert dataset["train"][0]["signer"] == ""
    with pytest.raises(ValueError, match="skip_bad_samples='false': pass True or False"):
        _load(data, tmp_path / "cache", skip_bad_samples="false")


def test_metadata_paths_outside_the_dataset_are_refused(tmp_path):
    secret = tmp_path / "outside"
    _frames(secret)
    data = tmp_path / "data"
    _frames(data / "inside")
    for bad in (str(secret), "../outside", "inside/../../outside"):
        _metadata(data, [{"file_name": "inside", "text": "ok"}, {"file_name": bad, "text": "no", "id": "evil"}])
        before = snapshot(data), snapshot(secret)
        for skip in (False, True):
            with pytest.raises(ValueError, match=rf"metadata.jsonl line 2: file_name {bad!r} points outside the "
                                                 r"dataset folder"):
                _load(data, tmp_path / "cache", skip_bad_samples=skip)
        assert (snapshot(data), snapshot(secret)) == before
    _metadata(data, [{"file_name": ["inside"], "text": "no"}])
    with pytest.raises(ValueError, match=r"metadata.jsonl line 1: file_name must be a non-empty relative path, got a "
                                         r"list"):
        _load(data, tmp_path / "cache")
    (data / "metadata.jsonl").write_text('["inside", "text"]\n')
    with pytest.raises(ValueError, match=r"metadata.jsonl, line 1: expected a JSON object with file_name and text"):
        _load(data, tmp_path / "cache")


def test_phoenix_names_cannot_leave_the_frame_root(tmp_path):
    from beyondgloss.data import load_sign_dataset

    root = tmp_path / "PHOENIX-2014-T"
    annotations = root / "annotations" / "manual"
    annotations.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        name = "../../../../outside" if split == "dev" else f"{split}-video"
        (annotations / f"PHOENIX-2014-T.{split}.corpus.csv").write_text(
            f"name|video|start|end|speaker|orth|translation\n{name}|x|-1|-1|S1|A|a sentence\n")
        _frames(root / "features" / "fullFrame-210x260px" / split / f"{split}-video")
    with pytest.raises(ValueError, match=r"PHOENIX-2014-T.dev.corpus.csv row 1: frame folder '../../../../outside' "
                                         r"points outside"):
        load_sign_dataset("phoenix14t", data_dir=root, cache_dir=tmp_path / "cache", skip_bad_samples=True)


def test_ids_in_any_script_and_of_any_length_join_their_features(tmp_path):
    import torch

    from beyondgloss.data import FeatureStore

    data = tmp_path / "data"
    names = ["手语视频" * 20, "видео-жестов", "x" * 240, "ok"]  # 240 bytes of UTF-8, 240 ASCII: both legal names
    hands = FeatureStore(tmp_path / "hands")
    for number, name in enumerate(names):
        _frames(data / name, count=2)
        hands.write(name, torch.full((2, 4), float(number)))
    _metadata(data, [{"file_name": name, "text": f"sentence {n}"} for n, name in enumerate(names)])
    assert all(len(path.name.encode()) < 255 for path in hands.files())
    dataset = _load(data, tmp_path / "cache", hand_features=hands)
    rows = {row["id"]: row for row in dataset["train"]}
    assert sorted(rows) == sorted(names)
    for number, name in enumerate(names):
        assert np.array(rows[name]["hand_features"]).tolist() == [[float(number)] * 4] * 2
    assert len(hands) == 4 and sorted(hands.ids()) == sorted(names)


def test_truncated_videos_and_corrupt_images_fail_at_build(tmp_path, caplog):
    import logging

    from beyondgloss.data import BadSampleError

    videos = tmp_path / "videos"
    videos.mkdir()
    whole = _video(videos / "good.mp4").read_bytes()
    streamable = faststart(whole)
    (videos / "cut.mp4").write_bytes(streamable[: len(streamable) * 6 // 10])  # opens, 7 frames listed
    (videos / "cut_index.mp4").write_bytes(whole[: len(whole) // 2])  # index at the end: does not open
    (videos / "text.mp4").write_text("not a video\n")
    os.mkfifo(videos / "pipe.mp4")
    _metadata(videos, [{"file_name": name, "text": "a sentence"}
                       for name in ("good.mp4", "cut.mp4", "cut_index.mp4", "text.mp4", "pipe.mp4")])
    before = snapshot(videos)
    with pytest.raises(BadSampleError, match=r"4 bad sample\(s\): cut \(unreadable video: .*could not decode.*; "
                                             r"cut_index \(unreadable video.*pipe \(video file .*pipe.mp4 is not a "
                                             r"regular file"):
        _load(videos, tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="beyondgloss.data.builders"):
        assert _load(videos, tmp_path / "cache", skip_bad_samples=True)["train"]["id"] == ["good"]
    assert snapshot(videos) == before

    frames = tmp_path / "frames"
    for name in ("good", "truncated_png", "garbage", "sizes", "bomb"):
        _frames(frames / name)
    (frames / "truncated_jpeg").mkdir()
    png = (frames / "truncated_png" / "images2.png").read_bytes()
    (frames / "truncated_png" / "images2.png").write_bytes(png[: len(png) - 20])
    (frames / "garbage" / "images3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    from PIL import Image

    for index in range(3):
        noise = np.random.default_rng(index).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(frames / "truncated_jpeg" / f"images{index + 1}.jpg")
    # Cut inside the image data: Pillow's verify() passes such a file; only decoding (or the end marker) tells.
    jpeg = (frames / "truncated_jpeg" / "images3.jpg").read_bytes()
    (frames / "truncated_jpeg" / "images3.jpg").write_bytes(jpeg[: len(jpeg) * 7 // 10])
    _frames(frames / "sizes" / "x", count=1, size=(7, 5))
    os.replace(frames / "sizes" / "x" / "images1.png", frames / "sizes" / "images9.png")
    (frames / "sizes" / "x").rmdir()
    # A 15000 x 15000 PNG header (225 megapixels, past Pillow's decompression-bomb limit).
    header = struct.pack(">IIBBBBB", 15000, 15000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + header))
    (frames / "bomb" / "images4.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    _metadata(frames, [{"file_name": name, "text": "a sentence"}
                       for name in ("good", "truncated_png", "garbage", "truncated_jpeg", "sizes", "bomb")])
    before = snapshot(frames)
    with pytest.raises(BadSampleError) as caught:
        _load(frames, tmp_path / "cache2")
    message = str(caught.value)
    assert "5 bad sample(s)" in message
    assert "images2.png is not a readable image" in message and "images3.png is not a readable image" in message
    assert "images3.jpg is truncated (no JPEG end marker)" in message
    assert "images9.png is 7x5 px but images1.png is 6x5 px" in message
    assert "images4.png is too large to decode safely" in message
    assert _load(frames, tmp_path / "cache2", skip_bad_samples=True)["train"]["id"] == ["good"]
    assert snapshot(frames) == before


def test_every_kind_of_entry_in_a_frame_folder(tmp_path):
    data = tmp_path / "data"
    clip = data / "clip"
    _frames(clip, count=3)
    (clip / "sub.png").mkdir()  # a folder with an image suffix
    (clip / "sub.png" / "images9.png").write_bytes((clip / "images1.png").read_bytes())
    os.mkfifo(clip / "images4.png")  # opening it would block forever
    (clip / "._images5.png").write_bytes(b"AppleDouble")  # hidden: macOS resource forks
    (clip / "images6.png").symlink_to(clip / "missing.png")  # broken link
    (clip / "images0.png").symlink_to(clip / "images1.png")  # a link to an image is an image
    (clip / "notes.txt").write_text("notes")
    _metadata(data, [{"file_name": "clip", "text": "a sentence"}])
    before = snapshot(data)
    dataset = _load(data, tmp_path / "cache")
    assert [os.path.basename(p) for p in dataset["train"][0]["frames"]] == [
        "images0.png", "images1.png", "images2.png", "images3.png"]
    assert snapshot(data) == before


def test_bad_feature_files_are_named_and_skippable(tmp_path):
    import torch

    from beyondgloss.data import BadSampleError, FeatureStore

    data = tmp_path / "data"
    names = ["good", "truncated", "foreign", "nan", "wide", "other_id"]
    for name in names:
        _frames(data / name, count=2)
    _metadata(data, [{"file_name": name, "text": "a sentence"} for name in names])
    hands = FeatureStore(tmp_path / "hands")
    for name in names:
        hands.write(name, torch.ones(2, 4))
    full = hands.file_for("truncated").read_bytes()
    hands.file_for("truncated").write_bytes(full[: len(full) - 10])
    from safetensors.torch import save_file

    save_file({"weights": torch.ones(3)}, str(hands.file_for("foreign")))
    hands.write("nan", torch.full((2, 4), float("nan")))
    hands.write("wide", torch.ones(2, 5))
    hands.write("elsewhere", torch.ones(2, 4))
    os.replace(hands.file_for("elsewhere"), hands.file_for("other_id"))
    os.mkfifo(hands.path / "fifo.safetensors")  # never opened
    before = snapshot(data), snapshot(hands.path)
    with pytest.raises(BadSampleError) as caught:
        _load(data, tmp_path / "cache", hand_features=hands)
    message = str(caught.value)
    assert "5 bad sample(s)" in message
    assert f"{hands.file_for('truncated')}: not a readable safetensors file; it may be truncated" in message
    assert f"{hands.file_for('foreign')}: no 'features' tensor (it holds ['weights'])" in message
    assert "hand-feature file " in message and "nan.safetensors holds NaN or infinite values" in message
    assert "hand features have shape (2, 5), expected (frames, 4)" in message
    assert "holds the features of sample 'elsewhere', not 'other_id'" in message
    assert _load(data, tmp_path / "cache", hand_features=hands, skip_bad_samples=True)["train"]["id"] == ["good"]
    assert (snapshot(data), snapshot(hands.path)) == before


def test_metadata_files_that_are_not_clean_text(tmp_path):
    data = tmp_path / "data"
    _frames(data / "a")
    cases = {
        "metadata.csv": ("file_name,text\na,first,extra\n", r"metadata.csv, row 1: 3 fields but the header names 2"),
        "metadata.jsonl": ('{"file_name": "a", "text": "caf\xe9"}\n'.encode("latin-1"),
                           r"metadata.jsonl: not UTF-8 text \(byte 31: invalid continuation byte\); "
                           r"save it as UTF-8"),
    }
    for name, (content, error) in cases.items():
        for other in cases:
            (data / other).unlink(missing_ok=True)
        if isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            (data / name).write_text(content)
        before = snapshot(data)
        with pytest.raises(ValueError, match=error):
            _load(data, tmp_path / "cache")
        assert snapshot(data) == before
    (data / "metadata.jsonl").unlink()
    os.mkfifo(data / "metadata.jsonl")
    with pytest.raises(FileNotFoundError, match=r"metadata.jsonl: not a regular file"):
        _load(data, tmp_path / "cache")
    from beyondgloss.data import load_sign_dataset

    with pytest.raises(ValueError, match="rebuild='yes': pass True or False"):
        load_sign_dataset("sign_video_folder", data_dir=data, rebuild="yes")


def test_feature_store_paths_and_ids(tmp_path):
    import torch

    from beyondgloss.data import FeatureStore

    (tmp_path / "file").write_text("mine")
    with pytest.raises(NotADirectoryError, match="feature store .*file exists and is not a folder"):
        FeatureStore(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    store = FeatureStore(tmp_path / "store")
    for bad in ("", 7, None):
        with pytest.raises(ValueError, match="feature stores key samples by a non-empty string"):
            store.write(bad, torch.zeros(1, 2))
    # Ids that differ only past the readable part of a long name still get distinct files.
    first, second = "a" * 300 + "1", "a" * 300 + "2"
    store.write(first, torch.zeros(1, 2))
    store.write(second, torch.ones(1, 2))
    assert store.file_for(first) != store.file_for(second) and store[second].sum() == 2
    # An id starting with "." does not become a hidden file (listing a store skips hidden names).
    store.write(".hidden", torch.zeros(1, 2))
    (store.path / "._x.safetensors").write_bytes(b"AppleDouble")  # what macOS leaves on foreign disks
    assert sorted(store.ids()) == sorted([first, second, ".hidden"]) and len(store) == 3


def test_a_store_another_process_creates_meanwhile_is_used(tmp_path, monkeypatch):
    """SynthSign's writer processes create the same stores at once: a folder that appears between this process's
    check and its mkdir is the store, not a file in the way."""
    from pathlib import Path

    from beyondgloss.data.feature_store import FeatureStore

    target = tmp_path / "hand_features"
    real_is_dir = Path.is_dir
    calls = []

    def is_dir_then_another_process_creates_it(self):
        result = real_is_dir(self)
        if self == target and not calls:
            calls.append(self)
            self.mkdir()  # the other process, right after this one looked
        return result

    monkeypatch.setattr(Path, "is_dir", is_dir_then_another_process_creates_it)
    store = FeatureStore(target)
    assert calls and real_is_dir(store.path)

"""Careless and hostile data: pickles, SynthSign folders, metadata rows, media and feature stores.

Every case asserts the named error (the file, row or key, and what to do) or the documented result, and that
nothing that was there before changed (`snapshot` hashes a folder before and after).
"""

import hashlib
import io
import json
import lzma
import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest

from beyondgloss.data.safe_pickle import (
    PickleLimitError,
    UnsafePickleError,
    load_pickle_file,
    restricted_loads,
)
from beyondgloss.descriptor.hands import import_hamer_features, read_hamer_file


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
    direct = _Reduce(np.ndarray, ((10**10,),))
    # An object array whose list is shorter than its shape crashes numpy's __setstate__ (segfault).
    short_objects = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**6,), np.dtype(object), False, [1]))
    short_bytes = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("f8"), False, b"\0" * 8))
    for hostile in (huge_empty, direct, short_objects, short_bytes):
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

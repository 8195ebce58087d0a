"""SynthSign: determinism, held-out sentences, hand targets aligned with frames, a clean visual signal."""

import json

import numpy as np
import pytest
from torchcodec.decoders import VideoDecoder

from beyondgloss.data import SYNTHSIGN_HAND_DIM, SYNTHSIGN_LEXICON, FeatureStore, generate_synthsign, load_sign_dataset
from beyondgloss.data.synthsign import description_embedding, render_clip, sample_sentences
from beyondgloss.data.synthsign_rendering import encode_video

SIGNS = {sign.gloss: sign for sign in SYNTHSIGN_LEXICON}

SIZES = dict(num_train=12, num_validation=3, num_test=4, description_dim=16)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_synthsign(tmp_path_factory.mktemp("synth") / "seed0", seed=0, num_workers=2, **SIZES)


def metadata(root):
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


def test_same_seed_same_files(corpus, tmp_path):
    # The fixture was written by 2 worker processes, this copy by one: the bytes must not depend on that.
    again = generate_synthsign(tmp_path / "again", seed=0, num_workers=1, **SIZES)
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".mp4"]) == 19
    for name in files:
        assert (corpus / name).read_bytes() == (again / name).read_bytes(), name


def test_different_seed_different_corpus(corpus, tmp_path):
    other = generate_synthsign(tmp_path / "seed1", seed=1, **SIZES)
    assert [r["text"] for r in metadata(other)] != [r["text"] for r in metadata(corpus)]
    first = metadata(corpus)[0]["file_name"]
    assert (other / first).read_bytes() != (corpus / first).read_bytes()


def test_held_out_sentences_and_grammar(corpus):
    rows = metadata(corpus)
    by_split = {split: [r for r in rows if r["split"] == split] for split in ("train", "validation", "test")}
    assert [len(by_split[s]) for s in by_split] == [12, 3, 4]
    train = {r["text"] for r in by_split["train"]}
    assert not train & {r["text"] for r in by_split["test"]}
    assert not train & {r["text"] for r in by_split["validation"]}
    sentences = sample_sentences(400, np.random.default_rng(3))
    assert len({" ".join(g) for g, _ in sentences}) == 400
    assert {len(g) for g, _ in sentences} == {3, 4, 5, 6}
    # Signing order is subject-object-verb; the spoken sentence is subject-verb-object with articles.
    glosses, text = next((g, t) for g, t in sentences if len(g) == 3)
    subject, obj, verb = (SIGNS[gloss] for gloss in glosses)
    assert (subject.role, obj.role, verb.role) == ("subject", "object", "verb")
    assert text == f"the {subject.forms[0]} {verb.forms[0]} the {obj.forms[0]}"


def test_hand_parameters_match_frames(corpus, tmp_path):
    dataset = load_sign_dataset("synthsign", data_dir=corpus, cache_dir=tmp_path / "cache", seed=0, **SIZES)
    assert sorted(dataset) == ["test", "train", "validation"]
    row = dataset["test"][0]
    assert row["language"] == "en" and row["text"] and row["description"]
    frames = row["video"].metadata.num_frames
    assert np.array(row["hand_features"]).shape == (frames, SYNTHSIGN_HAND_DIM)
    assert row["hand_mask"] == [1.0] * frames
    assert len(row["description_embedding"]) == SIZES["description_dim"]
    signs = len(row["gloss"].split())
    assert 6 * signs <= frames <= 10 * signs


def test_settings_reuse_and_mismatch(corpus):
    before = (corpus / "train" / "000000.mp4").stat().st_mtime_ns
    assert generate_synthsign(corpus, seed=0, **SIZES) == corpus
    assert (corpus / "train" / "000000.mp4").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="other settings.*overwrite=True"):
        generate_synthsign(corpus, seed=5, **SIZES)


def test_signs_look_distinct_and_video_keeps_colours(tmp_path):
    assert len(SYNTHSIGN_LEXICON) >= 30
    clips = np.stack([render_clip([sign.gloss], [8])[0].astype(np.int16) for sign in SYNTHSIGN_LEXICON])
    differences = np.abs(clips[:, None] - clips[None]).mean(axis=(2, 3, 4, 5))
    off_diagonal = differences[~np.eye(len(clips), dtype=bool)]
    assert off_diagonal.min() > 1.0
    # Encoded as yuv444p, the small coloured hands survive h264 nearly unchanged.
    frames, _ = render_clip(["RED", "TEACHER", "NOT"], [6, 7, 8], signer=2)
    encode_video(frames, tmp_path / "clip.mp4")
    decoded = VideoDecoder(str(tmp_path / "clip.mp4"))[:].numpy().astype(np.int16)
    assert decoded.shape == frames.shape and np.abs(decoded - frames).mean() < 2.0


def test_description_embedding_is_deterministic_and_graded():
    text = "first the red disc right hand circles at the chest while the blue ring left hand rests low."
    vector = description_embedding(text, 64)
    # Normalised in float64, then stored as float32 (each entry rounded by eps/2 of itself) and measured by a
    # float32 norm (64 squared terms summed: up to 64 eps/2 of the squared norm, 64 eps/4 of the norm).
    epsilon = float(np.finfo(np.float32).eps)
    assert vector.shape == (64,) and abs(np.linalg.norm(vector) - 1.0) <= (0.5 + 64 / 4) * epsilon
    assert np.array_equal(vector, description_embedding(text, 64))
    similar = description_embedding(text.replace("circles", "zigzags"), 64)
    unrelated = description_embedding("finally the white cross right hand taps at the face", 64)
    assert vector @ similar > vector @ unrelated

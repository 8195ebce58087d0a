"""Collators: dataset rows (videos, texts, hand features, descriptions) to model inputs, through a DataLoader."""

import json

import numpy as np
import pytest
import torch

from beyondgloss.data import FeatureStore, PretrainingCollator, SignCollator, TranslationCollator, load_sign_dataset
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

TEXTS = ["the dog sees the ball", "a red boat", "the girl helps", "tomorrow it rains"]
FRAMES = [5, 4, 6, 3]
HAND_DIM, DESCRIPTION_DIM = 6, 24


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory):
    """A sign video folder of 4 real mp4 clips with hand features (row t holds t) and description embeddings."""
    from torchcodec.encoders import VideoEncoder

    root = tmp_path_factory.mktemp("videos")
    hands, descriptions = FeatureStore(root / "hands"), FeatureStore(root / "descriptions")
    rows = []
    for number, (text, frames) in enumerate(zip(TEXTS, FRAMES)):
        pixels = torch.randint(0, 255, (frames, 3, 32, 32), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(number))
        VideoEncoder(pixels, frame_rate=25).to_file(str(root / f"clip{number}.mp4"))
        sample_id = f"clip{number}"
        hands.write(sample_id, torch.arange(frames, dtype=torch.float32)[:, None].repeat(1, HAND_DIM),
                    mask=torch.tensor([0.0] + [1.0] * (frames - 1)))
        descriptions.write(sample_id, torch.full((DESCRIPTION_DIM,), float(number)))
        rows.append({"file_name": f"clip{number}.mp4", "text": text, "language": "en"})
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    dataset = load_sign_dataset(str(root), cache_dir=root / "cache", hand_features=hands, descriptions=descriptions)
    return dataset["train"]


@pytest.fixture(scope="module")
def processor():
    video_processor = BeyondGlossVideoProcessor(max_frames=4, resize_size=32, crop_size=28, augment=False)
    tokenizer = train_sign_tokenizer(TEXTS, language="en_XX")
    return BeyondGlossProcessor(video_processor=video_processor, tokenizer=tokenizer, target_language="en_XX")


def test_translation_batch_aligns_hand_features_with_kept_frames(video_dataset, processor):
    batch = TranslationCollator(processor, training=False)([video_dataset[i] for i in range(4)])
    # Stage 2 has no description term: the description embeddings stay out of its batches.
    assert sorted(batch) == ["hand_features", "hand_mask", "labels", "pixel_values_videos", "video_attention_mask"]
    assert batch["pixel_values_videos"].shape == (4, 4, 3, 28, 28)
    assert batch["video_attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["hand_features"].shape == (4, 4, HAND_DIM)
    # max_frames=4 subsamples the 5- and 6-frame clips; the hand rows must be those of the kept frames.
    kept = processor.video_processor(
        [video_dataset[i]["video"] for i in range(4)], return_frame_indices=True)["frame_indices"]
    for b, indices in enumerate(kept):
        assert batch["hand_features"][b, : len(indices), 0].tolist() == [float(i) for i in indices]
        assert batch["hand_mask"][b, : len(indices)].tolist() == [0 if i == 0 else 1 for i in indices]
    assert kept[2] != list(range(4))  # the 6-frame clip was really subsampled
    assert batch["hand_mask"][3, 3] == 0 and batch["hand_features"][3, 3].abs().sum() == 0
    assert batch["hand_mask"].dtype == torch.long
    pretraining = PretrainingCollator(processor, training=False)([video_dataset[i] for i in range(4)])
    assert pretraining["description_embeds"][:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    labels = batch["labels"]
    assert (labels == -100).any() and processor.batch_decode(labels) == TEXTS


def test_pretraining_batch_and_metadata(video_dataset, processor):
    collator = PretrainingCollator(processor, training=True, return_metadata=True)
    batch = collator([video_dataset[0], video_dataset[3]])
    assert "labels" not in batch
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["ids"] == ["clip0", "clip3"] and batch["texts"] == [TEXTS[0], TEXTS[3]]
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # 3 words against 5
    assert processor.batch_decode(batch["input_ids"]) == [TEXTS[0], TEXTS[3]]


def test_frames_rows_and_bad_rows(tmp_path, processor):
    from PIL import Image

    paths = []
    for index in range(3):
        path = tmp_path / f"images{index}.png"
        Image.fromarray(np.full((20, 20, 3), index * 50, dtype=np.uint8)).save(path)
        paths.append(str(path))
    collator = SignCollator(processor, stage="translation", training=False)
    batch = collator([{"frames": paths, "text": "a red boat"}])
    assert batch["pixel_values_videos"].shape == (1, 3, 3, 28, 28) and "hand_features" not in batch
    with pytest.raises(ValueError, match="id 'x'.*neither a `video` nor a `frames`"):
        collator([{"id": "x", "text": "hi"}])
    short = {"id": "short", "frames": paths, "text": "hi", "hand_features": np.zeros((2, HAND_DIM))}
    with pytest.raises(ValueError, match="sample 'short': hand features of shape \\(2, 6\\) do not cover"):
        collator([short])
    with pytest.raises(ValueError, match="stage='finetune'"):
        SignCollator(processor, stage="finetune")


def test_dataloader_with_two_workers_feeds_the_model(video_dataset, processor):
    from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
    from beyondgloss.testing import tiny_config

    config = tiny_config(vocab_size=len(processor.tokenizer), hand_dim=HAND_DIM, description_dim=DESCRIPTION_DIM)
    loaders = {
        stage: torch.utils.data.DataLoader(video_dataset, batch_size=2, num_workers=2, collate_fn=collator)
        for stage, collator in (("pretraining", PretrainingCollator(processor)),
                                ("translation", TranslationCollator(processor)))
    }
    torch.manual_seed(0)
    for stage, model_class in (("pretraining", BeyondGlossForContrastivePretraining),
                               ("translation", BeyondGlossForSignTranslation)):
        model = model_class(config)
        batches = list(loaders[stage])
        assert len(batches) == 2
        output = model(**batches[0])
        assert torch.isfinite(output.loss)

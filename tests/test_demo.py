"""The demo's whole path on a tiny corpus and budget (the real run is `make demo`; its scores are in the README)."""

import json

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoProcessor

from beyondgloss.cli import main as cli_main


def main(argv: list) -> int:
    return cli_main(["demo", *argv])


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["--output_dir", str(out), "--num_train", "48", "--num_validation", "8", "--num_test", "12",
                 "--pretraining_steps", "3", "--translation_steps", "3", "--batch_size", "8",
                 "--pipeline_examples", "2", "--num_beams", "2", "--stream_sentences", "2"])
    assert code == 0
    return out


def test_demo_leaves_everything_in_one_folder(demo_dir):
    for name in ("metrics.json", "test_predictions.jsonl", "pipeline_examples.json", "losses.png",
                 "similarity_matrix.png", "training_log.json", "model/README.md", "model/model.safetensors",
                 "model/config.json", "model/processor_config.json", "model/examples/000000.mp4"):
        assert (demo_dir / name).is_file(), name
    metrics = json.loads((demo_dir / "metrics.json").read_text())
    assert {"bleu1", "bleu4", "rouge_l", "chrf"} <= set(metrics["test"])
    assert metrics["bleu_signature"].startswith("nrefs:1")
    first, last = metrics["alignment_loss_first_last"]
    assert first > 0 and last > 0
    predictions = [json.loads(line) for line in (demo_dir / "test_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 12 and {"id", "reference", "prediction"} <= set(predictions[0])
    examples = json.loads((demo_dir / "pipeline_examples.json").read_text())
    assert len(examples) == 2 and all(isinstance(e["translation"], str) for e in examples)


def test_demo_trains_the_gate_and_captions_a_long_video(demo_dir):
    for name in ("captions.srt", "gate_probability.png", "long_test_video.mp4"):
        assert (demo_dir / name).is_file(), name
    captions = json.loads((demo_dir / "metrics.json").read_text())["live_captions"]
    gate = captions["gate"]
    # 8 validation and 12 test sentences, and round(0.15 * 8) + round(0.15 * 12) = 1 + 2 idle clips.
    assert (gate["signing_clips"], gate["idle_clips"]) == (20, 3)
    video = captions["long_video"]
    assert video["sentences"] == 2 and len(video["captions_per_sentence"]) == 2
    assert video["captions"] == sum(video["captions_per_sentence"]) + video["captions_in_idle_stretches"]
    # The gate's segmentation: a decision every stride, each stretch of signing translated once.
    assert video["gate_checks"] > 0 and video["captions"] <= video["stretches_translated"] <= video["gate_checks"]
    assert len(video["caption_delay_seconds"]) == video["captions"]
    tails = video["gate_tails"]
    assert 0 < tails["signing_tails"] + tails["idle_tails"] <= video["gate_checks"]
    srt = (demo_dir / "captions.srt").read_text()
    assert srt.count(" --> ") == video["captions"]
    model = AutoModelForSeq2SeqLM.from_pretrained(demo_dir / "model")
    assert model.config.signing_gate and model.sign_encoder.signing_gate is not None


def test_demo_model_loads_with_from_pretrained(demo_dir):
    model = AutoModelForSeq2SeqLM.from_pretrained(demo_dir / "model")
    processor = AutoProcessor.from_pretrained(demo_dir / "model")
    assert type(model).__name__ == "BeyondGlossForSignTranslation"
    assert model.config.decoder_start_token_id == processor.language_code_id
    # Videos of any size are brought to the model's frame size (the training clips are already that size).
    assert processor.video_processor.size == {"shortest_edge": model.config.vision_config.image_size}
    assert processor.video_processor.crop_size == {"height": 32, "width": 32}


def test_demo_refuses_to_overwrite(demo_dir, tmp_path, capsys):
    assert main(["--output_dir", str(demo_dir)]) == 1
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith(f"beyondgloss demo: error: {demo_dir} already holds files")
    assert "--overwrite_output_dir" in error
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["--output_dir", str(foreign), "--overwrite_output_dir"]) == 1
    assert "not a beyondgloss demo" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_demo_records_its_bar(demo_dir):
    bar = json.loads((demo_dir / "metrics.json").read_text())["bar"]
    assert bar["bleu4"] == 50.0 and bar["reached"] is False  # 3 steps of training translate nothing


def test_overwrite_removes_only_what_a_demo_wrote(demo_dir, tmp_path):
    from beyondgloss.training.demo import DemoOutputDirError, _check_output_dir

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "demo_settings.json").write_text("{}")
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text("{}")
    (folder / "synthsign").mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(DemoOutputDirError, match="notes.txt"):
        _check_output_dir(folder, overwrite=True)
    assert (folder / "model" / "config.json").is_file() and (folder / "notes.txt").read_text() == "keep me"
    (folder / "notes.txt").unlink()
    _check_output_dir(folder, overwrite=True)
    assert sorted(child.name for child in folder.iterdir()) == ["synthsign"]

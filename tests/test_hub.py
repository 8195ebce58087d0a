"""Hub-ready folders: layout, loading where beyondgloss is not importable, uploads (intercepted), bad folders."""

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from transformers import pipeline

from beyondgloss import cli
from beyondgloss.hub import (
    IGNORE_PATTERNS,
    NotACheckpointError,
    check_checkpoint_folder,
    push_to_hub,
    save_for_hub,
)
from beyondgloss.model_card import SignTranslationCardData
from beyondgloss.pipeline_sign_translation import register_pipeline
from beyondgloss.testing.videos import make_frames, write_frame_folder

from .conftest import BLOCK_BEYONDGLOSS
from .test_cli import QUICK, corpus, pretrained  # noqa: F401 (the tiny SynthSign corpus and stage-1 run)
from .test_pipeline import make_translator

# Loads each folder given on the command line through every Auto class and the pipeline, translates, and saves the
# loaded model and processor again (as a user of the Hub copy would); prints one JSON report per folder.
CHILD = BLOCK_BEYONDGLOSS + """
import json, os, sys
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoProcessor, pipeline
frames, folders = sys.argv[1], sys.argv[2:]
for folder in folders:
    encoder = AutoModel.from_pretrained(folder, trust_remote_code=True)
    translation = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    translator = pipeline("sign-translation", model=folder, trust_remote_code=True, progress=False)
    inputs = processor(videos=frames)
    features = encoder(**inputs).last_hidden_state
    ids = translation.generate(**inputs, max_new_tokens=4)
    resaved = folder + "-resaved"
    translation.save_pretrained(resaved)
    processor.save_pretrained(resaved)
    print(json.dumps({
        "classes": [type(x).__module__ for x in (encoder, translation, processor, translator)],
        "features": list(features.shape),
        "direct": processor.batch_decode(ids)[0],
        "pipeline": translator(frames, max_new_tokens=4),
        "batch": translator([frames, frames], batch_size=2, max_new_tokens=4),
        "num_beams": translation.generation_config.num_beams,
        "resaved": sorted(os.listdir(resaved)),
        "resaved_config": json.load(open(os.path.join(resaved, "config.json"))),
        "beyondgloss_loaded": any(name.startswith("beyondgloss") for name in sys.modules),
    }))
"""


def run_without_beyondgloss(frames_dir: Path, folders: list[Path], tmp_path: Path) -> list[dict]:
    """Runs CHILD on `folders` in a fresh process where beyondgloss cannot be imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CHILD, str(frames_dir), *map(str, folders)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.strip().splitlines()[-len(folders):]]


@pytest.fixture(scope="module")
def translator():
    return make_translator(seed=1)


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    return write_frame_folder(tmp_path_factory.mktemp("video") / "frames", make_frames(5, height=32, width=32))


@pytest.fixture(scope="module")
def folder(translator, tmp_path_factory):
    card = SignTranslationCardData(dataset_name="phoenix14t", license="mit")
    return save_for_hub(translator.model, translator.processor, tmp_path_factory.mktemp("hub") / "ckpt", card)


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_holds_everything(folder):
    names = set(files_of(folder))
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json",
            "generation_config.json",
            "configuration_beyondgloss.py", "modeling_beyondgloss.py", "pipeline_sign_translation.py",
            "sign_translation_inputs.py", "sign_translation_outputs.py", "streaming.py", "caption_merging.py",
            "processing_beyondgloss.py", "video_processing_beyondgloss.py", "video_io.py"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoModelForSeq2SeqLM"}
    assert config["custom_pipelines"]["sign-translation"] == {
        "impl": "pipeline_sign_translation.SignTranslationPipeline", "pt": ["AutoModelForSeq2SeqLM"], "type": "multimodal"}
    processor = json.loads((folder / "processor_config.json").read_text())
    assert processor["auto_map"]["AutoProcessor"] == "processing_beyondgloss.BeyondGlossProcessor"
    card = (folder / "README.md").read_text()
    assert "RWTH-PHOENIX-Weather 2014 T" in card and "2507.23575" in card
    assert check_checkpoint_folder(folder)["model_type"] == "beyondgloss"


def save_the_usual_ways(translator, root: Path) -> dict[str, Path]:
    """The translation model saved by transformers' own calls, each into its own folder: `model.save_pretrained` +
    `processor.save_pretrained`, and `Trainer.save_model` with the processor as `processing_class` (what `beyondgloss
    finetune` does at the end of training; `model.push_to_hub` uploads what `save_pretrained` writes)."""
    from transformers import Seq2SeqTrainingArguments

    from beyondgloss.training import BeyondGlossTranslationTrainer

    plain = root / "plain"
    translator.model.save_pretrained(plain)
    translator.processor.save_pretrained(plain)
    trainer_output = root / "trainer"
    args = Seq2SeqTrainingArguments(output_dir=str(trainer_output), use_cpu=True, report_to=[])
    # A copy: Trainer sets config.use_cache on the model it is given, which would change the shared fixture.
    model = copy.deepcopy(translator.model)
    BeyondGlossTranslationTrainer(model=model, args=args, processing_class=translator.processor).save_model()
    return {"plain": plain, "trainer": trainer_output}


def test_every_way_of_saving_loads_where_beyondgloss_is_not_importable(folder, frames_dir, translator, tmp_path):
    saved = {"save_for_hub": folder, **save_the_usual_ways(translator, tmp_path)}
    for path in saved.values():
        check_checkpoint_folder(path)  # complete, so `beyondgloss push` takes it
        assert (path / "pipeline_sign_translation.py").is_file() and (path / "README.md").is_file()
        assert (path / "generation_config.json").is_file()
    # save_pretrained's default card: what the model is, with the Hub metadata.
    card = (saved["plain"] / "README.md").read_text()
    assert "BeyondGlossForSignTranslation" in card and "pipeline_tag: video-text-to-text" in card
    reports = dict(zip(saved, run_without_beyondgloss(frames_dir, list(saved.values()), tmp_path)))
    # The same weights translate the same way in both processes.
    expected = translator(frames_dir, max_new_tokens=4)
    for name, report in reports.items():
        assert not report["beyondgloss_loaded"], name
        assert all(module.startswith("transformers_modules.") for module in report["classes"]), report["classes"]
        assert report["features"][0] == 1 and report["features"][-1] == translator.model.config.text_config.d_model
        assert report["pipeline"] == expected, name
        assert report["direct"] == expected[0]["translation_text"], name
        assert report["batch"] == [expected[0], expected[0]], name
        assert report["num_beams"] == translator.model.generation_config.num_beams
        # Saved again from the Hub copy of the code: still complete, still naming the pipeline.
        assert {"pipeline_sign_translation.py", "modeling_beyondgloss.py", "processor_config.json",
                "generation_config.json"} <= set(report["resaved"]), (name, report["resaved"])
        assert "sign-translation" in report["resaved_config"]["custom_pipelines"], name
        check_checkpoint_folder(Path(str(saved[name]) + "-resaved"))


def test_folder_loads_with_installed_beyondgloss(folder, frames_dir, translator):
    register_pipeline()
    loaded = pipeline("sign-translation", model=str(folder), progress=False)
    assert type(loaded).__module__ == "beyondgloss.pipeline_sign_translation" and loaded.progress is False
    assert loaded(frames_dir, max_new_tokens=4) == translator(frames_dir, max_new_tokens=4)


@pytest.fixture
def hub_calls(monkeypatch):
    """Intercepts the Hub endpoints an upload reaches (repository creation, card check, commit) and records what
    would have been sent; upload_folder itself (file listing, ignore patterns) runs for real."""
    calls = {"repos": [], "files": {}}

    def create_repo(self, repo_id, **kwargs):
        calls["repos"].append((repo_id, kwargs))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def create_commit(self, repo_id, operations, **kwargs):
        for op in operations:
            source = op.path_or_fileobj
            data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
            calls["files"][op.path_in_repo] = hashlib.sha256(data).hexdigest()
        calls["commit"] = (repo_id, kwargs)
        return type("CommitInfo", (), {"commit_url": f"loopback/{repo_id}"})()

    def validate_yaml(self, content, **kwargs):
        calls["validated_card"] = content

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    # One commit instead of hf_xet's streamed pipeline, so that create_commit sees every file. HF_HUB_OFFLINE stays
    # set: any other request would raise, so nothing leaves the machine.
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: False)
    return calls


def test_push_command_sends_exactly_the_folder(folder, hub_calls, tmp_path):
    trainer_output = tmp_path / "output"
    shutil.copytree(folder, trainer_output)
    # What a Trainer leaves next to the model stays behind.
    (trainer_output / "checkpoint-10").mkdir()
    (trainer_output / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    (trainer_output / "training_args.bin").write_bytes(b"pickle")
    assert cli.main(["push", str(trainer_output), "someone/phoenix-model"]) == 0
    assert hub_calls["repos"][0][0] == "someone/phoenix-model"
    assert hub_calls["files"] == files_of(folder)
    assert hub_calls["validated_card"] == (folder / "README.md").read_text()
    assert "checkpoint-*/*" in IGNORE_PATTERNS


def test_push_to_hub_uploads_the_save_for_hub_folder(translator, folder, hub_calls):
    push_to_hub(translator.model, translator.processor, "someone/tiny", SignTranslationCardData(dataset_name="phoenix14t"))
    sent, saved = hub_calls["files"], files_of(folder)
    assert set(sent) == set(saved)
    # Same weights, code and processor; only the card differs (its title and usage line name the repository).
    assert {k: v for k, v in sent.items() if k != "README.md"} == {k: v for k, v in saved.items() if k != "README.md"}


def test_bad_folders_are_refused(folder, tmp_path, capsys, hub_calls):
    assert cli.main(["push", str(tmp_path / "nowhere"), "someone/x"]) == 1
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("beyondgloss push: error:") and "nowhere is not a complete beyondgloss checkpoint" in error
    assert hub_calls["repos"] == []

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(NotACheckpointError, match="model_type 'bert'"):
        check_checkpoint_folder(other)

    pickled = tmp_path / "pickled"
    shutil.copytree(folder, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(NotACheckpointError, match=r"no model.safetensors .*pickle-based weights \['pytorch_model.bin'\]"):
        check_checkpoint_folder(pickled)

    no_code = tmp_path / "no_code"
    shutil.copytree(folder, no_code)
    (no_code / "pipeline_sign_translation.py").unlink()
    with pytest.raises(NotACheckpointError, match="pipeline_sign_translation.py"):
        check_checkpoint_folder(no_code)


def test_save_for_hub_needs_the_processor(translator, tmp_path):
    with pytest.raises(ValueError, match="processor"):
        save_for_hub(translator.model, None, tmp_path)


def test_encoder_checkpoint_without_pipeline(translator, tmp_path):
    from beyondgloss import BeyondGlossForContrastivePretraining

    torch.manual_seed(0)
    model = BeyondGlossForContrastivePretraining(translator.model.config)
    saved = save_for_hub(model, translator.processor, tmp_path / "stage1")
    config = json.loads((saved / "config.json").read_text())
    assert "custom_pipelines" not in config
    assert "stage 1" in (saved / "README.md").read_text()


def test_trainer_output_is_pushed_and_an_incomplete_one_is_named(translator, tmp_path, capsys, hub_calls):
    output = save_the_usual_ways(translator, tmp_path)["trainer"]
    (output / "checkpoint-4").mkdir()
    (output / "checkpoint-4" / "optimizer.pt").write_bytes(b"state")
    (output / "training_args.bin").write_bytes(b"pickle")
    assert cli.main(["push", str(output), "someone/trained"]) == 0
    assert set(hub_calls["files"]) == set(files_of(output)) - {"checkpoint-4/optimizer.pt", "training_args.bin"}
    assert {"pipeline_sign_translation.py", "processor_config.json", "README.md"} <= set(hub_calls["files"])

    # A model saved without its processor (a Trainer given only the tokenizer): the message says what to add.
    bare = tmp_path / "bare"
    translator.model.save_pretrained(bare)
    assert cli.main(["push", str(bare), "someone/x"]) == 1
    error = capsys.readouterr().err
    assert "no processor_config.json" in error and "processor.save_pretrained(folder)" in error
    assert "processing_class=processor" in error
    assert len(hub_calls["repos"]) == 1  # nothing more was created


def test_generation_config_round_trip(translator, tmp_path):
    from beyondgloss import BeyondGlossForSignTranslation

    model = translator.model
    saved = model.generation_config.to_dict()
    try:
        model.generation_config.num_beams = 3  # takes effect: it is the model's attribute, not a view of the config
        model.generation_config.max_new_tokens = 6
        model.save_pretrained(tmp_path / "edited")
    finally:
        model.generation_config = type(model.generation_config).from_dict(saved)
    written = json.loads((tmp_path / "edited" / "generation_config.json").read_text())
    assert written["num_beams"] == 3 and written["max_new_tokens"] == 6
    written["num_beams"] = 4
    (tmp_path / "edited" / "generation_config.json").write_text(json.dumps(written))
    loaded = BeyondGlossForSignTranslation.from_pretrained(tmp_path / "edited")
    assert loaded.generation_config.num_beams == 4 and loaded.generation_config.max_new_tokens == 6
    assert loaded.generation_config.decoder_start_token_id == model.config.decoder_start_token_id
    # generate() follows it: a greedy and a beam-search model pick different first tokens under the same weights.
    video = torch.randn(1, 3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    loaded.generation_config.num_beams = 1
    calls = []
    original = loaded.mbart.generate
    loaded.mbart.generate = lambda **kwargs: calls.append(kwargs["generation_config"]) or original(**kwargs)
    loaded.generate(video)
    loaded.generate(video, num_beams=2)
    assert [c.num_beams for c in calls] == [1, 2] and [c.max_new_tokens for c in calls] == [6, 6]
    assert loaded.generation_config.num_beams == 1  # a call's settings do not stick
    # A `generation_config=` argument at loading wins, as in transformers.
    other = BeyondGlossForSignTranslation.from_pretrained(
        tmp_path / "edited", generation_config=type(model.generation_config)(num_beams=2, max_new_tokens=3))
    assert other.generation_config.num_beams == 2
    assert other.generate(video).shape[-1] <= 4  # the start token and at most 3 new ones, special tokens filled in


@pytest.fixture(scope="module")
def finetuned(corpus, pretrained):  # noqa: F811
    """The output folder of a one-step `beyondgloss finetune` run, as the command leaves it."""
    root, options, _ = corpus
    output = root / "finetune-for-hub"
    argv = ["finetune", *options, *(a for a in QUICK if a != "--tiny"), "--model_name_or_path", str(pretrained),
            "--output_dir", str(output), "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no",
            "--load_best_model_at_end", "false", "--test_split", "none"]
    assert cli.main(argv) == 0
    return output


def test_finetune_output_is_complete_and_loads_without_beyondgloss(finetuned, frames_dir, tmp_path, hub_calls):
    check_checkpoint_folder(finetuned)
    assert cli.main(["push", str(finetuned), "someone/finetuned"]) == 0
    assert {"pipeline_sign_translation.py", "processor_config.json", "README.md"} <= set(hub_calls["files"])
    register_pipeline()
    expected = pipeline("sign-translation", model=str(finetuned), progress=False)(frames_dir, max_new_tokens=4)
    (report,) = run_without_beyondgloss(frames_dir, [finetuned], tmp_path)
    assert not report["beyondgloss_loaded"]
    assert report["pipeline"] == expected and report["batch"] == [expected[0], expected[0]]


def test_save_pretrained_with_push_to_hub_uploads_the_pipeline_and_card(translator, tmp_path, hub_calls):
    translator.model.save_pretrained(tmp_path / "pushed", push_to_hub=True, repo_id="someone/pushed")
    assert hub_calls["repos"][0][0] == "someone/pushed"
    assert {"model.safetensors", "config.json", "generation_config.json", "modeling_beyondgloss.py",
            "pipeline_sign_translation.py", "video_io.py", "README.md"} <= set(hub_calls["files"])
    assert hub_calls["files"]["README.md"] == files_of(tmp_path / "pushed")["README.md"]  # beyondgloss's card

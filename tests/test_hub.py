"""Hub-ready folders: layout, loading where beyondgloss is not importable, uploads (intercepted), bad folders."""

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
    push_command,
    push_to_hub,
    save_for_hub,
)
from beyondgloss.model_card import SignTranslationCardData
from beyondgloss.pipeline_sign_translation import register_pipeline
from beyondgloss.testing_video import make_frames, write_frame_folder

from .conftest import BLOCK_BEYONDGLOSS
from .test_pipeline import make_translator

CHILD = BLOCK_BEYONDGLOSS + """
import json, sys
import numpy as np
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoProcessor, pipeline
folder, frames = sys.argv[1], sys.argv[2]
encoder = AutoModel.from_pretrained(folder, trust_remote_code=True)
translation = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
translator = pipeline("sign-translation", model=folder, trust_remote_code=True)
inputs = processor(videos=frames)
features = encoder(**inputs).last_hidden_state
ids = translation.generate(**inputs, max_new_tokens=4)
print(json.dumps({
    "classes": [type(x).__module__ for x in (encoder, translation, processor, translator)],
    "features": list(features.shape),
    "direct": processor.batch_decode(ids)[0],
    "pipeline": translator(frames, max_new_tokens=4),
    "batch": translator([frames, frames], batch_size=2, max_new_tokens=4),
    "beyondgloss_loaded": any(name.startswith("beyondgloss") for name in sys.modules),
}))
"""


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
            "configuration_beyondgloss.py", "modeling_beyondgloss.py", "pipeline_sign_translation.py",
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


def test_folder_loads_where_beyondgloss_is_not_importable(folder, frames_dir, translator, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(frames_dir)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["beyondgloss_loaded"]
    assert all(module.startswith("transformers_modules.") for module in report["classes"]), report["classes"]
    assert report["features"][0] == 1 and report["features"][-1] == translator.model.config.text_config.d_model
    # The same weights translate the same way in both processes.
    expected = translator(frames_dir, max_new_tokens=4)
    assert report["pipeline"] == expected
    assert report["direct"] == expected["translation_text"]
    assert report["batch"] == [expected, expected]


def test_folder_loads_with_installed_beyondgloss(folder, frames_dir, translator):
    register_pipeline()
    loaded = pipeline("sign-translation", model=str(folder))
    assert type(loaded).__module__ == "beyondgloss.pipeline_sign_translation"
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
    with pytest.raises(SystemExit) as exit_info:
        push_command([str(tmp_path / "nowhere"), "someone/x"])
    assert exit_info.value.code == 2
    assert "nowhere is not a beyondgloss checkpoint" in capsys.readouterr().err
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

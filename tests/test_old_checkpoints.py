"""Checkpoints saved by an earlier version keep loading and give the outputs they gave then.

`fixtures/checkpoint_a5f8f58` was written by `make_fixture.py` (beside it) at commit a5f8f58, before the package was
restructured: a tiny translation checkpoint in the Hub layout (with the code files of that commit and the `auto_map`
naming them), a tiny pre-training checkpoint, and what they computed on one fixed video. The pre-training folder is
kept without the code files `save_pretrained` copied into it (the same files as the translation folder's): it is
loaded with today's classes only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSeq2SeqLM, AutoProcessor

from beyondgloss import BeyondGlossForSignTranslation

from .conftest import BLOCK_BEYONDGLOSS

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_a5f8f58"

# The saved outputs are float32. Recomputing them on another CPU's kernels reorders sums of at most 64 terms through
# about a dozen matmuls of the tiny model: round-off below 1e-5 of the largest entry. 1e-4 of it leaves room for that,
# while one weight not loaded (left random or zero) moves outputs by the order of the entries themselves.
RTOL_OF_MAX = 1e-4


def assert_close_to_saved(actual: torch.Tensor, saved: torch.Tensor, what: str) -> None:
    assert actual.shape == saved.shape, f"{what}: shape {tuple(actual.shape)}, saved {tuple(saved.shape)}"
    difference = (actual.float() - saved).abs().max().item()
    assert difference <= RTOL_OF_MAX * saved.abs().max().item(), f"{what}: differs from the saved output by {difference}"


@pytest.fixture(scope="module")
def expected():
    return load_file(str(FIXTURE / "expected.safetensors"))


def outputs_of(translation, pretraining, processor, expected):
    """What the fixture stored, recomputed with the loaded models."""
    inputs = processor(videos=[expected["frames"]])
    with torch.no_grad():
        return {"translation_encoder": translation.sign_encoder(**inputs).last_hidden_state,
                "translation_logits": translation(**inputs, decoder_input_ids=expected["ids"]).logits,
                "pretraining_encoder": pretraining.sign_encoder(**inputs).last_hidden_state}


def test_old_checkpoints_load_with_todays_classes(expected):
    translation = AutoModelForSeq2SeqLM.from_pretrained(FIXTURE / "translation").eval()
    pretraining = AutoModelForPreTraining.from_pretrained(FIXTURE / "pretraining").eval()
    processor = AutoProcessor.from_pretrained(FIXTURE / "translation")
    assert type(translation).__module__.startswith("beyondgloss.")
    for name, actual in outputs_of(translation, pretraining, processor, expected).items():
        assert_close_to_saved(actual, expected[name], name)
    # Stage 2 still starts from an old stage-1 checkpoint.
    started = BeyondGlossForSignTranslation.from_pretrained(FIXTURE / "pretraining").eval()
    inputs = processor(videos=[expected["frames"]])
    with torch.no_grad():
        assert_close_to_saved(started.sign_encoder(**inputs).last_hidden_state, expected["pretraining_encoder"],
                              "stage-2 model from the old stage-1 checkpoint")
    assert isinstance(AutoModel.from_pretrained(FIXTURE / "translation"), torch.nn.Module)


def test_old_zero_dimensional_temperatures_load_into_one_element_parameters(tmp_path):
    """Earlier pre-training checkpoints hold the temperatures as 0-d tensors; today's are shape (1,) (FSDP2 shards no
    0-d parameter). They load with their values, not re-initialised, and the model computes what it computed."""
    import shutil

    from safetensors.torch import save_file

    from beyondgloss import BeyondGlossForContrastivePretraining

    folder = tmp_path / "old"
    shutil.copytree(FIXTURE / "pretraining", folder)
    state = load_file(str(folder / "model.safetensors"))
    assert state["logit_scale"].shape == state["logit_scale_description"].shape == ()
    # Values far from the initial ln(1/0.07), so that a re-initialised temperature cannot pass.
    state["logit_scale"], state["logit_scale_description"] = torch.tensor(0.5), torch.tensor(-1.25)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model, info = BeyondGlossForContrastivePretraining.from_pretrained(folder, output_loading_info=True)
    assert not info["mismatched_keys"] and not info["missing_keys"], info
    assert model.logit_scale.shape == model.logit_scale_description.shape == (1,)
    assert model.logit_scale.item() == 0.5 and model.logit_scale_description.item() == -1.25
    model.save_pretrained(tmp_path / "new")
    assert load_file(str(tmp_path / "new" / "model.safetensors"))["logit_scale"].shape == (1,)
    generator = torch.Generator().manual_seed(0)
    inputs = {"pixel_values_videos": torch.randn(2, 4, 3, 28, 28, generator=generator),
              "input_ids": torch.tensor([[5, 6, 2], [7, 2, 1]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
    with torch.no_grad():
        before = model.eval()(**inputs).logits_per_video
        after = BeyondGlossForContrastivePretraining.from_pretrained(tmp_path / "new").eval()(**inputs).logits_per_video
    assert torch.equal(before, after)


def test_optimizer_state_of_zero_dimensional_temperatures_resumes():
    """A pre-training run checkpointed before the temperatures became (1,) resumes: its AdamW moments take the
    parameter's shape (checkpointing.fit_state_to_parameters), and the step is the one the 0-d run would have taken."""
    from beyondgloss.checkpointing import fit_state_to_parameters

    def step(parameter, optimizer):
        parameter.grad = torch.full_like(parameter, 0.5)
        optimizer.step()

    old = torch.nn.Parameter(torch.tensor(2.0))
    old_optimizer = torch.optim.AdamW([old], lr=0.1)
    step(old, old_optimizer)
    new = torch.nn.Parameter(old.detach().reshape(1).clone())
    new_optimizer = torch.optim.AdamW([new], lr=0.1)
    new_optimizer.load_state_dict(old_optimizer.state_dict())
    fit_state_to_parameters(new_optimizer)
    assert new_optimizer.state[new]["exp_avg"].shape == (1,)
    step(old, old_optimizer)
    step(new, new_optimizer)
    assert torch.equal(new.detach(), old.detach().reshape(1))


CHILD = BLOCK_BEYONDGLOSS + """
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline
folder, expected_file = sys.argv[1], sys.argv[2]
expected = load_file(expected_file)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
translator = pipeline("sign-translation", model=folder, trust_remote_code=True, progress=False)
inputs = processor(videos=[expected["frames"]])
with torch.no_grad():
    logits = model(**inputs, decoder_input_ids=expected["ids"]).logits
print(json.dumps({"module": type(model).__module__,
                  "difference": (logits - expected["translation_logits"]).abs().max().item(),
                  "scale": expected["translation_logits"].abs().max().item(),
                  "pipeline": translator(expected["frames"], max_new_tokens=3)}))
"""


def test_old_hub_checkpoint_runs_its_own_code_without_beyondgloss(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CHILD, str(FIXTURE / "translation"),
                             str(FIXTURE / "expected.safetensors")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules."), report["module"]
    assert report["difference"] <= RTOL_OF_MAX * report["scale"], report
    assert isinstance(report["pipeline"][0]["translation_text"], str)


def test_fixture_is_what_its_readme_says():
    config = json.loads((FIXTURE / "translation" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_beyondgloss.BeyondGlossForSignTranslation"
    assert json.loads((FIXTURE / "expected.json").read_text())["commit"] == "a5f8f58"

"""PEFT-native adapters, used as a Hugging Face user would: `PeftModel.from_pretrained(base, folder)`, several named
adapters switched with `set_adapter`, `get_peft_model(model, LoraConfig(task_type="SEQ_2_SEQ_LM"))` for training
and generation, merge and unload; and an adapter folder that loads alone (processor, config changes)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from peft import AutoPeftModelForSeq2SeqLM, LoraConfig, PeftModel, get_peft_model

from beyondgloss import BeyondGlossForSignTranslation, BeyondGlossProcessor, BeyondGlossVideoProcessor
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames, write_frame_folder

from .conftest import BLOCK_BEYONDGLOSS

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]
# Every adapter round trip below copies float32 tensors bit for bit; the one computation that differs is merging,
# W + s * B @ A rounded once per weight (float32, relative 6e-8), through a tiny model of width <= 64: its logits
# (of order 1) move by about 1e-7, so 1e-5 leaves two orders of margin and still catches any lost adapter weight
# (those move the logits by more than 1e-2 here).
EXACT = 1e-5


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A base translation checkpoint with its processor."""
    folder = tmp_path_factory.mktemp("base")
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=8), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=1)
    model = BeyondGlossForSignTranslation(config)
    with torch.no_grad():  # a base whose built-in mBART LoRA does something (B = 0 at init)
        for name, parameter in model.named_parameters():
            if ".lora_B." in name:
                parameter.normal_()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, processor


def fine_tune(base_folder, seed: int):
    """The base checkpoint with every trained tensor (and the BatchNorm statistics) moved, as fine-tuning would."""
    model = BeyondGlossForSignTranslation.from_pretrained(base_folder)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
        model.sign_encoder.frame_norm.running_mean.normal_(generator=generator)
    return model.eval()


INPUTS = dict(pixel_values_videos=torch.randn(2, 4, 3, 28, 28, generator=torch.Generator().manual_seed(3)),
              decoder_input_ids=torch.tensor([[2, 5, 6], [2, 7, 8]]))


@torch.no_grad()
def logits(model):
    return model(**INPUTS).logits


def test_peft_model_from_pretrained_is_exact(base, tmp_path):
    folder, _ = base
    tuned = fine_tune(folder, 1)
    tuned.save_adapter(tmp_path / "adapter")
    plain = BeyondGlossForSignTranslation.from_pretrained(folder).eval()
    assert max_diff(logits(plain), logits(tuned)) > 1e-2  # the adapter matters
    peft_model = PeftModel.from_pretrained(plain, tmp_path / "adapter").eval()
    assert max_diff(logits(peft_model), logits(tuned)) < EXACT
    settings = dict(max_new_tokens=5, num_beams=2)
    video = INPUTS["pixel_values_videos"]
    assert torch.equal(peft_model.generate(pixel_values_videos=video, **settings),
                       tuned.generate(video, **settings))
    auto = AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter").eval()
    assert type(auto).__name__ == "PeftModelForSeq2SeqLM"
    assert max_diff(logits(auto), logits(tuned)) < EXACT
    merged = peft_model.merge_and_unload()
    assert not any("lora" in type(module).__name__.lower() or "Wrapper" in type(module).__name__
                   for module in merged.mbart.modules())
    assert max_diff(logits(merged), logits(tuned)) < EXACT


def test_two_adapters_switch_with_set_adapter(base, tmp_path):
    folder, _ = base
    weather, news = fine_tune(folder, 1), fine_tune(folder, 2)
    weather.save_adapter(tmp_path / "weather")
    news.save_adapter(tmp_path / "news")
    expected = {"weather": logits(weather), "news": logits(news)}
    plain_logits = logits(BeyondGlossForSignTranslation.from_pretrained(folder).eval())
    # through peft
    peft_model = PeftModel.from_pretrained(BeyondGlossForSignTranslation.from_pretrained(folder).eval(),
                                           tmp_path / "weather", adapter_name="weather")
    peft_model.load_adapter(tmp_path / "news", adapter_name="news")
    for name in ("news", "weather", "news"):
        peft_model.set_adapter(name)
        assert max_diff(logits(peft_model), expected[name]) < EXACT, name
    # through transformers' adapter methods on the model itself
    model = BeyondGlossForSignTranslation.from_pretrained(folder).eval()
    model.load_adapter(tmp_path / "weather", adapter_name="weather")
    model.load_adapter(tmp_path / "news", adapter_name="news")
    for name in ("weather", "news", "weather"):
        model.set_adapter(name)
        assert model.active_adapters() == [name]
        assert max_diff(logits(model), expected[name]) < EXACT, name
    model.set_adapter("default")  # the built-in LoRA and modules: the base checkpoint
    assert max_diff(logits(model), plain_logits) < EXACT
    model.set_adapter("weather")
    model.disable_adapters()  # every LoRA off, the built-in one too
    assert max_diff(logits(model), plain_logits) > 1e-2
    model.enable_adapters()
    assert max_diff(logits(model), expected["weather"]) < EXACT
    with pytest.raises(ValueError, match="default already exists"):
        model.add_adapter(LoraConfig(target_modules=["fc1"]))
    model.add_adapter(LoraConfig(target_modules=r"mbart\..*\.fc1", init_lora_weights=False), "extra")
    assert model.active_adapters() == ["extra"]
    model.set_adapter("default")
    assert max_diff(logits(model), plain_logits) < EXACT
    model.delete_adapter("news")
    model.set_adapter("weather")
    assert max_diff(logits(model), expected["weather"]) < EXACT


def test_get_peft_model_trains_only_the_adapter_and_generates(base, tmp_path):
    folder, _ = base
    model = BeyondGlossForSignTranslation.from_pretrained(folder)
    config = LoraConfig(task_type="SEQ_2_SEQ_LM", r=4, target_modules=r"mbart\.model\.(en|de)coder\.layers\.\d+\.fc[12]",
                        modules_to_save=model.adapter_modules_to_save())
    peft_model = get_peft_model(model, config)
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    peft_model.train()
    output = peft_model(pixel_values_videos=INPUTS["pixel_values_videos"],
                        labels=torch.tensor([[5, 6, 2, 3], [7, 2, 3, -100]]))
    output.loss.backward()
    optimizer.step()
    changed = {name for name, p in peft_model.named_parameters() if not torch.equal(p, before[name])}
    assert any(".fc1.lora_B.default" in name for name in changed)
    assert any("temporal.modules_to_save.default" in name for name in changed)
    assert all(".lora_" in name or ".modules_to_save.default." in name for name in changed), sorted(changed)[:5]
    peft_model.eval()
    ids = peft_model.generate(pixel_values_videos=INPUTS["pixel_values_videos"], max_new_tokens=4, num_beams=2)
    assert ids.dtype == torch.long and ids.shape[0] == 2 and ids.shape[1] > 1
    # peft's own save and load of what it trained
    peft_model.save_pretrained(tmp_path / "peft")
    reloaded = PeftModel.from_pretrained(BeyondGlossForSignTranslation.from_pretrained(folder).eval(), tmp_path / "peft")
    assert max_diff(logits(reloaded.eval()), logits(peft_model)) < EXACT


def test_forward_refuses_text_inputs_and_lora_it_would_not_apply(base):
    model = BeyondGlossForSignTranslation.from_pretrained(base[0])
    with pytest.raises(ValueError, match=r"\['input_ids'\].*encodes videos"):
        model(**INPUTS, input_ids=torch.tensor([[5, 6]]))
    # DINOv2's q_proj, as mBART's: the frame encoder's fast path reads DINOv2's weights, so a LoRA there would be inert
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match=r"vision\.encoder\.layer\.0\.attention\.q_proj carries a PEFT LoRA"):
        peft_model(**INPUTS)
    with pytest.raises(ValueError, match="does not apply"):
        peft_model.generate(pixel_values_videos=INPUTS["pixel_values_videos"], max_new_tokens=2)


CHILD = BLOCK_BEYONDGLOSS + """
import json, sys
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoProcessor, AutoTokenizer, pipeline
frames, adapter = sys.argv[1], sys.argv[2]
model = AutoModelForSeq2SeqLM.from_pretrained(adapter, trust_remote_code=True)
encoder = AutoModel.from_pretrained(adapter, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(adapter, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(adapter)
translator = pipeline("sign-translation", model=adapter, trust_remote_code=True, progress=False)
print(json.dumps({
    "ids": model.generate(**processor(videos=frames)).tolist(),
    "pipeline": translator(frames),
    "label_smoothing": model.config.label_smoothing,
    "num_beams": model.generation_config.num_beams,
    "max_new_tokens": model.generation_config.max_new_tokens,
    "encoder": type(encoder).__name__,
    "vocabulary": len(tokenizer),
    "beyondgloss_loaded": any(name.startswith("beyondgloss") for name in sys.modules),
}))
"""


def test_adapter_folder_loads_alone_with_its_processor_and_config_changes(base, tmp_path):
    folder, processor = base
    tuned = fine_tune(folder, 1)
    tuned.config.label_smoothing = 0.3  # config and generation changes made during fine-tuning travel
    tuned.generation_config.num_beams = 3
    tuned.generation_config.max_new_tokens = 4
    tuned.save_adapter(tmp_path / "adapter", processor=processor)
    assert json.loads((tmp_path / "adapter" / "adapter_beyondgloss_config.json").read_text()) == {"label_smoothing": 0.3}
    frames = write_frame_folder(tmp_path / "frames", make_frames(5, height=32, width=32))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    # every Auto class and the pipeline, in a process where beyondgloss cannot be imported (the shipped code only)
    result = subprocess.run([sys.executable, "-c", CHILD, str(frames), str(tmp_path / "adapter")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert not child["beyondgloss_loaded"]
    assert (child["label_smoothing"], child["num_beams"], child["max_new_tokens"]) == (0.3, 3, 4)
    assert child["encoder"] == "BeyondGlossModel" and child["vocabulary"] == len(processor.tokenizer)
    assert child["ids"] == tuned.generate(**processor(videos=str(frames))).tolist()
    assert child["pipeline"][0]["translation_text"] == processor.batch_decode(
        torch.tensor(child["ids"]), skip_special_tokens=True)[0].strip()
    cli = subprocess.run([sys.executable, "-m", "beyondgloss.cli", "translate", "--model_name_or_path",
                          str(tmp_path / "adapter"), "--videos", str(frames), "--output_file", str(tmp_path / "t.jsonl")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert child["pipeline"][0]["translation_text"] in (tmp_path / "t.jsonl").read_text()

"""The mBART LoRA is PEFT's; old checkpoint names load; a fine-tuned model saves and loads as an adapter."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftConfig
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

from beyondgloss import BeyondGlossForContrastivePretraining, BeyondGlossForSignTranslation
from beyondgloss.hub import push_adapter, save_for_hub
from beyondgloss.adapters_beyondgloss import ADAPTER_WEIGHTS_NAME
from beyondgloss.pipeline_sign_translation import TASK, SignTranslationPipeline
from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
from beyondgloss.testing import tiny_config
from beyondgloss.testing.videos import make_frames, write_frame_folder
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

from .conftest import BLOCK_BEYONDGLOSS
from .test_hub import hub_calls  # noqa: F401 (records what an upload would send)
from .test_pipeline import make_translator, words_only

SENTENCES = ["morgen regnet es im norden", "heute sonne im süden", "am abend wind an der küste"]


def perturb_lora(model):
    with torch.no_grad():  # B = 0 at init: a LoRA that did not load would not show
        for module in model.modules():
            if isinstance(module, LoraLayer):
                module.lora_B["default"].weight.normal_()


def test_text_lora_is_peft_lora():
    config = tiny_config()
    model = BeyondGlossForSignTranslation(config)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    # every q/v projection of the encoder (self-attention) and decoder (self- and cross-attention), nothing else
    assert len(layers) == 2 * (config.text_config.encoder_layers + 2 * config.text_config.decoder_layers)
    assert all(re.search(r"\.(q_proj|v_proj)$", name) for name in layers)
    layer = next(iter(layers.values()))
    assert layer.r["default"] == config.text_lora_rank
    assert layer.scaling["default"] == config.text_lora_alpha / config.text_lora_rank
    assert layer.lora_dropout["default"].p == config.text_lora_dropout
    assert layer.lora_B["default"].weight.abs().sum() == 0 and layer.lora_A["default"].weight.abs().sum() > 0
    pretraining = BeyondGlossForContrastivePretraining(config)
    assert all(".encoder." in name for name, m in pretraining.named_modules() if isinstance(m, LoraLayer))
    assert not any(isinstance(m, LoraLayer) for m in BeyondGlossForSignTranslation(tiny_config(text_tuning="full")).modules())


def test_checkpoints_with_the_old_lora_names_load(tmp_path):
    """beyondgloss < 0.2 saved its own LoRA layer: `q_proj.weight`, `q_proj.lora_A`."""
    pretraining = BeyondGlossForContrastivePretraining(tiny_config())
    perturb_lora(pretraining)
    pretraining.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    old = {re.sub(r"\.lora_([AB])\.default\.weight$", r".lora_\1", key.replace(".base_layer.", ".")): value
           for key, value in saved.items()}
    assert "mbart.model.encoder.layers.0.self_attn.q_proj.lora_A" in old
    assert "mbart.model.encoder.layers.0.self_attn.q_proj.weight" in old
    save_file(old, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = BeyondGlossForContrastivePretraining.from_pretrained(tmp_path)
    expected = pretraining.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # Saving again writes PEFT's names: transformers reverses load-time renamings on save, not these.
    loaded.save_pretrained(tmp_path / "again")
    assert load_file(tmp_path / "again" / "model.safetensors").keys() == saved.keys()
    # Stage 2 from the old pre-training checkpoint: the plain decoder q/v go under the decoder's fresh LoRA.
    translation = BeyondGlossForSignTranslation.from_pretrained(tmp_path)
    q_proj = translation.mbart.model.decoder.layers[0].encoder_attn.q_proj
    assert torch.equal(q_proj.base_layer.weight, pretraining.mbart.model.decoder.layers[0].encoder_attn.q_proj.weight)
    assert q_proj.lora_B["default"].weight.abs().sum() == 0
    v_proj = translation.mbart.model.encoder.layers[0].self_attn.v_proj
    assert torch.equal(v_proj.lora_B["default"].weight,
                       pretraining.mbart.model.encoder.layers[0].self_attn.v_proj.lora_B["default"].weight)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """A base translation checkpoint (with its processor) and a model 'fine-tuned' from it: every trained tensor and
    the BatchNorm statistics changed, the frozen backbones not."""
    base_dir = tmp_path_factory.mktemp("base")
    tokenizer = train_sign_tokenizer(SENTENCES, language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=8), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id, num_beams=1)
    BeyondGlossForSignTranslation(config).save_pretrained(base_dir)
    processor.save_pretrained(base_dir)
    model = BeyondGlossForSignTranslation.from_pretrained(base_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.5)
        model.sign_encoder.frame_norm.running_mean.normal_()
    return base_dir, model.eval(), processor


def test_adapter_saves_what_fine_tuning_changed(fine_tuned, tmp_path):
    base_dir, model, _ = fine_tuned
    model.save_adapter(tmp_path)
    peft_config = PeftConfig.from_pretrained(tmp_path)
    assert peft_config.base_model_name_or_path == str(base_dir)
    assert (peft_config.r, peft_config.lora_alpha) == (model.config.text_lora_rank, model.config.text_lora_alpha)
    lora_names = [name for name, m in model.named_modules() if isinstance(m, LoraLayer)]
    assert all(re.fullmatch(peft_config.target_modules, name) for name in lora_names)
    assert "sign_encoder.temporal" in peft_config.modules_to_save and "sign_encoder.frame_encoder.vision" not in peft_config.modules_to_save
    # modules PEFT can wrap: the DINOv2 LoRA block by block, no ModuleDict
    blocks = [f"sign_encoder.frame_encoder.lora.{i}" for i in model.sign_encoder.frame_encoder.lora]
    assert blocks and set(blocks) <= set(peft_config.modules_to_save)
    modules = dict(model.named_modules())
    assert not any(isinstance(modules[name], (torch.nn.ModuleDict, torch.nn.ModuleList))
                   for name in peft_config.modules_to_save)
    saved = load_file(tmp_path / ADAPTER_WEIGHTS_NAME)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    batch_norm = sum(b.numel() for b in model.sign_encoder.frame_norm.buffers())
    assert sum(t.numel() for t in saved.values()) == trainable + batch_norm
    # PEFT's names: the model under base_model.model., the LoRA without its adapter name
    assert "base_model.model.mbart.model.decoder.layers.0.encoder_attn.v_proj.lora_B.weight" in saved
    assert "base_model.model.sign_encoder.frame_norm.running_mean" in saved
    assert not any(key.startswith("base_model.model.sign_encoder.frame_encoder.vision.") for key in saved)
    assert not (tmp_path / "config.json").exists()  # else transformers would not load the base checkpoint


def test_adapter_loads_back_into_a_pipeline(fine_tuned, tmp_path):
    base_dir, model, processor = fine_tuned
    model.save_adapter(tmp_path / "adapter")
    loaded = BeyondGlossForSignTranslation.from_pretrained(tmp_path / "adapter").eval()
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert trainable_names(loaded) == trainable_names(model)
    video = make_frames(6, height=32, width=32)
    pipe = SignTranslationPipeline(model=loaded, processor=BeyondGlossProcessor.from_pretrained(base_dir), task=TASK,
                                   device=torch.device("cpu"))
    reference = SignTranslationPipeline(model=model, processor=processor, task=TASK, device=torch.device("cpu"))
    options = dict(max_new_tokens=6, num_beams=2)
    assert pipe(video, **options) == reference(video, **options)
    # the same adapter into a base model loaded by hand: its logits become the fine-tuned model's
    base = BeyondGlossForSignTranslation.from_pretrained(base_dir).eval()
    inputs = dict(pixel_values_videos=torch.randn(1, 4, 3, 28, 28), decoder_input_ids=torch.tensor([[2, 5, 6]]))
    with torch.no_grad():
        fine_tuned_logits = model(**inputs).logits
        assert not torch.allclose(base(**inputs).logits, fine_tuned_logits)
        base.load_adapter(tmp_path / "adapter")
        torch.testing.assert_close(base(**inputs).logits, fine_tuned_logits)
    assert torch.equal(base.mbart.model.encoder.layers[0].self_attn.q_proj.lora_A["default"].weight,
                       model.mbart.model.encoder.layers[0].self_attn.q_proj.lora_A["default"].weight)
    assert torch.equal(base.sign_encoder.frame_norm.running_mean, model.sign_encoder.frame_norm.running_mean)


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_adapter_errors(fine_tuned, tmp_path):
    _, model, _ = fine_tuned
    model.save_adapter(tmp_path / "adapter")
    other = BeyondGlossForSignTranslation(tiny_config(text_lora_rank=2))
    with pytest.raises(ValueError, match=r"lora_A.default.weight.*does not fit this model"):
        other.load_adapter(tmp_path / "adapter")
    with pytest.raises(ValueError, match="save_pretrained instead"):
        BeyondGlossForSignTranslation(tiny_config(text_tuning="full")).save_adapter(tmp_path / "full", "base")
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        BeyondGlossForSignTranslation(tiny_config()).save_adapter(tmp_path / "unnamed")


def test_full_size_adapter_is_under_100_mb():
    """The adapter of the default (full-size) translation model, built on the meta device: its trainable
    parameters (17,376,032) plus the frame BatchNorm's statistics; 69.5 MB in float32."""
    from beyondgloss import BeyondGlossConfig

    config = BeyondGlossConfig()
    with torch.device("meta"):
        model = BeyondGlossForSignTranslation(config)
    adapter = model.adapter_state_dict()
    numel = sum(t.numel() for t in adapter.values())
    assert numel == 17_376_032 + 2 * config.frame_dim + 1
    assert 4 * numel < 70e6


CHILD = BLOCK_BEYONDGLOSS + """
import json, sys
from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline
frames, adapter, base, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
model = AutoModelForSeq2SeqLM.from_pretrained(adapter, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(base, trust_remote_code=True)
translator = pipeline("sign-translation", model=adapter, trust_remote_code=True, progress=False)
print(json.dumps({
    "ids": model.generate(**processor(videos=frames), **settings).tolist(),
    "pipeline": translator(frames, **settings),
    "beyondgloss_loaded": any(name.startswith("beyondgloss") for name in sys.modules),
}))
"""


def test_adapter_of_a_hub_folder_loads_where_beyondgloss_is_not_importable(tmp_path):
    """The base checkpoint as published (save_for_hub) plus the adapter: from_pretrained and pipeline(model=<adapter
    folder>) load the base named in adapter_config.json, then the adapter, in a process without beyondgloss."""
    translator = make_translator(seed=1)
    base = save_for_hub(translator.model, translator.processor, tmp_path / "base")
    model = BeyondGlossForSignTranslation.from_pretrained(base).eval()
    torch.manual_seed(2)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    model.save_adapter(tmp_path / "adapter")
    frames = write_frame_folder(tmp_path / "frames", make_frames(5, height=32, width=32))
    settings = {"max_new_tokens": 4, "num_beams": 2, **words_only(translator.tokenizer, min_new_tokens=3)}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CHILD, str(frames), str(tmp_path / "adapter"), str(base),
                             json.dumps(settings)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert not child["beyondgloss_loaded"]
    inputs = translator.processor(videos=str(frames))
    assert child["ids"] == model.generate(**inputs, **settings).tolist()
    assert child["ids"] != translator.model.generate(**inputs, **settings).tolist()  # the adapter did change it
    fine_tuned = SignTranslationPipeline(model=model, processor=translator.processor, task=TASK,
                                         device=torch.device("cpu"))
    assert child["pipeline"] == fine_tuned(str(frames), **settings)
    assert child["pipeline"][0]["translation_text"]


def test_push_adapter_sends_the_adapter_naming_a_hub_base(fine_tuned, hub_calls, tmp_path):
    _, model, processor = fine_tuned
    with pytest.raises(ValueError, match="not a Hub id"):
        push_adapter(model, "someone/adapter")  # the model was loaded from a local folder
    push_adapter(model, "someone/adapter", "someone/base", processor=processor)
    assert hub_calls["repos"][0][0] == "someone/adapter"
    assert {"adapter_config.json", ADAPTER_WEIGHTS_NAME, "adapter_beyondgloss_config.json", "generation_config.json",
            "processor_config.json", "tokenizer_config.json"} <= set(hub_calls["files"])
    model.save_adapter(tmp_path, "someone/base")
    assert hub_calls["files"][ADAPTER_WEIGHTS_NAME] == hashlib.sha256((tmp_path / ADAPTER_WEIGHTS_NAME).read_bytes()).hexdigest()
    assert PeftConfig.from_pretrained(tmp_path).base_model_name_or_path == "someone/base"


OLD_ADAPTER = Path(__file__).parent / "fixtures" / "adapter_3cba504"


def test_adapters_of_the_earlier_layout_load(tmp_path):
    """`fixtures/adapter_3cba504` was written by `save_adapter` at commit 3cba504 (see its make_fixture.py):
    `modules_to_save` names ModuleDicts, which PEFT cannot wrap, and the folder holds no processor or config changes.
    beyondgloss's own loading takes it as before; saved again, it is an adapter PEFT loads."""
    from peft import PeftModel

    adapter = tmp_path / "adapter"
    shutil.copytree(OLD_ADAPTER, adapter)
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert "sign_encoder.frame_encoder.lora" in settings["modules_to_save"]  # the earlier layout
    base = OLD_ADAPTER.parent / "checkpoint_a5f8f58" / "translation"
    settings["base_model_name_or_path"] = str(base)
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
    inputs = old_adapter_inputs()
    expected = load_file(OLD_ADAPTER / "expected.safetensors")["logits"]
    with torch.no_grad():
        loaded = BeyondGlossForSignTranslation.from_pretrained(adapter).eval()
        assert (loaded(**inputs).logits - expected).abs().max() < 1e-5
        by_hand = BeyondGlossForSignTranslation.from_pretrained(base).eval()
        assert (by_hand(**inputs).logits - expected).abs().max() > 1e-2
        by_hand.load_adapter(adapter)
        assert (by_hand(**inputs).logits - expected).abs().max() < 1e-5
        loaded.save_adapter(tmp_path / "again")
        peft_model = PeftModel.from_pretrained(BeyondGlossForSignTranslation.from_pretrained(base).eval(),
                                               tmp_path / "again")
        assert (peft_model(**inputs).logits - expected).abs().max() < 1e-5


def old_adapter_inputs():
    """The inputs make_fixture.py ran the fine-tuned model on."""
    generator = torch.Generator().manual_seed(0)
    size = BeyondGlossForSignTranslation.config_class.from_pretrained(
        OLD_ADAPTER.parent / "checkpoint_a5f8f58" / "translation").vision_config.image_size
    return dict(pixel_values_videos=torch.randn(2, 4, 3, size, size, generator=generator),
                decoder_input_ids=torch.tensor([[2, 5, 6], [2, 7, 8]]))

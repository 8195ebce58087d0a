"""One table of the reference's weight names (beyondgloss.convert.reference_names) for the converter and the
reference encoder of the tests and benchmarks."""

import torch

from beyondgloss.benchmark.reference_impl import ReferenceSignEncoder
from beyondgloss.convert.reference_mapping import _map_sign_encoder
from beyondgloss.convert.reference_names import DINO, SIGN_PREFIX, dino_names
from beyondgloss.modeling_beyondgloss import BeyondGlossModel
from beyondgloss.testing import tiny_config


def test_the_converter_splits_each_reference_tensor_as_the_table_says():
    config = tiny_config()
    table = dino_names(config.vision_config.num_hidden_layers, config.vision_lora_layers)
    prefix = SIGN_PREFIX["translation"]
    # Row r of a tensor holding n parts is r: part p of a fused tensor must be row p.
    state = {prefix + DINO + name: torch.arange(len(parts), dtype=torch.float32)[:, None]
             for name, parts in table.items()}
    mapped = _map_sign_encoder(state, prefix, config)
    assert set(mapped) == {part for parts in table.values() for part in parts}
    for parts in table.values():
        for row, part in enumerate(parts):
            assert mapped[part].flatten().tolist() == [row], part
    assert table["blocks.1.attn.lora_w1_l2.weight"] == ("frame_encoder.lora.1.q_B", "frame_encoder.lora.1.k_B", "frame_encoder.lora.1.v_B")


def test_the_reference_encoder_takes_its_dinov2_names_from_the_table():
    config = tiny_config()
    model = BeyondGlossModel(config)
    reference = ReferenceSignEncoder.from_beyondgloss(model)
    table = dino_names(config.vision_config.num_hidden_layers, config.vision_lora_layers)
    names = reference._fused_names()
    vision = {name: sources for name, sources in names.items() if sources[0].startswith("frame_encoder.")}
    # Every table entry but the unused mask token has a parameter of the reference encoder, and nothing else maps
    # onto the package's DINOv2.
    assert sorted(map(tuple, vision.values())) == sorted(parts for name, parts in table.items() if name != "mask_token")
    fused = torch.cat([model.sign_encoder.get_parameter(f"frame_encoder.lora.1.{p}_B") for p in "qkv"])
    assert torch.equal(reference.blocks[1].qkv.lora_B, fused)

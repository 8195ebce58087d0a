"""Tiny random configurations for tests, examples and the demo (nothing downloads)."""

from ..configuration_beyondgloss import BeyondGlossConfig

__all__ = ["tiny_config"]


def tiny_config(vocab_size: int = 64, image_size: int = 28, **overrides) -> BeyondGlossConfig:
    """A BeyondGloss config with every part present and tiny: ViT of 2 blocks (hidden 32) on `image_size` px
    frames with patch 14, temporal width 16, mBART of width 32 with 1+1 layers and `vocab_size` tokens."""
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                  image_size=image_size, use_mask_token=False)
    text = dict(vocab_size=vocab_size, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                scale_embedding=True, dropout=0.1)
    settings = dict(vision_config=vision, text_config=text, frame_dim=16, temporal_heads=2, temporal_ffn_dim=32,
                    hand_dim=6, description_dim=24, vision_lora_layers=[1], text_lora_rank=4, text_lora_alpha=8.0,
                    decoder_start_token_id=3, max_new_tokens=20, frame_chunk_size=5)
    settings.update(overrides)
    return BeyondGlossConfig(**settings)

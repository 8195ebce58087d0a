"""Loading and running the descriptor's transformers models: what the describer, refiner and encoder share."""

import torch

__all__ = ["default_device_map", "load_config", "load_model", "move_to_model", "decode_new_tokens"]


def default_device_map() -> str:
    """`"auto"` (every visible GPU, through accelerate) when CUDA is available, else `"cpu"`."""
    return "auto" if torch.cuda.is_available() else "cpu"


def _not_found(model_id: str, error: Exception) -> OSError:
    return OSError(
        f"cannot load {model_id!r}: it is neither a checkpoint folder (with config.json) nor a hub id that can be "
        f"fetched (with HF_HUB_OFFLINE=1 it must already be in the cache). {type(error).__name__}: {error}"
    )


def load_config(model_id: str, trust_remote_code: bool = False):
    """`AutoConfig.from_pretrained`, with an error that says what `model_id` must be."""
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
    except (OSError, HFValidationError) as error:
        raise _not_found(model_id, error) from error


def load_model(auto_class, model_id: str, device_map=None, dtype="auto", trust_remote_code: bool = False):
    """`auto_class.from_pretrained` with the descriptor's defaults: GPUs when there are any, the checkpoint's dtype.

    Args:
        auto_class: a transformers Auto class (`AutoModelForImageTextToText`, `AutoModelForCausalLM`, ...).
        model_id (`str`): hub id or local folder.
        device_map (`str`, *optional*): accelerate device map; `default_device_map()` when `None`.
        dtype (`str` or `torch.dtype`): weight dtype; `"auto"` keeps the checkpoint's.
        trust_remote_code (`bool`): allow a checkpoint's own modeling code.
    """
    from huggingface_hub.errors import HFValidationError

    try:
        return auto_class.from_pretrained(
            model_id, device_map=device_map or default_device_map(), dtype=dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, HFValidationError) as error:
        raise _not_found(model_id, error) from error


def move_to_model(batch, model) -> dict:
    """Puts a processor's or tokenizer's output on the model's device (floating tensors in its dtype)."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(model.device)
            if value.is_floating_point():
                # Pixel values follow the weights, e.g. fp16 on a GPU.
                value = value.to(model.dtype)
        moved[key] = value
    return moved


def decode_new_tokens(model, processor_or_tokenizer, generated: torch.Tensor, prompt_length: int) -> list[str]:
    """Decodes what `generate` added after the prompt, stripped.

    Decoder-only models return the prompt followed by the new tokens; encoder-decoder models return only
    the decoder's tokens.
    """
    if not model.config.is_encoder_decoder:
        generated = generated[:, prompt_length:]
    texts = processor_or_tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [text.strip() for text in texts]

"""`from_pretrained` for the descriptor's wrappers: one way to load a model and its tokenizer or processor."""

import torch

from ._models import load_config, load_model

__all__ = ["PretrainedWrapper"]


class PretrainedWrapper:
    """The base class of the descriptor's wrappers (each built as `cls(model, preprocessor, **kwargs)`): their
    `from_pretrained` classmethod.

    A subclass names its transformers classes and, when the Auto class accepts only some architectures,
    says what it needs so that a wrong checkpoint fails before any weight is read:

    - `auto_model` (`str`): the Auto model class, e.g. `"AutoModelForCausalLM"`.
    - `auto_preprocessor` (`str`): `"AutoTokenizer"` or `"AutoProcessor"`.
    - `accepted_model_types` (`str`, *optional*): the name of the `transformers.models.auto.modeling_auto`
      mapping of the model types `auto_model` loads; `None` accepts every checkpoint.
    - `wrong_model_hint` (`str`): what to load instead, appended to the error.
    - `wrong_model_error` (`type[ValueError]`): the error raised for a checkpoint of another kind.
    """

    auto_model: str
    auto_preprocessor: str
    accepted_model_types: str | None = None
    wrong_model_hint: str = ""
    wrong_model_error: type[ValueError] = ValueError

    @classmethod
    def from_pretrained(
        cls,
        model_id: str,
        device_map: str | None = None,
        dtype: str | torch.dtype = "auto",
        trust_remote_code: bool = False,
        **kwargs,
    ):
        """Loads the model and its tokenizer or processor by hub id or local path.

        Args:
            model_id (`str`): hub id or checkpoint folder.
            device_map (`str`, *optional*): where to put the model; defaults to every GPU when there is one,
                else the CPU.
            dtype (`str` or `torch.dtype`): weight dtype; `"auto"` keeps the checkpoint's.
            trust_remote_code (`bool`): allow a checkpoint's own modeling code.
            kwargs: passed to the constructor (prompt, max_new_tokens, batch_size, ...).

        Raises:
            `OSError`: `model_id` is neither a checkpoint folder nor a reachable hub id.
            `cls.wrong_model_error`: the checkpoint is of a kind `cls.auto_model` cannot load.
        """
        import transformers

        if cls.accepted_model_types is not None:
            cls._check_model_type(model_id, trust_remote_code)
        model = load_model(getattr(transformers, cls.auto_model), model_id, device_map, dtype, trust_remote_code)
        preprocessor = getattr(transformers, cls.auto_preprocessor).from_pretrained(
            model_id, trust_remote_code=trust_remote_code
        )
        return cls(model, preprocessor, **kwargs)

    @classmethod
    def _check_model_type(cls, model_id: str, trust_remote_code: bool) -> None:
        from transformers.models.auto import modeling_auto

        config = load_config(model_id, trust_remote_code)
        # A checkpoint with its own code declares the Auto classes it supports in `auto_map`.
        remote = cls.auto_model in (getattr(config, "auto_map", None) or {})
        if config.model_type not in getattr(modeling_auto, cls.accepted_model_types) and not remote:
            raise cls.wrong_model_error(
                f"{model_id!r} is a {config.model_type!r} model, which {cls.auto_model} cannot load; "
                f"{cls.wrong_model_hint}"
            )

# Copyright 2026 The beyondgloss authors. MIT license.
"""Hub-ready checkpoint folders and their upload.

A beyondgloss checkpoint is one folder in the Hub's layout:

- `config.json` with `auto_map` (the configuration and every model class: `AutoModel` gives the sign video encoder,
  `AutoModelForPreTraining` stage 1, `AutoModelForSeq2SeqLM` the translation model) and, for translation models,
  `custom_pipelines` (the "sign-translation" pipeline);
- `model.safetensors` (or safetensors shards with their index);
- `generation_config.json` (translation models: beam width, length, start token, as `model.generation_config`);
- the code those entries name (`configuration_beyondgloss.py`, `modeling_beyondgloss.py`,
  `pipeline_sign_translation.py`, `processing_beyondgloss.py`, ... and their sibling imports);
- the processor (`processor_config.json`) and tokenizer files;
- `README.md`, the model card.

The usual transformers calls write such a folder: `model.save_pretrained(folder)` writes the weights, the code,
`pipeline_sign_translation.py` and a default card (unless the folder has a `README.md`), `processor.save_pretrained(
folder)` the processor; `Trainer.save_model` does both when the trainer's `processing_class` is the processor (as in
`beyondgloss finetune`), and `model.push_to_hub` / `processor.push_to_hub` upload them (transformers' push replaces
the card with its generic one: push a saved folder with `beyondgloss push` to keep this one). [`save_for_hub`] is the
same two calls plus a card with the given [`SignTranslationCardData`]; [`push_to_hub`] writes one and uploads it;
[`push_folder`] (and `beyondgloss push <folder> <repo_id>`) uploads any complete folder, a training output included,
after checking it. [`push_adapter`] uploads a fine-tuned model as its adapter (`model.save_adapter`: about 70 MB
for the full-size translation model) naming the published base checkpoint it loads into.
"""

import json
import logging
import tempfile
from pathlib import Path

from .model_card import SignTranslationCardData, write_model_card
from .pipeline_sign_translation import TASK

__all__ = [
    "IGNORE_PATTERNS",
    "NotACheckpointError",
    "check_checkpoint_folder",
    "push_adapter",
    "push_folder",
    "push_to_hub",
    "save_for_hub",
]

logger = logging.getLogger(__name__)

MODEL_TYPE = "beyondgloss"
REQUIRED_AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoModelForSeq2SeqLM")
# Not uploaded from a Trainer output directory: intermediate checkpoints, TensorBoard logs, and the pickled training
# state (optimizer, scheduler, RNG, arguments), which nobody should have to unpickle to use the model.
# Checkpoints, logs and pickles, and what a run keeps beside its files: its marker and lock, and staging folders.
IGNORE_PATTERNS = ("checkpoint-*/*", "runs/*", "*.bin", "*.pt", "*.pth", "*.pkl", ".beyondgloss_run", ".beyondgloss_lock",
                   ".incomplete-*", ".incomplete-*/*")
SAVE_HINT = ("save the model and its processor into it: model.save_pretrained(folder) and "
             "processor.save_pretrained(folder)")
PROCESSOR_HINT = ("save the processor into it: processor.save_pretrained(folder) (a Trainer does this at save_model() "
                  "when given processing_class=processor)")
CODE_HINT = "save the model again with model.save_pretrained(folder), which copies its code files"


class NotACheckpointError(ValueError):
    """A folder is not a complete beyondgloss checkpoint; the message names the folder, what is missing and the fix."""


def _fail(folder: Path, problem: str, fix: str = SAVE_HINT):
    raise NotACheckpointError(f"{folder} is not a complete beyondgloss checkpoint: {problem}; {fix}")


def _module_file(folder: Path, reference) -> Path:
    # auto_map values are "module.Class", or (slow, fast) pairs for tokenizers, or "repo--module.Class" for code
    # hosted in another repository.
    if isinstance(reference, (list, tuple)):
        reference = next(ref for ref in reference if ref)
    return folder / (reference.split("--")[-1].rsplit(".", 1)[0] + ".py")


def _read_json(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        _fail(folder, f"{name} cannot be read as JSON ({error})")


def check_checkpoint_folder(folder: str | Path) -> dict:
    """Checks that `folder` is a complete beyondgloss checkpoint (see the module docstring).

    Args:
        folder (`str` or `Path`): the folder to check.

    Returns:
        `dict`: the folder's `config.json`.

    Raises:
        [`NotACheckpointError`]: naming the first problem found (not a folder, no or foreign `config.json`, no
            safetensors weights, pickled weights, missing code or processor files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        _fail(folder, "it does not exist or is not a folder")
    if not (folder / "config.json").is_file():
        _fail(folder, "it has no config.json")
    config = _read_json(folder, "config.json")
    if config.get("model_type") != MODEL_TYPE:
        _fail(folder, f"config.json has model_type {config.get('model_type')!r}, not {MODEL_TYPE!r}")
    if (folder / "model.safetensors.index.json").is_file():
        shards = set(_read_json(folder, "model.safetensors.index.json").get("weight_map", {}).values())
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if missing:
            _fail(folder, f"the safetensors shards {missing} named by model.safetensors.index.json are missing")
    elif not (folder / "model.safetensors").is_file():
        pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        found = f" (it holds pickle-based weights {pickled}, which beyondgloss does not publish)" if pickled else ""
        _fail(folder, f"it has no model.safetensors{found}")
    auto_map = config.get("auto_map") or {}
    missing_classes = [name for name in REQUIRED_AUTO_CLASSES if name not in auto_map]
    if missing_classes:
        _fail(folder, f"config.json's auto_map lacks {missing_classes}, so it does not load with trust_remote_code")
    references = list(auto_map.values())
    pipeline = (config.get("custom_pipelines") or {}).get(TASK)
    if pipeline is not None:
        references.append(pipeline["impl"])
        if not (folder / "processor_config.json").is_file():
            _fail(folder, f"config.json names the {TASK!r} pipeline but there is no processor_config.json",
                  PROCESSOR_HINT)
        processor_map = _read_json(folder, "processor_config.json").get("auto_map") or {}
        if "AutoProcessor" not in processor_map:
            _fail(folder, "processor_config.json has no auto_map entry for AutoProcessor", PROCESSOR_HINT)
        references.append(processor_map["AutoProcessor"])
    missing_code = sorted({_module_file(folder, ref).name for ref in references} - {p.name for p in folder.glob("*.py")})
    if missing_code:
        _fail(folder, f"the code files {missing_code} named by its auto_map / custom_pipelines are missing",
              CODE_HINT if "processing_beyondgloss.py" not in missing_code else PROCESSOR_HINT)
    if not (folder / "README.md").is_file():
        logger.warning("%s has no README.md: the Hub page will have no model card", folder)
    return config


def save_for_hub(
    model,
    processor,
    save_directory: str | Path,
    card_data: SignTranslationCardData | None = None,
    **save_kwargs,
) -> Path:
    """Saves a model, its processor, the "sign-translation" pipeline and a model card into one Hub-ready folder.

    The same as `model.save_pretrained(folder)` and `processor.save_pretrained(folder)`, with the card written from
    `card_data` (replacing any `README.md` in the folder).

    Args:
        model: a beyondgloss model (the translation model gets the pipeline; any of them gets `auto_map`).
        processor ([`BeyondGlossProcessor`]): the model's processor (video processor + tokenizer).
        save_directory (`str` or `Path`): the folder to write (created if needed).
        card_data ([`SignTranslationCardData`], *optional*): dataset, language, scores, ... for the model card.
        save_kwargs: passed to `model.save_pretrained` (e.g. `max_shard_size`).

    Returns:
        `Path`: the folder, checked with [`check_checkpoint_folder`].

    Example:

    ```python
    >>> from beyondgloss.hub import save_for_hub
    >>> from beyondgloss.model_card import SignTranslationCardData
    >>> save_for_hub(model, processor, "phoenix-translator", SignTranslationCardData(dataset_name="phoenix14t"))
    ```
    """
    if processor is None:
        raise ValueError("save_for_hub needs the model's processor: a checkpoint without it cannot read videos")
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(save_directory, **save_kwargs)
    processor.save_pretrained(save_directory)
    write_model_card(card_data or SignTranslationCardData(), save_directory, model=model, processor=processor)
    check_checkpoint_folder(save_directory)
    return save_directory


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Uploads a checked beyondgloss checkpoint folder to a Hub model repository (created if needed).

    Files matching [`IGNORE_PATTERNS`] (a Trainer's intermediate checkpoints, logs and pickled training state) stay
    behind. `HF_ENDPOINT` selects the Hub; the token comes from `token`, `HF_TOKEN` or `hf auth login`.

    Returns:
        `huggingface_hub.CommitInfo`: the commit that was made.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    check_checkpoint_folder(folder)
    api = HfApi(token=token, library_name="beyondgloss")
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    logger.info("Uploading %s to %s", folder, repo_id)
    return api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload beyondgloss checkpoint {folder.name}",
        create_pr=create_pr,
        ignore_patterns=list(IGNORE_PATTERNS),
    )


def push_to_hub(
    model,
    processor,
    repo_id: str,
    card_data: SignTranslationCardData | None = None,
    **push_kwargs,
):
    """Saves model, processor, pipeline and card with [`save_for_hub`] and uploads that folder with [`push_folder`].

    Returns:
        `huggingface_hub.CommitInfo`: the commit that was made.
    """
    card_data = card_data or SignTranslationCardData()
    if card_data.repo_id is None:
        card_data.repo_id = repo_id
    if card_data.model_name is None:
        card_data.model_name = repo_id.split("/")[-1]
    with tempfile.TemporaryDirectory(prefix="beyondgloss-push-") as folder:
        save_for_hub(model, processor, folder, card_data)
        return push_folder(folder, repo_id, **push_kwargs)


def push_adapter(
    model,
    repo_id: str,
    base_model_name_or_path: str | None = None,
    *,
    processor=None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Uploads a fine-tuned model as its adapter (`model.save_adapter`: `adapter_config.json` naming the base
    checkpoint, `adapter_model.safetensors`, the config's changes, the generation settings and the processor) to a Hub
    model repository (created if needed).
    `from_pretrained(repo_id, trust_remote_code=True)` and `pipeline("sign-translation", model=repo_id,
    trust_remote_code=True)` then load the base checkpoint and the adapter.

    Args:
        base_model_name_or_path: the Hub id of the published checkpoint the model was fine-tuned from; default:
            where the model was loaded from, which must then be a Hub id (a local folder would name nothing to
            whoever downloads the adapter).
        processor: the processor to upload with the adapter (default: the model's `processor` attribute, if any).

    Returns:
        `huggingface_hub.CommitInfo`: the commit that was made.
    """
    from huggingface_hub import HfApi

    base = base_model_name_or_path or getattr(model.config, "_name_or_path", None)
    if not base or Path(base).exists():
        raise ValueError(
            f"The adapter would name {base!r} as its base checkpoint, which is not a Hub id: pass "
            "base_model_name_or_path='<user>/<base checkpoint>' (the published checkpoint the model was fine-tuned from)."
        )
    api = HfApi(token=token, library_name="beyondgloss")
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    with tempfile.TemporaryDirectory(prefix="beyondgloss-adapter-") as folder:
        model.save_adapter(folder, base, processor=processor)
        logger.info("Uploading the adapter of %s to %s", base, repo_id)
        return api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model", revision=revision,
                                 commit_message=commit_message or f"Upload beyondgloss adapter of {base}",
                                 create_pr=create_pr)

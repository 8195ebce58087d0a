"""Checks on a saved model folder before the commands use it: no foreign code, no garbage translations.

- Remote code: a folder whose configuration files name, in an `auto_map`, code that is not beyondgloss's (another
  module, or one of another repository: `owner/repo--module.Class`) is refused before anything of it is loaded,
  unless `--trust_remote_code` was given. transformers would otherwise ask on the terminal (and wait for an answer)
  or run that code; the commands never reach that question.
- Garbage translations: `translate` and `evaluate` refuse a model whose decoder never learnt to translate (a
  pre-training checkpoint, or a folder without the `generation_config.json` every translation model saves) unless
  `--allow_untrained_decoder`, a model whose checkpoint lacks weights (they would stay random) unless
  `--allow_missing_weights`, and a model with a weight that is not finite (NaN or infinite: every translation would
  be empty or the same token).

Each refusal is a [`CommandError`] (exit 1) naming the file and the flag that overrides it.
"""

import json
from pathlib import Path

from ._common import CommandError

__all__ = ["PRETRAINING_ARCHITECTURE", "TRANSLATION_ARCHITECTURE", "check_remote_code", "require_complete_weights",
           "require_finite_weights", "require_trained_decoder"]

PRETRAINING_ARCHITECTURE = "BeyondGlossForContrastivePretraining"
TRANSLATION_ARCHITECTURE = "BeyondGlossForSignTranslation"
# The modules of the installed package: an auto_map entry naming one of them is beyondgloss's own class.
_PACKAGE_MODULES = frozenset(path.stem for path in Path(__file__).resolve().parents[1].glob("*.py"))


def _auto_map_references(value) -> list:
    """Every `module.Class` reference of the `auto_map` mappings anywhere in a parsed JSON value."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "auto_map" and isinstance(item, dict):
                for reference in item.values():
                    found += [r for r in (reference if isinstance(reference, list) else [reference])
                              if isinstance(r, str)]
            else:
                found += _auto_map_references(item)
    elif isinstance(value, list):
        for item in value:
            found += _auto_map_references(item)
    return found


def _is_beyondgloss(reference: str) -> bool:
    module = reference.rpartition(".")[0]
    return "--" not in reference and module in _PACKAGE_MODULES


def check_remote_code(folder, trust_remote_code: bool, flag: str = "--trust_remote_code") -> None:
    """Refuses `folder` when a configuration file in it has an `auto_map` naming code outside beyondgloss, unless
    `trust_remote_code`. A hub id (not a local folder) is left to transformers, which asks for the same flag.

    Raises:
        [`CommandError`]: naming the file, the foreign references and `flag`.
    """
    folder = Path(folder)
    if trust_remote_code or not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # an unreadable file is reported, with its name, by whatever loads it
        foreign = sorted({r for r in _auto_map_references(values) if not _is_beyondgloss(r)})
        if foreign:
            raise CommandError(
                f"{path} names code outside beyondgloss in its auto_map ({', '.join(foreign)}); loading the folder "
                f"would run that code on this machine. Pass {flag} only if you trust where the folder comes from"
            )


def require_trained_decoder(folder, allow: bool) -> None:
    """Refuses a model folder whose decoder was never trained to translate, unless `allow`.

    A pre-training checkpoint (`config.json` names `BeyondGlossForContrastivePretraining`) carries mBART's decoder
    as stage 1 left it, untouched by any translation loss; a folder without `generation_config.json` was not saved by
    a translation model (each one writes it). Either translates into repeated tokens ("gggg").
    """
    folder = Path(folder)
    if allow or not folder.is_dir():
        return
    config_path = folder / "config.json"
    try:
        architectures = json.loads(config_path.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return  # a missing or torn config.json is reported, with its name, when the model loads
    fix = (f"fine-tune it first (beyondgloss finetune --model_name_or_path {folder} ...), or pass "
           "--allow_untrained_decoder to use it anyway")
    if PRETRAINING_ARCHITECTURE in architectures:
        raise CommandError(f"{config_path} is a pre-training checkpoint ({PRETRAINING_ARCHITECTURE}): its decoder was "
                           f"never trained to translate, so its translations would be garbage; {fix}")
    if not (folder / "generation_config.json").is_file():
        raise CommandError(f"{folder} has no generation_config.json, which every translation model saves: it was "
                           f"not saved by a trained translation model, so its translations would be garbage; {fix}")


def require_finite_weights(model, folder) -> None:
    """Refuses a loaded model with a NaN or infinite weight, naming the first few tensors that hold one."""
    import torch

    bad = [name for name, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CommandError(f"the weights in {folder} are not all finite (NaN or infinite values in {shown}): the "
                           "training that wrote them diverged; use an earlier checkpoint of the run")


def require_complete_weights(loading_info: dict, folder) -> None:
    """Refuses a model whose checkpoint lacked weights it needs (`from_pretrained(..., output_loading_info=True)`'s
    `missing_keys`, and `mismatched_keys` of another shape): they were initialised at random."""
    missing = sorted(set(loading_info.get("missing_keys", ())) |
                     {key[0] for key in loading_info.get("mismatched_keys", ())})
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CommandError(f"the checkpoint in {folder} lacks {len(missing)} of the model's weights ({shown}), which "
                           "would stay random; use the complete folder the model was saved to, or pass "
                           "--allow_missing_weights to use it anyway")

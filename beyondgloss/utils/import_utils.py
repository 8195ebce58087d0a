"""Optional dependencies, checked in one place, with the install hint."""

import importlib
import importlib.util

__all__ = ["require", "is_available"]

# import name -> (pip package, beyondgloss extra that brings it)
_OPTIONAL = {
    "sacrebleu": ("sacrebleu", "metrics"),
    "rouge_score": ("rouge-score", "metrics"),
    "evaluate": ("evaluate", "metrics"),
    "matplotlib": ("matplotlib", "plots"),
    "gradio": ("gradio", "app"),
    "torchcodec": ("torchcodec", None),
    "yaml": ("pyyaml", None),
}


def is_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str):
    """Imports `module` or raises an ImportError that says what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package, extra = _OPTIONAL.get(module, (module, None))
        hint = f"pip install 'beyondgloss[{extra}]'" if extra else f"pip install {package}"
        raise ImportError(f"{purpose} needs the package `{package}`, which is not installed: {hint}") from error

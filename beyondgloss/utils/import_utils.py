"""Optional dependencies, checked in one place, with the install hint."""

import importlib

__all__ = ["require"]

# import name -> (pip package, beyondgloss extra that brings it). Only the extras' packages: what setup.py
# requires (torch, torchcodec, pyyaml, jinja2, ...) is imported plainly.
_OPTIONAL = {
    "sacrebleu": ("sacrebleu", "metrics"),
    "evaluate": ("evaluate", "metrics"),
    "matplotlib": ("matplotlib", "plots"),
    "gradio": ("gradio", "app"),
}


def require(module: str, purpose: str):
    """Imports `module` or raises an ImportError that says what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package, extra = _OPTIONAL.get(module, (module, None))
        hint = f"pip install 'beyondgloss[{extra}]'" if extra else f"pip install {package}"
        raise ImportError(f"{purpose} needs the package `{package}`, which is not installed: {hint}") from error

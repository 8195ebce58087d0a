# Copyright 2026 The beyondgloss authors. MIT license.
"""Reading a checkpoint of the BeyondGloss reference code (see `beyondgloss.convert.reference`): its tensors, without
unpickling arbitrary objects, and which training stage wrote it."""

import pickle
import re
import zipfile
from pathlib import Path

import torch

from .reference_names import SIGN_PREFIX, ReferenceCheckpointError

__all__ = ["detect_stage", "load_reference_state_dict"]


def load_reference_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads the tensors of a reference checkpoint without unpickling arbitrary objects.

    Accepts a Lightning checkpoint (a dict whose `state_dict` holds the tensors), a bare state dict saved with
    `torch.save`, or a `.safetensors` file with the same keys. Torch files are read with
    `torch.load(weights_only=True)` (memory-mapped when possible).

    Args:
        path (`str` or `Path`): the checkpoint file.

    Returns:
        `dict[str, torch.Tensor]`: the state dict, keys as in the reference (`model.` prefix).

    Raises:
        ReferenceCheckpointError: the file is missing, holds Python objects that `weights_only` refuses, or has
            no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such checkpoint file.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        # torch's message is long and generic; the line naming the refused class is the useful one.
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0] if lines else "")
        raise ReferenceCheckpointError(
            f"{path}: torch.load(weights_only=True) refuses this checkpoint because it holds Python objects "
            f"beyond tensors and plain containers ({reason}). beyondgloss never unpickles arbitrary objects. "
            "If you trust the file, re-save only its 'state_dict' (a dict of tensors) with torch.save in an "
            "environment you trust, and convert that file."
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ReferenceCheckpointError(f"{path}: not a readable torch checkpoint ({error}).") from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise ReferenceCheckpointError(
            f"{path}: found no state dict; expected a Lightning checkpoint with a 'state_dict' entry or a dict of "
            "tensors."
        )
    return checkpoint


def detect_stage(state: dict[str, torch.Tensor]) -> str:
    """`"pretraining"` or `"translation"`, from the key prefixes of a reference state dict."""
    pretraining = any(key.startswith(SIGN_PREFIX["pretraining"]) for key in state)
    translation = any(key.startswith(SIGN_PREFIX["translation"]) for key in state)
    if pretraining != translation:
        return "pretraining" if pretraining else "translation"
    found = ", ".join(sorted(state)[:3])
    raise ReferenceCheckpointError(
        "unknown checkpoint layout: expected the sign video encoder under "
        f"'{SIGN_PREFIX['pretraining']}' (pre-training) or '{SIGN_PREFIX['translation']}' (translation)"
        + (", found both" if pretraining else f"; the first keys are {found}")
        + ". Is this a checkpoint of the BeyondGloss reference code?"
    )

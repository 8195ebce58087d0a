# Copyright 2026 The beyondgloss authors. MIT license.
"""Conversion of reference-code checkpoints (`convert_reference_checkpoint`) and mBART vocabulary trimming
(`trim_mbart`)."""

from .reference import (
    STAGES,
    ReferenceCheckpointError,
    check_reference_layout,
    check_reference_values,
    convert_reference_checkpoint,
    detect_stage,
    infer_config,
    load_reference_state_dict,
    map_reference_state_dict,
    reference_layout,
)
from .trim import kept_token_ids, trim_mbart, trim_mbart_model, trim_mbart_tokenizer

__all__ = [
    "STAGES",
    "ReferenceCheckpointError",
    "check_reference_layout",
    "check_reference_values",
    "convert_reference_checkpoint",
    "detect_stage",
    "infer_config",
    "load_reference_state_dict",
    "map_reference_state_dict",
    "reference_layout",
    "kept_token_ids",
    "trim_mbart",
    "trim_mbart_model",
    "trim_mbart_tokenizer",
]

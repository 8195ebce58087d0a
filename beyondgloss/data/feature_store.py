"""Per-sample feature files keyed by sample id: hand features and description embeddings.

A store is a folder of safetensors files, one per sample, each holding `features` and optionally `mask`
(for hand features: 1 where a hand was detected), with the sample id in the file's metadata. Writing
is atomic (a temporary file, then a rename), so an interrupted run never leaves a half-written file.
"""

import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["FeatureStore", "MissingFeatureError"]


class MissingFeatureError(KeyError):
    """A sample id has no file in a feature store."""

    def __str__(self):
        return self.args[0] if self.args else super().__str__()


def _file_stem(sample_id: str) -> str:
    # Ids such as "train/01April_2010_Thursday_heute-6697" become one flat, portable file name.
    stem = re.sub(r"[^A-Za-z0-9._-]", lambda m: f"~{ord(m.group()):x}~", sample_id)
    return stem


class FeatureStore:
    """A folder of per-sample safetensors files.

    ```python
    >>> store = FeatureStore("features/hands")
    >>> store.write("train/video-1", torch.zeros(12, 288), mask=torch.ones(12))
    >>> store.read("train/video-1")["features"].shape
    torch.Size([12, 288])
    ```
    """

    def __init__(self, path, create: bool = True):
        self.path = Path(path)
        if not self.path.is_dir():
            if not create:
                raise FileNotFoundError(f"feature store {self.path} does not exist")
            self.path.mkdir(parents=True, exist_ok=True)

    def file_for(self, sample_id: str) -> Path:
        return self.path / f"{_file_stem(sample_id)}.safetensors"

    def __contains__(self, sample_id: str) -> bool:
        return self.file_for(sample_id).is_file()

    def write(self, sample_id: str, features: torch.Tensor, mask: torch.Tensor | None = None) -> Path:
        tensors = {"features": features.detach().to("cpu").contiguous()}
        if mask is not None:
            if mask.shape[0] != features.shape[0]:
                raise ValueError(
                    f"feature store {self.path}, sample {sample_id!r}: mask has {mask.shape[0]} rows but features "
                    f"have {features.shape[0]}"
                )
            tensors["mask"] = mask.detach().to("cpu").contiguous()
        target = self.file_for(sample_id)
        temporary = target.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, str(temporary), metadata={"id": sample_id})
        os.replace(temporary, target)
        return target

    def read(self, sample_id: str) -> dict:
        """Returns `{"features": Tensor, "mask": Tensor | None}` for one sample."""
        path = self.file_for(sample_id)
        if not path.is_file():
            raise MissingFeatureError(
                f"feature store {self.path} has no file for sample {sample_id!r} (expected {path.name}); "
                "produce it (beyondgloss import-hands / encode-descriptions) or build the dataset without this store"
            )
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            return {
                "features": handle.get_tensor("features"),
                "mask": handle.get_tensor("mask") if "mask" in keys else None,
            }

    def __getitem__(self, sample_id: str) -> torch.Tensor:
        return self.read(sample_id)["features"]

    def ids(self) -> list[str]:
        found = []
        for path in sorted(self.path.glob("*.safetensors")):
            with safe_open(str(path), framework="pt") as handle:
                found.append((handle.metadata() or {}).get("id", path.stem))
        return found

    def __len__(self) -> int:
        return sum(1 for _ in self.path.glob("*.safetensors"))

    def __repr__(self):
        return f"FeatureStore({str(self.path)!r}, {len(self)} samples)"

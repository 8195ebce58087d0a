"""Per-sample feature files keyed by sample id: hand features and description embeddings.

A store is a folder of safetensors files, one per sample, each holding `features` and optionally `mask`
(for hand features: 1 where a hand was detected), with the sample id in the file's metadata. Writing
is atomic (a temporary file, then a rename), so an interrupted run never leaves a half-written file.
"""

import hashlib
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

__all__ = ["FeatureStore", "FeatureFileError", "MissingFeatureError", "feature_file_name", "read_feature_file"]


class MissingFeatureError(KeyError):
    """A sample id has no file in a feature store."""

    def __str__(self):
        return self.args[0] if self.args else super().__str__()


# Longest escaped stem kept readable: with ".safetensors" and a temporary-file suffix it stays well under the
# 255-byte file-name limit of common file systems.
_MAX_STEM = 200


def feature_file_name(sample_id: str) -> str:
    """The file name a store gives a sample id: `<stem>.safetensors`.

    Ids such as "train/01April_2010_Thursday_heute-6697" become one flat, portable name (characters outside
    `[A-Za-z0-9._-]`, and a leading ".", are written `~<hex code>~`). An id in any script and of any length gets a valid name:
    an escaped stem longer than 200 bytes is cut and ends with a hash of the whole id, so names stay unique
    and the file system's name limit is never passed. The id itself is kept in the file's metadata.
    """
    if not isinstance(sample_id, str) or not sample_id:
        raise ValueError(f"sample id {sample_id!r}: feature stores key samples by a non-empty string")
    # A leading "." is escaped too: hidden names are skipped when a store is listed (macOS "._" files).
    stem = re.sub(r"^\.|[^A-Za-z0-9._-]", lambda m: f"~{ord(m.group()):x}~", sample_id)
    if len(stem) > _MAX_STEM:
        digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        stem = f"{stem[:_MAX_STEM - 26]}~~{digest}"
    return f"{stem}.safetensors"


class FeatureFileError(ValueError):
    """A feature file is truncated, foreign (not written by `FeatureStore`) or holds another sample."""


def read_feature_file(path, sample_id: str | None = None) -> dict:
    """Reads one store file: `{"features": Tensor, "mask": Tensor | None}`.

    Raises:
        `FeatureFileError`: the file is not a readable safetensors file (truncated, foreign), has no `features`
            tensor, a `mask` of another length, or belongs to another sample id (its metadata says so).
    """
    advice = "re-create it (beyondgloss import-hands / encode-descriptions) or move it out of the store"
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            stored_id = (handle.metadata() or {}).get("id")
            if "features" not in keys:
                raise FeatureFileError(f"{path}: no 'features' tensor (it holds {sorted(keys)}), so it was not written "
                                       f"by FeatureStore; {advice}")
            if sample_id is not None and stored_id is not None and stored_id != sample_id:
                raise FeatureFileError(f"{path}: holds the features of sample {stored_id!r}, not {sample_id!r} (was it "
                                       f"renamed?); {advice}")
            features = handle.get_tensor("features")
            mask = handle.get_tensor("mask") if "mask" in keys else None
    except FeatureFileError:
        raise
    except (SafetensorError, OSError, ValueError) as error:
        raise FeatureFileError(f"{path}: not a readable safetensors file; it may be truncated or foreign ({error}); "
                               f"{advice}") from error
    if mask is not None and (mask.ndim != 1 or features.ndim == 0 or mask.shape[0] != features.shape[0]):
        raise FeatureFileError(f"{path}: 'mask' has shape {tuple(mask.shape)} but 'features' has shape "
                               f"{tuple(features.shape)}; {advice}")
    return {"features": features, "mask": mask}


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
        if self.path.is_dir():
            return
        if not create and not (self.path.exists() or self.path.is_symlink()):
            raise FileNotFoundError(f"feature store {self.path} does not exist")
        if create:
            # Several processes may create the same store at once (SynthSign's writers): create first, then check,
            # so that another process's mkdir between a check and ours is not taken for a file in the way.
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                pass
        if not self.path.is_dir():
            raise NotADirectoryError(f"feature store {self.path} exists and is not a folder; pass a folder")

    def file_for(self, sample_id: str) -> Path:
        return self.path / feature_file_name(sample_id)

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
        """Returns `{"features": Tensor, "mask": Tensor | None}` for one sample.

        Raises:
            `MissingFeatureError`: no file for the id. `FeatureFileError`: the file is unreadable or foreign.
        """
        path = self.file_for(sample_id)
        if not path.is_file():
            raise MissingFeatureError(
                f"feature store {self.path} has no file for sample {sample_id!r} (expected {path.name}); "
                "produce it (beyondgloss import-hands / encode-descriptions) or build the dataset without this store"
            )
        return read_feature_file(path, sample_id)

    def __getitem__(self, sample_id: str) -> torch.Tensor:
        return self.read(sample_id)["features"]

    def files(self) -> list[Path]:
        """The store's sample files, sorted: regular `*.safetensors` files only (hidden names, folders, FIFOs and
        other special files are left alone: opening a FIFO would block)."""
        return sorted(path for path in self.path.glob("*.safetensors")
                      if not path.name.startswith(".") and path.is_file())

    def ids(self) -> list[str]:
        """The sample ids of the store (from each file's metadata).

        Raises:
            `FeatureFileError`: a file is unreadable; the message names it.
        """
        found = []
        for path in self.files():
            try:
                with safe_open(str(path), framework="pt") as handle:
                    found.append((handle.metadata() or {}).get("id", path.stem))
            except (SafetensorError, OSError) as error:
                raise FeatureFileError(f"{path}: not a readable safetensors file; it may be truncated or foreign "
                                       f"({error}); re-create it or move it out of the store") from error
        return found

    def __len__(self) -> int:
        return len(self.files())

    def __repr__(self):
        return f"FeatureStore({str(self.path)!r}, {len(self)} samples)"

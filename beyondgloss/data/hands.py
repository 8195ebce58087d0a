"""Importing the reference's HaMeR hand features into a feature store, with a hand-presence mask.

The reference keeps one LZMA pickle per video, `{root}/{split}/{video_id}/{video_id}.lzma`, holding a dict
whose `features` entry is a `(T, 288)` array of MANO rotation matrices (layout: docs/hand_features.md). A row
of zeros means no hand was detected in that frame; the reference regresses those zeros like any other
target. Here the import records a per-frame mask (1 = a hand was detected) so the hand loss can skip them.
Files are read with the restricted unpickler (plain data only, with caps on the decompressed size and on the
memory the objects take: `beyondgloss.data.safe_pickle`); a file that is refused or malformed is reported by
name and the import goes on with the others.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .safe_pickle import UnsafePickleError, load_pickle_file

__all__ = [
    "HAND_FEATURE_DIM",
    "ID_FORMATS",
    "HandImportSummary",
    "hand_presence_mask",
    "read_hamer_file",
    "find_hamer_files",
    "import_hamer_features",
]

logger = logging.getLogger(__name__)

HAND_FEATURE_DIM = 288  # 2 hands x (15 finger joints + 1 global orientation) x 3x3 rotation matrix

# How a file's split and video id become a sample id in the store.
ID_FORMATS = {"split/video": "{split}/{video_id}", "video": "{video_id}"}


def hand_presence_mask(features: torch.Tensor) -> torch.Tensor:
    """1 for frames with a detected hand, 0 for all-zero rows (HaMeR's "no hand").

    Args:
        features (`torch.Tensor` of shape `(T, D)`): per-frame hand features.

    Returns:
        `torch.LongTensor` of shape `(T,)`.
    """
    return (features != 0).any(dim=-1).long()


def read_hamer_file(path, feature_dim: int = HAND_FEATURE_DIM, max_bytes: int | None = None,
                    max_memory: int | None = None) -> torch.Tensor:
    """Reads the `features` array of one reference HaMeR file.

    Args:
        path (`str` or `Path`): an `.lzma` (or gzip / plain) pickle of a dict with a `features` entry.
        feature_dim (`int`): the expected row width.
        max_bytes, max_memory (`int`, *optional*): limits of the restricted unpickler (see
            `beyondgloss.data.safe_pickle.restricted_load`).

    Returns:
        `torch.FloatTensor` of shape `(T, feature_dim)`, float32.

    Raises:
        `UnsafePickleError`: the pickle asks for anything but plain data, or passes a size limit
            (`PickleLimitError`).
        `ValueError`: the file is not a readable pickle, or its content is not a dict with a finite, non-empty
            `(T, feature_dim)` `features` array of real numbers.
    """
    content = load_pickle_file(path, max_bytes=max_bytes, max_memory=max_memory)
    if not isinstance(content, dict) or "features" not in content:
        found = sorted(map(str, content))[:10] if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{path}: expected a dict with a 'features' entry (reference HaMeR format), found {found}")
    try:
        features = np.asarray(content["features"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: 'features' is not a rectangular array ({error})") from error
    if features.ndim != 2 or features.shape[1] != feature_dim:
        raise ValueError(
            f"{path}: 'features' has shape {features.shape}, expected (frames, {feature_dim}); "
            "pass the right --feature_dim if the layout differs"
        )
    if features.shape[0] == 0:
        raise ValueError(f"{path}: 'features' has no rows (0 frames); re-run HaMeR on this video")
    # Complex numbers are numbers too, but casting them to float32 would silently drop their imaginary part.
    if not (np.issubdtype(features.dtype, np.integer) or np.issubdtype(features.dtype, np.floating)):
        raise ValueError(f"{path}: 'features' holds {features.dtype} values, expected real numbers")
    features = torch.from_numpy(features.astype(np.float32))
    if not torch.isfinite(features).all():
        raise ValueError(f"{path}: 'features' holds NaN or infinite values")
    return features


def find_hamer_files(root, splits=None) -> list[tuple[str, str, Path]]:
    """Lists `(split, video_id, path)` for every `{root}/{split}/{video_id}/{video_id}.lzma`.

    Args:
        root (`str` or `Path`): the reference's `hamer_path`.
        splits (`Iterable[str]`, *optional*): the split folders to read; all of them by default.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"HaMeR folder {root} does not exist")
    if splits is None:
        split_dirs = sorted(path for path in root.iterdir() if path.is_dir())
    else:
        split_dirs = [root / split for split in splits]
        missing = [str(path) for path in split_dirs if not path.is_dir()]
        if missing:
            raise FileNotFoundError(f"HaMeR split folder(s) not found: {', '.join(missing)}")
    found = []
    for split_dir in split_dirs:
        for video_dir in sorted(path for path in split_dir.iterdir() if path.is_dir()):
            path = video_dir / f"{video_dir.name}.lzma"
            if path.is_file():
                found.append((split_dir.name, video_dir.name, path))
            else:
                logger.warning("%s has no %s.lzma; skipped", video_dir, video_dir.name)
    return found


@dataclass
class HandImportSummary:
    """What `import_hamer_features` did: ids written, ids already in the store, `(path, error)` failures."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def import_hamer_features(
    root,
    store,
    splits=None,
    id_format: str = "split/video",
    feature_dim: int = HAND_FEATURE_DIM,
    overwrite: bool = False,
    progress: bool = True,
) -> HandImportSummary:
    """Copies reference HaMeR files into a `FeatureStore` as `features` `(T, feature_dim)` + `mask` `(T,)`.

    Every row is kept (the reference cuts to 300 frames at load time; the dataset does its own sampling).
    A file that cannot be read, or is refused by the restricted unpickler, is reported and the import goes
    on with the others.

    Args:
        root (`str` or `Path`): the reference's `hamer_path` (`{root}/{split}/{video_id}/{video_id}.lzma`).
        store (`FeatureStore`): the destination.
        splits (`Iterable[str]`, *optional*): split folders to import; all by default.
        id_format (`str`): `"split/video"` keys samples as `{split}/{video_id}` (ids stay unique across
            splits), `"video"` as `{video_id}`.
        feature_dim (`int`): the expected row width.
        overwrite (`bool`): replace samples already in the store (by default they are skipped).
        progress (`bool`): show a progress bar.
    """
    from tqdm.auto import tqdm

    if id_format not in ID_FORMATS:
        raise ValueError(f"id_format must be one of {sorted(ID_FORMATS)}, got {id_format!r}")
    summary = HandImportSummary()
    seen = {}
    for split, video_id, path in tqdm(find_hamer_files(root, splits), desc="importing hand features", disable=not progress):
        sample_id = ID_FORMATS[id_format].format(split=split, video_id=video_id)
        if sample_id in seen:
            raise ValueError(
                f"sample id {sample_id!r} comes from both {seen[sample_id]} and {path}; use id_format='split/video'"
            )
        seen[sample_id] = path
        if not overwrite and sample_id in store:
            summary.skipped.append(sample_id)
            continue
        try:
            features = read_hamer_file(path, feature_dim)
        except (UnsafePickleError, ValueError, FileNotFoundError) as error:
            logger.error("%s", error)
            summary.failed.append((str(path), str(error)))
            continue
        store.write(sample_id, features, mask=hand_presence_mask(features))
        summary.written.append(sample_id)
    return summary

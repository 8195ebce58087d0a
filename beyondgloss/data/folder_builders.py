"""Builders of sign video folders: any folder of videos or frame folders described by a metadata file
(`SignVideoFolderBuilder`, the route for new datasets), and the generated SynthSign corpus read as one
(`SynthSignBuilder`). Both yield the columns described in `beyondgloss.data.builders`."""

import json
from pathlib import Path, PurePath

import datasets

from .builders import SPLIT_NAMES, SignDatasetBuilder
from .synthsign import SYNTHSIGN_LANGUAGE, generate_synthsign
from .validation import RowError, describe_value, path_inside, read_delimited, read_text, text_value

__all__ = ["SignVideoFolderBuilder", "SynthSignBuilder"]


class SignVideoFolderBuilder(SignDatasetBuilder):
    """Any folder of videos or frame folders described by `metadata.jsonl` or `metadata.csv`.

    Columns: `file_name` (a video file or a frame folder, relative to the folder) and `text`, required;
    `split` (default "train"; "dev"/"val" become "validation"), `id` (default: file_name without its
    extension), `gloss`, `signer`, `language`, `description`, `signing` (true/false: false for an idle clip, whose
    `text` is empty; default true), optional. All entries are videos, or all
    are frame folders. This is the route for new sign datasets.
    """

    DATASET_NAME = "sign_video_folder"
    SOURCE_FILES = ("metadata.jsonl", "metadata.csv")

    def _metadata(self) -> tuple:
        """(path, rows) of the folder's metadata, read once; each row carries `_where` ("metadata.jsonl line 3")."""
        if getattr(self, "_metadata_cache", None) is None:
            root = Path(self.config.data_dir)
            present = [root / name for name in self.SOURCE_FILES if (root / name).exists()]
            odd = [str(p) for p in present if not p.is_file()]
            if odd:
                raise FileNotFoundError(f"{', '.join(odd)}: not a regular file (a folder, FIFO or device); the "
                                        "metadata must be a plain file")
            if len(present) != 1:
                raise FileNotFoundError(
                    f"{root}: expected exactly one of metadata.jsonl / metadata.csv, found {len(present)}")
            path = present[0]
            if path.suffix == ".csv":
                rows = read_delimited(path, ",", ("file_name", "text"))
                for number, row in enumerate(rows, start=1):
                    row["_where"] = f"{path.name} row {number}"
            else:
                rows = []
                for number, line in enumerate(read_text(path).splitlines(), start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from error
                    if not isinstance(row, dict):
                        raise ValueError(f"{path}, line {number}: expected a JSON object with file_name and text, "
                                         f"got {describe_value(row)}")
                    row["_where"] = f"{path.name} line {number}"
                    rows.append(row)
                for column in ("file_name", "text"):
                    lacking = [row["_where"].rpartition(" ")[2] for row in rows if column not in row]
                    if lacking:
                        raise ValueError(f"{path}: missing column {column} (lines {', '.join(lacking[:5])})")
            self._metadata_cache = (path, rows)
        return self._metadata_cache

    def _media_column(self) -> str:
        # Called once per sample while checking; the answer depends only on the metadata, so it is kept.
        path, rows = self._metadata()
        cached = getattr(self, "_media_column_cache", None)
        if cached is not None and cached[0] == path:
            return cached[1]
        root = Path(self.config.data_dir)
        kinds = set()
        for row in rows:
            try:
                target = path_inside(root, row["file_name"], "file_name", row["_where"])
                if target.exists():
                    kinds.add("frames" if target.is_dir() else "video")
            except (RowError, OSError):
                continue  # reported with its row by _read_samples
        if len(kinds) > 1:
            raise ValueError(f"{path}: file_name mixes videos and frame folders; keep one kind per folder")
        self._media_column_cache = (path, kinds.pop() if kinds else "video")
        return self._media_column_cache[1]

    def _extra_columns(self) -> dict:
        _, rows = self._metadata()
        columns = {"description": datasets.Value("string")} if any("description" in row for row in rows) else {}
        return {**columns, "signing": datasets.Value("bool")} if any("signing" in row for row in rows) else columns

    def _read_samples(self) -> dict:
        path, rows = self._metadata()
        root = Path(self.config.data_dir)
        media = self._media_column()
        samples = {}
        for row in rows:
            where = row["_where"]
            target = path_inside(root, row["file_name"], "file_name", where)
            sample_id = row.get("id")
            if sample_id is None or sample_id == "":
                sample_id = PurePath(row["file_name"]).with_suffix("").as_posix()
            split_value = text_value(row.get("split") or "train", "split", where, numbers=False)
            split = SPLIT_NAMES.get(split_value.lower(), split_value)
            # Raw values: the validation layer (_check_samples) checks their types.
            fields = {"text": row["text"], "gloss": row.get("gloss"), "signer": row.get("signer"),
                      "language": row.get("language") or self.config.language, "description": row.get("description"),
                      "signing": _signing_value(row.get("signing", True), where)}
            if media == "frames":
                sample = self._frame_sample(sample_id, root, row["file_name"], where, **fields)
            else:
                sample = {"id": sample_id, "media": str(target), "where": where, **fields}
            samples.setdefault(split, []).append(sample)
        return samples


def _signing_value(value, where: str) -> bool:
    """A `signing` metadata value: true/false (also 1/0, and "true"/"false"/"1"/"0" from a CSV file)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise RowError(f"{where}: signing must be true or false, got {describe_value(value)}")


class SynthSignBuilder(SignVideoFolderBuilder):
    """The SynthSign corpus (`beyondgloss.data.synthsign`): generated into `data_dir` on first use (reused
    when its settings match), then read as a video folder with its hand features and descriptions joined.

    Generation arguments (`num_train`, `num_validation`, `num_test`, `seed`, `image_size`, `description_dim`,
    `frames_per_sign`, `num_workers`, `overwrite`, `idle_fraction`) go to `generate_synthsign`. Pass `hand_features=None` or
    `descriptions=None` to leave those columns out. Language "en" (mBART code en_XX).
    """

    DATASET_NAME = "synthsign"

    def __init__(self, *args, data_dir=None, num_train: int = 3000, num_validation: int = 300, num_test: int = 300,
                 seed: int = 0, image_size: int = 32, description_dim: int = 1024, frames_per_sign=(6, 10),
                 num_workers: int | None = None, overwrite: bool = False, idle_fraction: float = 0.0, **kwargs):
        if data_dir is None:
            raise ValueError("SynthSignBuilder needs data_dir, the folder to generate the corpus into (or reuse)")
        root = generate_synthsign(data_dir, num_train=num_train, num_validation=num_validation, num_test=num_test,
                                  seed=seed, image_size=image_size, description_dim=description_dim,
                                  frames_per_sign=frames_per_sign, num_workers=num_workers, overwrite=overwrite,
                                  idle_fraction=idle_fraction)
        kwargs.setdefault("hand_features", str(root / "hand_features"))
        kwargs.setdefault("descriptions", str(root / "descriptions"))
        kwargs.setdefault("language", SYNTHSIGN_LANGUAGE)
        super().__init__(*args, data_dir=root, **kwargs)

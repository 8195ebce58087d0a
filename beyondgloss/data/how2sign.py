"""How2Sign (American Sign Language -> English), from its release layout: `load_sign_dataset("how2sign", data_dir=...)`.

How2Sign (Duarte et al., CVPR 2021) ships sentence-level clips of instructional videos and their English
translations, manually re-aligned. `data_dir` holds, per split (`train`, `val`, `test`):

- the translations `how2sign_realigned_<split>.csv`, tab-separated with the columns `VIDEO_ID`, `VIDEO_NAME`,
  `SENTENCE_ID`, `SENTENCE_NAME`, `START_REALIGNED`, `END_REALIGNED`, `SENTENCE`; at the top of `data_dir` or in
  the split's clip folder;
- the frontal RGB clips `<split>_rgb_front_clips/raw_videos/<SENTENCE_NAME>.mp4` (the "Green Screen RGB clips,
  frontal view" download).

Rows: `id` `"<split>/<SENTENCE_NAME>"` (the key of hand-feature and description stores), `video`, `text`
(`SENTENCE`), `gloss` "" (How2Sign has no glosses), `signer` "" (not in the translation files), `language` "en".
Splits `train`, `validation` (How2Sign's `val`), `test`. Every sample goes through the builders' validation
(`beyondgloss.data.builders`); a clip missing from the download is a bad sample (name it, or `skip_bad_samples`).
"""

from pathlib import Path

from .builders import SignDatasetBuilder
from .validation import path_inside, read_delimited

__all__ = ["How2SignBuilder"]

_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def _translation_files(split: str) -> tuple:
    name = f"how2sign_realigned_{split}.csv"
    return name, f"{split}_rgb_front_clips/{name}"


class How2SignBuilder(SignDatasetBuilder):
    """How2Sign, ASL -> English (see the module docstring for the layout)."""

    DATASET_NAME = "how2sign"
    MEDIA = "video"
    LANGUAGE = "en"
    SOURCE_FILES = tuple(path for split in _SPLITS for path in _translation_files(split))

    def _read_samples(self) -> dict:
        root = Path(self.config.data_dir)
        samples = {}
        for official, split in _SPLITS.items():
            candidates = [root / name for name in _translation_files(official)]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise FileNotFoundError(f"How2Sign in {root}: no translation file for the {official!r} split (looked "
                                        f"for {' and '.join(str(p) for p in candidates)})")
            clips = root / f"{official}_rgb_front_clips" / "raw_videos"
            rows = read_delimited(path, "\t", ("SENTENCE_NAME", "SENTENCE"))
            samples[split] = []
            for number, row in enumerate(rows, start=1):
                where = f"{path.name} row {number}"
                video = path_inside(clips, f"{row['SENTENCE_NAME']}.mp4", "SENTENCE_NAME", where)
                samples[split].append({"id": f"{official}/{row['SENTENCE_NAME']}", "media": str(video), "where": where,
                                       "text": row["SENTENCE"], "gloss": "", "signer": "", "language": self.LANGUAGE})
        return samples

"""Builders of the two corpora of the paper, from their official release layouts: RWTH-PHOENIX-Weather-2014-T
(`Phoenix14TBuilder`) and CSL-Daily (`CSLDailyBuilder`). Both yield the columns described in
`beyondgloss.data.builders`, and also read the reference code's label pickles (`reference_labels`)."""

from pathlib import Path

from .builders import SPLIT_NAMES, SignDatasetBuilder
from .safe_pickle import load_pickle_file
from .validation import RowError, joined_label, read_delimited, read_text

__all__ = ["CSLDailyBuilder", "Phoenix14TBuilder"]


class Phoenix14TBuilder(SignDatasetBuilder):
    """RWTH-PHOENIX-Weather-2014-T, from its official release layout.

    `data_dir` is the `PHOENIX-2014-T` folder (or its parent) holding
    `annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv` (`|`-separated columns name, video,
    start, end, speaker, orth, translation) and `features/fullFrame-210x260px/{train,dev,test}/<name>/`
    with `images0001.png ...`. Text: `translation`; gloss: `orth`; signer: `speaker`; language "de".
    """

    DATASET_NAME = "phoenix14t"
    LANGUAGE = "de"
    CSV = "annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
    SOURCE_FILES = ("annotations/manual/PHOENIX-2014-T.train.corpus.csv",
                    "annotations/manual/PHOENIX-2014-T.dev.corpus.csv",
                    "annotations/manual/PHOENIX-2014-T.test.corpus.csv")

    def __init__(self, *args, data_dir=None, **kwargs):
        if data_dir is not None and not (Path(data_dir) / "annotations").is_dir() and \
                (Path(data_dir) / "PHOENIX-2014-T" / "annotations").is_dir():
            data_dir = Path(data_dir) / "PHOENIX-2014-T"
        super().__init__(*args, data_dir=data_dir, **kwargs)

    def _read_samples(self) -> dict:
        root = Path(self.config.data_dir)
        frames_root = Path(self.config.frames_dir) if self.config.frames_dir else root / "features" / "fullFrame-210x260px"
        if self.config.reference_labels:
            return self._reference_label_samples(lambda name: (frames_root, name), self.LANGUAGE)
        samples = {}
        for official in ("train", "dev", "test"):
            path = root / self.CSV.format(split=official)
            rows = read_delimited(path, "|", ("name", "speaker", "orth", "translation"))
            samples[SPLIT_NAMES[official]] = [
                self._frame_sample(f"{official}/{row['name']}", frames_root / official, row["name"],
                                   f"{path.name} row {number}", text=row["translation"], gloss=row["orth"],
                                   signer=row["speaker"], language=self.LANGUAGE)
                for number, row in enumerate(rows, start=1)
            ]
        return samples


class CSLDailyBuilder(SignDatasetBuilder):
    """CSL-Daily, from its official release layout.

    `data_dir` holds `sentence_label/csl2020ct_v2.pkl` (a pickle whose `info` is a list of records with
    name, label_gloss, label_char, label_word, signer, length; read with the restricted unpickler),
    `sentence_label/split_1.txt` (lines `name|split`, an optional `Name|Split` header) and the frame
    folders `sentence/frames_512x512/<name>/`. Other places: pass `label_file`, `split_file`, `frames_dir`.
    Text: the characters of `label_char` joined (no spaces; metrics score characters); gloss: `label_gloss`
    joined by spaces; language "zh".
    """

    DATASET_NAME = "csl_daily"
    LANGUAGE = "zh"
    LABEL_FILES = ("sentence_label/csl2020ct_v2.pkl", "csl2020ct_v2.pkl")
    SPLIT_FILES = ("sentence_label/split_1.txt", "split_1.txt")
    FRAME_DIRS = ("sentence/frames_512x512", "frames_512x512", "frames")
    SOURCE_FILES = LABEL_FILES + SPLIT_FILES
    RECORD_FIELDS = ("name", "label_gloss", "label_char", "signer")

    @staticmethod
    def _first_existing(root: Path, candidates: tuple, what: str, is_dir=False) -> Path:
        for candidate in candidates:
            path = root / candidate
            if path.is_dir() if is_dir else path.is_file():
                return path
        raise FileNotFoundError(f"{root}: no CSL-Daily {what} found (looked for {', '.join(candidates)})")

    def _read_samples(self) -> dict:
        root = Path(self.config.data_dir)
        frames_root = (Path(self.config.frames_dir) if self.config.frames_dir
                       else self._first_existing(root, self.FRAME_DIRS, "frame folder root", is_dir=True))
        if self.config.reference_labels:
            # The reference's names are "<split>/<video>"; CSL-Daily frame folders are not split by folder.
            return self._reference_label_samples(lambda name: (frames_root, name.split("/", 1)[-1]), self.LANGUAGE)
        label_path = (Path(self.config.label_file) if self.config.label_file
                      else self._first_existing(root, self.LABEL_FILES, "label pickle"))
        split_path = (Path(self.config.split_file) if self.config.split_file
                      else self._first_existing(root, self.SPLIT_FILES, "split file"))
        labels = load_pickle_file(label_path)
        if not isinstance(labels, dict) or not isinstance(labels.get("info"), list):
            raise ValueError(f"{label_path}: expected a dict with an 'info' list of sample records")
        records = {}
        for position, record in enumerate(labels["info"]):
            missing = [f for f in self.RECORD_FIELDS if not isinstance(record, dict) or f not in record]
            if missing:
                raise ValueError(f"{label_path}: record {position} lacks field(s) {', '.join(missing)}")
            records[str(record["name"])] = record
        samples = {"train": [], "validation": [], "test": []}
        for number, line in enumerate(read_text(split_path).splitlines(), start=1):
            if not line.strip() or line.strip().lower() == "name|split":
                continue
            name, _, official = (part.strip() for part in line.partition("|"))
            if official not in SPLIT_NAMES:
                raise ValueError(f"{split_path}, line {number}: expected 'name|split' with split train/dev/test, "
                                 f"got {line!r}")
            sample_id = f"{official}/{name}"
            where = f"{split_path.name} line {number}"
            record = records.get(name)
            if record is None:
                samples[SPLIT_NAMES[official]].append({"id": sample_id, "media": [], "text": "", "where": where,
                                                        "problem": f"not in the label file {label_path.name}"})
                continue
            sample = self._frame_sample(sample_id, frames_root, name, where, signer=record["signer"],
                                        language=self.LANGUAGE)
            try:
                # Documented conversion: the characters (or words) of the label lists are joined.
                sample["text"] = joined_label(record["label_char"], "", "label_char", where)
                sample["gloss"] = joined_label(record["label_gloss"], " ", "label_gloss", where)
            except RowError as error:
                sample.setdefault("text", "")
                sample.setdefault("problem", str(error))
            samples[SPLIT_NAMES[official]].append(sample)
        return {split: rows for split, rows in samples.items() if rows}

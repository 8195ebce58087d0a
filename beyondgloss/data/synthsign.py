"""SynthSign: a small synthetic sign language, generated on the fly, for demos and tests.

A fixed lexicon of 36 signs, each a pair of coloured hand shapes moving along a sign-specific trajectory at
a sign-specific height. A sentence is 3-6 signs in the sign language's own order (time topic first, then
subject, object, adjective after its noun, verb, negation last); its translation is an English-like spoken
sentence in the usual subject-verb-object order, with articles, tense from the time sign and "does not"
negation, words the video never shows. So a translator has to read the signs and reorder them: the result
must be learned, not echoed.

Every clip comes with what the BeyondGloss method distils:

- per-frame hand parameters (the hand-distillation target, the stand-in for HaMeR's MANO features),
  `SYNTHSIGN_HAND_DIM` = 18 values per frame: for each hand (right, then left) x and y of its centre in
  [0, 1] image coordinates, its radius as a fraction of the image side, and a one-hot of its shape (6);
- a templated description of the hand motion (what the Sign Video Descriptor would write: hands only, no
  meaning) and its embedding, a deterministic hashed bag of words and word pairs projected to
  `description_dim` (a stand-in for the mBART-50 description encoder: same text, same vector, similar texts
  give similar vectors).

Corpus layout written by `generate_synthsign(data_dir, ...)`:

```
data_dir/
  beyondgloss_synthsign.json  ownership marker: names the generator and holds its settings
  settings.json           generation settings (a corpus is reused only when they match)
  metadata.jsonl          file_name, id, split, text, gloss, signer, language, description, num_frames
                          (and signing, false for an idle clip, when the corpus has idle clips)
  train/000000.mp4 ...    h264 mp4 (yuv444p, so the small coloured hands keep their colours), 25 fps
  validation/...  test/...
  hand_features/          FeatureStore: id -> (T, SYNTHSIGN_HAND_DIM) float32, mask (T,): 1 where hands are visible
  descriptions/           FeatureStore: id -> (description_dim,) float32
```

Ownership: the generator reuses or replaces only a folder that it wrote, recognised by the marker
`beyondgloss_synthsign.json` (or, for corpora of the first version, which wrote no marker, by a `settings.json`
with exactly the generator's keys and nothing in the folder but the files those settings name). Every file
it wrote follows from the settings (`synthsign_files`), so replacing a corpus (`overwrite=True`) deletes only
those files, and it refuses, listing them, when the folder holds anything else. A folder that is not a
corpus is never written into or deleted from, whatever `overwrite` says: generate into an empty or new folder.

Validation and test sentences are sign sequences that never occur in the training split (nor in each
other), so test scores measure generalisation to new combinations of known signs.

With `idle_fraction` > 0 each split also holds idle clips (hands at rest, hands drifting without signing, a signer
with no hands in view, an empty scene; `synthsign_idle.py`), `round(idle_fraction * num_<split>)` of them numbered
after the split's sentences, with an empty `text` and `signing: false`: the negatives of the signing gate.

The language (lexicon, grammar, descriptions) is in `synthsign_language.py`, the rendering of a clip in
`synthsign_rendering.py` (of an idle clip in `synthsign_idle.py`); this module writes corpora and keeps their
ownership.
"""

import concurrent.futures
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .feature_store import FeatureStore, feature_file_name
from .synthsign_language import (
    LEXICONS,
    SYNTHSIGN_LANGUAGE,
    SYNTHSIGN_LANGUAGE_CODE,
    SYNTHSIGN_LEXICON,
    SynthSignSign,
    describe_clip,
    description_embedding,
    sample_sentences,
)
from .synthsign_idle import idle_clip_count, idle_jobs, render_idle_clip
from .synthsign_rendering import FRAME_RATE, SIGNERS, SYNTHSIGN_HAND_DIM, encode_video, render_clip

__all__ = [
    "SYNTHSIGN_HAND_DIM",
    "SYNTHSIGN_LANGUAGE",
    "SYNTHSIGN_LANGUAGE_CODE",
    "SynthSignSign",
    "SYNTHSIGN_LEXICON",
    "sample_sentences",
    "render_clip",
    "describe_clip",
    "description_embedding",
    "generate_synthsign",
    "synthsign_files",
    "MARKER_FILE",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1


def _write_clips(output_dir: str, jobs: list, image_size: int, description_dim: int) -> list:
    """Worker: renders, encodes and stores a chunk of clips; returns `[(index, num_frames), ...]`."""
    import torch

    torch.set_num_threads(1)
    root = Path(output_dir)
    hands, descriptions = FeatureStore(root / "hand_features"), FeatureStore(root / "descriptions")
    done = []
    for job in jobs:
        if job.get("idle"):
            frames, params, visible = render_idle_clip(job, image_size)
        else:
            frames, params = render_clip(job["glosses"], job["frames_per_sign"], job["signer"], image_size,
                                         np.asarray(job["jitter"]), job["lexicon"])
            visible = np.ones(len(params), dtype=np.float32)
        encode_video(frames, root / job["file_name"])
        hands.write(job["id"], torch.from_numpy(params), mask=torch.from_numpy(visible))
        descriptions.write(job["id"], torch.from_numpy(description_embedding(job["description"], description_dim)))
        done.append((job["index"], len(params)))
    return done


def _settings(num_train, num_validation, num_test, seed, image_size, description_dim, frames_per_sign,
              lexicon="standard", idle_fraction=0.0) -> dict:
    if lexicon not in LEXICONS:
        raise ValueError(f"lexicon={lexicon!r}: choose one of {sorted(LEXICONS)}")
    settings = {
        "generator": "synthsign",
        "version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_validation": int(num_validation),
        "num_test": int(num_test),
        "seed": int(seed),
        "image_size": int(image_size),
        "description_dim": int(description_dim),
        "frames_per_sign": [int(frames_per_sign[0]), int(frames_per_sign[1])],
        "frame_rate": FRAME_RATE,
    }
    if lexicon != "standard":  # only the variants name their lexicon: standard corpora keep their settings files
        settings["lexicon"] = lexicon
    if idle_fraction:  # written only when set: corpora without idle clips keep the settings they always had
        settings["idle_fraction"] = float(idle_fraction)
    return settings


def _jobs(counts: dict, settings: dict, frames_per_sign: tuple) -> list:
    """Every clip of the corpus to render: each split's sentences, then its idle clips (if any)."""
    low, high = frames_per_sign
    lexicon = settings.get("lexicon", "standard")
    rng = np.random.default_rng(settings["seed"])
    sentences = iter(sample_sentences(sum(counts.values()), rng))
    jobs, index = [], 0
    for split, count in counts.items():
        for number in range(count):
            glosses, text = next(sentences)
            frame_counts = rng.integers(low, high + 1, size=len(glosses))
            jobs.append({
                "index": index,
                "id": f"{split}/{number:06d}",
                "file_name": f"{split}/{number:06d}.mp4",
                "split": split,
                "glosses": glosses,
                "text": text,
                "frames_per_sign": [int(c) for c in frame_counts],
                "signer": int(rng.integers(len(SIGNERS))),
                "jitter": rng.uniform(-0.03, 0.03, size=(len(glosses), 2)).round(4).tolist(),
                "description": describe_clip(glosses, lexicon), "lexicon": lexicon,
            })
            index += 1
        for job in idle_jobs(settings, split, count, frames_per_sign):
            jobs.append({**job, "index": index})
            index += 1
    return jobs


def generate_synthsign(data_dir, num_train: int = 3000, num_validation: int = 300, num_test: int = 300,
                       seed: int = 0, image_size: int = 32, description_dim: int = 1024,
                       frames_per_sign: tuple = (6, 10), num_workers: int | None = None,
                       overwrite: bool = False, lexicon: str = "standard", idle_fraction: float = 0.0) -> Path:
    """Generates a SynthSign corpus into `data_dir`, or reuses the one there if its settings match.

    Args:
        data_dir (`str` or `Path`): where the corpus lives (layout in the module docstring).
        num_train, num_validation, num_test (`int`): clips per split; every clip is a distinct sentence.
        seed (`int`): the corpus seed (sentences, signers, timing, jitter); same seed -> same corpus.
        image_size (`int`): frame side in pixels (even, >= 16; h264 needs even sizes).
        description_dim (`int`): width of the description embeddings.
        frames_per_sign (`(int, int)`): inclusive range of frames per sign.
        num_workers (`int`, *optional*): processes rendering and encoding clips (default: up to 2, by CPU
            count). The output does not depend on it.
        overwrite (`bool`): replace a SynthSign corpus with other settings (or with files missing) instead of
            refusing. Only the files the generator wrote are deleted, and only from a folder holding nothing else;
            a folder that is not a SynthSign corpus is never touched (see "Ownership" in the module docstring).
        lexicon (`str`): "standard" (SynthSign), or "handshape": the same sentences (for a seed) drawn in a lexicon
            whose signs of one role share body motion in groups of four and differ only in hand shape
            (`synthsign_language._build_handshape_lexicon`), so that only a model reading hand shape tells them apart.
        idle_fraction (`float`): idle clips per split, as a fraction of its sentences (0: none, the corpus as before;
            see the module docstring).

    Returns:
        `Path` of the corpus.
    """
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r}: pass True or False")
    root = Path(os.path.abspath(data_dir))
    if root.is_symlink():
        # Generate where the link points: renaming onto the link would replace the link, not fill its target.
        root = root.resolve()
    if image_size < 16 or image_size % 2:
        raise ValueError(f"image_size={image_size}: SynthSign needs an even frame size of at least 16 pixels")
    low, high = frames_per_sign
    if not 1 <= low <= high:
        raise ValueError(f"frames_per_sign={frames_per_sign}: give (low, high) with 1 <= low <= high")
    if not 0.0 <= idle_fraction <= 1.0:
        raise ValueError(f"idle_fraction={idle_fraction}: give a fraction of each split's clips in [0, 1] (0: no idle "
                         "clips)")
    settings = _settings(num_train, num_validation, num_test, seed, image_size, description_dim, (low, high),
                         lexicon, idle_fraction)
    replacing = None
    if root.exists():
        state = _folder_state(root, settings)
        if state == "reuse":
            return root
        if state != "empty":
            if not overwrite:
                raise ValueError(
                    f"{root} holds a SynthSign corpus {state}; pass overwrite=True to replace it (only the files the "
                    f"generator wrote are deleted, and anything else in the folder stops the replacement), or choose "
                    f"another data_dir for {settings}"
                )
            replacing = _corpus_settings(root)

    counts = {"train": num_train, "validation": num_validation, "test": num_test}
    jobs = _jobs(counts, settings, (low, high))

    # Build next to the target and rename at the end: an interrupted run never looks like a finished corpus.
    # The staging folder is always a new one (mkdtemp), so nothing that was there before is ever deleted.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        _generate_into(staging, jobs, counts, settings, image_size, description_dim, num_workers)
        _install(staging, root, replacing, settings)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    logger.info("SynthSign: wrote %d clips to %s", len(jobs), root)
    return root


def _generate_into(staging: Path, jobs: list, counts: dict, settings: dict, image_size: int, description_dim: int,
                   num_workers: int | None) -> None:
    """Renders every clip and writes the whole corpus (marker last) into the fresh folder `staging`."""
    for split in counts:
        (staging / split).mkdir(parents=True)
    workers = num_workers if num_workers is not None else min(2, os.cpu_count() or 1)
    frame_totals = {}
    # Several chunks per worker balance the load; each chunk is at most 100 clips.
    chunk = max(1, min(100, -(-len(jobs) // (4 * max(workers, 1)))))
    chunks = [jobs[start:start + chunk] for start in range(0, len(jobs), chunk)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            frame_totals.update(_write_clips(str(staging), chunk, image_size, description_dim))
    else:
        # fork where there is one (as torch's DataLoader does): a spawned worker would first spend seconds
        # importing torch and beyondgloss. Workers only run numpy, the encoder and file writes.
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_write_clips, str(staging), chunk, image_size, description_dim)
                       for chunk in chunks]
            for future in concurrent.futures.as_completed(futures):
                frame_totals.update(future.result())
    with open(staging / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for job in jobs:
            row = {key: job[key] for key in ("file_name", "id", "split", "text", "description")}
            row.update(gloss=" ".join(job["glosses"]), signer=f"signer{job['signer']}",
                       language=SYNTHSIGN_LANGUAGE, num_frames=frame_totals[job["index"]])
            if "idle_fraction" in settings:
                row["signing"] = not job.get("idle")
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (staging / "settings.json").write_text(json.dumps(settings, indent=1))
    _write_marker(staging, settings)


# -- ownership -------------------------------------------------------------------------------------------

MARKER_FILE = "beyondgloss_synthsign.json"
_MARKER_GENERATOR = "beyondgloss.data.synthsign"
_SETTINGS_KEYS = frozenset(_settings(1, 1, 1, 0, 32, 8, (1, 1)))
# Most clips a corpus can have (a third of the language's sentences; see `sample_sentences`): a settings file
# that claims more was not written by the generator.
_MAX_CLIPS = 43008 // 3


def _write_marker(folder: Path, settings: dict) -> None:
    marker = {
        "generator": _MARKER_GENERATOR,
        "about": "A SynthSign corpus written by beyondgloss. The generator reuses or replaces only folders holding "
                 "this file, and deletes only the files it wrote (see synthsign_files); remove this file to keep "
                 "the generator away from the folder.",
        "settings": settings,
    }
    temporary = folder / f".{MARKER_FILE}.tmp{os.getpid()}"
    temporary.write_text(json.dumps(marker, indent=1))
    os.replace(temporary, folder / MARKER_FILE)


def _valid_settings(settings) -> bool:
    if not isinstance(settings, dict) or set(settings) - {"lexicon", "idle_fraction"} != _SETTINGS_KEYS or settings.get(
            "generator") != "synthsign" or settings.get("lexicon", "handshape") not in set(LEXICONS) - {"standard"}:
        return False
    if not isinstance(settings.get("idle_fraction", 0.0), float) or not 0.0 <= settings.get("idle_fraction", 0.0) <= 1:
        return False
    counts = [settings[key] for key in ("num_train", "num_validation", "num_test")]
    return all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) and sum(counts) <= _MAX_CLIPS


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _corpus_settings(root: Path) -> tuple | None:
    """`(settings, marked)` of the SynthSign corpus in `root`, or `None` if the folder is not one.

    Marked corpora carry `MARKER_FILE`. Corpora of the first version carry no marker; they are recognised by a
    `settings.json` with exactly the generator's keys (the caller also requires that the folder holds nothing
    but the files those settings name).
    """
    marker = _read_json(root / MARKER_FILE)
    if isinstance(marker, dict) and marker.get("generator") == _MARKER_GENERATOR and _valid_settings(
            marker.get("settings")):
        return marker["settings"], True
    if marker is None and not (root / MARKER_FILE).exists():
        legacy = _read_json(root / "settings.json")
        if _valid_settings(legacy) and legacy.get("version") == 1:
            return legacy, False
    return None


def synthsign_files(settings: dict, marked: bool = True) -> tuple:
    """`(files, folders)`: every path (relative, POSIX) the generator writes for `settings`.

    The layout follows from the settings alone, so a corpus can be checked and replaced without a list of its
    files. `marked=False` leaves out the marker (corpora of the first version have none).
    """
    counts = {split: settings[f"num_{split}"] + idle_clip_count(settings, split)
              for split in ("train", "validation", "test")}
    folders = {*counts, "hand_features", "descriptions"}
    files = {"metadata.jsonl", "settings.json"} | ({MARKER_FILE} if marked else set())
    for split, count in counts.items():
        for number in range(count):
            sample_id = f"{split}/{number:06d}"
            stored = feature_file_name(sample_id)
            files.update((f"{sample_id}.mp4", f"hand_features/{stored}", f"descriptions/{stored}"))
    return files, folders


def _survey(root: Path, files: set, folders: set) -> tuple:
    """`(foreign, missing)`: entries under `root` the generator did not write (links and special files
    included; foreign folders are not entered), and generator files that are absent."""
    foreign, present = [], set()
    for directory, subfolders, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        for name in list(subfolders):
            path = (relative / name).as_posix()
            if os.path.islink(os.path.join(directory, name)) or path not in folders:
                foreign.append(path + ("" if os.path.islink(os.path.join(directory, name)) else "/"))
                subfolders.remove(name)
        for name in names:
            path = (relative / name).as_posix()
            full = os.path.join(directory, name)
            if path in files and not os.path.islink(full) and os.path.isfile(full):
                present.add(path)
            else:
                foreign.append(path)
    return sorted(foreign), sorted(files - present)


def _listed(paths: list, limit: int = 5) -> str:
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _folder_state(root: Path, settings: dict) -> str:
    """"empty", "reuse" (a complete corpus with these settings), or a description of a corpus to replace.

    Raises:
        `ValueError`: `root` is not a folder, not a SynthSign corpus, or a corpus with foreign entries in it.
    """
    if not root.is_dir():
        raise ValueError(f"data_dir {root} exists and is not a folder; choose a new or empty folder for SynthSign")
    if not any(os.scandir(root)):
        return "empty"
    found = _corpus_settings(root)
    if found is not None:
        existing, marked = found
        foreign, missing = _survey(root, *synthsign_files(existing, marked))
    if found is None or (foreign and not marked):
        entries = sorted(entry.name for entry in os.scandir(root))
        raise ValueError(
            f"{root} is not empty and is not a SynthSign corpus (no {MARKER_FILE} written by the generator; it holds "
            f"{_listed(entries)}). SynthSign writes only into a new or empty folder and never deletes from one it did "
            "not write, whatever overwrite says: choose a new or empty data_dir"
        )
    if foreign:
        raise ValueError(
            f"{root} holds a SynthSign corpus and also {len(foreign)} entries the generator did not write "
            f"({_listed(foreign)}). It will neither reuse nor replace a corpus with other files in it: move them out "
            "of the folder, or choose another data_dir"
        )
    if existing == settings and not missing:
        if not marked:
            _write_marker(root, existing)  # a complete first-version corpus: mark it as the generator's own
        return "reuse"
    if existing != settings:
        return f"made with other settings ({existing})"
    return f"with {len(missing)} of its files missing ({_listed(missing)})"


def _install(staging: Path, root: Path, replacing: tuple | None, settings: dict) -> None:
    """Moves the finished corpus to `root`: onto an empty folder, or in place of the corpus being replaced,
    deleting from the old one only the files the generator wrote."""
    if replacing is None:
        try:
            os.replace(staging, root)  # a rename onto an empty folder; fails if anything appeared in it
            return
        except OSError as error:
            if root.exists() and _corpus_settings(root) is not None and _folder_state(root, settings) == "reuse":
                return  # another process generated the same corpus meanwhile
            raise ValueError(f"{root} was filled by something else while SynthSign was generating ({error}); "
                             "nothing in it was changed: choose a new or empty data_dir") from error
    # Generation took a while: check again that the old corpus holds nothing but the generator's files.
    foreign, _ = _survey(root, *synthsign_files(*replacing))
    if foreign:
        raise ValueError(f"{root}: {len(foreign)} entries the generator did not write appeared while it was generating "
                         f"({_listed(foreign)}); nothing was replaced: move them out of the folder and run again")
    # Swap the folders first, then delete the old corpus's files from where it was moved.
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.replaced-", dir=root.parent))
    os.replace(root, old)
    os.replace(staging, root)
    files, folders = synthsign_files(*replacing)
    for path in files:
        target = old / path
        if target.is_file() and not target.is_symlink():
            target.unlink()
    for path in sorted(folders, key=lambda p: -p.count("/")):
        try:
            (old / path).rmdir()
        except OSError:
            pass
    try:
        old.rmdir()
    except OSError:
        left = sorted(entry.name for entry in os.scandir(old))
        logger.warning("SynthSign: %s keeps %d entries that were added to the old corpus while it was being "
                       "replaced (%s); nothing of them was deleted: move them where you want them",
                       old, len(left), _listed(left))

"""The output folder of a training command: created and marked as beyondgloss's, never anyone else's overwritten.

Nothing a user wrote is replaced or deleted: a command writes a run only into a new or empty `--output_dir`, or into
one it created before (it marks those with a `RUN_MARKER` file); `--overwrite_output_dir` replaces only such a run.
Checkpoints and the final save are written atomically, so an interrupted run resumes (`--resume_from_checkpoint last`)
from its last complete checkpoint, naming any incomplete one it passes over ([`checkpoint_problem`]); no message ever
suggests a flag that would delete a complete checkpoint. One run at a time writes into a folder
(`beyondgloss.cli.folder_lock`).

`beyondgloss convert` and `trim-mbart` write their folders whole ([`write_owned_folder`]): into a staging folder
beside the target, renamed into place once complete, and only over a folder the same command wrote before.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..training.arguments import RunArguments
from ._common import CommandError, UsageError
from .folder_lock import LOCK_FILE, lock_output_dir

__all__ = ["RUN_MARKER", "checkpoint_problem", "claim_output_dir", "last_complete_checkpoint", "mark_output_dir",
           "open_output_dir", "prepare_output_dir", "write_owned_folder"]

logger = logging.getLogger(__name__)

# Written into every output folder a command creates; only such folders are ever resumed into or overwritten.
RUN_MARKER = ".beyondgloss_run"
# The checkpoint folders Trainer writes and resumes from (`transformers.trainer_utils.get_last_checkpoint`'s pattern).
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_TORN_CONFIG = "an unreadable config.json"


def _folder_model(folder: Path) -> str | None:
    """The architecture named by `folder/config.json`, or None."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _TORN_CONFIG
    if data.get("model_type") != "beyondgloss":
        return f"a {data.get('model_type', 'unknown')} model"
    return (data.get("architectures") or ["BeyondGlossModel"])[0]


def _listing(names: list, limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def claim_output_dir(folder: Path, option: str = "--output_dir") -> bool:
    """Checks that `folder` is absent, empty, or created by beyondgloss; returns whether it already was beyondgloss's.

    A folder that holds anything (files, folders, links, hidden or special entries) and has no `RUN_MARKER` was not
    written by beyondgloss: writing a run into it would replace the user's files of the same names (a `tokenizer.json`,
    an `eval_results.json`), so it is refused, whatever the flags. An absent or empty folder is created and marked.
    """
    if os.path.lexists(folder) and not folder.is_dir():
        kind = ("a link to nothing" if folder.is_symlink() and not folder.exists()
                else "a file" if folder.is_file() else "a special file")
        raise CommandError(f"{option} {folder} is {kind}, not a folder; choose a folder path")
    try:
        entries = sorted(os.listdir(folder)) if folder.is_dir() else []
    except OSError as error:
        raise CommandError(f"{option} {folder} cannot be read ({error}); choose a folder you can write to") from error
    if RUN_MARKER in entries:
        return True
    if entries:
        raise CommandError(
            f"{option} {folder} already holds files that beyondgloss did not write ({_listing(entries)}): it has no "
            f"{RUN_MARKER} file, which beyondgloss puts in every folder it creates. A run would replace files of the "
            f"same names, so beyondgloss writes only into a new or empty folder or one of its own, and "
            f"--overwrite_output_dir does not apply here. Choose another {option}, or move these files away. (A run of "
            f"a beyondgloss version older than this marker: create an empty {RUN_MARKER} file in the folder to claim it.)"
        )
    return False


def mark_output_dir(folder: Path, command: str | None = None) -> None:
    """Creates `folder` with its `RUN_MARKER`; `command` (e.g. "convert") is recorded in it for a folder that only that
    command may replace (an empty marker: a training or evaluation run)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / RUN_MARKER
        marker.write_text(json.dumps({"written_by": command}) if command else "", encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot create the output folder {folder}: {error}") from error


def _marked_command(folder: Path) -> str | None:
    """The command recorded in `folder`'s `RUN_MARKER` by [`mark_output_dir`], or None (a run's marker)."""
    try:
        marked = json.loads((folder / RUN_MARKER).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    return marked.get("written_by") if isinstance(marked, dict) else None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What makes `checkpoint` unusable for resuming (a missing or torn file), or None when it is complete.

    The trainers write checkpoints atomically, so a `checkpoint-N` folder is complete by construction; this also
    covers folders written by plain `Trainer` or by an earlier version, which an interruption can leave half-written.
    """
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return "a torn trainer_state.json"
    weights = checkpoint / "model.safetensors"
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, AttributeError, UnicodeDecodeError):
            return "a torn model.safetensors.index.json"
    elif weights.is_file():
        shards = ["model.safetensors"]
    else:
        return "no model.safetensors"
    for shard in shards:
        problem = _safetensors_problem(checkpoint / shard)
        if problem:
            return f"{shard}: {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Checks a safetensors file's header and that its size is what the header says (a torn write is shorter)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length > size - 8:
                return "truncated"
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "not a readable safetensors file"
    return None if size == 8 + length + end else f"{size} bytes where its header needs {8 + length + end}"


def last_complete_checkpoint(folder: Path) -> tuple[str | None, list]:
    """The `checkpoint-N` folder with the highest N that is complete, and `(name, problem)` of those passed over."""
    numbered = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _CHECKPOINT_NAME.match(entry.name)
        if match and entry.is_dir():
            numbered.append((int(match.group(1)), entry))
    skipped = []
    for _, checkpoint in sorted(numbered, key=lambda item: item[0], reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint), skipped
        skipped.append((checkpoint.name, problem))
    return None, skipped


def open_output_dir(args: TrainingArguments, run: RunArguments) -> None:
    """Makes `args.output_dir` ready once `prepare_output_dir` has accepted it and the run is about to start: creates
    and marks a new folder, locks it for this run (`beyondgloss.cli.folder_lock`), removes staging folders of
    interrupted saves, and with `--overwrite_output_dir` deletes the earlier run's `checkpoint-N` folders (only ever in a
    folder beyondgloss created).

    The folder is checked again under the lock: a run started at the same time in the same new folder may have written
    into it since `prepare_output_dir` looked.
    """
    folder = Path(args.output_dir)
    if not args.should_save:
        return
    if not claim_output_dir(folder):
        mark_output_dir(folder)
    lock_output_dir(folder)
    _remove_staging(folder)
    if run.overwrite_output_dir:
        checkpoints = sorted(p.name for p in folder.iterdir() if _CHECKPOINT_NAME.match(p.name) and p.is_dir())
        for name in checkpoints:
            shutil.rmtree(folder / name)
        logger.warning("--overwrite_output_dir: replacing the earlier run in %s (deleted its checkpoints: %s; its other "
                       "files are replaced as the new run writes them)", folder, ", ".join(checkpoints) or "none")
    elif not args.resume_from_checkpoint:
        _refuse_earlier_run(folder)


def _remove_staging(folder: Path) -> None:
    """Deletes the staging folders of checkpoint and final saves that an interruption left behind (never a finished
    one: a save is renamed out of its staging folder once complete)."""
    from ..training.trainers import CHECKPOINT_STAGING_PREFIX

    for entry in folder.glob(f"{CHECKPOINT_STAGING_PREFIX}*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
            logger.info("Removed %s, the staging folder of an interrupted save", entry)


def _earlier_run(folder: Path) -> list:
    """The entries of an earlier run in `folder`: everything but the marker, the lock and staging folders."""
    from ..training.trainers import CHECKPOINT_STAGING_PREFIX

    return sorted(name for name in os.listdir(folder)
                  if name not in (RUN_MARKER, LOCK_FILE) and not name.startswith(CHECKPOINT_STAGING_PREFIX))


def _refuse_earlier_run(folder: Path) -> None:
    """Refuses to start a new run over an earlier one; suggests only what keeps its complete checkpoints."""
    previous = _earlier_run(folder)
    if not previous:
        return
    last, _ = last_complete_checkpoint(folder)
    if last is not None:
        raise CommandError(
            f"--output_dir {folder} already holds an earlier run ({_listing(previous)}). Pass --resume_from_checkpoint "
            f"last to continue it from {Path(last).name}, its last complete checkpoint, or choose another --output_dir"
        )
    raise CommandError(
        f"--output_dir {folder} already holds an earlier run ({_listing(previous)}) with no complete checkpoint to "
        "resume from. Pass --overwrite_output_dir to replace it, or choose another --output_dir"
    )


def _run_architecture(folder: Path, resume) -> str | None:
    """The architecture of the run in `folder` (None: no model saved yet).

    `folder` is beyondgloss's (it holds `RUN_MARKER`), so its `config.json` is the run's own: a torn one is the run's
    final save, interrupted (versions before 0.1 wrote it in place). That run is then the one of its checkpoints, and
    resuming finishes it: the final save is written again, whole.
    """
    held = _folder_model(folder)
    if held != _TORN_CONFIG:
        return held
    last, _ = last_complete_checkpoint(folder)
    if last is None:
        raise CommandError(
            f"--output_dir {folder}: its config.json is torn (the run's final save was interrupted) and it has no "
            "complete checkpoint to finish the run from. Pass --overwrite_output_dir to start the run again, or choose "
            "another --output_dir"
        )
    if not resume:
        raise CommandError(
            f"--output_dir {folder}: its run was interrupted while saving its final model (config.json is torn). Pass "
            f"--resume_from_checkpoint last to finish it from {Path(last).name}, or choose another --output_dir"
        )
    logger.warning("%s: config.json is torn (the final save was interrupted); the resumed run saves the final model "
                   "again from %s", folder, last)
    return _folder_model(Path(last))


def prepare_output_dir(args: TrainingArguments, run: RunArguments, architecture: str) -> str | None:
    """Checks `args.output_dir` before a run writes anything, and resolves `--resume_from_checkpoint`.

    - A new or empty folder is created and marked as beyondgloss's (`RUN_MARKER`).
    - A non-empty folder without the marker is refused, with or without `--overwrite_output_dir`: nothing a user put
      there is ever replaced or deleted (see `claim_output_dir`).
    - A folder of an earlier beyondgloss run is used only to resume that run (`--resume_from_checkpoint last` takes
      the last complete checkpoint and names every incomplete one it passes over; a torn final save is finished that
      way), or, with `--overwrite_output_dir`, replaced: its `checkpoint-N` folders are deleted so that they cannot mix
      with the new run's; the new run's files replace the earlier run's files of the same names. A folder holding
      another kind of model is refused unless overwritten. Messages suggest `--overwrite_output_dir` only where it
      would delete no complete checkpoint.
    - Resuming needs the checkpoint's optimizer state, unless `--reset_optimizer` (see `_check_optimizer_state`).

    Returns:
        `str` or `None`: the checkpoint to resume from.
    """
    folder = Path(args.output_dir)
    resume = args.resume_from_checkpoint
    owned = claim_output_dir(folder)
    if not owned:
        if resume:
            raise CommandError(f"--resume_from_checkpoint {resume}: {folder} holds no earlier run to resume; start "
                               "without --resume_from_checkpoint")
        return None
    if run.overwrite_output_dir:
        if resume:
            raise UsageError("--overwrite_output_dir and --resume_from_checkpoint contradict each other: one replaces "
                             f"the run in {folder}, the other continues it; pass one of them")
        return None
    held = _run_architecture(folder, resume)
    if held is not None and held != architecture:
        last, _ = last_complete_checkpoint(folder)
        keep = (f"; its complete checkpoints ({Path(last).name} the last) are kept as they are" if last else
                ", or pass --overwrite_output_dir to replace it")
        raise CommandError(f"--output_dir {folder} holds {held}, not a {architecture} run; choose another --output_dir"
                           f"{keep}")
    if not resume:
        _refuse_earlier_run(folder)
        return None
    last = _resume_checkpoint(folder, resume)
    _check_optimizer_state(args, run, last)
    return last


def _resume_checkpoint(folder: Path, resume) -> str:
    """The checkpoint `--resume_from_checkpoint` names (`last`: the last complete one in `folder`)."""
    if str(resume).lower() in ("last", "true", "1", "yes"):
        last, skipped = last_complete_checkpoint(folder)
        for name, problem in skipped:
            logger.warning("--resume_from_checkpoint %s: skipping %s, an incomplete checkpoint (%s) left by an "
                           "interrupted save; it is left as it is, and a save of the same step replaces it",
                           resume, folder / name, problem)
        if last is None:
            found = f" (incomplete: {', '.join(name for name, _ in skipped)})" if skipped else ""
            hint = ("pass --overwrite_output_dir to start the run again" if _earlier_run(folder)
                    else "start without --resume_from_checkpoint")
            raise CommandError(f"--resume_from_checkpoint {resume}: {folder} has no complete checkpoint-* folder to "
                               f"resume from{found}; {hint}")
        return last
    if not Path(resume).is_dir():
        raise CommandError(f"--resume_from_checkpoint {resume} is not a checkpoint folder")
    problem = checkpoint_problem(Path(resume))
    if problem:
        raise CommandError(f"--resume_from_checkpoint {resume} is an incomplete checkpoint ({problem}); pass "
                           "--resume_from_checkpoint last to take the last complete one")
    return str(resume)


def _check_optimizer_state(args: TrainingArguments, run: RunArguments, checkpoint: str) -> None:
    """Refuses to resume from a checkpoint whose optimizer state is missing or torn, unless `--reset_optimizer`.

    Without it, Trainer would resume with a fresh AdamW (its moment estimates at zero, the learning-rate schedule back
    at its start) and say nothing, or stop with a traceback from `torch.load` on a torn file. DeepSpeed and FSDP keep
    their optimizer states in their own layouts, which they check themselves.
    """
    from ..training.trainers import optimizer_state_problem

    if args.deepspeed or args.fsdp:
        return
    problem = optimizer_state_problem(checkpoint)
    if problem is None:
        return
    if not run.reset_optimizer:
        raise CommandError(
            f"--resume_from_checkpoint: {checkpoint} has no usable optimizer state ({problem}), so the run cannot "
            "continue as it was. Pass --reset_optimizer to resume its weights with a fresh optimizer, or "
            "--resume_from_checkpoint with an earlier checkpoint folder"
        )
    logger.warning("--reset_optimizer: %s has no usable optimizer state (%s); resuming its weights with a fresh "
                   "optimizer", checkpoint, problem)


def write_owned_folder(folder: Path, command: str, overwrite: bool, write: Callable[[Path], None],
                       option: str = "output_dir") -> None:
    """Writes the output folder of `beyondgloss <command>` whole, and only where nothing of anyone else's is replaced.

    `folder` must be absent, empty, or a folder `command` wrote before (its `RUN_MARKER` names the command), and then
    only with `overwrite` (`--overwrite_output_dir`); a folder of a user's own files, of a training run or of another
    command is refused. `write(staging)` fills a staging folder `.incomplete-<name>.*` beside `folder`; once it
    returns, the staging folder is marked and renamed into place, so an interrupted command leaves the earlier folder
    as it was (and a hidden staging folder), never a half-written one. Replacing an earlier folder moves it aside to
    `.replaced-<name>.*` first and deletes it last: an interruption between the two renames leaves both folders.

    Raises:
        CommandError: `folder` is not the command's to write, or it holds an earlier output and `overwrite` is off.
    """
    folder = Path(folder).absolute()
    if claim_output_dir(folder, option) and _earlier_run(folder):
        written_by = _marked_command(folder)
        if written_by != command:
            what = f"the output of beyondgloss {written_by}" if written_by else "a beyondgloss training run"
            raise CommandError(f"{option} {folder} holds {what}, which beyondgloss {command} does not replace; choose "
                               f"another {option}")
        if not overwrite:
            raise CommandError(f"{option} {folder} already holds the output of an earlier beyondgloss {command}; pass "
                               f"--overwrite_output_dir to replace it, or choose another {option}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".incomplete-{folder.name}."))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the output gets a new folder's usual permissions
    try:
        write(staging)
        mark_output_dir(staging, command)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = None
    if folder.is_dir() and os.listdir(folder):
        aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".replaced-{folder.name}."))
        os.replace(folder, aside / folder.name)
    elif folder.is_dir():
        folder.rmdir()  # an empty folder: renaming onto it is not allowed everywhere
    os.replace(staging, folder)
    if aside is not None:
        shutil.rmtree(aside)

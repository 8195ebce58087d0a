"""One run per output folder: a lock file that names its holder (process id and host) and outlives no process.

Two training runs started in the same folder would interleave their log lines and overwrite each other's checkpoints.
The first to lock the folder ([`lock_output_dir`]) writes `LOCK_FILE` there with its pid, host and start time and
holds an exclusive `flock` on it for as long as it lives; the second is refused with one line naming the holder.

A lock file left by a process that was killed (kill -9, a lost machine) is stale: the kernel dropped its `flock` when
the process ended, and on the same host its pid is gone. Such a lock is taken over with a warning. A lock written on
another host cannot be checked from here (file locks over network file systems are not reliable), so it is refused
with the way to clear it. Where `fcntl` is missing (Windows), the pid check alone decides.
"""

import atexit
import json
import logging
import os
import socket
import time
from pathlib import Path

from ._common import CommandError

__all__ = ["LOCK_FILE", "folder_in_use", "lock_output_dir", "release_output_dir"]

logger = logging.getLogger(__name__)

LOCK_FILE = ".beyondgloss_lock"
# folder (resolved) -> open file object holding the flock; one command per process, but tests run many in one.
_HELD: dict[str, object] = {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _try_flock(handle) -> bool:
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
            if holder else "an unreadable lock")


def lock_output_dir(folder: Path, option: str = "--output_dir") -> None:
    """Locks `folder` (which exists) for this process until it ends or [`release_output_dir`] is called.

    Raises:
        CommandError: another live process holds the folder (the message names it and the lock file), or a process on
            another host does and cannot be checked from here.
    """
    key = str(Path(folder).resolve())
    if key in _HELD:
        return
    path = Path(folder) / LOCK_FILE
    host, me = socket.gethostname(), os.getpid()
    while True:
        handle = open(path, "a+", encoding="utf-8")
        locked = _try_flock(handle)
        handle.seek(0)
        holder = _holder(handle.read())
        same_file = os.path.exists(path) and os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        if locked and not same_file:
            handle.close()  # the holder released and deleted the file between our open and our flock: try again
            continue
        break
    pid = holder.get("pid")
    alive_here = holder.get("host") == host and isinstance(pid, int) and pid != me and _pid_alive(pid)
    elsewhere = bool(holder) and holder.get("host") != host
    if not locked or (alive_here and not _flock_available()) or elsewhere:
        handle.close()
        where = (f"; if that run is gone (its machine stopped), delete {path}" if elsewhere else
                 "; wait for it to end, or choose another " + option)
        raise CommandError(f"{option} {folder} is in use by another beyondgloss run ({_describe(holder)}; lock file "
                           f"{path}){where}")
    if holder and pid != me:
        logger.warning("%s: taking over the lock of %s, which ended without releasing it (killed or crashed); its "
                       "complete checkpoints are kept", folder, _describe(holder))
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": me, "host": host, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    handle.flush()
    _HELD[key] = (handle, path)


def folder_in_use(folder: Path) -> str | None:
    """Who holds `folder` (a description of the live run), or None; reads the lock without taking or writing it, for
    commands that only read a run's folder (`beyondgloss push`)."""
    path = Path(folder) / LOCK_FILE
    if str(Path(folder).resolve()) in _HELD or not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        holder = _holder(handle.read())
        if _flock_available():
            if not _try_flock(handle):
                return _describe(holder)
            return None
    pid = holder.get("pid")
    alive = holder.get("host") == socket.gethostname() and isinstance(pid, int) and _pid_alive(pid)
    return _describe(holder) if alive else None


def _flock_available() -> bool:
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return True


def release_output_dir(folder: Path | None = None) -> None:
    """Deletes the lock file of `folder` (every folder this process locked when None) and drops its lock."""
    keys = list(_HELD) if folder is None else [str(Path(folder).resolve())]
    for key in keys:
        entry = _HELD.pop(key, None)
        if entry is None:
            continue
        handle, path = entry
        try:
            os.unlink(path)  # before closing: a waiting process then finds a new file, never this one unlocked
        except FileNotFoundError:
            pass
        handle.close()


atexit.register(release_output_dir)

"""Files the commands write: replaced atomically through a temporary file named after the writing process, and the
temporary files of a killed process removed by the next run.

A temporary file is ``.<name>.tmp-<pid>`` next to its target ``<name>``. A process killed while writing (SIGKILL,
out of memory, a lost node) leaves it behind; :func:`remove_stale_temporaries` removes such files when their
process no longer exists, and only files of that form for the targets it is given, in the folder it is given.

A folder that one process writes into (a training run's ``--out``) is held by :func:`exclusive_folder` for as long
as it writes, so that a second process started on the same folder (a rerun while an orphaned worker still trains)
stops at once instead of interleaving its checkpoints with the first one's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

from .errors import FolderInUseError

TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.tmp-(?P<pid>[1-9][0-9]*)")
LOCK_NAME = ".lock"


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """``write(handle)`` into a temporary file in ``path``'s folder, fsync, then rename it over ``path``: a crash
    never leaves a torn file, and a failed write leaves ``path`` as it was. An OS error (a read-only or full disk,
    a folder that cannot be made) is raised naming ``path``, not the temporary file."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        _discard(temporary)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    except BaseException:
        _discard(temporary)
        raise


def _discard(temporary: Path) -> None:
    # The write has already failed; a temporary that cannot be removed either (its folder is gone or read-only)
    # must not hide that first error.
    with contextlib.suppress(OSError):
        temporary.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if os.name != "posix":
        return True  # no cheap, harmless probe: keep the file (on Windows os.kill would terminate the process)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no process id can be
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, targets: Iterable[str]) -> list[Path]:
    """Remove from ``folder`` the temporary files of ``targets`` (``.<target>.tmp-<pid>``) whose process is no
    longer alive; those of a live process (one writing now) and every other file are kept. Returns the removed
    files."""
    folder, targets = Path(folder), set(targets)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = TEMPORARY_NAME.fullmatch(entry.name)
        if (match and match["target"] in targets and entry.is_file() and not entry.is_symlink()
                and not process_alive(int(match["pid"]))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def path_under(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it lies under ``root`` once both are resolved (``..`` and symlinks followed; an
    absolute ``relative`` is tested as it is), else None."""
    path = Path(root) / relative
    return path if path.resolve().is_relative_to(Path(root).resolve()) else None


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike, what: str = "a run"):
    """Hold ``folder/.lock`` (an OS file lock: released when the process ends, however it ends) while the block
    runs; if another process holds it, raise at once naming the folder."""
    lock = FileLock(Path(folder) / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderInUseError(f"{folder} is in use: another process is writing {what} into it (it holds "
                               f"{Path(folder) / LOCK_NAME}); wait for it to end or stop it, or use another "
                               f"folder") from None
    try:
        yield
    finally:
        lock.release()

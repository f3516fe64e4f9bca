"""Files the commands write: replaced atomically through a temporary file named after the writing process, and the
temporary files of a killed process removed by the next run.

A temporary file is ``.<name>.tmp-<pid>`` next to its target ``<name>``. A process killed while writing (SIGKILL,
out of memory, a lost node) leaves it behind; :func:`remove_stale_temporaries` removes such files when their
process no longer exists, and only files of that form for the targets it is given, in the folder it is given.

A folder that one process writes into (a training run's ``--out``) is held by :func:`exclusive_folder` for as long
as it writes, so that a second process started on the same folder (a rerun while an orphaned worker still trains)
stops at once instead of interleaving its checkpoints with the first one's.

Links in an output folder are never written through: a symbolic link (or a second hard link) there would carry a
write to a file elsewhere. A file replaced whole (:func:`write_atomically`) replaces a link at its name and leaves
what it pointed to as it was; a file appended to (:func:`append_line`), a temporary file and a subfolder
(:func:`output_folder`) that is a link are refused with :class:`LinkRefusedError`, as is any link a command checks
for before it starts (:func:`refuse_links`), so that a long run stops at once rather than at its end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

from .errors import FolderInUseError, JnaFastError

TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.tmp-(?P<pid>[1-9][0-9]*)")
LOCK_NAME = ".lock"
# Opening never follows a symbolic link (it fails instead) nor waits for a reader (a FIFO planted there).
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class LinkRefusedError(JnaFastError):
    """A file or folder a command would write into is a link: writing through it would change a file elsewhere."""

    def __init__(self, path: str | os.PathLike, what: str = "a symbolic link"):
        super().__init__(f"{path}: {what}, not written through (what it leads to is left as it is); remove it or "
                         f"move it away, or write elsewhere")


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
        handle = open_unlinked(temporary)  # a link planted at the temporary's name is refused, and kept
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    try:
        with handle:
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


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """:func:`write_atomically` of ``text`` in UTF-8."""
    data = text.encode("utf-8")
    write_atomically(path, lambda handle: handle.write(data))


def open_unlinked(path: Path, append: bool = False) -> BinaryIO:
    """``path`` opened for writing (emptied first, or ``append``ed to), created if absent; LinkRefusedError when it
    is a symbolic link, a hard link (a file with another name, whose content would change too) or not a regular
    file. The checks hold for the file actually opened: nothing is written or truncated before them."""
    flags = os.O_WRONLY | os.O_CREAT | _NO_FOLLOW | (os.O_APPEND if append else 0)
    if not hasattr(os, "O_NOFOLLOW"):  # no way to open without following: look first
        refuse_links([path])
    try:
        descriptor = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():  # EMLINK: FreeBSD's O_NOFOLLOW
            raise LinkRefusedError(path) from None
        raise
    status = os.fstat(descriptor)
    problem = ("not a regular file" if not stat.S_ISREG(status.st_mode)
               else f"a file with {status.st_nlink} names (hard links)" if status.st_nlink > 1 else None)
    if problem:
        os.close(descriptor)
        raise LinkRefusedError(path, problem)
    if not append:
        os.ftruncate(descriptor, 0)
    return open(descriptor, "ab" if append else "wb")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to the text file ``path`` (created if absent), never through a link
    (:func:`open_unlinked`)."""
    with open_unlinked(Path(path), append=True) as handle:
        handle.write((line + "\n").encode("utf-8"))


def refuse_links(paths: Iterable[str | os.PathLike]) -> None:
    """Raise LinkRefusedError naming the first of ``paths`` that is a symbolic link: a command checks what it will
    write into before it starts."""
    for path in paths:
        if Path(path).is_symlink():
            raise LinkRefusedError(path)


def output_folder(root: str | os.PathLike, *names: str) -> Path:
    """``root/names...``, made where absent (``root`` too); LinkRefusedError when any of ``names`` is a symbolic
    link, so that what is written into the folder stays under ``root``."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        folder = folder / name
        refuse_links([folder])  # before: a link leading nowhere would fail mkdir with a vaguer error
        folder.mkdir(exist_ok=True)
        refuse_links([folder])  # and after: one planted meanwhile
    return folder


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

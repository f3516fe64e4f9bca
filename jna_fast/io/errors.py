"""Errors about bad input data (videos, rawframes, list files) and the on_error="raise"|"skip" policy.

Every problem is reported with the place it comes from (``file`` or ``file:line``), so a user can fix the input.
With ``on_error="skip"`` the offending item is dropped, a warning is logged at once and the count is reported at the
end of each epoch; nothing is ever replaced by zeros or given a wrong label. A skipped clip's batch row is filled by
another real clip of the same shard, with its own label and flagged (``ClipBatch.replaced``), so that every rank of a
distributed run makes the same number of steps (jna_fast/data/loader.py).
"""

from __future__ import annotations

import logging
import threading

from ..errors import JnaFastError

logger = logging.getLogger("jna_fast.data")

ON_ERROR_CHOICES = ("raise", "skip")


class DataError(JnaFastError, ValueError):
    """Bad input data; the message names the file (and the line, for list files).

    A ValueError (and a ``jna_fast.errors.JnaFastError``): code that catches ValueError for bad arguments catches
    it too. Whether the loader raises it or skips the clip is its ``on_error``.
    """


class InvalidListLine(DataError):
    """A list line that contradicts the dataset, never skipped whatever on_error says: a path leading out of the
    folder it must lie in, or a label out of range."""


def location(path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def list_file_lines(path):
    """(line number, text) of each line of a list file, read as UTF-8; a byte-order mark at its start (which
    Windows editors write) is dropped, and a line that is not UTF-8 is a DataError naming it."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{location(path, number)}: not UTF-8 text ({error.reason} at byte {error.start + 1} "
                                f"of the line)") from None
            yield number, text


class IssueLog:
    """Applies the on_error policy: raise at once, or warn, remember and count (thread-safe)."""

    def __init__(self, on_error: str):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        self._lock = threading.Lock()
        self.issues: list[str] = []

    def report(self, message: str) -> None:
        """Raise DataError(message) under "raise"; log a warning and count it under "skip"."""
        if self.on_error == "raise":
            raise DataError(message)
        with self._lock:
            self.issues.append(message)
        logger.warning("skipped: %s", message)

    def take(self) -> list[str]:
        """The issues recorded since the last call (and forget them)."""
        with self._lock:
            issues, self.issues = self.issues, []
        return issues

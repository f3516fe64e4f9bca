"""What every command shares: how it reports an error, and how it checks the numbers, devices and output paths it is
given.

The error policy of every command (train, evaluate, predict, ablate, export, flow extract, data.synthetic): a
failure due to its input, its files or its options (jna_fast's own errors, :class:`jna_fast.errors.JnaFastError` and
the ValueErrors of its checks; OS errors such as a missing input, a read-only or full disk; a missing optional
dependency) prints one line ``error: <file or option>: <problem>`` on stderr and exits with status 2. The
traceback is printed too only with ``--debug`` or ``JNA_FAST_DEBUG=1``. Anything else is a bug, and keeps its
traceback.

This module imports only the standard library at load time (torch only to check a device), so that the light
commands stay light.
"""

from __future__ import annotations

import argparse
import math
import os
import reprlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import JnaFastError

DEBUG_VARIABLE = "JNA_FAST_DEBUG"
ERROR_STATUS = 2
REPORTED_ERRORS = (JnaFastError, ValueError, OSError, ImportError)

# What an error message shows of a value it was given: a few items of a list, a few levels of nesting, the ends of
# a long string; whatever the value's size, formatting it costs as little.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 80, 80, 40
for _kind in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_SHOWN, _kind, 6)


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"on an error, print its traceback as well (or set {DEBUG_VARIABLE}=1)")


def run_command(body: Callable[[], int | None], debug: bool = False) -> int:
    """``body()``'s exit status (None: 0); one of :data:`REPORTED_ERRORS` becomes one ``error:`` line and status 2,
    with the traceback before it when ``debug`` or ``JNA_FAST_DEBUG`` asks for it."""
    try:
        status = body()
    except REPORTED_ERRORS as error:
        report_error(error, debug)
        return ERROR_STATUS
    return 0 if status is None else status


def report_error(error: BaseException, debug: bool = False) -> None:
    """Print ``error: ...`` on one line (and, when debugging, the traceback first)."""
    if debug or os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0"):
        traceback.print_exception(error)
    print(f"error: {describe(error)}", file=sys.stderr, flush=True)


def describe(error: BaseException) -> str:
    """The error's file (for an OS error) and problem, on one line."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        where = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
        message = f"{where}: {error.strerror}"
    else:
        message = str(error) or type(error).__name__
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def shown(value) -> str:
    """``repr(value)`` bounded in length (long strings and collections cut with "..."), for error messages: what
    it prints is short, and its quotes and escapes show invisible characters (a byte-order mark as ``\\ufeff``)."""
    return _SHOWN.repr(value)


def visible(text) -> str:
    """``text`` (a path, say) as it is when every character of it prints, else quoted and escaped as ``repr``
    does: a byte-order mark, a zero-width or no-break space, a control character would otherwise print as nothing
    (or as a plain space) and leave a "not found" unexplained."""
    text = str(text)
    return text if text.isprintable() else repr(text)


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: at least ``minimum`` / at most ``maximum`` (inclusive), above
    ``above`` / below ``below`` (exclusive); a float must also be finite (no nan, no inf)."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None

    def __str__(self) -> str:
        return " and ".join(f"{sign} {bound}" for sign, bound in ((">=", self.minimum), (">", self.above),
                                                                  ("<=", self.maximum), ("<", self.below))
                            if bound is not None)

    def violation(self, value: int | float) -> str | None:
        """Why ``value`` is outside the range ("must be a finite number > 0, got nan"), or None."""
        inside = ((self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
                  and (self.maximum is None or value <= self.maximum) and (self.below is None or value < self.below))
        if isinstance(value, float):
            if inside and math.isfinite(value):
                return None
            wanted = " ".join(filter(None, ("a finite number", str(self))))
        else:
            if inside:
                return None
            wanted = f"an integer {self}"
        return f"must be {wanted}, got {value!r}"


def number_in(kind: type, **bounds) -> Callable[[str], int | float]:
    """An argparse ``type``: a ``kind`` (int or float) in ``Range(**bounds)``; argparse's error names the option."""
    allowed = Range(**bounds)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        problem = allowed.violation(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> None:
    """Refuse, naming ``option``, a folder to write into that cannot be: ``path`` exists and is not a folder, or
    the nearest existing path above it is not a folder or not writable. Commands call it before their work, so
    that a bad output place fails at once rather than after hours."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: exists and is not a folder; give a folder to write into")
    _check_creatable(path, option)


def check_output_file(path: str | os.PathLike, option: str = "--out") -> None:
    """Refuse, naming ``option``, a file to write that cannot be: ``path`` is a folder, or the nearest existing
    path above it is not a folder or not writable (checked before the work, as :func:`check_output_folder`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give the file to write")
    _check_creatable(path.parent, option, path)


def _check_creatable(folder: Path, option: str, target: Path | None = None) -> None:
    """``folder`` exists and is writable, or can be made: its nearest existing ancestor is a writable folder."""
    target = folder if target is None else target
    existing = next((above for above in (folder, *folder.parents) if above.exists()), None)
    if existing is None:  # nothing exists above it: a relative path whose working folder is gone
        return
    if not existing.is_dir():
        raise ValueError(f"{option} {target}: {existing} is not a folder, so {folder} cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        consequence = "" if existing == folder else f", so {folder} cannot be made"
        raise ValueError(f"{option} {target}: the folder {existing} is not writable{consequence}")


def torch_device(text: str) -> str:
    """An argparse ``type``: "cpu", or "cuda" / "cuda:N" when this torch can use that GPU."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expects cpu, cuda or cuda:N, got {text!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expects cpu, cuda or cuda:N, got {text!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
            raise argparse.ArgumentTypeError(f"{text}: no CUDA device is usable here (torch {torch.__version__}, "
                                             f"{built})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA devices")
    return text

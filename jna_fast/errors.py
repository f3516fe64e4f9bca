"""The base of jna_fast's own errors.

Every error jna_fast raises about a user's input, files or run derives from :class:`JnaFastError` (or is a
ValueError of one of its checks), so that the commands report it as one ``error:`` line (jna_fast/cli.py) while a
bug keeps its traceback. This module imports nothing, so that any module can use it.
"""


class JnaFastError(Exception):
    """An error of jna_fast about the input, the files or the run; its message names the file or option."""


class FolderInUseError(JnaFastError):
    """Another live process is writing into the folder a run was asked to write into."""

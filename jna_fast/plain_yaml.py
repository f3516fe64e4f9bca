"""Reading a YAML file that a user wrote (a configuration file), so that no file can cost more than a glance.

YAML lets a small file describe a huge value: an anchor (``&a``) names a node and an alias (``*a``) repeats it, so
nine lines of nine aliases each stand for 9**9 strings (the "billion laughs"); whatever formats or walks that value
(an error message, a type conversion) runs out of memory. A configuration file is a short list of ``option: value``
lines, so :func:`read_plain_yaml` accepts only that kind of document: at most :data:`MAX_BYTES` bytes, nested at
most :data:`MAX_DEPTH` levels, without anchors, aliases or repeated keys, and only the plain types of
``yaml.safe_load`` (no ``!!python`` tags). Anything else is a ValueError naming the file (and the line), raised
before the value is built. A UTF-8 byte-order mark at its start is dropped.
"""

from __future__ import annotations

import os

import yaml

MAX_BYTES = 32 * 1024  # eight times the largest recipe in configs/
MAX_DEPTH = 8


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a configuration file may not hold (an anchor, an alias, deep nesting, a repeated key)."""


class _PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors, aliases, repeated keys and nesting deeper than MAX_DEPTH, as it
    composes the document: before any value is built."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="an anchor or alias (&name, *name)", problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nesting deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise _Refused(problem=f"key {key.value[:80]!r} given twice", problem_mark=key.start_mark)
                seen.add(key.value)
        return super().construct_mapping(node, deep)


def read_plain_yaml(path: str | os.PathLike, label: str):
    """The value of the YAML file ``path`` (see the module docstring for what is accepted); errors start with
    ``label`` (``--config FILE``, say) and are one line. A missing file is a FileNotFoundError."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{label}: larger than {MAX_BYTES // 1024} KiB; not read (a configuration file is a short "
                         f"list of option: value lines)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{label}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    try:
        return yaml.load(text, Loader=_PlainLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join((getattr(error, "problem", None) or str(error)).split())
        verdict = "not accepted" if isinstance(error, _Refused) else "not valid YAML"
        raise ValueError(f"{label}: {verdict}{where}: {problem}") from None
    except ValueError as error:  # a value YAML reads but Python refuses: a date out of range, a 5000-digit integer
        raise ValueError(f"{label}: not accepted: {' '.join(str(error).split())[:200]}") from None

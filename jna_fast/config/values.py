"""A value from YAML or the command line as its option's type, checked against the option's choices and range; the
error names the option and where the value came from, and shows at most a bounded part of the value."""

from __future__ import annotations

import typing

from ..cli import shown
from .schema import Leaf

NONE_WORDS = ("none", "null")
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(leaf: Leaf, value, where: str):
    """``value`` as option ``leaf``'s type: a value of the wrong shape (a list for a number or a path, say) is
    refused before anything converts or formats it whole."""
    if value is None or (isinstance(value, str) and value.lower() in NONE_WORDS and leaf.optional):
        if not leaf.optional:
            raise ValueError(f"{where}: option {leaf.path} may not be empty")
        return None
    try:
        if leaf.is_tuple:
            if isinstance(value, str):
                value = [part for part in value.replace(" ", "").split(",") if part]
            elif not isinstance(value, (list, tuple)):
                value = [value]
            items = typing.get_args(leaf.kind)
            if Ellipsis not in items and len(value) != len(items):
                raise ValueError(value)
            result = tuple(_scalar(items[0], part) for part in value)
        else:
            result = _scalar(leaf.kind, value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where}: option {leaf.path} expects {type_name(leaf.kind)}, got {shown(value)}") from None
    if leaf.choices and result not in leaf.choices:
        raise ValueError(f"{where}: option {leaf.path} must be one of {', '.join(map(str, leaf.choices))}, got "
                         f"{shown(result)}")
    for number in (result if leaf.is_tuple else (result,)):
        if isinstance(number, (int, float)):
            problem = leaf.range.violation(number)
            if problem:
                raise ValueError(f"{where}: option {leaf.path}{' item' if leaf.is_tuple else ''} {problem}")
    return result


def type_name(kind) -> str:
    if typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        count = "" if Ellipsis in items else f"{len(items)} "
        return f"a list of {count}{items[0].__name__}"
    return kind.__name__


def _scalar(kind: type, value):
    """One value as ``kind`` (bool, int, float or str); a TypeError or ValueError when it is not one: a list or a
    mapping is never turned into its text, and a yes/no is not a number or a path."""
    if isinstance(value, (list, tuple, dict, set, bytes)):
        raise TypeError(type(value).__name__)
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError("bool")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return kind(value)


def shown_value(value) -> str:
    """A value as the help and error messages write it (a list as a,b,c)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

"""How an option is declared: a dataclass field with its default, help, choices, range and whether a resumed run
may change it.

The configuration's sections, each model part's options and each dataset kind's options are dataclasses of such
fields; :mod:`jna_fast.config` reads them all into one schema that feeds the command line, YAML files and
checkpoints (docs/design.md §9). This module imports only the standard library, so that every layer may declare
options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field

from .cli import Range


def option(default, help: str, *, choices=None, resumable: bool = False, metavar: str | None = None,
           minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           below: float | None = None):
    """A configuration field: its default, help, the range of its values (of each item, for a tuple) and whether
    a resumed run may change it. A list default is stored as a tuple."""
    metadata = {"help": help, "choices": choices, "resumable": resumable, "metavar": metavar,
                "range": Range(minimum, maximum, above, below)}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(spec: dataclasses.Field):
    """The default value of an option field."""
    return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a part or dataset kind that has none."""

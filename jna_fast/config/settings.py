"""The resolved configuration: read-only sections whose options are attributes (``cfg.optim.lr``,
``cfg.model.sharing.after``, ``cfg.data.synthetic.classes``), with their flat dotted form for comparisons and
overrides, and their nested plain form for YAML files and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator

from ..models import registry as parts

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"


class Section:
    """Options of one section as read-only attributes; sub-sections are Sections too."""

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no option {name!r} (it has "
                                 f"{', '.join(self._values)})") from None

    def __setattr__(self, name, value):
        raise AttributeError("a configuration is read-only: make another with Config.with_overrides")

    def __reduce__(self):
        return type(self), (self._values,)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._values == self._values

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def flat(self, prefix: str = "") -> Iterator[tuple[str, object]]:
        """(dotted path, value) of every option, sub-sections included."""
        for name, value in self._values.items():
            if isinstance(value, Section):
                yield from value.flat(f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", value

    def to_dict(self) -> dict:
        """The nested plain form (lists for tuples), as YAML and checkpoints hold it."""
        return {name: value.to_dict() if isinstance(value, Section) else _plain(value)
                for name, value in self._values.items()}


class Part(Section):
    """The part chosen for one kind: its ``name`` and its options (``.options``: the part's Options instance)."""

    __slots__ = ("_kind",)

    def __init__(self, values: dict, kind: str):
        super().__init__(values)
        object.__setattr__(self, "_kind", kind)

    def __reduce__(self):
        return Part, (self._values, self._kind)

    def __eq__(self, other) -> bool:
        return super().__eq__(other) and other._kind == self._kind

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def options(self):
        values = {name: value for name, value in self._values.items() if name != "name"}
        return parts.options(self._kind, self.name)(**values)


class Config(Section):
    """The whole configuration: sections data, model, optim, run, eval (docs/design.md §9)."""

    __slots__ = ()

    def flat_values(self) -> dict[str, object]:
        return dict(self.flat())

    def to_dict(self) -> dict:
        return {VERSION_KEY: SCHEMA_VERSION, **super().to_dict()}

    def differences(self, other: "Config", ignored=frozenset()) -> dict[str, tuple]:
        """Options whose values differ, other than the ``ignored`` paths: path -> (self's, other's)."""
        mine, theirs = self.flat_values(), other.flat_values()
        return {path: (mine.get(path), theirs.get(path)) for path in dict.fromkeys([*mine, *theirs])
                if path not in ignored and mine.get(path) != theirs.get(path)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value

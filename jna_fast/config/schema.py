"""One schema of every option, read from the declarations (docs/design.md §9): the static sections, the model
section with one sub-section per part kind (its ``name`` and the options of the parts registered under it), and the
data section with one sub-section per dataset kind that has options. Each option is a :class:`Leaf` at a dotted
path (``model.fusion.weights``); the command line, YAML files and checkpoints all go through it."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from ..cli import Range
from ..data.datasets import DATASETS, trainable_kinds
from ..data.options import DataOptions
from ..models import registry as parts
from ..models.options import DEFAULT_PARTS, ModelOptions
from ..ops import BACKEND_NAMES
from ..options import default_of
from .sections import EvalOptions, OptimOptions, RunOptions

SECTIONS = {"data": DataOptions, "model": ModelOptions, "optim": OptimOptions, "run": RunOptions,
            "eval": EvalOptions}
# Choices that registries fill: the declarations cannot import them without importing their layers.
REGISTERED_CHOICES = {"data.dataset": trainable_kinds, "model.op_backend": lambda: BACKEND_NAMES}


@dataclass(frozen=True)
class Leaf:
    """One option: its path, declaration, value type, whether it may be None, and whom it belongs to: every
    configuration (``owner`` None), the parts of ``owner = ("model.sharing", names)``, or the dataset kind of
    ``owner = ("data.dataset", (kind,))``."""

    path: str
    spec: dataclasses.Field
    kind: type
    optional: bool
    choices: tuple | None = None
    owner: tuple[str, tuple[str, ...]] | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_tuple(self) -> bool:
        return typing.get_origin(self.kind) is tuple

    @property
    def resumable(self) -> bool:
        return self.spec.metadata["resumable"]

    @property
    def range(self):
        return self.spec.metadata["range"]

    def default(self, owner_name: str | None = None):
        """The declared default; for a part option, that of part ``owner_name`` (the first owner's when None)."""
        if self.owner is None or owner_name is None or self.owner[0] == "data.dataset":
            return default_of(self.spec)
        kind = self.owner[0].split(".")[1]
        return default_of(_fields(parts.options(kind, owner_name))[self.name])


def _fields(options: type) -> dict[str, dataclasses.Field]:
    return {spec.name: spec for spec in dataclasses.fields(options)}


def _value_type(options: type, name: str) -> tuple[type, bool]:
    """(the value type, whether None is allowed) of field ``name`` of ``options``, from its annotation."""
    hint = typing.get_type_hints(options)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return [arg for arg in typing.get_args(hint) if arg is not type(None)][0], True
    return hint, False


def _section_leaves(prefix: str, options: type, owner=None) -> dict[str, Leaf]:
    leaves = {}
    for spec in dataclasses.fields(options):
        path = f"{prefix}.{spec.name}"
        kind, optional = _value_type(options, spec.name)
        choices = REGISTERED_CHOICES.get(path, lambda: spec.metadata["choices"])()
        leaves[path] = Leaf(path, spec, kind, optional, tuple(choices) if choices else None, owner)
    return leaves


def _part_leaves(kind: str) -> dict[str, Leaf]:
    """``model.<kind>.name`` and the options of every part of ``kind``; an option that two parts declare must have
    one type (each keeps its own default)."""
    prefix = f"model.{kind}"
    name_field = dataclasses.field(default=DEFAULT_PARTS[kind], metadata={
        "help": f"the {kind.replace('_', ' ')} part", "choices": None, "resumable": False, "metavar": None,
        "range": Range()})
    leaves = {f"{prefix}.name": Leaf(f"{prefix}.name", name_field, str, False, parts.names(kind))}
    for name in parts.names(kind):
        for path, leaf in _section_leaves(prefix, parts.options(kind, name), (prefix, (name,))).items():
            known = leaves.get(path)
            if known is not None and (known.kind, known.optional) != (leaf.kind, leaf.optional):
                raise TypeError(f"{path}: parts {known.owner[1]} and {name!r} declare it with different types")
            owners = (known.owner[1] if known else ()) + (name,)
            leaves[path] = dataclasses.replace(known or leaf, owner=(prefix, owners))
    return leaves


@functools.cache
def leaves() -> Mapping[str, Leaf]:
    """Every option of the configuration, by path, in the order of the sections."""
    result: dict[str, Leaf] = {}
    for section, options in SECTIONS.items():
        result.update(_section_leaves(section, options))
        if section == "data":
            for kind in DATASETS.names():
                result.update(_section_leaves(f"data.{kind}", DATASETS.options(kind), ("data.dataset", (kind,))))
        if section == "model":
            for kind in parts.KINDS:
                result.update(_part_leaves(kind))
    return types.MappingProxyType(result)


def leaf(path: str, where: str) -> Leaf:
    """The option at ``path``; an unknown one is an error naming ``where`` it was given."""
    found = leaves().get(path)
    if found is None:
        raise ValueError(f"{where}: unknown option {path!r} (python -m jna_fast.train --help lists them)")
    return found

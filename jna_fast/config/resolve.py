"""From option values to a checked :class:`Config` (docs/design.md §9).

Values come, lowest precedence first, from the options' declared defaults, the dataset kind's recipe, a command's
own defaults (the ablation's budget, say), a YAML file and the command line. The part of each kind is chosen first;
then each part takes its own options from those layers, ignoring the options of parts not chosen that come from a
recipe or a command's defaults. An option the user gave (in a file or on the command line) that the chosen dataset
kind or part would not read is refused unless it keeps its default (:func:`check_options_apply`), so that a saved
config.yaml is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..data.datasets import dataset_spec
from ..flow.names import DEFAULT_EXTRACTION_ALGORITHM, DEFAULT_ONLINE_ALGORITHM
from ..models import registry as parts
from .schema import SECTIONS, leaves
from .settings import Config, Part, Section


def resolve(values: Mapping[str, object], defaults: Mapping[str, object] | None = None) -> Config:
    """A Config from ``values`` (path -> value, already of their options' types) over a command's ``defaults``,
    the dataset kind's recipe and the declared defaults, checked as a whole."""
    layers = {**(defaults or {}), **values}
    spec = dataset_spec(layers.get("data.dataset", leaves()["data.dataset"].default()))
    layers = {**spec.recipe, **layers}
    chosen = {kind: layers.get(f"model.{kind}.name", leaves()[f"model.{kind}.name"].default())
              for kind in parts.KINDS}
    sections = {}
    for section in SECTIONS:
        sections[section] = Section(_section_values(section, layers, chosen, spec.name))
    cfg = Config(sections)
    _check(cfg, spec)
    return cfg


def _section_values(section: str, layers: Mapping, chosen: Mapping[str, str], dataset: str) -> dict:
    values = {}
    for path, leaf in leaves().items():
        head, _, rest = path.partition(".")
        if head == section and leaf.owner is None and "." not in rest:
            values[rest] = layers.get(path, leaf.default())
    if section == "data":
        if values["flow_algorithm"] is None:
            online = values["flow"] == "online"
            values["flow_algorithm"] = DEFAULT_ONLINE_ALGORITHM if online else DEFAULT_EXTRACTION_ALGORITHM
        own = _owned("data.dataset", dataset, layers)
        if own:
            values[dataset] = Section(own)
    if section == "model":
        for kind, name in chosen.items():
            values[kind] = Part({"name": name, **_owned(f"model.{kind}", name, layers)}, kind)
    return values


def _owned(chooser: str, chosen: str, layers: Mapping) -> dict:
    """The options that belong to ``chosen`` (a part or dataset kind picked by ``chooser``), by name, from the
    layers or the owner's own defaults."""
    return {leaf.name: layers.get(path, leaf.default(chosen)) for path, leaf in leaves().items()
            if leaf.owner and leaf.owner[0] == chooser and chosen in leaf.owner[1]}


def _check(cfg: Config, spec) -> None:
    data = cfg.data
    spec.check(data._values, getattr(data, spec.name, None))
    for kind in parts.KINDS:
        getattr(cfg.model, kind).options  # a part's Options may refuse a combination of its values
    if cfg.model.streams != "both":
        for kind in parts.KINDS:
            part = getattr(cfg.model, kind)
            if getattr(parts.lookup(kind, part.name), "NEEDS_BOTH_STREAMS", False):
                raise ValueError(f"--model.streams {cfg.model.streams}: the {kind.replace('_', ' ')} part "
                                 f"{part.name} needs both streams (choose another --model.{kind}.name)")


def unused_reason(path: str, cfg: Config) -> str | None:
    """Why option ``path`` would change nothing in ``cfg`` (it belongs to another dataset kind or part, or the
    dataset kind does not read it), or None."""
    leaf = leaves()[path]
    if leaf.owner is None:
        if path.startswith("data."):
            return dataset_spec(cfg.data.dataset).unused_reason(leaf.name, cfg.data._values)
        return None
    chooser, owners = leaf.owner
    chosen = cfg.data.dataset if chooser == "data.dataset" else getattr(cfg.model, chooser.split(".")[1]).name
    if chosen in owners:
        return None
    flag = "--dataset" if chooser == "data.dataset" else f"--{chooser}.name"
    return f"applies to {flag} {'/'.join(owners)}, not {chosen}"


def check_options_apply(given: Mapping[str, object], cfg: Config, sources: str | Mapping[str, str]) -> None:
    """Refuse an option the user gave (``given``: path -> value) that ``cfg`` would not use, such as a list file
    for UCF101, unless it keeps its default. ``sources``: where the values come from, one for all or one per
    path."""
    for path, value in given.items():
        reason = unused_reason(path, cfg)
        leaf = leaves()[path]
        defaults = {leaf.default(owner) for owner in (leaf.owner[1] if leaf.owner else (None,))}
        if reason and _plain(value) not in {_plain(default) for default in defaults}:
            source = sources if isinstance(sources, str) else sources[path]
            raise ValueError(f"{source}: option {path} {reason}")


def _plain(value):
    return tuple(value) if isinstance(value, list) else value

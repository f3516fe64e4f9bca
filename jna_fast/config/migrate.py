"""Saved configurations of older schema versions, upgraded to the current one (docs/design.md §9.2).

A config.yaml or checkpoint carries ``schema_version``; one written before versions existed (version 1: one flat
mapping of option names, as ``python -m jna_fast.train`` wrote up to the sectioned configuration) has none. Each
step upgrades one version to the next; a saved configuration rebuilds the model it trained, whatever the defaults
are now.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..cli import shown
from .aliases import FLAT_NAMES, expand
from .schema import leaves
from .settings import SCHEMA_VERSION, VERSION_KEY

# Version-1 options added after configurations were first saved, with what a file without them meant.
V1_MEANING_WHEN_ABSENT = {"stitch_shared_fraction": 1.0}
# Version-1 options that the parts they configure own in version 2: kept only when that part is chosen.
V1_PART_OPTIONS = {
    "stitch_": "sharing",
    "attention_": "temporal_pooling",
}


def saved_version(values: Mapping, where: str) -> int:
    """The schema version of a saved mapping (1 when it has none and is flat)."""
    version = values.get(VERSION_KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"{where}: {VERSION_KEY} must be an integer 1..{SCHEMA_VERSION} (this jna_fast reads "
                         f"up to {SCHEMA_VERSION}), got {shown(version)}")
    return version


def upgrade(values: Mapping, where: str) -> dict:
    """``values`` (a saved configuration of any known version) as the current version's flat paths -> values."""
    version = saved_version(values, where)
    values = {key: value for key, value in values.items() if key != VERSION_KEY}
    for step in range(version, SCHEMA_VERSION):
        values = MIGRATIONS[step](values, where)
    return flatten(values, where)


def flatten(values: Mapping, where: str, prefix: str = "") -> dict:
    """A nested mapping as dotted paths -> values; a mapping where an option's value goes stays a value (its
    option refuses it)."""
    flat = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: option names must be text, got {shown(key)}")
        path = prefix + key
        if isinstance(value, Mapping) and path not in leaves():
            flat.update(flatten(value, where, path + "."))
        else:
            flat[path] = value
    return flat


def _v1_to_v2(values: dict, where: str) -> dict:
    """Flat version-1 names -> version-2 sections. The options of a part that the file's choice leaves out (the
    cross-stitch weights of a run without sharing, say) had no effect and are dropped, as are empty values of
    options that version 2 no longer leaves to the dataset (``backbone: null``: the recipe's)."""
    unknown = sorted(str(key) for key in values if key not in FLAT_NAMES)
    if unknown:
        raise ValueError(f"{where}: options unknown to this jna_fast: {unknown}")
    values = {**V1_MEANING_WHEN_ABSENT, **values}
    shares = values.get("share_after") not in ((), [])
    attends = values.get("consensus", "attention") == "attention"
    kept = {"sharing": shares, "temporal_pooling": attends}
    nested: dict = {}
    for name, value in values.items():
        part = next((part for prefix, part in V1_PART_OPTIONS.items() if name.startswith(prefix)), None)
        if (part and not kept[part]) or (value is None and name in V1_DATASET_DEFAULTED):
            continue
        for path, item in expand(name, value).items():
            _put(nested, path, item)
    return nested


# Version-1 options whose empty value meant "the dataset's default" (now the dataset kind's recipe).
V1_DATASET_DEFAULTED = ("backbone", "size", "num_segments", "share_after", "stitch_self_weight", "stitch_normalise",
                        "stitch_shared_fraction", "epochs", "optimizer", "lr", "weight_decay", "stitch_lr_scale")


def _put(nested: dict, path: str, value) -> None:
    *sections, name = path.split(".")
    for section in sections:
        nested = nested.setdefault(section, {})
    nested[name] = value


MIGRATIONS = {1: _v1_to_v2}

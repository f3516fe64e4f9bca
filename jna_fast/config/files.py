"""Configurations in YAML files: read (any schema version, checked by name and type; errors name the file and the
option) and written (the current version, every option of the chosen parts, atomically)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml

from ..cli import shown
from ..files import write_atomically
from ..plain_yaml import read_plain_yaml
from .migrate import upgrade
from .schema import SECTIONS, leaf
from .settings import SCHEMA_VERSION, VERSION_KEY, Config
from .values import coerce

CONFIG_NAME = "config.yaml"


def read_config_file(path: str | os.PathLike) -> dict:
    """The options in a YAML file as paths -> values. The file must be a small plain document
    (:func:`jna_fast.plain_yaml.read_plain_yaml`: no anchors or aliases); a sectioned mapping (``optim: {lr: ...}``)
    without ``schema_version`` is of the current version, a flat one (``lr: ...``) of version 1."""
    return checked_values(read_written_options(path), f"--config {path}")


def read_written_options(path: str | os.PathLike) -> dict:
    """The options in a YAML file (as :func:`read_config_file` reads it) as paths -> the values as written, not yet
    checked: what a file chooses can be looked at before it is checked (the ablation's variants name the parts they
    need)."""
    label = f"--config {path}"
    try:
        loaded = read_plain_yaml(path, label)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label}: no such file") from None
    except OSError as error:  # a folder, a file that may not be read: one line, not a traceback
        raise ValueError(f"{label}: {error.strerror or error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{label}: expected a mapping of option: value, got {type(loaded).__name__}")
    return written_paths(loaded, label)


def values_from_mapping(loaded: Mapping, where: str) -> dict:
    """A saved or written mapping (any version) as the current paths -> checked values."""
    return checked_values(written_paths(loaded, where), where)


def written_paths(loaded: Mapping, where: str) -> dict:
    """A saved or written mapping (any version) as the current paths -> the values as written."""
    loaded = _underscored(loaded, where)
    if VERSION_KEY not in loaded and any(key in SECTIONS for key in loaded):
        loaded = {VERSION_KEY: SCHEMA_VERSION, **loaded}
    return upgrade(loaded, where)


def checked_values(written: Mapping, where: str) -> dict:
    """Paths -> values as written, each checked and converted to its option's type."""
    return {path: coerce(leaf(path, where), value, where) for path, value in written.items()}


def _underscored(loaded: Mapping, where: str) -> dict:
    """Keys with - read as with _ (as on the command line); a key given both ways is an error."""
    result = {}
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: unknown option {shown(key)} (python -m jna_fast.train --help lists them)")
        name = key.replace("-", "_")
        if name in result:
            raise ValueError(f"{where}: option {name} is given twice (as {key!r} and with _ or -)")
        result[name] = _underscored(value, where) if isinstance(value, Mapping) else value
    return result


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved configuration as YAML, atomically."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))

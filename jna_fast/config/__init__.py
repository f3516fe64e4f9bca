"""The configuration: one schema of every option, feeding the command line, YAML files and checkpoints
(docs/design.md §9).

Sections: ``data`` (with ``data.<kind>`` for a dataset kind's own options, such as ``data.synthetic``), ``model``
(with one sub-section per part kind: ``model.backbone``, ``model.sharing``, ``model.spatial_pooling``,
``model.temporal_pooling``, ``model.fusion``, each its ``name`` and the chosen part's options), ``optim``, ``run`` and
``eval``. Each option is declared where it belongs (jna_fast/options.py says how): the sections' own in
jna_fast/config/sections.py, jna_fast/data/options.py and jna_fast/models/options.py, each part's and dataset kind's
in its module. Values come, lowest precedence first, from the declared defaults, the dataset kind's recipe, a
command's own defaults, a YAML file (``--config FILE``) and the command line; the resolved configuration is saved as
``OUT/config.yaml`` and in every checkpoint with its ``schema_version``, and files of older versions are upgraded
(jna_fast/config/migrate.py). Options marked ``resumable`` may change when a run resumes; the others must match
the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Mapping

from .command_line import (add_config_options, build_parser, given_options, normalised, parse_args,
                           parse_command_line)
from .files import (CONFIG_NAME, checked_values, read_config_file, read_written_options, save_config,
                    values_from_mapping)
from .resolve import check_options_apply, resolve
from .schema import leaves
from .settings import SCHEMA_VERSION, Config, Part, Section

__all__ = ["CONFIG_NAME", "Config", "Part", "SCHEMA_VERSION", "Section", "add_config_options", "build_parser",
           "check_options_apply", "checked_values", "config_from_dict", "given_options", "leaves", "normalised",
           "parse_args", "parse_command_line", "read_config_file", "read_written_options", "resolve",
           "resumable_paths", "save_config", "with_overrides"]


def config_from_dict(values: Mapping, where: str) -> Config:
    """The configuration saved in a checkpoint or config.yaml (any schema version); unknown options are an error."""
    return resolve(values_from_mapping(values, where))


def with_overrides(cfg: Config, overrides: Mapping, where: str) -> Config:
    """``cfg`` with ``overrides`` (by path or short alias) given by the user: they must apply to the result; the
    options of ``cfg`` that the overrides make moot (the sharing options of a variant without sharing) go."""
    given = normalised(overrides, where)
    result = resolve(given, cfg.flat_values())
    check_options_apply(given, result, where)
    return result


def resumable_paths() -> tuple[str, ...]:
    """The options a resumed run may change."""
    return tuple(path for path, leaf in leaves().items() if leaf.resumable)

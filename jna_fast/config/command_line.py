"""The configuration on the command line: one flag per option path (``--optim.lr``, ``--model.fusion.name``),
the flat names of schema version 1 as short aliases (``--lr``), a group per section."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ..cli import add_debug_option
from ..data.datasets import DATASETS
from .aliases import CONSENSUS_PARTS, RENAMED, expand
from .files import read_config_file
from .resolve import check_options_apply, resolve
from .schema import Leaf, leaf, leaves
from .settings import Config
from .values import coerce, shown_value

TRAIN_PROG = "python -m jna_fast.train"
ALIASES = {path: name for name, path in RENAMED.items()}
RESHAPED_DESTS = {"share_after": "alias.share_after", "consensus": "alias.consensus"}


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line of every option (defaults suppressed, so that only what was typed overrides)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="YAML file of options (sections as below, or the flat "
                        "names of the short aliases); options given on the command line win")
    add_debug_option(parser)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for path, option in leaves().items():
        section = path.rsplit(".", 1)[0]
        group = groups.get(section) or groups.setdefault(section, parser.add_argument_group(_title(option, section)))
        _add_option(group, option)
    _add_reshaped_aliases(groups["model"])
    return parser


def _title(option: Leaf, section: str) -> str:
    if option.owner and option.owner[0] == "data.dataset":
        return f"{section} (options of --dataset {option.owner[1][0]})"
    return section


def _add_reshaped_aliases(group) -> None:
    group.add_argument("--share-after", dest=RESHAPED_DESTS["share_after"], metavar="STAGES",
                       help="short for --model.sharing.name cross_stitch --model.sharing.after STAGES; empty: "
                            "--model.sharing.name none")
    group.add_argument("--consensus", dest=RESHAPED_DESTS["consensus"], choices=tuple(CONSENSUS_PARTS),
                       help="short for --model.temporal_pooling.name joint_attention (attention) or average")


def add_config_options(parser: argparse.ArgumentParser, names: tuple[str, ...], title: str):
    """Add the options ``names`` (paths or short aliases) to another command's ``parser``, in a group ``title``,
    with their flags, help and choices, and None when not given (read them back with :func:`given_options`)."""
    group = parser.add_argument_group(title)
    for name in names:
        _add_option(group, leaf(RENAMED.get(name, name), "add_config_options"), default=None)
    return group


def given_options(args: argparse.Namespace, names: tuple[str, ...], where: str) -> dict:
    """The options ``names`` that were given in ``args`` (added by :func:`add_config_options`): path -> value."""
    paths = [RENAMED.get(name, name) for name in names]
    return {path: coerce(leaf(path, where), getattr(args, path), where) for path in paths
            if getattr(args, path, None) is not None}


def _add_option(group, option: Leaf, **defaults) -> None:
    meta = option.spec.metadata
    flags = [f"--{option.path}"] + ([f"--{ALIASES[option.path].replace('_', '-')}"] if option.path in ALIASES else [])
    # Another command's own default (None: the checkpoint's value, say) replaces the configuration's in the help.
    notes = [] if "default" in defaults else [_default_note(option)]
    if str(meta["range"]):
        notes.append(f"{'each ' if option.is_tuple else ''}{meta['range']}")
    if option.owner and option.owner[0] != "data.dataset":
        notes.insert(0, f"{'/'.join(option.owner[1])}")
    help_text = meta["help"] + (f" ({'; '.join(filter(None, notes))})" if any(notes) else "")
    if option.kind is bool:
        group.add_argument(*flags, dest=option.path, action=argparse.BooleanOptionalAction, help=help_text,
                           **defaults)
        return
    # argparse compares the typed string with the choices: a numeric choice needs the value converted first.
    typed = {"type": option.kind} if option.choices and not isinstance(option.choices[0], str) else {}
    metavar = meta["metavar"] or (None if option.choices else option.name.upper())
    group.add_argument(*flags, dest=option.path, metavar=metavar, choices=option.choices, help=help_text,
                       **typed, **defaults)


def _default_note(option: Leaf) -> str:
    """The default, and the dataset kinds' recipes that change it."""
    default = option.default(option.owner[1][0] if option.owner and len(option.owner[1]) == 1 else None)
    recipes = [f"{kind}: {shown_value(DATASETS[kind].recipe[option.path])}" for kind in DATASETS.names()
               if option.path in DATASETS[kind].recipe and DATASETS[kind].recipe[option.path] != default]
    shown = [] if default is None else [f"default: {shown_value(default)}"]
    return "; ".join(shown + recipes)


def command_line_values(given: Mapping[str, object], where: str = "command line") -> dict:
    """Parsed flags (dest -> text) as paths -> checked values; the reshaped aliases expanded."""
    values = {}
    for dest, value in given.items():
        if dest == RESHAPED_DESTS["share_after"]:
            stages = coerce(leaf("model.sharing.after", where), value, where) if value.strip() else ()
            values.update(expand("share_after", stages))
        elif dest == RESHAPED_DESTS["consensus"]:
            values.update(expand("consensus", value))
        else:
            values[dest] = coerce(leaf(dest, where), value, where)
    return values


def normalised(values: Mapping[str, object], where: str) -> dict:
    """Values keyed by paths or short aliases, as paths -> checked values."""
    result = {}
    for name, value in values.items():
        for path, item in (expand(name, value) if name in RENAMED or name in RESHAPED_DESTS else {name: value}).items():
            result[path] = coerce(leaf(path, where), item, where)
    return result


def parse_args(argv: list[str] | None = None, prog: str = TRAIN_PROG, description: str | None = None) -> Config:
    """Defaults < dataset recipe < --config FILE < command line; errors exit with argparse's usage message."""
    return parse_command_line(argv, prog, description)[0]


def parse_command_line(argv: list[str] | None = None, prog: str = TRAIN_PROG, description: str | None = None,
                       defaults: Mapping | None = None) -> tuple[Config, bool]:
    """As :func:`parse_args`, and whether ``--debug`` was given; ``defaults`` (a command's own, by path or short
    alias, checked as any option) go below the config file and the command line."""
    parser = build_parser(prog, description or "")
    given = vars(parser.parse_args(argv))
    debug = given.pop("debug", False)
    try:
        config_file = given.pop("config", None)
        values = read_config_file(config_file) if config_file is not None else {}
        sources = {path: f"--config {config_file}" for path in values}
        typed = command_line_values(given)
        values.update(typed)
        sources.update({path: "command line" for path in typed})
        cfg = resolve(values, normalised(defaults or {}, f"{prog} defaults"))
        check_options_apply(values, cfg, sources)
        return cfg, debug
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))

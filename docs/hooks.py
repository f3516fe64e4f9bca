"""Build-time pages of the documentation site (mkdocs hook, named in mkdocs.yml).

- ``reference/commands/<command>.md``: each command's ``--help``, produced by calling the command's own ``main`` (or
  parser) in this process, so that the page and the command can never disagree;
- ``reference/api/<module>.md``: one mkdocstrings entry for every name in the public modules' ``__all__``, pointed
  at the module that defines it (``jna_fast``, ``jna_fast.data`` and ``jna_fast.flow`` export lazily, PEP 562, which
  static analysis cannot follow), read from the sources without importing them; a name defined in another of these
  modules links to its entry there, so that each name has one entry and cross-references one target;
- ``results/files/<path>``: every file of ``benchmarks/results/`` (the summaries as pages, the raw files and
  pictures as they are), so that pages show and link the measured results without copies in ``docs/``; links
  written for the repository (``../benchmarks/results/...`` in docs/design.md) are pointed there.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import os
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HELP_WIDTH = "110"

# (page name, the command as typed, module whose main(argv) takes --help, extra argv lists to document)
COMMANDS = [
    ("train", "python -m jna_fast.train", "jna_fast.train", [["--help"]]),
    ("evaluate", "python -m jna_fast.evaluate", "jna_fast.evaluate", [["--help"]]),
    ("predict", "python -m jna_fast.predict", "jna_fast.predict", [["--help"]]),
    ("export", "python -m jna_fast.export", "jna_fast.export", [["--help"]]),
    ("demo", "python -m jna_fast.demo", "jna_fast.demo", [["--help"]]),
    ("ablate", "python -m jna_fast.ablate", "jna_fast.ablate", [["--help"]]),
    ("flow", "python -m jna_fast.flow", "jna_fast.flow.__main__", [["--help"], ["extract", "--help"]]),
    ("synthetic", "python -m jna_fast.data.synthetic", "jna_fast.data.synthetic.cli", [["--help"]]),
    ("info", "python -m jna_fast.info", "jna_fast.info", [["--help"]]),
]

# The public modules whose ``__all__`` the API reference covers, with a sentence for the top of each page.
API_MODULES = {
    "jna_fast": "The package: the model (`JNA`, its output `JNAOutput`), `Predictor` and the ops.",
    "jna_fast.ops": "The two fused ops, their pure-PyTorch references, and the choice of backend.",
    "jna_fast.data": "Datasets, TSN sampling, decoding and the clip loader.",
    "jna_fast.flow": "Optical flow: extraction into rawframes, the 8-bit encoding, flow computed on the fly.",
    "jna_fast.inference": "A trained model that predicts videos, short and long.",
    "jna_fast.export": "Export for serving (`torch.export` .pt2 and ONNX) and the checks of what is fed to them.",
}
# Names a page links to instead of documenting again.
SUBMODULES = {"ops": "jna_fast.ops"}


def command_help(module_name: str, argv: list[str]) -> str:
    """What ``python -m <module> <argv>`` prints, produced in this process."""
    module = importlib.import_module(module_name)
    entry = getattr(module, "main", None)
    output = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH  # argparse wraps to the terminal's width: a fixed one keeps pages stable
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
            try:
                entry(argv) if entry is not None else module.build_parser().parse_args(argv)
            except SystemExit:
                pass
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    text = output.getvalue().rstrip()
    if not text:
        raise RuntimeError(f"{module_name} {' '.join(argv)} printed no help")
    return text


def command_page(name: str, typed: str, module_name: str, argvs: list[list[str]]) -> str:
    parts = [f"# {name}\n", f"`{typed}`: generated at build time from the command's own help.\n"]
    for argv in argvs:
        parts.append(f"## `{typed} {' '.join(argv)}`\n\n```text\n{command_help(module_name, argv)}\n```\n")
    return "\n".join(parts)


def _source(module_name: str) -> Path:
    relative = Path(*module_name.split("."))
    package = ROOT / relative / "__init__.py"
    return package if package.exists() else (ROOT / relative).with_suffix(".py")


def _module_tables(module_name: str) -> tuple[list[str], dict[str, str]]:
    """The names of ``module_name.__all__`` and its lazy-export table (name -> module, as written), from the source."""
    tree = ast.parse(_source(module_name).read_text(encoding="utf-8"))
    tables: dict[str, str] = {}
    exported: list[str] = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        target = node.targets[0].id
        if target in ("_EXPORTS", "_LAZY"):
            tables.update(ast.literal_eval(node.value))
        elif target == "__all__":
            for element in node.value.elts:
                exported += list(tables) if isinstance(element, ast.Starred) else [ast.literal_eval(element)]
    return exported, tables


def defining_path(module_name: str, name: str) -> str:
    """Where mkdocstrings finds ``module_name.name``: a lazily exported name (PEP 562, a ``_EXPORTS`` or ``_LAZY``
    table naming its module) is followed to the module that defines it, through lazy packages in turn."""
    if name in SUBMODULES:
        return SUBMODULES[name]
    source = _source(module_name)
    if not source.exists():
        return f"{module_name}.{name}"
    _, tables = _module_tables(module_name)
    where = tables.get(name)
    if not where:
        return f"{module_name}.{name}"
    package = module_name if source.name == "__init__.py" else module_name.rpartition(".")[0]
    return defining_path(importlib.util.resolve_name(where, package) if where.startswith(".") else where, name)


def public_names(module_name: str) -> list[tuple[str, str]]:
    """``(name, where mkdocstrings finds it)`` for each name of ``module_name.__all__``, read without importing."""
    return [(name, defining_path(module_name, name)) for name in _module_tables(module_name)[0]]


def api_page(module_name: str) -> str:
    lines = [f"# `{module_name}`\n", API_MODULES[module_name] + "\n",
             "Every public name of the module (its `__all__`), documented where it is defined.\n"]
    for name, where in public_names(module_name):
        home = where.rpartition(".")[0]
        if where in API_MODULES and where != module_name:
            lines.append(f"## `{name}`\n\nThe module [`{where}`]({where}.md).\n")
        elif home in API_MODULES and home != module_name:
            # Documented on its own module's page: documenting it twice would give its cross-references two targets.
            lines.append(f"## `{name}`\n\nDocumented in [`{home}`]({home}.md#{where}).\n")
        else:
            lines.append(f"::: {where}\n    options:\n      heading_level: 2\n      show_root_full_path: false\n")
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for name, typed, module_name, argvs in COMMANDS:
        files.append(File.generated(config, f"reference/commands/{name}.md",
                                    content=command_page(name, typed, module_name, argvs)))
    for module_name in API_MODULES:
        files.append(File.generated(config, f"reference/api/{module_name}.md", content=api_page(module_name)))
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file():
            files.append(File.generated(config, f"results/files/{path.relative_to(RESULTS).as_posix()}",
                                        abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV))
    return files


SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings written for Sphinx (``:func:`name```) show the name alone, as code."""
    return SPHINX_ROLE.sub("", html)


REPOSITORY_RESULTS_LINK = re.compile(r"\]\((?:\.\./)+benchmarks/results/")
FOLDER_LINK = re.compile(r"\[([^\]]*)\]\(([\w.-]+)/\)")


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Links to the repository's results point at their copies in the site; a link to a results folder (the site
    has no folder listings) becomes its text."""
    source = page.file.src_uri
    if source.startswith("results/files/"):
        return FOLDER_LINK.sub(r"\1", markdown)
    depth = source.count("/")
    return REPOSITORY_RESULTS_LINK.sub("](" + "../" * depth + "results/files/", markdown)

"""Measures of the package's layering, read from the source with ``ast`` (nothing is imported):
``python benchmarks/layering.py [--json]``.

- cycles: strongly connected groups of ``jna_fast`` modules that import each other (any import, at module level or
  inside a function);
- upward imports: a library module (``models``, ``ops``, ``data``, ``flow``, ``io``, and the kernel packages an op
  backend of ``ops/backends/`` imports, such as ``triton``) importing an application module (the commands and their
  helpers: everything outside the library packages and the shared leaves);
- in-function imports of the package's own modules (allowed only where the imported module needs an optional
  dependency, listed in ``OPTIONAL_MODULES``);
- signatures with more than ``MAX_PARAMETERS`` parameters, Triton kernels (``@triton.jit``) excepted;
- long functions: more than ``MAX_FUNCTION_LINES`` lines, counted from the ``def`` (its decorators excluded) to the
  function's last line, nested functions and classes counted in their parent's lines (and not again on their own);
- long modules: more than ``MAX_MODULE_LINES`` lines.

``tests/test_layering.py`` holds the package to these rules.
"""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "jna_fast"
LIBRARY_PACKAGES = ("models", "ops", "data", "flow", "io")
# The op backends register themselves (jna_fast/ops/backends/): the packages of the package they import hold
# their kernels, and are library packages too, with no list to edit.
BACKENDS_PACKAGE = PACKAGE + ".ops.backends"
# Leaves every layer may import: they import nothing of the package above them.
SHARED_LEAVES = ("_C", "_ext", "_op_rules", "_optional", "errors", "files", "cli", "options", "registry")
# The compiled extension: optional (the ops fall back to the reference without it), so imported where it is used.
EXTENSION = PACKAGE + "._C"
MAX_PARAMETERS = 15
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


@dataclass
class Import:
    source: str
    target: str
    line: int
    in_function: bool


@dataclass
class Measures:
    cycles: list[list[str]] = field(default_factory=list)
    upward_imports: list[str] = field(default_factory=list)
    in_function_imports: list[str] = field(default_factory=list)
    long_signatures: list[str] = field(default_factory=list)
    long_functions: list[str] = field(default_factory=list)
    long_modules: list[str] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The package's modules an import statement loads (``from . import x`` names module ``x`` when it is one)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _resolve(node, module, is_package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known | {EXTENSION} else base
                 for alias in node.names]
    return sorted({name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")})


def _owner(name: str, known: set[str]) -> str:
    while name not in known and name != EXTENSION and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def collect(root: Path) -> tuple[list[Import], dict[str, ast.Module]]:
    files = sorted((root / PACKAGE).rglob("*.py"))
    trees = {module_name(path, root): ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in files}
    known = set(trees)
    packages = {module_name(path, root) for path in files if path.name == "__init__.py"}
    imports = []
    for module, tree in trees.items():
        def visit(node, in_function: bool):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _targets(child, module, module in packages, known):
                        imports.append(Import(module, _owner(target, known), child.lineno, in_function))
                visit(child, inside)
        visit(tree, False)
    return imports, trees


def kernel_packages(imports: list[Import]) -> set[str]:
    """The package's top-level packages that an op backend imports (its kernels), shared leaves aside."""
    found = set()
    for imp in imports:
        parts = imp.target.split(".")
        if (imp.source == BACKENDS_PACKAGE or imp.source.startswith(BACKENDS_PACKAGE + ".")) and len(parts) > 1:
            found.add(parts[1])
    return found - set(SHARED_LEAVES)


def layer(module: str, library: tuple[str, ...] | set[str] = LIBRARY_PACKAGES) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in library:
        return "library"
    if len(parts) == 1 or parts[1] in SHARED_LEAVES:
        return "shared"
    return "application"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def optional_modules(trees: dict[str, ast.Module]) -> set[str]:
    """The package's modules that import a third-party package the core install lacks (the extras'), at module
    level: importing one inside a function is how the core keeps working without that extra."""
    extras = {"triton", "nvidia", "av", "cv2", "matplotlib", "tensorboard", "onnx", "onnxruntime", "onnxscript",
              "gradio", "torch.utils.tensorboard"}
    found = {EXTENSION}
    def module_level(node):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                yield child
                yield from module_level(child)

    for module, tree in trees.items():
        for node in module_level(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] in extras for a in node.names):
                found.add(module)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in extras:
                found.add(module)
    return found


def _is_triton_kernel(node: ast.FunctionDef) -> bool:
    return any("jit" in ast.unparse(decorator) for decorator in node.decorator_list)


def long_functions(module: str, tree: ast.Module) -> list[str]:
    """``module.qualified.name (lines)`` of each outermost function over MAX_FUNCTION_LINES lines (a method is an
    outermost function of its class; a function inside a function is part of its parent)."""
    found = []

    def visit(node, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{prefix}{child.name} ({lines})")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, module + ".")
    return found


def measure(root: Path) -> Measures:
    imports, trees = collect(root)
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.source and not imp.source.startswith(imp.target + "."):
            graph.setdefault(imp.source, set()).add(imp.target)
    result = Measures(cycles=strongly_connected(graph))
    optional = optional_modules(trees)
    library = set(LIBRARY_PACKAGES) | kernel_packages(imports)
    for imp in imports:
        where = f"{imp.source}:{imp.line} -> {imp.target}"
        if layer(imp.source, library) == "library" and layer(imp.target, library) == "application":
            result.upward_imports.append(where)
        if imp.in_function and imp.target not in optional:
            result.in_function_imports.append(where)
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_triton_kernel(node):
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                count -= bool(args.args) and args.args[0].arg in ("self", "cls")
                if count > MAX_PARAMETERS:
                    result.long_signatures.append(f"{module}.{node.name} ({count})")
        result.long_functions += long_functions(module, tree)
    for path in sorted((root / PACKAGE).rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            result.long_modules.append(f"{path.relative_to(root).as_posix()} ({lines})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.root)
    if args.json:
        print(json.dumps(result.__dict__, indent=1))
        return
    for name, values in result.__dict__.items():
        print(f"{name}: {len(values)}")
        for value in values:
            print(f"  {value}")


if __name__ == "__main__":
    main()

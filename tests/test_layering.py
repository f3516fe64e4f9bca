"""The package's layers point one way (benchmarks/layering.py measures them from the source)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("layering", ROOT / "benchmarks" / "layering.py")
layering = importlib.util.module_from_spec(_spec)
sys.modules["layering"] = layering  # dataclasses resolve their annotations through it
_spec.loader.exec_module(layering)


def test_no_import_cycles():
    assert layering.measure(ROOT).cycles == []


def test_library_layers_never_import_the_commands():
    assert layering.measure(ROOT).upward_imports == []


def test_in_function_imports_only_for_optional_dependencies():
    assert layering.measure(ROOT).in_function_imports == []


def test_no_signature_over_the_limit():
    assert layering.measure(ROOT).long_signatures == []


def test_no_function_over_the_limit():
    assert layering.measure(ROOT).long_functions == []


def test_no_module_over_the_limit():
    assert layering.measure(ROOT).long_modules == []


def test_the_measures_see_a_cycle_and_an_upward_import(tmp_path):
    """The measures are not vacuous: a planted cycle, upward import and in-function import are all found."""
    package = tmp_path / "jna_fast"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("from ..train import fit\n")
    (package / "train.py").write_text("from .models import Net\n\ndef fit():\n    from . import evaluate\n")
    (package / "evaluate.py").write_text("")
    (package / "loader.py").write_text("def build(" + ", ".join(f"a{i}" for i in range(16)) + "):\n    pass\n")
    found = layering.measure(tmp_path)
    assert found.cycles == [["jna_fast.models", "jna_fast.train"]]
    assert [entry.split(":")[0] for entry in found.upward_imports] == ["jna_fast.models"]
    assert found.in_function_imports == ["jna_fast.train:4 -> jna_fast.evaluate"]
    assert found.long_signatures == ["jna_fast.loader.build (16)"]
    assert found.long_functions == found.long_modules == []


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, its def included."""
    return f"{indent}def {name}():\n" + f"{indent}    x = 1\n" * (lines - 1)


def test_the_measures_see_long_functions_and_modules(tmp_path):
    """A function or method of 61 lines is found, one of 60 is not (its decorators not counted); a nested function
    counts in its parent's lines, not on its own; a module of 401 lines is found, one of 400 is not."""
    limit, module_limit = layering.MAX_FUNCTION_LINES, layering.MAX_MODULE_LINES
    package = tmp_path / "jna_fast"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fit.py").write_text(
        _function("at_limit", limit) + _function("over", limit + 1)
        + "class Trainer:\n" + _function("step", limit + 1, "    ")
        + "def parent():\n" + _function("child", limit + 1, "    ") + "    return child\n"
        + "@staticmethod\n" * 5 + _function("decorated", limit))
    (package / "big.py").write_text("x = 1\n" * (module_limit + 1))
    (package / "fits.py").write_text("x = 1\n" * module_limit)
    found = layering.measure(tmp_path)
    assert found.long_functions == [f"jna_fast.fit.over ({limit + 1})", f"jna_fast.fit.Trainer.step ({limit + 1})",
                                    f"jna_fast.fit.parent ({limit + 3})"]
    assert found.long_modules == [f"jna_fast/big.py ({module_limit + 1})"]


def test_flow_command_line_imports_neither_torch_nor_the_data_package():
    code = ("import runpy, sys\nsys.argv = ['jna_fast.flow', 'extract', '--help']\n"
            "try:\n    runpy.run_module('jna_fast.flow', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('jna_fast.data'))\n"
            "print('LOADED', bad)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout[-500:]


def test_the_op_backends_kernel_packages_are_library_packages():
    """No list to edit for a new backend's kernels: the packages an op backend imports count as library."""
    imports, _ = layering.collect(ROOT)
    assert "triton" in layering.kernel_packages(imports)
    assert "triton" not in layering.LIBRARY_PACKAGES

"""The op rules exist once per language: jna_fast/_op_rules.py (Triton, reference, fake kernels) and
csrc/op_rules.h (the C++ backends). These tests hold the two to the same behaviour."""

import ast
from pathlib import Path

import pytest
import torch

import jna_fast.ops as ops
from jna_fast import _op_rules

PACKAGE = Path(_op_rules.__file__).resolve().parent

_CPP_REASON = ops.availability(torch.device("cpu"))["cpp"]
needs_cpp = pytest.mark.skipif(_CPP_REASON is not None, reason=f"cpp backend unavailable: {_CPP_REASON}")


@needs_cpp
@pytest.mark.parametrize("shape,layout", [((2, 3, 4, 5), "contiguous"), ((2, 3, 4, 5), "channels_last"),
                                          ((2, 3, 1, 1), "channels_last"), ((2, 1, 4, 5), "channels_last")])
def test_cpp_and_python_choose_the_same_layout(shape, layout):
    x = torch.randn(shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    alpha = torch.randn(shape[1], 2, 2)
    y_rgb, _ = torch.ops.jna_fast.cross_stitch(x, x, alpha)
    fake_rgb, _ = torch.ops.jna_fast.cross_stitch(x.to("meta"), x.to("meta"), alpha.to("meta"))
    expected = _op_rules.feature_map_format(x)
    assert y_rgb.is_contiguous(memory_format=expected)
    assert y_rgb.stride() == fake_rgb.stride()


@needs_cpp
@pytest.mark.parametrize("empty_rows", [[1, 3], list(range(10))])
def test_cpp_and_python_reject_all_false_rows_with_one_message(empty_rows):
    mask = torch.ones(12, 4, dtype=torch.bool)
    mask[empty_rows] = False
    f = torch.randn(12, 4, 5)
    w = torch.randn(5)
    with pytest.raises(ValueError) as python_error:
        _op_rules.check_mask_rows(mask)
    with pytest.raises(ValueError) as cpp_error:
        torch.ops.jna_fast.joint_attention_pool(f, f, w, w, mask)
    assert str(cpp_error.value).splitlines()[0] == str(python_error.value)
    assert str(python_error.value).startswith(f"mask: rows {empty_rows[:8]}")


@pytest.mark.parametrize("value,enabled", [(None, False), ("", False), ("0", False), ("false", False),
                                           ("False", False), ("1", True), ("yes", True)])
def test_checks_switch(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv("JNA_FAST_CHECKS", raising=False)
    else:
        monkeypatch.setenv("JNA_FAST_CHECKS", value)
    assert _op_rules.checks_enabled() is enabled


def _jna_fast_imports(path: Path) -> set[str]:
    """The jna_fast modules a source file imports, as absolute names."""
    package = "jna_fast." + ".".join(path.relative_to(PACKAGE).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rstrip(".").split(".")
                base = base[: len(base) - (node.level - 1)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("jna_fast")}


def test_no_import_cycle_between_ops_and_triton():
    """jna_fast.ops reaches the Triton kernels through torch.ops.jna_fast_triton; jna_fast.triton and the shared
    rules never import jna_fast.ops (the rules live in jna_fast._op_rules, below both)."""
    for path in sorted((PACKAGE / "triton").glob("*.py")) + [PACKAGE / "_op_rules.py"]:
        ops_imports = {n for n in _jna_fast_imports(path) if n == "jna_fast.ops" or n.startswith("jna_fast.ops.")}
        assert not ops_imports, f"{path.relative_to(PACKAGE.parent)} imports {sorted(ops_imports)}"
    rules_imports = _jna_fast_imports(PACKAGE / "_op_rules.py")
    assert not any(n.startswith("jna_fast.triton") for n in rules_imports), rules_imports

"""Broken op inputs raise the same exception type with the same message from every backend (docs/design.md §5.2).

Each case breaks one input rule and is sent to the public jna_fast.ops functions and to every registered backend
(jna_fast.ops.backends.BACKENDS) by its own entry point: a plain-PyTorch backend's functions (the reference's), a
kernel backend's registered op torch.ops.<namespace>.* (torch.ops.jna_fast.*: the CPU kernels here, the CUDA glue
runs the same csrc/op_rules.h checks; torch.ops.jna_fast_triton.*: under TRITON_INTERPRET=1 on a CPU-only
machine), skipped with the backend's own reason where this machine cannot run it. The message table itself exists
twice, INPUT_ERRORS in jna_fast/_op_rules.py and kInputErrors in csrc/op_rules.h; the first test holds them equal.
"""

import re
from pathlib import Path

import pytest
import torch

import jna_fast.ops as ops
from jna_fast import _op_rules
from jna_fast.ops.backends import BACKENDS

REPO = Path(__file__).resolve().parents[1]

# Every registered backend; a backend this machine cannot run is skipped with its own reason.
BACKEND_ENTRIES = [pytest.param(name, marks=pytest.mark.skipif(BACKENDS.machine_reason(name) is not None,
                                                                reason=f"{name}: {BACKENDS.machine_reason(name)}"))
                   for name in BACKENDS.names()]
# The backward ops: every backend with registered ops, and the Python rules the plain-PyTorch ones' autograd runs.
BACKWARD_ENTRIES = ["rules"] + [p for p in BACKEND_ENTRIES if BACKENDS[p.values[0]].namespace is not None]


def _cpp_table() -> dict[str, tuple[str, str]]:
    """kInputErrors of csrc/op_rules.h: rule -> (exception name, message), adjacent string literals joined."""
    source = (REPO / "csrc" / "op_rules.h").read_text()
    body = source[source.index("kInputErrors[] = {"):]
    body = body[: body.index("\n};")]
    entries = re.findall(r'\{"(\w+)",\s*ErrorKind::(\w+),\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}', body)
    return {rule: (kind, "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', literals))) for rule, kind, literals in entries}


def test_cpp_and_python_message_tables_agree():
    cpp = _cpp_table()
    python = {rule: (kind.__name__, text) for rule, (kind, text) in _op_rules.INPUT_ERRORS.items()}
    # The op schemas take tensors, so only Python can be handed something else.
    assert python.pop("not_tensor") == ("TypeError", "{name}: expected a torch.Tensor, got {got}")
    assert cpp == python
    assert len(cpp) >= 10  # the parse found the table, not a fragment of it


def _x(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


def _stitch(x_rgb=None, x_flow=None, alpha=None):
    return (x_rgb if x_rgb is not None else _x(2, 3, 4, 5), x_flow if x_flow is not None else _x(2, 3, 4, 5),
            alpha if alpha is not None else _x(3, 2, 2))


def _pool(f_rgb=None, f_flow=None, w_rgb=None, w_flow=None, mask="none"):
    return (f_rgb if f_rgb is not None else _x(2, 4, 5), f_flow if f_flow is not None else _x(2, 4, 5),
            w_rgb if w_rgb is not None else _x(5), w_flow if w_flow is not None else _x(5),
            None if isinstance(mask, str) else mask)


def _rows_false(batch, rows):
    mask = torch.ones(batch, 4, dtype=torch.bool)
    mask[rows] = False
    return mask


# (id, op, inputs, exception type, message): the message is spelled out in full, so that a test that the
# backends agree cannot pass on a message they all get wrong.
CASES = [
    ("stitch-rank", "cross_stitch", _stitch(_x(2, 3, 4), _x(2, 3, 4)), ValueError,
     "x_rgb: expected a 4-d feature map [N, C, H, W], got shape [2, 3, 4]"),
    ("stitch-shapes", "cross_stitch", _stitch(x_flow=_x(2, 3, 4, 6)), ValueError,
     "x_flow: expected the shape of x_rgb [2, 3, 4, 5], got [2, 3, 4, 6]"),
    ("stitch-dtypes", "cross_stitch", _stitch(x_flow=_x(2, 3, 4, 5, dtype=torch.float64)), TypeError,
     "x_flow: expected the dtype of x_rgb (torch.float32), got torch.float64"),
    ("stitch-integer", "cross_stitch", _stitch(_x(2, 3, 4, 5, dtype=torch.int64), _x(2, 3, 4, 5, dtype=torch.int64)),
     TypeError, "x_rgb: expected a float32/float64/bfloat16/float16 tensor, got torch.int64"),
    ("alpha-rank", "cross_stitch", _stitch(alpha=_x(3, 4)), ValueError,
     "alpha: expected shape [C, 2, 2] = [3, 2, 2], got [3, 4]"),
    ("alpha-channels", "cross_stitch", _stitch(alpha=_x(4, 2, 2)), ValueError,
     "alpha: expected shape [C, 2, 2] = [3, 2, 2], got [4, 2, 2]"),
    ("alpha-integer", "cross_stitch", _stitch(alpha=_x(3, 2, 2, dtype=torch.int32)), TypeError,
     "alpha: expected a float32/float64/bfloat16/float16 tensor, got torch.int32"),
    ("pool-rank", "joint_attention_pool", _pool(_x(2, 5), _x(2, 5)), ValueError,
     "f_rgb: expected snippet features [B, T, C], got shape [2, 5]"),
    ("pool-no-snippets", "joint_attention_pool", _pool(_x(2, 0, 5), _x(2, 0, 5)), ValueError,
     "f_rgb: expected at least one snippet (T >= 1), got T = 0"),
    ("pool-shapes", "joint_attention_pool", _pool(f_flow=_x(2, 3, 5)), ValueError,
     "f_flow: expected the shape of f_rgb [2, 4, 5], got [2, 3, 5]"),
    ("pool-dtypes", "joint_attention_pool", _pool(f_flow=_x(2, 4, 5, dtype=torch.float16)), TypeError,
     "f_flow: expected the dtype of f_rgb (torch.float32), got torch.float16"),
    ("w-shape", "joint_attention_pool", _pool(w_rgb=_x(6)), ValueError,
     "w_rgb: expected shape [C] = [5], got [6]"),
    ("w-rank", "joint_attention_pool", _pool(w_flow=_x(1, 5)), ValueError,
     "w_flow: expected shape [C] = [5], got [1, 5]"),
    ("w-integer", "joint_attention_pool", _pool(w_flow=_x(5, dtype=torch.int64)), TypeError,
     "w_flow: expected a float32/float64/bfloat16/float16 tensor, got torch.int64"),
    ("mask-dtype", "joint_attention_pool", _pool(mask=torch.ones(2, 4)), TypeError,
     "mask: expected a bool tensor, got torch.float32"),
    ("mask-shape", "joint_attention_pool", _pool(mask=torch.ones(2, 3, dtype=torch.bool)), ValueError,
     "mask: expected shape [B, T] = [2, 4], got [2, 3]"),
    ("mask-empty-row", "joint_attention_pool", _pool(mask=_rows_false(2, [1])), ValueError,
     "mask: rows [1] are all False; every clip needs at least one real snippet "
     "(set mask[b, t] = True for real snippets)"),
    ("mask-many-empty-rows", "joint_attention_pool",
     _pool(_x(12, 4, 5), _x(12, 4, 5), mask=_rows_false(12, list(range(10)))), ValueError,
     "mask: rows [0, 1, 2, 3, 4, 5, 6, 7]... are all False; every clip needs at least one real snippet "
     "(set mask[b, t] = True for real snippets)"),
]

# Backward ops, reached directly (autograd calls them with the forward's shapes): the grads' shapes are checked.
BACKWARD_CASES = [
    ("stitch-grad-shape", "cross_stitch_backward", (_x(2, 3, 4, 5), _x(2, 3, 4, 4)) + _stitch(), ValueError,
     "grad_flow: expected the shape of x_rgb [2, 3, 4, 5], got [2, 3, 4, 4]"),
    ("pool-grad-p-shape", "joint_attention_pool_backward",
     (_x(2, 4), _x(2, 5), _x(2, 4)) + _pool()[:4] + (torch.full((2, 4), 0.25),), ValueError,
     "grad_p_rgb: expected shape [B, C] = [2, 5], got [2, 4]"),
    ("pool-grad-attention-shape", "joint_attention_pool_backward",
     (_x(2, 5), _x(2, 5), _x(2, 3)) + _pool()[:4] + (torch.full((2, 4), 0.25),), ValueError,
     "grad_attention: expected shape [B, T] = [2, 4], got [2, 3]"),
    ("pool-attention-shape", "joint_attention_pool_backward",
     (_x(2, 5), _x(2, 5), _x(2, 4)) + _pool()[:4] + (torch.full((4, 2), 0.25),), ValueError,
     "attention: expected shape [B, T] = [2, 4], got [4, 2]"),
]

PYTHON_BACKWARD_CHECKS = {"cross_stitch_backward": _op_rules.check_cross_stitch_backward,
                          "joint_attention_pool_backward": _op_rules.check_joint_attention_pool_backward}


def _entry(backend: str, op: str):
    if backend == "public":
        return getattr(ops, op)
    if backend == "rules":
        return PYTHON_BACKWARD_CHECKS[op]
    registered = BACKENDS[backend].registered_ops()
    return getattr(BACKENDS[backend], op) if registered is None else getattr(registered, op)


def _raised(fn, args) -> BaseException:
    with pytest.raises(Exception) as caught:
        fn(*args)
    return caught.value


def _first_line(error: BaseException) -> str:
    # C++ errors may carry a backtrace on the following lines (TORCH_SHOW_CPP_STACKTRACES=1).
    return str(error).splitlines()[0]


@pytest.mark.parametrize("backend", ["public", *BACKEND_ENTRIES])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_input_raises_the_same_error_in_every_backend(backend, case):
    _, op, args, kind, message = case
    error = _raised(_entry(backend, op), args)
    assert type(error) is kind, f"{backend} raised {type(error).__name__}: {error}"
    assert _first_line(error) == message


@pytest.mark.parametrize("backend", BACKWARD_ENTRIES)
@pytest.mark.parametrize("case", BACKWARD_CASES, ids=[c[0] for c in BACKWARD_CASES])
def test_broken_backward_input_raises_the_same_error_in_every_backend(backend, case):
    _, op, args, kind, message = case
    error = _raised(_entry(backend, op), args)
    assert type(error) is kind, f"{backend} raised {type(error).__name__}: {error}"
    assert _first_line(error) == message


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_case_breaks_the_rule_it_names(case):
    """The message matches its INPUT_ERRORS template: no case is caught by an unrelated torch error whose text
    the backends happen to share."""
    _, _, _, kind, message = case
    patterns = [re.escape(text).replace(r"\{", "{").replace(r"\}", "}") for k, text in _op_rules.INPUT_ERRORS.values()
                if k is kind]
    patterns = [re.sub(r"\{\w+\}", ".+", p) for p in patterns]
    assert any(re.fullmatch(p, message) for p in patterns), message


def test_public_api_rejects_a_non_tensor():
    x, _, alpha = _stitch()
    error = _raised(ops.cross_stitch, (x, [1.0], alpha))
    assert type(error) is TypeError
    assert str(error) == "x_flow: expected a torch.Tensor, got list"

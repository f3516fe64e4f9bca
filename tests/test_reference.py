"""The reference ops (jna_fast.ops.*_ref and the public wrappers with backend="reference") against naive
loops written straight from docs/design.md §3.1/§4.1, plus gradients, masks, overflow and input validation."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from jna_fast import ops
from op_testing import (
    cross_stitch_ref,
    fresh_seed,
    joint_attention_pool_ref,
    make_pool_case,
    make_stitch_case,
    random_grad_outputs,
    run_with_grads,
)


def naive_cross_stitch(x_rgb, x_flow, alpha):
    y_rgb = torch.empty_like(x_rgb, dtype=torch.float64)
    y_flow = torch.empty_like(x_rgb, dtype=torch.float64)
    for c in range(x_rgb.shape[1]):
        a = alpha[c].double()
        y_rgb[:, c] = a[0, 0] * x_rgb[:, c].double() + a[0, 1] * x_flow[:, c].double()
        y_flow[:, c] = a[1, 0] * x_rgb[:, c].double() + a[1, 1] * x_flow[:, c].double()
    return y_rgb, y_flow


def naive_pool(f_rgb, f_flow, w_rgb, w_flow, mask):
    batch, segments, channels = f_rgb.shape
    p_rgb = torch.zeros(batch, channels, dtype=torch.float64)
    p_flow = torch.zeros(batch, channels, dtype=torch.float64)
    attention = torch.zeros(batch, segments, dtype=torch.float64)
    for b in range(batch):
        real = [t for t in range(segments) if mask is None or bool(mask[b, t])]
        scores = {t: float(f_rgb[b, t].double() @ w_rgb.double() + f_flow[b, t].double() @ w_flow.double())
                  for t in real}
        top = max(scores.values())
        total = sum(math.exp(e - top) for e in scores.values())
        for t in real:
            attention[b, t] = math.exp(scores[t] - top) / total
            p_rgb[b] += attention[b, t] * f_rgb[b, t].double()
            p_flow[b] += attention[b, t] * f_flow[b, t].double()
    return p_rgb, p_flow, attention


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 7, 5, 4), (2, 64, 3, 9)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous", "mixed"])
def test_cross_stitch_matches_naive(shape, layout):
    case = make_stitch_case(*shape, dtype=torch.float64, layout=layout)
    y_rgb, y_flow = ops.cross_stitch(*case.inputs(), backend="reference")
    n_rgb, n_flow = naive_cross_stitch(*case.inputs())
    torch.testing.assert_close(y_rgb, n_rgb, msg=f"seed {case.seed}")
    torch.testing.assert_close(y_flow, n_flow, msg=f"seed {case.seed}")


@pytest.mark.parametrize("batch,segments,channels", [(1, 1, 1), (3, 25, 7), (4, 3, 33), (2, 8, 2048)])
@pytest.mark.parametrize("mask", ["none", "tail", "holes"])
def test_pool_matches_naive(batch, segments, channels, mask):
    case = make_pool_case(batch, segments, channels, dtype=torch.float64, mask=mask, score_scale=3.0)
    got = ops.joint_attention_pool(*case.inputs(), backend="reference")
    want = naive_pool(*case.inputs())
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, msg=f"seed {case.seed}")
    assert got[2].dtype == torch.float64


def test_attention_rows_sum_to_one_and_zero_where_masked():
    case = make_pool_case(6, 9, 13, mask="holes")
    _, _, attention = ops.joint_attention_pool(*case.inputs(), backend="reference")
    assert attention.dtype == torch.float32
    torch.testing.assert_close(attention.sum(1), torch.ones(6))
    assert (attention[~case.mask] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_pool_low_precision_accumulates_in_float32(dtype):
    case = make_pool_case(3, 25, 64, dtype=dtype, w_dtype=torch.float32, mask="tail")
    p_rgb, p_flow, attention = ops.joint_attention_pool(*case.inputs(), backend="reference")
    assert p_rgb.dtype == dtype and p_flow.dtype == dtype and attention.dtype == torch.float32
    want = naive_pool(*case.inputs())
    # float32 accumulation: only the final rounding to `dtype` separates p from the exact result.
    eps = torch.finfo(dtype).eps
    assert (p_rgb.double() - want[0]).abs().max() <= eps * want[0].abs().max()
    torch.testing.assert_close(attention.double(), want[2], rtol=1e-5, atol=1e-6)


def test_pool_extreme_scores_do_not_overflow():
    case = make_pool_case(4, 25, 32, score_scale=1e4, mask="holes")
    p_rgb, p_flow, attention = ops.joint_attention_pool(*case.inputs(), backend="reference")
    assert torch.isfinite(p_rgb).all() and torch.isfinite(attention).all()
    want = naive_pool(*case.inputs())
    torch.testing.assert_close(attention.double(), want[2], rtol=1e-4, atol=1e-5, msg=f"seed {case.seed}")
    # With |e| ~ 1e4 the softmax is (nearly) one-hot on the row's top score.
    assert (attention.max(1).values > 0.99).all()


def test_gradcheck_float64():
    case = make_pool_case(2, 4, 5, dtype=torch.float64, mask="holes")
    leaves = [t.requires_grad_(True) for t in case.inputs()[:4]]
    assert torch.autograd.gradcheck(
        lambda *xs: ops.joint_attention_pool(*xs, case.mask, backend="reference"), leaves)
    stitch = make_stitch_case(2, 3, 2, 3, dtype=torch.float64, layout="channels_last")
    leaves = [t.requires_grad_(True) for t in stitch.inputs()]
    assert torch.autograd.gradcheck(lambda *xs: ops.cross_stitch(*xs, backend="reference"), leaves)


def test_all_false_mask_row_is_an_error_on_cpu():
    case = make_pool_case(3, 4, 5, mask="tail")
    case.mask[1] = False
    with pytest.raises(ValueError, match=r"mask: rows \[1\] are all False"):
        ops.joint_attention_pool(*case.inputs(), backend="reference")


def test_unchecked_all_false_row_gives_zeros_not_nan():
    case = make_pool_case(3, 4, 5, dtype=torch.float64, mask="tail")
    case.mask[2] = False
    leaves = [t.requires_grad_(True) for t in case.inputs()[:4]]
    p_rgb, p_flow, attention = ops.joint_attention_pool_ref(*leaves, case.mask)
    assert (p_rgb[2] == 0).all() and (p_flow[2] == 0).all() and (attention[2] == 0).all()
    (p_rgb.sum() + p_flow.sum() + attention.sum()).backward()
    for leaf in leaves:
        assert torch.isfinite(leaf.grad).all()
    assert (leaves[0].grad[2] == 0).all() and (leaves[1].grad[2] == 0).all()


def _pool_inputs():
    return [t for t in make_pool_case(2, 3, 4, mask="tail", seed=fresh_seed()).inputs()]


@pytest.mark.parametrize(
    "position,bad,error,match",
    [
        (0, torch.zeros(2, 3), ValueError, r"f_rgb: expected snippet features \[B, T, C\]"),
        (1, torch.zeros(2, 3, 5), ValueError, r"f_flow: expected the shape of f_rgb \[2, 3, 4\]"),
        (1, torch.zeros(2, 3, 4, dtype=torch.float64), TypeError, r"f_flow: expected the dtype of f_rgb"),
        (2, torch.zeros(5), ValueError, r"w_rgb: expected shape \[C\] = \[4\]"),
        (3, torch.zeros(4, 1), ValueError, r"w_flow: expected shape \[C\] = \[4\]"),
        (4, torch.ones(2, 4, dtype=torch.bool), ValueError, r"mask: expected shape \[B, T\] = \[2, 3\]"),
        (4, torch.ones(2, 3), TypeError, r"mask: expected a bool tensor"),
        (0, torch.zeros(2, 3, 4, dtype=torch.int32), TypeError, r"f_rgb: expected a float32/float64"),
        (2, [0.0] * 4, TypeError, r"w_rgb: expected a torch.Tensor"),
        (0, torch.zeros(2, 0, 4), ValueError, r"f_rgb: expected at least one snippet"),
    ],
)
def test_pool_bad_inputs(position, bad, error, match):
    args = _pool_inputs()
    args[position] = bad
    with pytest.raises(error, match=match):
        ops.joint_attention_pool(*args)


@pytest.mark.parametrize(
    "position,bad,error,match",
    [
        (0, torch.zeros(2, 3, 4), ValueError, r"x_rgb: expected a 4-d feature map"),
        (1, torch.zeros(2, 3, 4, 6), ValueError, r"x_flow: expected the shape of x_rgb \[2, 3, 4, 5\]"),
        (1, torch.zeros(2, 3, 4, 5, dtype=torch.bfloat16), TypeError, r"x_flow: expected the dtype of x_rgb"),
        (2, torch.zeros(3, 4), ValueError, r"alpha: expected shape \[C, 2, 2\] = \[3, 2, 2\]"),
        (2, torch.zeros(3, 2, 2, dtype=torch.int64), TypeError, r"alpha: expected a float32"),
    ],
)
def test_cross_stitch_bad_inputs(position, bad, error, match):
    args = list(make_stitch_case(2, 3, 4, 5).inputs())
    args[position] = bad
    with pytest.raises(error, match=match):
        ops.cross_stitch(*args)


def test_mixed_devices_are_rejected():
    meta = torch.empty(4, device="meta")
    case = make_pool_case(2, 3, 4)
    with pytest.raises(ValueError, match=r"w_rgb is on meta but f_rgb is on cpu"):
        ops.joint_attention_pool(case.f_rgb, case.f_flow, meta, case.w_flow)


def _bench_ops():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ops.py"
    spec = importlib.util.spec_from_file_location("bench_ops", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_benchmark_eager_forms_compute_the_reference(dtype):
    """benchmarks/bench_ops.py times plain-PyTorch forms as "eager": they must compute what the reference does,
    outputs and gradients, or the ratios compare different work."""
    bench = _bench_ops()
    pool = make_pool_case(3, 7, 24, dtype=dtype, mask="holes", w_dtype=torch.float32)
    stitch = make_stitch_case(2, 6, 3, 4, dtype=dtype, layout="channels_last", alpha_dtype=torch.float32)
    tolerance = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for (op, provider), fn in bench.EAGER_FUNCTIONS.items():
        pair = (pool, joint_attention_pool_ref) if op == "joint_attention_pool" else (stitch, cross_stitch_ref)
        case, reference = pair
        inputs = case.inputs()
        grads = random_grad_outputs(reference(*inputs), case.seed)
        for got, want in zip(run_with_grads(fn, inputs, grads), run_with_grads(reference, inputs, grads)):
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, msg=f"{provider}", **tolerance)

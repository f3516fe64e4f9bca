"""The C++ CPU kernels (csrc/cpu) against the float64 reference: accuracy rule, gradcheck, opcheck, poisoned
outputs, all-False masks, determinism of the dalpha/dw reductions and torch.compile(fullgraph=True)."""

from __future__ import annotations

import functools

import pytest
import torch

import jna_fast.ops as ops
from op_testing import (
    LOW_PRECISION,
    POOL_NAMES,
    STITCH_NAMES,
    assert_all_written,
    assert_matches_reference,
    cross_stitch_ref,
    joint_attention_pool_ref,
    make_pool_case,
    make_stitch_case,
    poisoned_allocations,
)

_CPP_REASON = ops.availability(torch.device("cpu"))["cpp"]
pytestmark = pytest.mark.skipif(_CPP_REASON is not None, reason=f"cpp backend unavailable: {_CPP_REASON}")

cpp_cross_stitch = functools.partial(ops.cross_stitch, backend="cpp")
cpp_pool = functools.partial(ops.joint_attention_pool, backend="cpp")

FEATURE_DTYPES = (torch.float32, *LOW_PRECISION)
# C: 1, 3, 7, 13, 33 are not multiples of the 8-float vector (tails), 2048 is the model's width. C = 1 only with
# T = 1: with T > 1 its dw is one scalar sum with cancellation, whose error vs plain PyTorch is a coin toss.
POOL_SHAPES = [(3, 1, 7), (5, 1, 1), (4, 25, 3), (3, 25, 13), (2, 25, 33), (2, 25, 2048), (5, 6, 64)]
# cross_stitch shapes: about 1000 elements per output or more, so that the max error is a stable statistic.
STITCH_SHAPES = [(4, 7, 6, 6), (3, 13, 5, 5), (2, 33, 3, 5), (2, 64, 6, 6), (8, 1, 6, 6)]
STITCH_LAYOUTS = ("contiguous", "channels_last", "noncontiguous", "mixed")


def expected_stitch_format(x_rgb: torch.Tensor) -> torch.memory_format:
    nhwc = (not x_rgb.is_contiguous()) and x_rgb.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if nhwc else torch.contiguous_format


# ---------------------------------------------------------------------------------------------- cross_stitch


# C = 1 not in low precision: its dalpha is four scalar sums, and the bf16/fp16 grad outputs differ from the
# unrounded ones the fp64 reference gets by about as much as the plain result's own rounding, so which of the
# two lands closer is a coin toss.
STITCH_CASES = [(shape, dtype) for shape in STITCH_SHAPES for dtype in FEATURE_DTYPES
                if shape[1] > 1 or dtype not in LOW_PRECISION]


def case_id(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("shape,dtype", STITCH_CASES, ids=case_id)
@pytest.mark.parametrize("layout", STITCH_LAYOUTS)
def test_cross_stitch_matches_reference(shape, layout, dtype):
    # float32 alpha with low-precision features: the autocast situation.
    case = make_stitch_case(*shape, dtype=dtype, layout=layout, alpha_dtype=torch.float32)
    assert_matches_reference(cpp_cross_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)
    y_rgb, y_flow = cpp_cross_stitch(*case.inputs())
    fmt = expected_stitch_format(case.x_rgb)
    assert y_rgb.is_contiguous(memory_format=fmt) and y_flow.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
@pytest.mark.parametrize("dtype", (torch.float64, *LOW_PRECISION), ids=str)
def test_cross_stitch_alpha_in_feature_dtype(layout, dtype):
    case = make_stitch_case(3, 24, 5, 5, dtype=dtype, layout=layout)
    assert_matches_reference(cpp_cross_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_cross_stitch_large_reduction(layout):
    # dalpha sums N*H*W = 6272 products per channel, across both threads' partials.
    case = make_stitch_case(32, 40, 14, 14, layout=layout)
    assert_matches_reference(cpp_cross_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_cross_stitch_large_outputs(layout):
    # Outputs over 4 MB take the huge-page advice (csrc/cpu/output_memory.h); H*W = 47*47 is odd, so NCHW
    # vectors straddle plane boundaries everywhere.
    case = make_stitch_case(8, 64, 47, 47, layout=layout)
    assert_matches_reference(cpp_cross_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("layout", ("contiguous", "channels_last", "mixed"))
def test_cross_stitch_gradcheck(layout):
    case = make_stitch_case(2, 5, 3, 4, dtype=torch.float64, layout=layout)
    inputs = [t.detach().requires_grad_(True) for t in case.inputs()]
    assert torch.autograd.gradcheck(cpp_cross_stitch, inputs), f"seed {case.seed}"


@pytest.mark.parametrize("layout", ("contiguous", "channels_last", "mixed"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_cross_stitch_opcheck(layout, dtype):
    case = make_stitch_case(2, 12, 3, 5, dtype=dtype, layout=layout, alpha_dtype=torch.float32)
    inputs = [t.detach().requires_grad_(True) for t in case.inputs()]
    torch.library.opcheck(torch.ops.jna_fast.cross_stitch.default, tuple(inputs))
    grads = [torch.randn_like(inputs[0]), torch.randn_like(inputs[0])]
    torch.library.opcheck(torch.ops.jna_fast.cross_stitch_backward.default, (*grads, *case.inputs()))


@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_cross_stitch_writes_every_output(layout, dtype):
    case = make_stitch_case(3, 13, 5, 3, dtype=dtype, layout=layout, alpha_dtype=torch.float32)
    grads = [torch.randn(case.x_rgb.shape).to(dtype), torch.randn(case.x_rgb.shape).to(dtype)]
    with poisoned_allocations():
        outputs = torch.ops.jna_fast.cross_stitch(*case.inputs())
        grad_inputs = torch.ops.jna_fast.cross_stitch_backward(*grads, *case.inputs())
    assert_all_written(outputs, "cross_stitch")
    assert_all_written(grad_inputs, "cross_stitch_backward")


@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_cross_stitch_backward_is_deterministic(layout):
    case = make_stitch_case(16, 24, 9, 9, layout=layout)
    grads = [torch.randn(case.x_rgb.shape), torch.randn(case.x_rgb.shape)]
    first = torch.ops.jna_fast.cross_stitch_backward(*grads, *case.inputs())
    second = torch.ops.jna_fast.cross_stitch_backward(*grads, *case.inputs())
    for a, b in zip(first, second):
        assert torch.equal(a, b), f"seed {case.seed}"


# ------------------------------------------------------------------------------------- joint_attention_pool


@pytest.mark.parametrize("shape", POOL_SHAPES, ids=case_id)
@pytest.mark.parametrize("mask", ("none", "tail", "holes"))
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=str)
def test_pool_matches_reference(shape, mask, dtype):
    # float32 w with low-precision features: the autocast situation.
    case = make_pool_case(*shape, dtype=dtype, mask=mask, w_dtype=torch.float32)
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("mask", ("none", "tail", "holes"))
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=str)
def test_pool_large_scores(mask, dtype):
    # |scores| ~ 1e4: exp would overflow without the running max.
    case = make_pool_case(4, 25, 33, dtype=dtype, mask=mask, score_scale=1e4, w_dtype=torch.float32)
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_pool_online_softmax_across_tiles(dtype):
    # The CPU forward scores and pools C = 2048 snippets in tiles of 8 (float32) or 16 (bf16): clips whose first
    # tiles are all padding, whose max arrives in a late tile, and which have a single real snippet at the end.
    case = make_pool_case(4, 25, 2048, dtype=dtype, score_scale=1e4, w_dtype=torch.float32)
    mask = torch.ones(4, 25, dtype=torch.bool)
    mask[0, :17] = False
    mask[1, :24] = False
    mask[2, 3:20] = False
    case.mask = mask
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_pool_noncontiguous(dtype):
    case = make_pool_case(3, 25, 40, dtype=dtype, mask="holes", noncontiguous=True, w_dtype=torch.float32)
    assert not case.f_rgb.is_contiguous()
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("dtype", (torch.float64, *LOW_PRECISION), ids=str)
def test_pool_w_in_feature_dtype(dtype):
    case = make_pool_case(3, 25, 24, dtype=dtype, mask="tail")
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("mask", ("none", "holes"))
def test_pool_gradient_through_attention_alone(mask):
    # A loss on the attention output only: every gradient flows through grad_attention.
    case = make_pool_case(4, 25, 33, mask=mask)

    def attention_only(fn):
        return lambda *inputs: fn(*inputs)[2:]

    assert_matches_reference(attention_only(cpp_pool), attention_only(joint_attention_pool_ref), case.inputs(),
                             case.seed, names=("attention",))


def test_pool_large_outputs():
    # df over 4 MB takes the huge-page advice (csrc/cpu/output_memory.h).
    case = make_pool_case(42, 25, 1024, mask="holes")
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


def test_pool_large_batch_reduction():
    # dw sums B*T = 1600 snippets, across both threads' partials.
    case = make_pool_case(64, 25, 96, mask="tail")
    assert_matches_reference(cpp_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("mask", ("none", "holes"))
@pytest.mark.parametrize("segments", (1, 9))
def test_pool_gradcheck(mask, segments):
    case = make_pool_case(3, segments, 11, dtype=torch.float64, mask=mask, score_scale=3.0)
    floats = [t.detach().requires_grad_(True) for t in case.inputs()[:4]]
    assert torch.autograd.gradcheck(lambda *f: cpp_pool(*f, case.mask), floats), f"seed {case.seed}"


@pytest.mark.parametrize("mask", ("none", "holes"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_pool_opcheck(mask, dtype):
    case = make_pool_case(3, 7, 20, dtype=dtype, mask=mask, w_dtype=torch.float32)
    floats = [t.detach().requires_grad_(True) for t in case.inputs()[:4]]
    torch.library.opcheck(torch.ops.jna_fast.joint_attention_pool.default, (*floats, case.mask))
    p_rgb, p_flow, attention = torch.ops.jna_fast.joint_attention_pool(*case.inputs())
    grads = (torch.randn_like(p_rgb), torch.randn_like(p_flow), torch.randn_like(attention))
    torch.library.opcheck(torch.ops.jna_fast.joint_attention_pool_backward.default,
                          (*grads, *case.inputs()[:4], attention))


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_pool_writes_every_output(dtype):
    case = make_pool_case(3, 25, 13, dtype=dtype, mask="holes", w_dtype=torch.float32)
    with poisoned_allocations():
        p_rgb, p_flow, attention = torch.ops.jna_fast.joint_attention_pool(*case.inputs())
        grads = (torch.randn_like(p_rgb), torch.randn_like(p_flow), torch.randn_like(attention))
        grad_inputs = torch.ops.jna_fast.joint_attention_pool_backward(*grads, *case.inputs()[:4], attention)
    assert_all_written((p_rgb, p_flow, attention), "joint_attention_pool")
    assert_all_written(grad_inputs, "joint_attention_pool_backward")


def test_large_outputs_are_written_in_full():
    # Outputs over 4 MB live in a huge-page-aligned byte buffer (csrc/cpu/output_memory.h), poisoned too.
    stitch = make_stitch_case(8, 64, 47, 47)
    pool = make_pool_case(42, 25, 1024, mask="holes")
    with poisoned_allocations():
        stitched = torch.ops.jna_fast.cross_stitch(*stitch.inputs())
        stitch_grads = torch.ops.jna_fast.cross_stitch_backward(*stitched, *stitch.inputs())
        p_rgb, p_flow, attention = torch.ops.jna_fast.joint_attention_pool(*pool.inputs())
        pool_grads = torch.ops.jna_fast.joint_attention_pool_backward(p_rgb, p_flow, attention, *pool.inputs()[:4],
                                                                      attention)
    assert stitched[0].nbytes >= 4 << 20 and pool_grads[0].nbytes >= 4 << 20
    assert_all_written(stitched, "cross_stitch")
    assert_all_written(stitch_grads, "cross_stitch_backward")
    assert_all_written(pool_grads, "joint_attention_pool_backward")


def test_pool_backward_is_deterministic():
    case = make_pool_case(32, 25, 72, mask="holes")
    p_rgb, p_flow, attention = torch.ops.jna_fast.joint_attention_pool(*case.inputs())
    grads = (torch.randn_like(p_rgb), torch.randn_like(p_flow), torch.randn_like(attention))
    first = torch.ops.jna_fast.joint_attention_pool_backward(*grads, *case.inputs()[:4], attention)
    second = torch.ops.jna_fast.joint_attention_pool_backward(*grads, *case.inputs()[:4], attention)
    for a, b in zip(first, second):
        assert torch.equal(a, b), f"seed {case.seed}"


@pytest.mark.parametrize("call", ("wrapper", "op"))
def test_pool_all_false_mask_row_is_value_error(call):
    case = make_pool_case(5, 4, 9, mask="tail")
    mask = case.mask.clone()
    mask[1] = False
    mask[3] = False
    fn = cpp_pool if call == "wrapper" else torch.ops.jna_fast.joint_attention_pool
    with pytest.raises(ValueError, match=r"mask: rows \[1, 3\] are all False"):
        fn(case.f_rgb, case.f_flow, case.w_rgb, case.w_flow, mask)


# ------------------------------------------------------------------------------------------ torch.compile


def test_compile_fullgraph_matches_eager():
    """Both ops with backend="cpp" inside one compiled function, forward and backward, no graph break."""
    batch, segments, channels = 2, 3, 16
    stitch = make_stitch_case(batch * segments, channels, 4, 4, layout="channels_last")
    pool = make_pool_case(batch, segments, channels, mask="tail")

    def model(x_rgb, x_flow, alpha, w_rgb, w_flow, mask):
        y_rgb, y_flow = ops.cross_stitch(x_rgb, x_flow, alpha, backend="cpp")
        f_rgb = y_rgb.mean(dim=(2, 3)).view(batch, segments, channels)
        f_flow = y_flow.mean(dim=(2, 3)).view(batch, segments, channels)
        p_rgb, p_flow, attention = ops.joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask, backend="cpp")
        return p_rgb.square().sum() + (p_rgb * p_flow).sum() + (attention * torch.arange(segments)).sum()

    inputs = (*stitch.inputs(), pool.w_rgb, pool.w_flow, pool.mask)

    def loss_and_grads(fn):
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        loss = fn(*leaves)
        loss.backward()
        return [loss.detach()] + [t.grad for t in leaves if t.is_floating_point()]

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    for eager_value, compiled_value in zip(loss_and_grads(model), loss_and_grads(compiled)):
        torch.testing.assert_close(compiled_value, eager_value, msg=f"seeds {stitch.seed}, {pool.seed}")

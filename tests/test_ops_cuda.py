"""The CUDA backend (csrc/cuda) against the float64 reference (tests/op_testing.py's accuracy rule), gradcheck,
opcheck, poisoned outputs, all-False mask rows, the packet-width and shared-memory fallbacks.

Every test needs a CUDA device and an extension built with the CUDA kernels; without them the module is
skipped (``cuda`` marker). On a CUDA machine: ``pytest tests/test_ops_cuda.py -q``.
"""

import pytest
import torch

from jna_fast._ext import extension_status
from jna_fast.ops import cross_stitch, joint_attention_pool
from op_testing import (
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


def _cuda_backend_missing() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    status = extension_status()
    if not status.loaded:
        return f"the extension did not load ({status.error})"
    if "cuda" not in status.compiled_backends:
        return f"the extension was built without CUDA kernels (built: {', '.join(status.compiled_backends)})"
    return None


pytestmark = [pytest.mark.cuda, pytest.mark.skipif(_cuda_backend_missing() is not None,
                                                   reason=str(_cuda_backend_missing()))]

ops = torch.ops.jna_fast
DEVICE = "cuda"


def cuda_stitch(*inputs):
    return cross_stitch(*inputs, backend="cuda")


def cuda_pool(*inputs):
    return joint_attention_pool(*inputs, backend="cuda")


STITCH_CASES = [
    # n, C, H, W, layout, feature dtype, alpha dtype
    (2, 1, 3, 5, "contiguous", torch.float32, None),  # scalar packets: HW = 15 is odd
    (3, 7, 4, 5, "channels_last", torch.float32, None),  # scalar packets: C = 7
    (2, 33, 3, 3, "mixed", torch.float32, None),
    (2, 13, 5, 6, "noncontiguous", torch.float32, None),
    (4, 2048, 2, 3, "channels_last", torch.float32, None),  # 16-byte packets across channels
    (3, 2048, 1, 1, "contiguous", torch.float32, None),
    (96, 64, 28, 28, "contiguous", torch.float32, None),  # many splits per channel: two-stage dalpha
    (96, 64, 28, 28, "channels_last", torch.float32, None),
    (8, 256, 14, 14, "contiguous", torch.bfloat16, torch.float32),  # HW = 196: 8-byte bf16 packets
    (2, 33, 4, 4, "channels_last", torch.bfloat16, torch.float32),
    (2, 7, 5, 5, "contiguous", torch.bfloat16, torch.float32),
    (2, 13, 3, 4, "mixed", torch.float16, torch.float32),
    (4, 64, 8, 8, "channels_last", torch.float16, torch.float32),
    (2, 7, 3, 3, "channels_last", torch.float64, None),
    (3, 16, 4, 4, "contiguous", torch.float64, None),
]


@pytest.mark.parametrize("n,channels,height,width,layout,dtype,alpha_dtype", STITCH_CASES)
def test_cross_stitch_matches_reference(n, channels, height, width, layout, dtype, alpha_dtype):
    case = make_stitch_case(n, channels, height, width, dtype=dtype, device=DEVICE, layout=layout,
                            alpha_dtype=alpha_dtype)
    assert_matches_reference(cuda_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "mixed"])
def test_cross_stitch_output_layout_follows_x_rgb(layout):
    case = make_stitch_case(2, 8, 3, 4, device=DEVICE, layout=layout, dtype=torch.bfloat16,
                            alpha_dtype=torch.float32)
    fmt = torch.channels_last if layout in ("channels_last", "mixed") else torch.contiguous_format
    y_rgb, y_flow = ops.cross_stitch(*case.inputs())
    dx_rgb, dx_flow, dalpha = ops.cross_stitch_backward(*_stitch_grads(case), *case.inputs())
    for t in (y_rgb, y_flow, dx_rgb, dx_flow):
        assert t.is_contiguous(memory_format=fmt) and t.dtype == torch.bfloat16
    assert dalpha.is_contiguous() and dalpha.dtype == torch.float32 and dalpha.shape == (8, 2, 2)


def _misaligned(t: torch.Tensor) -> torch.Tensor:
    """The same values, contiguous in t's layout, starting one element past a 16-byte boundary, so the kernels
    must take their narrower-packet path."""
    fmt = torch.channels_last if t.dim() == 4 and not t.is_contiguous() else torch.contiguous_format
    dense = t.contiguous(memory_format=fmt)
    storage = torch.empty(dense.numel() + 1, dtype=t.dtype, device=t.device)
    shifted = storage[1:].as_strided(dense.shape, dense.stride())
    shifted.copy_(dense)
    return shifted


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cross_stitch_misaligned_inputs(layout):
    case = make_stitch_case(3, 32, 4, 4, device=DEVICE, layout=layout)
    inputs = (_misaligned(case.x_rgb), _misaligned(case.x_flow), case.alpha)
    assert inputs[0].data_ptr() % 16 != 0
    assert_matches_reference(cuda_stitch, cross_stitch_ref, inputs, case.seed, names=STITCH_NAMES)


POOL_CASES = [
    # B, T, C, mask, score scale, noncontiguous, feature dtype, parameter dtype
    (3, 1, 7, "none", 1.0, False, torch.float32, None),
    (2, 1, 2048, "tail", 1.0, False, torch.float32, None),
    (2, 25, 33, "tail", 1.0, False, torch.float32, None),
    (3, 25, 13, "holes", 1e4, False, torch.float32, None),
    (2, 25, 33, "tail", 1e4, False, torch.float32, None),
    (2, 6, 1, "holes", 1.0, False, torch.float32, None),
    (4, 25, 2048, "tail", 3.0, False, torch.float32, None),
    (4, 25, 2048, "holes", 1e4, False, torch.float32, None),
    (2, 9, 33, "holes", 1.0, True, torch.float32, None),
    (3, 25, 2048, "none", 1.0, True, torch.float32, None),
    (2, 25, 33, "tail", 1.0, False, torch.bfloat16, torch.float32),
    (4, 25, 2048, "holes", 3.0, False, torch.bfloat16, torch.float32),
    (2, 7, 13, "holes", 1e4, True, torch.bfloat16, torch.float32),
    (2, 5, 7, "none", 1.0, False, torch.float16, torch.float32),
    (3, 25, 2048, "tail", 1.0, False, torch.float16, torch.float32),
    (2, 9, 7, "holes", 1.0, False, torch.float64, None),
    (2, 25, 2048, "tail", 1e4, False, torch.float64, None),
]


@pytest.mark.parametrize("batch,segments,channels,mask,scale,noncontiguous,dtype,w_dtype", POOL_CASES)
def test_joint_attention_pool_matches_reference(batch, segments, channels, mask, scale, noncontiguous, dtype,
                                                w_dtype):
    case = make_pool_case(batch, segments, channels, dtype=dtype, device=DEVICE, mask=mask, score_scale=scale,
                          noncontiguous=noncontiguous, w_dtype=w_dtype)
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


def test_joint_attention_pool_full_size_bf16():
    """The benchmark shape (B=128, T=25, C=2048) with padded clips: one block per clip, every SM busy."""
    case = make_pool_case(128, 25, 2048, dtype=torch.bfloat16, device=DEVICE, mask="tail", w_dtype=torch.float32)
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


def test_joint_attention_pool_misaligned_inputs():
    case = make_pool_case(3, 5, 32, device=DEVICE, mask="holes")
    inputs = (_misaligned(case.f_rgb), _misaligned(case.f_flow), case.w_rgb, case.w_flow, case.mask)
    assert inputs[0].data_ptr() % 16 != 0
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, inputs, case.seed, names=POOL_NAMES)


def test_joint_attention_pool_state_in_global_memory():
    """C so large that the per-clip state (2C accumulators forward, 4C backward) exceeds shared memory: the
    kernels keep it in a global workspace instead."""
    case = make_pool_case(2, 3, 40000, device=DEVICE, mask="tail")
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


def test_fp64_gradcheck():
    stitch = make_stitch_case(2, 3, 2, 2, dtype=torch.float64, device=DEVICE, layout="channels_last")
    pool = make_pool_case(2, 4, 3, dtype=torch.float64, device=DEVICE, mask="holes")
    stitch_inputs = [t.detach().requires_grad_() for t in stitch.inputs()]
    pool_inputs = [t.detach().requires_grad_() for t in pool.inputs()[:4]] + [pool.mask]
    assert torch.autograd.gradcheck(cuda_stitch, stitch_inputs)
    assert torch.autograd.gradcheck(cuda_pool, pool_inputs)


def _pool_backward_args(case, attention):
    batch, segments, channels = case.f_rgb.shape
    gen = torch.Generator().manual_seed(case.seed)
    grads = [torch.randn(shape, generator=gen).to(device=case.f_rgb.device, dtype=dtype)
             for shape, dtype in (((batch, channels), case.f_rgb.dtype), ((batch, channels), case.f_rgb.dtype),
                                  ((batch, segments), attention.dtype))]
    return (*grads, case.f_rgb, case.f_flow, case.w_rgb, case.w_flow, attention)


def _stitch_grads(case):
    gen = torch.Generator().manual_seed(case.seed)
    return [torch.randn(case.x_rgb.shape, generator=gen).to(device=DEVICE, dtype=case.x_rgb.dtype)
            .contiguous(memory_format=torch.channels_last if not case.x_rgb.is_contiguous() else
                        torch.contiguous_format) for _ in range(2)]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype,alpha_dtype", [(torch.float32, None), (torch.bfloat16, torch.float32)])
def test_opcheck_cross_stitch(layout, dtype, alpha_dtype):
    case = make_stitch_case(2, 3, 2, 3, device=DEVICE, layout=layout, dtype=dtype, alpha_dtype=alpha_dtype)
    torch.library.opcheck(ops.cross_stitch.default, tuple(t.detach().requires_grad_() for t in case.inputs()))
    torch.library.opcheck(ops.cross_stitch_backward.default, (*_stitch_grads(case), *case.inputs()))


@pytest.mark.parametrize("dtype,w_dtype", [(torch.float32, None), (torch.bfloat16, torch.float32)])
def test_opcheck_joint_attention_pool(dtype, w_dtype):
    case = make_pool_case(2, 3, 5, device=DEVICE, mask="tail", dtype=dtype, w_dtype=w_dtype)
    leaves = [t.detach().requires_grad_() for t in case.inputs()[:4]]
    torch.library.opcheck(ops.joint_attention_pool.default, (*leaves, case.mask))
    torch.library.opcheck(ops.joint_attention_pool.default, (*leaves, None))
    attention = ops.joint_attention_pool(*case.inputs())[2]
    torch.library.opcheck(ops.joint_attention_pool_backward.default, _pool_backward_args(case, attention))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_output_element_is_written(layout, dtype):
    stitch = make_stitch_case(3, 7, 3, 5, device=DEVICE, layout=layout, dtype=dtype)
    wide = make_stitch_case(4, 64, 6, 6, device=DEVICE, layout=layout, dtype=dtype)
    pool = make_pool_case(3, 6, 33, device=DEVICE, mask="holes", dtype=dtype)
    wide_pool = make_pool_case(5, 25, 2048, device=DEVICE, mask="tail", dtype=dtype)
    with poisoned_allocations():
        for case in (stitch, wide):
            assert_all_written(ops.cross_stitch(*case.inputs()), "cross_stitch")
            assert_all_written(ops.cross_stitch_backward(*_stitch_grads(case), *case.inputs()),
                               "cross_stitch_backward")
        for case in (pool, wide_pool):
            pooled = ops.joint_attention_pool(*case.inputs())
            assert_all_written(pooled, "joint_attention_pool")
            assert_all_written(ops.joint_attention_pool_backward(*_pool_backward_args(case, pooled[2])),
                               "joint_attention_pool_backward")


def _with_empty_rows(case, rows):
    case.mask[rows] = False
    return case


def test_all_false_mask_rows_raise_when_checked(monkeypatch):
    case = _with_empty_rows(make_pool_case(4, 5, 7, device=DEVICE, mask="holes"), [1, 3])
    monkeypatch.setenv("JNA_FAST_CHECKS", "1")
    with pytest.raises(ValueError, match=r"mask: rows \[1, 3\] are all False"):
        cuda_pool(*case.inputs())
    with pytest.raises(ValueError, match=r"mask: rows \[1, 3\] are all False"):
        ops.joint_attention_pool(*case.inputs())


def test_checked_valid_masks_pass(monkeypatch):
    monkeypatch.setenv("JNA_FAST_CHECKS", "1")
    case = make_pool_case(4, 5, 7, device=DEVICE, mask="tail")
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_unchecked_all_false_mask_rows_give_zeros(monkeypatch, dtype):
    """Without JNA_FAST_CHECKS the GPU does not sync to check: rows with no snippet give p = 0, a = 0, zero df,
    no NaN, and dw as if those rows were absent."""
    monkeypatch.delenv("JNA_FAST_CHECKS", raising=False)
    empty, kept = [0, 2], [1, 3]
    case = _with_empty_rows(make_pool_case(4, 6, 2048, device=DEVICE, mask="tail", dtype=dtype), empty)
    assert_matches_reference(cuda_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)
    p_rgb, p_flow, attention = ops.joint_attention_pool(*case.inputs())
    assert not p_rgb[empty].any() and not p_flow[empty].any() and not attention[empty].any()
    args = _pool_backward_args(case, attention)
    df_rgb, df_flow, dw_rgb, dw_flow = ops.joint_attention_pool_backward(*args)
    for grad in (df_rgb, df_flow, dw_rgb, dw_flow):
        assert torch.isfinite(grad).all()
    assert not df_rgb[empty].any() and not df_flow[empty].any()
    kept_args = [t[kept] for t in args[:5]] + list(args[5:7]) + [attention[kept]]
    _, _, dw_rgb_kept, dw_flow_kept = ops.joint_attention_pool_backward(*kept_args)
    torch.testing.assert_close(dw_rgb, dw_rgb_kept)
    torch.testing.assert_close(dw_flow, dw_flow_kept)


def test_runs_on_the_current_stream(monkeypatch):
    """Every launch goes to torch's current stream: CUDA graph capture (which torch.cuda.graph does on a side
    stream) fails on any launch to another stream, and the replayed graph reproduces the eager results."""
    monkeypatch.delenv("JNA_FAST_CHECKS", raising=False)  # the checked path syncs, which capture forbids
    pool = make_pool_case(16, 25, 2048, device=DEVICE, mask="tail")
    stitch = make_stitch_case(8, 256, 14, 14, device=DEVICE, layout="channels_last")

    # Inputs are made before capture: host-to-device copies are not capturable.
    pool_backward_args = _pool_backward_args(pool, ops.joint_attention_pool(*pool.inputs())[2])
    stitch_backward_args = (*_stitch_grads(stitch), *stitch.inputs())

    def run_all():
        pooled = ops.joint_attention_pool(*pool.inputs())
        pool_grads = ops.joint_attention_pool_backward(*pool_backward_args)
        mixed = ops.cross_stitch(*stitch.inputs())
        stitch_grads = ops.cross_stitch_backward(*stitch_backward_args)
        return (*pooled, *pool_grads, *mixed, *stitch_grads)

    eager = run_all()
    run_all()  # warm-up outside capture (allocator pools, kernel attributes)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run_all()
    graph.replay()
    torch.cuda.synchronize()
    for got, want in zip(captured, eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_compiles_without_graph_breaks():
    stitch = make_stitch_case(2, 5, 3, 3, device=DEVICE, layout="channels_last")
    pool = make_pool_case(2, 4, 6, device=DEVICE, mask="tail")

    def forward_backward(x_rgb, x_flow, alpha, f_rgb, f_flow, w_rgb, w_flow, mask):
        y_rgb, y_flow = ops.cross_stitch(x_rgb, x_flow, alpha)
        p_rgb, p_flow, attention = ops.joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
        return (y_rgb * y_flow).sum() + (p_rgb * p_flow).sum() + attention.square().sum()

    inputs = [t.requires_grad_() for t in (*stitch.inputs(), *pool.inputs()[:4])] + [pool.mask]
    compiled = torch.compile(forward_backward, fullgraph=True, backend="aot_eager")
    compiled(*inputs).backward()
    eager_inputs = [t.detach().requires_grad_() for t in inputs[:-1]] + [pool.mask]
    forward_backward(*eager_inputs).backward()
    for compiled_leaf, eager_leaf in zip(inputs[:-1], eager_inputs[:-1]):
        torch.testing.assert_close(compiled_leaf.grad, eager_leaf.grad)

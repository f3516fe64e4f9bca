"""The Triton backend against the float64 reference (tests/op_testing.py's accuracy rule), opcheck, poisoned
outputs and all-False mask rows.

Without a CUDA device the kernels run under TRITON_INTERPRET=1 on CPU tensors (tests/conftest.py sets it before
anything imports triton; it is set here too for a direct run of this file). The interpreter costs milliseconds
per program and per operation, so the shapes are small. On a CUDA machine the same tests run on the GPU
(``cuda`` marker).
"""

import importlib
import os
import subprocess
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

pytest.importorskip("triton")

import jna_fast.triton as triton_backend  # noqa: E402
from jna_fast.ops import cross_stitch, joint_attention_pool  # noqa: E402
from jna_fast.triton.joint_attention_pool import launch_forward  # noqa: E402
from op_testing import (  # noqa: E402
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

ops = torch.ops.jna_fast_triton
# The package attribute of that name is the op function; the module holds the launch parameters.
cross_stitch_module = importlib.import_module("jna_fast.triton.cross_stitch")

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(
        not triton_backend.INTERPRETED,
        reason="CPU tensors need TRITON_INTERPRET=1 set before triton is first imported")),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not torch.cuda.is_available() or triton_backend.INTERPRETED,
        reason="needs a CUDA device and compiled (not interpreted) Triton kernels")]),
]


def triton_stitch(*inputs):
    return cross_stitch(*inputs, backend="triton")


def triton_pool(*inputs):
    return joint_attention_pool(*inputs, backend="triton")


STITCH_CASES = [
    # n, C, H, W, layout, feature dtype, alpha dtype
    (2, 1, 3, 5, "contiguous", torch.float32, None),
    (3, 7, 4, 5, "channels_last", torch.float32, None),
    (2, 33, 3, 3, "mixed", torch.float32, None),
    (2, 13, 5, 6, "noncontiguous", torch.float32, None),
    (2, 2048, 2, 3, "channels_last", torch.float32, None),
    (3, 2048, 1, 1, "contiguous", torch.float32, None),
    (2, 33, 4, 4, "channels_last", torch.bfloat16, torch.float32),
    (2, 7, 5, 5, "contiguous", torch.bfloat16, torch.float32),
    (2, 13, 3, 4, "mixed", torch.float16, torch.float32),
    (2, 7, 3, 3, "channels_last", torch.float64, None),
    (2, 7, 12, 12, "channels_last", torch.float32, None),  # 288 rows: two row chunks in the backward
    (2, 3, 17, 17, "contiguous", torch.float32, None),  # H*W = 289: two column blocks per row in the backward
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,channels,height,width,layout,dtype,alpha_dtype", STITCH_CASES)
def test_cross_stitch_matches_reference(device, n, channels, height, width, layout, dtype, alpha_dtype):
    case = make_stitch_case(n, channels, height, width, dtype=dtype, device=device, layout=layout,
                            alpha_dtype=alpha_dtype)
    assert_matches_reference(triton_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_stitch_backward_with_several_row_blocks_per_program(device, monkeypatch):
    """channels_last dalpha: with few programs allowed, each walks several row blocks of its chunk."""
    monkeypatch.setattr(cross_stitch_module, "TARGET_PROGRAMS", 2)
    case = make_stitch_case(2, 33, 12, 12, device=device, layout="channels_last")
    assert_matches_reference(triton_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "mixed"])
def test_cross_stitch_output_layout_follows_x_rgb(device, layout):
    case = make_stitch_case(2, 5, 3, 4, device=device, layout=layout)
    y_rgb, y_flow = triton_stitch(*case.inputs())
    nhwc = layout in ("channels_last", "mixed")
    for y in (y_rgb, y_flow):
        assert y.is_contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


POOL_CASES = [
    # B, T, C, mask, score scale, noncontiguous, feature dtype, parameter dtype
    (3, 1, 7, "none", 1.0, False, torch.float32, None),
    (2, 25, 33, "tail", 1.0, False, torch.float32, None),
    (3, 25, 13, "holes", 1e4, False, torch.float32, None),
    (2, 25, 33, "tail", 1e4, False, torch.float32, None),
    (2, 25, 2048, "tail", 3.0, False, torch.float32, None),
    (2, 9, 33, "holes", 1.0, True, torch.float32, None),
    (2, 25, 33, "tail", 1.0, False, torch.bfloat16, torch.float32),
    (2, 7, 13, "holes", 1e4, True, torch.bfloat16, torch.float32),
    (2, 5, 7, "none", 1.0, False, torch.float16, torch.float32),
    (2, 9, 7, "holes", 1.0, False, torch.float64, None),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch,segments,channels,mask,scale,noncontiguous,dtype,w_dtype", POOL_CASES)
def test_joint_attention_pool_matches_reference(device, batch, segments, channels, mask, scale, noncontiguous,
                                                dtype, w_dtype):
    case = make_pool_case(batch, segments, channels, dtype=dtype, device=device, mask=mask, score_scale=scale,
                          noncontiguous=noncontiguous, w_dtype=w_dtype)
    assert_matches_reference(triton_pool, joint_attention_pool_ref, case.inputs(), case.seed, names=POOL_NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", ["none", "tail", "holes"])
def test_joint_attention_pool_single_channel(device, mask):
    """C = 1, outputs with masks; gradients at T = 1. With C = 1 each dw is a single sum over B*T terms that can
    cancel to near zero, and the accuracy rule on one element compares two independent rounding noises
    (measured: a kernel using plain PyTorch's very formula fails it about 1% of the time)."""
    case = make_pool_case(3, 6, 1, device=device, mask=mask)
    assert_matches_reference(triton_pool, joint_attention_pool_ref, case.inputs(), case.seed, check_grads=False,
                             names=POOL_NAMES)
    single = make_pool_case(3, 1, 1, device=device, mask="none" if mask == "holes" else mask)
    assert_matches_reference(triton_pool, joint_attention_pool_ref, single.inputs(), single.seed,
                             names=POOL_NAMES)


@pytest.mark.parametrize("device", DEVICES)
def test_fp64_gradcheck(device):
    stitch = make_stitch_case(1, 3, 2, 2, dtype=torch.float64, device=device, layout="channels_last")
    pool = make_pool_case(2, 3, 3, dtype=torch.float64, device=device, mask="holes")
    stitch_inputs = [t.detach().requires_grad_() for t in stitch.inputs()]
    pool_inputs = [t.detach().requires_grad_() for t in pool.inputs()[:4]] + [pool.mask]
    assert torch.autograd.gradcheck(triton_stitch, stitch_inputs, fast_mode=True)
    assert torch.autograd.gradcheck(triton_pool, pool_inputs, fast_mode=True)


def _pool_backward_args(case, attention):
    batch, segments, channels = case.f_rgb.shape
    gen = torch.Generator().manual_seed(case.seed)
    grads = [torch.randn(shape, generator=gen).to(device=case.f_rgb.device, dtype=dtype)
             for shape, dtype in (((batch, channels), case.f_rgb.dtype), ((batch, channels), case.f_rgb.dtype),
                                  ((batch, segments), attention.dtype))]
    return (*grads, case.f_rgb, case.f_flow, case.w_rgb, case.w_flow, attention)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck_cross_stitch(device, layout):
    case = make_stitch_case(2, 3, 2, 3, device=device, layout=layout)
    torch.library.opcheck(ops.cross_stitch.default, tuple(t.detach().requires_grad_() for t in case.inputs()))
    grads = [torch.randn_like(case.x_rgb), torch.randn_like(case.x_rgb)]
    torch.library.opcheck(ops.cross_stitch_backward.default, (*grads, *case.inputs()))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_joint_attention_pool(device):
    case = make_pool_case(2, 3, 5, device=device, mask="tail")
    leaves = [t.detach().requires_grad_() for t in case.inputs()[:4]]
    torch.library.opcheck(ops.joint_attention_pool.default, (*leaves, case.mask))
    torch.library.opcheck(ops.joint_attention_pool.default, (*leaves, None))
    attention = ops.joint_attention_pool(*case.inputs())[2]
    torch.library.opcheck(ops.joint_attention_pool_backward.default, _pool_backward_args(case, attention))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_every_output_element_is_written(device, layout):
    stitch = make_stitch_case(2, 7, 3, 5, device=device, layout=layout)
    pool = make_pool_case(3, 6, 33, device=device, mask="holes")
    with poisoned_allocations():
        assert_all_written(ops.cross_stitch(*stitch.inputs()), "cross_stitch")
        grads = [torch.randn_like(stitch.x_rgb), torch.randn_like(stitch.x_rgb)]
        assert_all_written(ops.cross_stitch_backward(*grads, *stitch.inputs()), "cross_stitch_backward")
        pooled = ops.joint_attention_pool(*pool.inputs())
        assert_all_written(pooled, "joint_attention_pool")
        assert_all_written(ops.joint_attention_pool_backward(*_pool_backward_args(pool, pooled[2])),
                           "joint_attention_pool_backward")


def _with_empty_rows(case, rows):
    case.mask[rows] = False
    return case


@pytest.mark.parametrize("device", DEVICES)
def test_all_false_mask_rows_raise_when_checked(device, monkeypatch):
    case = _with_empty_rows(make_pool_case(4, 5, 7, device=device, mask="holes"), [1, 3])
    if device == "cuda":
        monkeypatch.setenv("JNA_FAST_CHECKS", "1")
    with pytest.raises(ValueError, match=r"mask: rows \[1, 3\] are all False"):
        triton_pool(*case.inputs())


@pytest.mark.parametrize("device", DEVICES)
def test_unchecked_all_false_mask_rows_give_zeros(device):
    """The kernels' own behaviour for rows with no snippet (what CUDA runs without JNA_FAST_CHECKS): p = 0,
    a = 0, zero df, no NaN, and dw as if those rows were absent."""
    empty = [0, 2]
    case = _with_empty_rows(make_pool_case(4, 6, 13, device=device, mask="tail"), empty)
    assert_matches_reference(launch_forward, joint_attention_pool_ref, case.inputs(), case.seed,
                             check_grads=False, names=POOL_NAMES)
    attention = launch_forward(*case.inputs())[2]
    df_rgb, df_flow, dw_rgb, dw_flow = ops.joint_attention_pool_backward(*_pool_backward_args(case, attention))
    for grad in (df_rgb, df_flow, dw_rgb, dw_flow):
        assert torch.isfinite(grad).all()
    assert not df_rgb[empty].any() and not df_flow[empty].any()
    kept = [1, 3]
    args = _pool_backward_args(case, attention)
    kept_args = [t[kept] for t in args[:5]] + list(args[5:7]) + [attention[kept]]
    _, _, dw_rgb_kept, dw_flow_kept = ops.joint_attention_pool_backward(*kept_args)
    torch.testing.assert_close(dw_rgb, dw_rgb_kept)
    torch.testing.assert_close(dw_flow, dw_flow_kept)


@pytest.mark.parametrize("device", DEVICES)
def test_compiles_without_graph_breaks(device):
    stitch = make_stitch_case(2, 5, 3, 3, device=device, layout="channels_last")
    pool = make_pool_case(2, 4, 6, device=device, mask="tail")

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


def test_kernels_compile_for_a_gpu_target(tmp_path):
    """The interpreter accepts programs the compiler rejects: lower every kernel variant to an sm_90 cubin
    (Triton's bundled toolchain, no GPU needed) in a process where triton is imported uncompiled."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "jna_fast.triton.compile_check", "--arch", "90"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "compiled for sm_90: joint_attention_pool backward *bf16" in result.stdout

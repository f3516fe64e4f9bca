"""cross_stitch (docs/design.md §3) on every backend, one suite with the backend as an axis: the reference (where a
case means something for it), cpp, Triton under the interpreter on CPU, and CUDA and Triton on a GPU (``cuda``
marker; skipped without a device). Every fused backend gets every case: the accuracy rule of
tests/op_testing.py on odd shapes and every layout (contiguous, channels_last, non-contiguous, mixed,
misaligned), float32/bfloat16/float16/float64, tile boundaries, large reductions, the output layout rule, fp64
gradcheck, opcheck, poisoned outputs, deterministic dalpha, torch.compile, and (every backend) NaN/inf propagating
as IEEE arithmetic does (the non-finite rule of jna_fast/_op_rules.py).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from jna_fast import _op_rules
from op_testing import (
    LOW_PRECISION,
    STITCH_NAMES,
    assert_all_written,
    assert_compiled_matches_eager,
    assert_graph_replay_matches_eager,
    assert_matches_reference,
    backend_params,
    cross_stitch_ref,
    make_stitch_case,
    misaligned,
    poisoned_allocations,
    random_grad_outputs,
    run_with_grads,
    stitch_grads,
)

FUSED = backend_params()
EVERY = backend_params(include_reference=True)
FEATURE_DTYPES = (torch.float32, *LOW_PRECISION)
LAYOUTS = ("contiguous", "channels_last", "noncontiguous", "mixed")

# About 1000 elements per output or more, so that the max error is a stable statistic. C = 1, 7, 13, 33: vector
# tails; (2, 7, 12, 12) channels_last has 288 rows (two Triton row chunks in the backward); (2, 3, 17, 17) has
# H*W = 289 (two column blocks per row); 2048 channels: 16-byte packets across channels.
SHAPES = [(4, 7, 6, 6), (3, 13, 5, 5), (2, 33, 3, 5), (2, 64, 6, 6), (8, 1, 6, 6), (2, 7, 12, 12),
          (2, 3, 17, 17), (2, 2048, 2, 3)]
INTERPRETER_SHAPES = [(4, 7, 6, 6), (2, 33, 3, 5), (8, 1, 6, 6), (2, 7, 12, 12), (2, 3, 17, 17)]


def check(backend, case):
    assert_matches_reference(backend.cross_stitch, cross_stitch_ref, case.inputs(), case.seed, names=STITCH_NAMES)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=str)
def test_matches_reference(backend, layout, dtype):
    # float32 alpha with low-precision features: the autocast situation. C = 1 not in low precision: its dalpha
    # is four scalar sums, and which of the fused and plain results lands closer is a coin toss.
    for shape in INTERPRETER_SHAPES if backend.interpreted else SHAPES:
        if shape[1] == 1 and dtype in LOW_PRECISION:
            continue
        case = make_stitch_case(*shape, dtype=dtype, device=backend.device, layout=layout,
                                alpha_dtype=torch.float32)
        check(backend, case)
        y_rgb, y_flow = backend.cross_stitch(*case.inputs())
        fmt = _op_rules.feature_map_format(case.x_rgb)
        assert y_rgb.is_contiguous(memory_format=fmt) and y_flow.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("backend", [p for p in FUSED if p.values[0].namespace == "jna_fast_triton"])
def test_several_row_blocks_per_program(backend, monkeypatch):
    """The Triton channels_last backward with few programs allowed: each walks several row blocks of its chunk
    (a tile boundary the default launch reaches only on large inputs)."""
    monkeypatch.setattr(importlib.import_module("jna_fast.triton.cross_stitch"), "TARGET_PROGRAMS", 2)
    check(backend, make_stitch_case(2, 33, 12, 12, device=backend.device, layout="channels_last"))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
@pytest.mark.parametrize("dtype", (torch.float64, *LOW_PRECISION), ids=str)
def test_alpha_in_feature_dtype(backend, layout, dtype):
    check(backend, make_stitch_case(3, 24, 5, 5, dtype=dtype, device=backend.device, layout=layout))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_misaligned(backend, layout):
    case = make_stitch_case(3, 32, 4, 4, device=backend.device, layout=layout)
    case.x_rgb, case.x_flow = misaligned(case.x_rgb), misaligned(case.x_flow)
    assert case.x_rgb.data_ptr() % 16 != 0
    check(backend, case)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_large_reduction(backend, layout):
    # dalpha sums N*H*W products per channel, across many blocks' (threads') partials.
    shape = (8, 40, 14, 14) if backend.interpreted else (32, 40, 14, 14)
    check(backend, make_stitch_case(*shape, device=backend.device, layout=layout))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_large_outputs(backend, layout):
    # Outputs over 4 MB (the cpp huge-page buffers); H*W = 47*47 is odd, so NCHW vectors straddle planes.
    if backend.interpreted:
        pytest.skip("the interpreter runs 4 MB outputs in minutes; the shapes above cover its code paths")
    check(backend, make_stitch_case(8, 64, 47, 47, device=backend.device, layout=layout))


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last", "mixed"))
def test_gradcheck(backend, layout):
    case = make_stitch_case(2, 5, 3, 4, dtype=torch.float64, device=backend.device, layout=layout)
    inputs = [t.detach().requires_grad_(True) for t in case.inputs()]
    assert torch.autograd.gradcheck(backend.cross_stitch, inputs, fast_mode=backend.namespace != "jna_fast"), (
        f"seed {case.seed}")


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last", "mixed"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_opcheck(backend, layout, dtype):
    case = make_stitch_case(2, 12, 3, 5, dtype=dtype, device=backend.device, layout=layout,
                            alpha_dtype=torch.float32)
    torch.library.opcheck(backend.ops.cross_stitch.default, tuple(t.detach().requires_grad_(True)
                                                                  for t in case.inputs()))
    torch.library.opcheck(backend.ops.cross_stitch_backward.default, (*stitch_grads(case), *case.inputs()))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_writes_every_output(backend, layout, dtype):
    # The large case: outputs over 4 MB come from the cpp kernels' recycled huge-page buffers, poisoned too.
    shapes = [(3, 13, 5, 3)] + ([] if backend.interpreted else [(8, 64, 47, 47)])
    for shape in shapes:
        case = make_stitch_case(*shape, dtype=dtype, device=backend.device, layout=layout,
                                alpha_dtype=torch.float32)
        with poisoned_allocations():
            outputs = backend.ops.cross_stitch(*case.inputs())
            grads = backend.ops.cross_stitch_backward(*stitch_grads(case), *case.inputs())
        assert_all_written(outputs, "cross_stitch")
        assert_all_written(grads, "cross_stitch_backward")


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_non_finite_values_propagate(backend, layout, dtype):
    """NaN and +-inf in x and alpha reach exactly the outputs and gradients IEEE arithmetic sends them to (the
    float64 reference's NaN, +inf and -inf positions): none is dropped into a finite value, none spreads."""
    case = make_stitch_case(2, 7, 5, 5, dtype=dtype, device=backend.device, layout=layout,
                            alpha_dtype=torch.float32)
    case.x_rgb[0, 1, 2, 3] = float("nan")
    case.x_flow[1, 4, 0, 1] = float("inf")
    case.x_rgb[1, 5, 2, 2] = float("-inf")
    case.alpha[3, 0, 1] = float("nan")
    grad_outputs = random_grad_outputs(cross_stitch_ref(*case.inputs()), case.seed)
    got = run_with_grads(backend.cross_stitch, case.inputs(), grad_outputs)
    want = run_with_grads(cross_stitch_ref, [t.double() for t in case.inputs()], grad_outputs)
    names = (*STITCH_NAMES, "dx_rgb", "dx_flow", "dalpha")
    got, want = [*got[0], *got[1]], [*want[0], *want[1]]
    # The pattern is not vacuous: alpha[3, 0, 1] is NaN in all of y_rgb's channel 3 and dx_flow's, x_rgb's NaN in
    # dalpha[1, :, 0]; dx_rgb involves neither.
    assert want[0][:, 3].isnan().all() and want[3][:, 3].isnan().all() and want[4][1, :, 0].isnan().all()
    assert torch.isfinite(want[2]).all()
    for name, g, w in zip(names, got, want):
        for test in (torch.isnan, torch.isposinf, torch.isneginf):
            assert torch.equal(test(g), test(w)), f"{name}: {test.__name__} differs from IEEE's (seed {case.seed})"


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("layout", ("contiguous", "channels_last"))
def test_backward_is_deterministic(backend, layout):
    shape = (4, 24, 9, 9) if backend.interpreted else (16, 24, 9, 9)
    case = make_stitch_case(*shape, device=backend.device, layout=layout)
    args = (*stitch_grads(case), *case.inputs())
    first = backend.ops.cross_stitch_backward(*args)
    second = backend.ops.cross_stitch_backward(*args)
    for a, b in zip(first, second):
        assert torch.equal(a, b), f"seed {case.seed}"


@pytest.mark.parametrize("backend", EVERY)
def test_compile_fullgraph_matches_eager(backend):
    """Inside torch.compile(fullgraph=True), forward and backward, with no graph break."""
    case = make_stitch_case(2, 5, 3, 3, device=backend.device, layout="channels_last")

    def loss(x_rgb, x_flow, alpha):
        y_rgb, y_flow = backend.cross_stitch(x_rgb, x_flow, alpha)
        return (y_rgb * y_flow).sum() + y_rgb.square().sum()

    assert_compiled_matches_eager(loss, case.inputs(), (), backend.interpreted, case.seed)


@pytest.mark.parametrize("backend", [p for p in FUSED if p.values[0].device == "cuda"])
def test_runs_on_the_current_stream(backend):
    """Every launch goes to torch's current stream: CUDA graph capture (on a side stream) fails on a launch to
    any other stream, and the replayed graph reproduces the eager results."""
    case = make_stitch_case(8, 256, 14, 14, device=backend.device, layout="channels_last")
    args = (*stitch_grads(case), *case.inputs())  # made before capture: host-to-device copies are not capturable

    def run():
        return (*backend.ops.cross_stitch(*case.inputs()), *backend.ops.cross_stitch_backward(*args))

    assert_graph_replay_matches_eager(run)

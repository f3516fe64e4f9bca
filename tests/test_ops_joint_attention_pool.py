"""joint_attention_pool (docs/design.md §4) on every backend, one suite with the backend as an axis: the reference
(where a case means something for it), cpp, Triton under the interpreter on CPU, and CUDA and Triton on a GPU
(``cuda`` marker; skipped without a device). Every fused backend gets every case: the accuracy rule of
tests/op_testing.py (odd shapes, T = 1, odd C, masks, large and saturated scores, non-contiguous and misaligned
inputs, float32/bfloat16/float16/float64, tile boundaries), the gradient through the attention alone, fp64
gradcheck, opcheck, poisoned outputs, deterministic reductions, all-False mask rows, torch.compile, and (every
backend, the reference too) the non-finite rule of jna_fast/_op_rules.py: NaN/inf in a real snippet or in w makes
NaN rows, masked snippets never matter.

The interpreter costs milliseconds per program (one per clip) and per operation, so it gets the small shapes.
"""

from __future__ import annotations

import pytest
import torch

from op_testing import (
    LOW_PRECISION,
    POOL_NAMES,
    assert_all_written,
    assert_compiled_matches_eager,
    assert_graph_replay_matches_eager,
    assert_matches_reference,
    backend_params,
    joint_attention_pool_ref,
    make_pool_case,
    make_saturated_pool_case,
    misaligned,
    pool_backward_args,
    poisoned_allocations,
    random_grad_outputs,
    run_with_grads,
)

FUSED = backend_params()
EVERY = backend_params(include_reference=True)
FEATURE_DTYPES = (torch.float32, *LOW_PRECISION)

# C: 1, 3, 7, 13, 33 are not multiples of any vector width (tails); 2048 is the model's width. C = 1 only with
# T = 1: with T > 1 its dw is one scalar sum with cancellation, whose error vs plain PyTorch is a coin toss.
SHAPES = [(3, 1, 7), (5, 1, 1), (4, 25, 3), (3, 25, 13), (2, 25, 33), (2, 25, 2048), (5, 6, 64)]
INTERPRETER_SHAPES = [(3, 1, 7), (5, 1, 1), (2, 25, 13), (2, 9, 33), (2, 6, 2048)]


def shapes_for(backend):
    return INTERPRETER_SHAPES if backend.interpreted else SHAPES


def check(backend, case, **kwargs):
    assert_matches_reference(backend.joint_attention_pool, joint_attention_pool_ref, case.inputs(), case.seed,
                             names=POOL_NAMES, **kwargs)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "tail", "holes"))
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=str)
def test_matches_reference(backend, mask, dtype):
    # float32 w with low-precision features: the autocast situation.
    for shape in shapes_for(backend):
        check(backend, make_pool_case(*shape, dtype=dtype, device=backend.device, mask=mask,
                                      w_dtype=torch.float32))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "tail", "holes"))
def test_single_channel_outputs(backend, mask):
    """C = 1 with T > 1, outputs only: each dw would be one scalar sum over B*T terms that can cancel to near
    zero, where the accuracy rule compares two independent rounding noises (a coin toss)."""
    case = make_pool_case(3, 6, 1, device=backend.device, mask=mask)
    check(backend, case, check_grads=False)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "tail", "holes"))
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=str)
def test_large_scores(backend, mask, dtype):
    # |scores| ~ 1e4: exp overflows without the running max.
    check(backend, make_pool_case(4, 25, 33, dtype=dtype, device=backend.device, mask=mask, score_scale=1e4,
                                  w_dtype=torch.float32))


SATURATED_SEGMENTS = (1, 9, 64)
SATURATED_DRAWS = 20
# Feature scales of the draws, geometric from x30 to x1000: |scores| from ~30 to ~1e4.
SATURATED_SCALES = [30.0 * (1000.0 / 30.0) ** (i / (SATURATED_DRAWS - 1)) for i in range(SATURATED_DRAWS)]


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "holes"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_saturated_attention(backend, mask, dtype):
    """docs/design.md §4.2's trap: one snippet per clip takes almost all the attention and the true dw is tiny, so
    the floor is relative to the result. 20 fresh draws for every T, their features scaled from x30 to x1000:
    float32 scores put errors of 1e-5 to 1e-4 into dw here (the Triton and cpp backends failed about 1 draw in 20
    at x300 before they summed the scores in float64), and the expanded one-pass backward failed 1 draw in 4."""
    for segments in SATURATED_SEGMENTS:
        for scale in SATURATED_SCALES:
            case = make_saturated_pool_case(2, segments, 48, device=backend.device, scale=scale, mask=mask,
                                            dtype=dtype)
            check(backend, case, saturated=True)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_tile_boundaries(backend, dtype):
    """Clips whose first snippets are all padding, whose max arrives late, with a single real snippet at the
    end, at C = 2048: across the cpp forward's snippet tiles and the CUDA kernels' channel chunks."""
    segments = 9 if backend.interpreted else 25
    case = make_pool_case(4, segments, 2048, dtype=dtype, device=backend.device, score_scale=1e4,
                          w_dtype=torch.float32)
    mask = torch.ones(4, segments, dtype=torch.bool)
    mask[0, : segments - 8] = False
    mask[1, : segments - 1] = False
    mask[2, 3 : segments - 5] = False
    case.mask = mask.to(backend.device)
    check(backend, case)


@pytest.mark.parametrize("backend", FUSED)
def test_wide_channels(backend):
    """C = 40000 with B = 2: many channel chunks per clip (CUDA); beyond a register-resident row (Triton)
    the backend says so."""
    case = make_pool_case(2, 3, 40000, device=backend.device, mask="tail")
    if backend.max_channels is not None and backend.max_channels < 40000:
        with pytest.raises(ValueError, match=f"C <= {backend.max_channels}"):
            backend.joint_attention_pool(*case.inputs())
        return
    check(backend, case)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_noncontiguous(backend, dtype):
    case = make_pool_case(3, 9, 40, dtype=dtype, device=backend.device, mask="holes", noncontiguous=True,
                          w_dtype=torch.float32)
    assert not case.f_rgb.is_contiguous()
    check(backend, case)


@pytest.mark.parametrize("backend", FUSED)
def test_misaligned(backend):
    case = make_pool_case(3, 5, 32, device=backend.device, mask="holes")
    case.f_rgb, case.f_flow = misaligned(case.f_rgb), misaligned(case.f_flow)
    assert case.f_rgb.data_ptr() % 16 != 0
    check(backend, case)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", (torch.float64, *LOW_PRECISION), ids=str)
def test_w_in_feature_dtype(backend, dtype):
    check(backend, make_pool_case(3, 9, 24, dtype=dtype, device=backend.device, mask="tail"))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "holes"))
def test_gradient_through_attention_alone(backend, mask):
    # A loss on the attention output only: every gradient flows through grad_attention.
    case = make_pool_case(4, 25, 33, device=backend.device, mask=mask)

    def attention_only(fn):
        return lambda *inputs: fn(*inputs)[2:]

    assert_matches_reference(attention_only(backend.joint_attention_pool), attention_only(joint_attention_pool_ref),
                             case.inputs(), case.seed, names=("attention",))


@pytest.mark.parametrize("backend", FUSED)
def test_large_batch_reduction(backend):
    # dw sums B*T snippets across clips (the two-stage reductions).
    batch = 16 if backend.interpreted else 64
    check(backend, make_pool_case(batch, 25, 96, device=backend.device, mask="tail"))


@pytest.mark.parametrize("backend", FUSED)
def test_large_outputs(backend):
    # df over 4 MB: the cpp kernels' huge-page output buffers; a full training batch on a GPU.
    if backend.interpreted:
        pytest.skip("the interpreter runs a 42-clip batch in minutes; the shapes above cover its code paths")
    check(backend, make_pool_case(42, 25, 1024, device=backend.device, mask="holes"))


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("mask", ("none", "holes"))
@pytest.mark.parametrize("segments", (1, 9))
def test_gradcheck(backend, mask, segments):
    case = make_pool_case(3, segments, 11, dtype=torch.float64, device=backend.device, mask=mask, score_scale=3.0)
    floats = [t.detach().requires_grad_(True) for t in case.inputs()[:4]]
    assert torch.autograd.gradcheck(lambda *f: backend.joint_attention_pool(*f, case.mask), floats,
                                    fast_mode=backend.namespace != "jna_fast"), f"seed {case.seed}"


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask", ("none", "holes"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_opcheck(backend, mask, dtype):
    case = make_pool_case(3, 7, 20, dtype=dtype, device=backend.device, mask=mask, w_dtype=torch.float32)
    floats = [t.detach().requires_grad_(True) for t in case.inputs()[:4]]
    torch.library.opcheck(backend.ops.joint_attention_pool.default, (*floats, case.mask))
    attention = backend.ops.joint_attention_pool(*case.inputs())[2]
    torch.library.opcheck(backend.ops.joint_attention_pool_backward.default, pool_backward_args(case, attention))


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_writes_every_output(backend, dtype):
    # The large case: df over 4 MB comes from the cpp kernels' recycled huge-page buffers, poisoned too.
    shapes = [(3, 25, 13)] + ([] if backend.interpreted else [(42, 25, 1024)])
    for shape in shapes:
        case = make_pool_case(*shape, dtype=dtype, device=backend.device, mask="holes", w_dtype=torch.float32)
        with poisoned_allocations():
            pooled = backend.ops.joint_attention_pool(*case.inputs())
            grads = backend.ops.joint_attention_pool_backward(*pool_backward_args(case, pooled[2]))
        assert_all_written(pooled, "joint_attention_pool")
        assert_all_written(grads, "joint_attention_pool_backward")


@pytest.mark.parametrize("backend", FUSED)
def test_backward_is_deterministic(backend):
    batch = 8 if backend.interpreted else 32
    case = make_pool_case(batch, 25, 72, device=backend.device, mask="holes")
    attention = backend.ops.joint_attention_pool(*case.inputs())[2]
    args = pool_backward_args(case, attention)
    first = backend.ops.joint_attention_pool_backward(*args)
    second = backend.ops.joint_attention_pool_backward(*args)
    for a, b in zip(first, second):
        assert torch.equal(a, b), f"seed {case.seed}"


@pytest.mark.parametrize("backend", EVERY)
def test_all_false_mask_rows_are_a_value_error(backend, monkeypatch):
    """Always on CPU tensors; on GPU tensors only with JNA_FAST_CHECKS=1 (the check syncs the device)."""
    case = make_pool_case(5, 4, 9, device=backend.device, mask="tail")
    case.mask[[1, 3]] = False
    if backend.on_gpu:
        monkeypatch.setenv("JNA_FAST_CHECKS", "1")
    calls = [backend.joint_attention_pool] + ([backend.ops.joint_attention_pool] if backend.namespace else [])
    for call in calls:
        with pytest.raises(ValueError, match=r"mask: rows \[1, 3\] are all False"):
            call(*case.inputs())
    valid = make_pool_case(5, 4, 9, device=backend.device, mask="tail")
    for call in calls:
        call(*valid.inputs())  # checked, valid masks pass


@pytest.mark.parametrize("backend", [p for p in FUSED if p.values[0].device == "cuda"])
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_unchecked_all_false_rows_on_a_gpu_give_zeros(backend, dtype, monkeypatch):
    """Without JNA_FAST_CHECKS the GPU does not sync to check: rows with no snippet give p = 0, a = 0."""
    monkeypatch.delenv("JNA_FAST_CHECKS", raising=False)
    case = make_pool_case(4, 6, 2048, dtype=dtype, device=backend.device, mask="tail")
    case.mask[[0, 2]] = False
    p_rgb, p_flow, attention = backend.ops.joint_attention_pool(*case.inputs())
    for out in (p_rgb, p_flow, attention):
        assert torch.isfinite(out).all() and not out[[0, 2]].any()


@pytest.mark.parametrize("backend", FUSED)
def test_backward_of_clips_without_attention(backend):
    """Rows whose attention is all 0 (what the forward gives an all-False row unchecked): zero df, finite
    gradients, and dw as if those rows were absent."""
    case = make_pool_case(4, 6, 13, device=backend.device, mask="tail")
    attention = joint_attention_pool_ref(*case.inputs())[2].contiguous()
    attention[[0, 2]] = 0
    args = pool_backward_args(case, attention)
    df_rgb, df_flow, dw_rgb, dw_flow = backend.ops.joint_attention_pool_backward(*args)
    for grad in (df_rgb, df_flow, dw_rgb, dw_flow):
        assert torch.isfinite(grad).all()
    assert not df_rgb[[0, 2]].any() and not df_flow[[0, 2]].any()
    kept = [1, 3]
    kept_args = [t[kept] for t in args[:5]] + list(args[5:7]) + [attention[kept]]
    _, _, dw_rgb_kept, dw_flow_kept = backend.ops.joint_attention_pool_backward(*kept_args)
    torch.testing.assert_close(dw_rgb, dw_rgb_kept)
    torch.testing.assert_close(dw_flow, dw_flow_kept)


@pytest.mark.parametrize("backend", FUSED)
def test_compile_fullgraph_matches_eager(backend):
    """Inside torch.compile(fullgraph=True), forward and backward, with no graph break. (Not the reference: its
    all-False mask check runs in Python, outside any op, and breaks the graph by design.)"""
    case = make_pool_case(2, 4, 6, device=backend.device, mask="tail")

    def loss(f_rgb, f_flow, w_rgb, w_flow, mask):
        p_rgb, p_flow, attention = backend.joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask)
        return (p_rgb * p_flow).sum() + (attention * torch.arange(4, device=mask.device)).sum()

    assert_compiled_matches_eager(loss, case.inputs()[:4], (case.mask,), backend.interpreted, case.seed)


@pytest.mark.parametrize("backend", [p for p in FUSED if p.values[0].device == "cuda"])
def test_runs_on_the_current_stream(backend, monkeypatch):
    """Every launch goes to torch's current stream: CUDA graph capture (on a side stream) fails on a launch to
    any other stream, and the replayed graph reproduces the eager results."""
    monkeypatch.delenv("JNA_FAST_CHECKS", raising=False)  # the checked path syncs, which capture forbids
    case = make_pool_case(16, 25, 2048, device=backend.device, mask="tail")
    # Made before capture: host-to-device copies are not capturable.
    args = pool_backward_args(case, backend.ops.joint_attention_pool(*case.inputs())[2])

    def run():
        return (*backend.ops.joint_attention_pool(*case.inputs()), *backend.ops.joint_attention_pool_backward(*args))

    assert_graph_replay_matches_eager(run)


# ------------------------------------------------------------------- non-finite values (jna_fast/_op_rules.py)

NAN, INF = float("nan"), float("inf")
# The row poisoned in the non-finite tests: it has a padded last snippet, so that a = 0 and df = 0 there can be
# checked in a NaN row; its poisoned snippet is its last real one, at C = 2048 past the first snippet tile of the
# cpp forward (after running-max rescales) and across the CUDA kernels' channel chunks.
POISONED_ROW = 1


def non_finite_shapes(backend):
    return [(3, 6, 13), (3, 9 if backend.interpreted else 25, 2048)]


def non_finite_case(backend, shape, dtype, seed=None):
    batch, segments, _ = shape
    case = make_pool_case(*shape, dtype=dtype, device=backend.device, w_dtype=torch.float32, seed=seed)
    mask = torch.ones(batch, segments, dtype=torch.bool)
    mask[POISONED_ROW, -1] = False
    mask[2, 0] = False
    case.mask = mask.to(backend.device)
    return case


def _set(tensor, index, value):
    tensor[index] = value


def _overflow(case, t):
    """Finite features whose float32 score overflows: every term f[c] w[c] of the score is 3e38 |w[c]|."""
    for f, w in ((case.f_rgb, case.w_rgb), (case.f_flow, case.w_flow)):
        f[POISONED_ROW, t] = 3e38 * torch.sign(w)
    exact = (case.f_rgb[POISONED_ROW, t].double() @ case.w_rgb.double()
             + case.f_flow[POISONED_ROW, t].double() @ case.w_flow.double())
    # Past float32's range by far more than its rounding: the score overflows in any summation order.
    assert exact > 1.1 * torch.finfo(torch.float32).max, f"the score {exact} must overflow (seed {case.seed})"


# kind: (poison(case, t) for the last real snippet t of POISONED_ROW, whether every row turns NaN)
NON_FINITE_KINDS = {
    "nan-f_rgb": (lambda case, t: _set(case.f_rgb, (POISONED_ROW, t, 3), NAN), False),
    "nan-f_flow": (lambda case, t: _set(case.f_flow, (POISONED_ROW, t, 0), NAN), False),
    "inf-f_rgb": (lambda case, t: _set(case.f_rgb, (POISONED_ROW, t, 5), INF), False),
    "-inf-f_flow": (lambda case, t: _set(case.f_flow, (POISONED_ROW, t, 2), -INF), False),
    "overflowing-score": (_overflow, False),
    "nan-w_rgb": (lambda case, t: _set(case.w_rgb, 4, NAN), True),
    "nan-w_flow": (lambda case, t: _set(case.w_flow, 0, NAN), True),
    "inf-w_rgb": (lambda case, t: _set(case.w_rgb, 1, INF), True),
    "-inf-w_flow": (lambda case, t: _set(case.w_flow, 6, -INF), True),
}


def _all_nan(t):
    return bool(torch.isnan(t).all())


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("kind", NON_FINITE_KINDS)
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_non_finite_score_makes_its_rows_nan(backend, kind, dtype):
    """A real snippet whose score is not finite (NaN/inf in its features, NaN/inf in w, an overflowing score)
    makes its row NaN: p and the real a in the forward, df at real snippets and all of dw in the backward.
    Masked snippets keep a = 0 and df = 0; the other rows are those of the clean inputs."""
    poison, every_row = NON_FINITE_KINDS[kind]
    for shape in non_finite_shapes(backend):
        clean = non_finite_case(backend, shape, dtype)
        case = non_finite_case(backend, shape, dtype, seed=clean.seed)
        poison(case, shape[1] - 2)
        grad_outputs = random_grad_outputs(joint_attention_pool_ref(*clean.inputs()), clean.seed)
        (p_rgb, p_flow, attention), (df_rgb, df_flow, dw_rgb, dw_flow) = run_with_grads(
            backend.joint_attention_pool, case.inputs(), grad_outputs)
        clean_out, clean_grads = run_with_grads(backend.joint_attention_pool, clean.inputs(), grad_outputs)
        real = case.mask
        bad = torch.ones(shape[0], dtype=torch.bool) if every_row else torch.arange(shape[0]) == POISONED_ROW
        bad = bad.to(backend.device)
        where = f"{kind}, shape {shape}, seed {case.seed}"
        for name, out in (("p_rgb", p_rgb), ("p_flow", p_flow)):
            assert _all_nan(out[bad]), f"{name} of the poisoned rows not all NaN ({where})"
        assert _all_nan(attention[bad][real[bad]]), f"attention of the poisoned rows' real snippets ({where})"
        for name, grad in (("df_rgb", df_rgb), ("df_flow", df_flow)):
            assert _all_nan(grad[bad][real[bad]]), f"{name} of the poisoned rows' real snippets ({where})"
        assert not attention[~real].any(), f"attention not 0 at masked snippets ({where})"
        assert not df_rgb[~real].any() and not df_flow[~real].any(), f"df not 0 at masked snippets ({where})"
        assert _all_nan(dw_rgb) and _all_nan(dw_flow), f"dw not all NaN ({where})"
        for name, got, want in zip(("p_rgb", "p_flow", "attention", "df_rgb", "df_flow"),
                                   (p_rgb, p_flow, attention, df_rgb, df_flow), (*clean_out, *clean_grads[:2])):
            torch.testing.assert_close(got[~bad], want[~bad], msg=lambda m: f"{name}, other rows ({where}): {m}")


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("garbage", (NAN, INF, -INF, 1e30), ids=("nan", "inf", "-inf", "1e30"))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_masked_snippets_never_reach_outputs_or_gradients(backend, garbage, dtype):
    """Whatever a masked snippet holds, the outputs and every input's gradient are exactly those of the same
    inputs with the masked snippets zeroed."""
    for shape in non_finite_shapes(backend):
        case = make_pool_case(*shape, dtype=dtype, device=backend.device, mask="holes", w_dtype=torch.float32)
        real = case.mask.unsqueeze(-1)
        f_rgb, f_flow, w_rgb, w_flow, mask = case.inputs()
        zeroed = (torch.where(real, f_rgb, 0.0), torch.where(real, f_flow, 0.0), w_rgb, w_flow, mask)
        dirty = (torch.where(real, f_rgb, garbage), torch.where(real, f_flow, -garbage), w_rgb, w_flow, mask)
        grad_outputs = random_grad_outputs(joint_attention_pool_ref(*zeroed), case.seed)
        want_out, want_grads = run_with_grads(backend.joint_attention_pool, zeroed, grad_outputs)
        got_out, got_grads = run_with_grads(backend.joint_attention_pool, dirty, grad_outputs)
        names = (*POOL_NAMES, "df_rgb", "df_flow", "dw_rgb", "dw_flow")
        for name, got, want in zip(names, (*got_out, *got_grads), (*want_out, *want_grads)):
            assert torch.isfinite(want).all(), f"{name}: the zeroed inputs give non-finite values (seed {case.seed})"
            assert torch.equal(got, want), f"{name}: masked snippets holding {garbage} changed it (seed {case.seed})"

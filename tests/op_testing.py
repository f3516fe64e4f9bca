"""Shared helpers for testing every backend of the two ops against the float64 reference.

Accuracy rule (after flash-attention): a fused output's max error against the reference computed in float64
must be at most twice the error of the plain PyTorch reference run in the same dtype, plus a tiny absolute
floor. The floor is relative to the magnitude of the terms each output sums (the float64 reference run on
|inputs| and |grad outputs|), not to the result: a reduced gradient such as dw can cancel to nearly zero,
and then two correct float32 summation orders differ by far more than 2x each other's tiny errors. Fresh
random inputs every run (no fixed seed); the seed used is in the assertion message so a failure can be
replayed.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import pytest
import torch

import jna_fast.ops as ops
from jna_fast.ops import cross_stitch_ref, joint_attention_pool_ref
from jna_fast.ops.backends import BACKENDS

LOW_PRECISION = (torch.bfloat16, torch.float16)
# Floor, relative to the magnitude of the summed terms: float32 rounding noise of a reordered sum, far below
# any bug.
RELATIVE_FLOOR = 1e-6
# The saturated regime (|scores| ~ 1e3, one snippet takes almost all the attention): the true dw is tiny next
# to the summed terms, so the floor above would accept any garbage. There the floor is relative to the result.
# A score's absolute rounding error becomes the relative error of every non-dominant weight exp(e - max), and so
# of dw: plain float32 scores of |e| ~ 1e3 carry 1e-5 to 1e-4, which is why the fused backends sum the scores in
# float64 (docs/design.md §4.3).
SATURATED_RESULT_FLOOR = 1e-5
# ... and weights below float32's normal range are subnormal: each carries an absolute error up to the smallest
# subnormal, which reaches a gradient through the |g - s| |f| of its snippet (bounded by the summed terms).
SMALLEST_SUBNORMAL = 2.0**-149


def fresh_seed() -> int:
    return random.SystemRandom().randrange(2**31)


@dataclass
class PoolCase:
    f_rgb: torch.Tensor
    f_flow: torch.Tensor
    w_rgb: torch.Tensor
    w_flow: torch.Tensor
    mask: torch.Tensor | None
    seed: int

    def inputs(self):
        return self.f_rgb, self.f_flow, self.w_rgb, self.w_flow, self.mask


def make_mask(batch: int, segments: int, kind: str, gen: torch.Generator) -> torch.Tensor | None:
    """kind: none | tail (padded clips: a random number of real snippets, then padding) |
    holes (random snippets off, at least one on per row)."""
    if kind == "none":
        return None
    if kind == "tail":
        lengths = torch.randint(1, segments + 1, (batch, 1), generator=gen)
        return torch.arange(segments).unsqueeze(0) < lengths
    if kind == "holes":
        mask = torch.rand(batch, segments, generator=gen) < 0.6
        keep = torch.randint(0, segments, (batch,), generator=gen)
        mask[torch.arange(batch), keep] = True
        return mask
    raise ValueError(kind)


def make_pool_case(batch, segments, channels, dtype=torch.float32, device="cpu", mask="none",
                   score_scale=1.0, noncontiguous=False, w_dtype=None, seed=None) -> PoolCase:
    """Random pool inputs. score_scale sets the typical |score| (1e4 for the overflow tests)."""
    seed = fresh_seed() if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, segments, channels)
    if noncontiguous:  # a strided view: every other channel of a twice-as-wide tensor, T and C swapped in memory
        f_rgb = torch.randn(batch, 2 * channels, segments, generator=gen).transpose(1, 2)[:, :, ::2]
        f_flow = torch.randn(batch, 2 * channels, segments, generator=gen).transpose(1, 2)[:, :, ::2]
    else:
        f_rgb = torch.randn(shape, generator=gen)
        f_flow = torch.randn(shape, generator=gen)
    # <f, w> over C channels has std sqrt(C)*|w|: scale w so the scores have std ~ score_scale.
    w_std = score_scale / (2 * channels) ** 0.5
    w_rgb = torch.randn(channels, generator=gen) * w_std
    w_flow = torch.randn(channels, generator=gen) * w_std
    m = make_mask(batch, segments, mask, gen)
    to = dict(device=device)
    return PoolCase(
        f_rgb.to(dtype=dtype, **to), f_flow.to(dtype=dtype, **to),
        w_rgb.to(dtype=w_dtype or dtype, **to), w_flow.to(dtype=w_dtype or dtype, **to),
        None if m is None else m.to(**to), seed,
    )


@dataclass
class StitchCase:
    x_rgb: torch.Tensor
    x_flow: torch.Tensor
    alpha: torch.Tensor
    seed: int

    def inputs(self):
        return self.x_rgb, self.x_flow, self.alpha


def make_stitch_case(n, channels, height, width, dtype=torch.float32, device="cpu", layout="contiguous",
                     alpha_dtype=None, seed=None) -> StitchCase:
    """layout: contiguous | channels_last | noncontiguous (a strided slice) | mixed (rgb channels_last,
    flow contiguous)."""
    seed = fresh_seed() if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    shape = (n, channels, height, width)
    if layout == "noncontiguous":
        x_rgb = torch.randn(n, channels, height, 2 * width, generator=gen)[..., ::2]
        x_flow = torch.randn(n, channels, height, 2 * width, generator=gen)[..., ::2]
    else:
        x_rgb = torch.randn(shape, generator=gen)
        x_flow = torch.randn(shape, generator=gen)
    if layout in ("channels_last", "mixed"):
        x_rgb = x_rgb.contiguous(memory_format=torch.channels_last)
    if layout == "channels_last":
        x_flow = x_flow.contiguous(memory_format=torch.channels_last)
    alpha = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(channels, 1, 1) + 0.3 * torch.randn(
        channels, 2, 2, generator=gen)
    return StitchCase(x_rgb.to(device=device, dtype=dtype), x_flow.to(device=device, dtype=dtype),
                      alpha.to(device=device, dtype=alpha_dtype or dtype), seed)


def _as_float64(tensors):
    return [None if t is None else (t.double() if t.is_floating_point() else t) for t in tensors]


def _absolute(tensors):
    return [t.abs() if t is not None and t.is_floating_point() else t for t in tensors]


def _leaf_copies(tensors):
    out = []
    for t in tensors:
        if t is not None and t.is_floating_point():
            t = t.detach().clone().requires_grad_(True)
        out.append(t)
    return out


def run_with_grads(fn, inputs, grad_outputs):
    """Outputs of fn(*inputs) and the gradients of sum(<out, grad_out>) w.r.t. every floating input."""
    leaves = _leaf_copies(inputs)
    outputs = fn(*leaves)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None]
    torch.autograd.backward([o for o, _ in pairs], [g.to(o.dtype) for o, g in pairs])
    grads = [t.grad for t in leaves if t is not None and t.requires_grad]
    return [o.detach() for o in outputs], grads


def random_grad_outputs(outputs, seed):
    """Upstream gradients in each output's own dtype, so that the float64, plain and fused runs all start from
    the same (already rounded) values and only the op's own rounding is compared."""
    gen = torch.Generator().manual_seed(seed + 1)
    return [torch.randn(o.shape, generator=gen).to(device=o.device, dtype=o.dtype) for o in outputs]


def make_saturated_pool_case(batch=2, segments=9, channels=64, device="cpu", seed=None, scale=300.0,
                             mask="holes", dtype=torch.float32) -> PoolCase:
    """Features scaled x``scale`` (x300: |scores| up to ~1e3-1e4): the attention saturates, one snippet per clip
    takes almost all the mass, the others keep weights from ~1e-3 down to subnormals, and the true dw is tiny
    (docs/design.md §4.2's cancellation trap; larger scores underflow every other weight to exactly 0 and hide it).
    ``w`` stays float32 (the autocast situation) whatever the features' ``dtype``."""
    case = make_pool_case(batch, segments, channels, mask=mask, seed=seed)
    case.f_rgb, case.f_flow = ((t * scale).to(device=device, dtype=dtype) for t in (case.f_rgb, case.f_flow))
    case.w_rgb, case.w_flow = (t.to(device) for t in (case.w_rgb, case.w_flow))
    case.mask = None if case.mask is None else case.mask.to(device)
    return case


def assert_matches_reference(fused_fn, reference_fn, inputs, seed, check_grads=True, names=None,
                             saturated=False):
    """The accuracy rule, on every output and (check_grads) every input gradient. ``saturated``: the floor is
    relative to the result (SATURATED_RESULT_FLOOR), not to the summed terms."""
    exact_out = reference_fn(*_as_float64(inputs))
    grad_outputs = (random_grad_outputs(reference_fn(*inputs), seed) if check_grads
                    else [None] * len(exact_out))
    if check_grads:
        exact, exact_grads = run_with_grads(reference_fn, _as_float64(inputs), grad_outputs)
        magnitude, magnitude_grads = run_with_grads(reference_fn, _absolute(_as_float64(inputs)),
                                                    _absolute(grad_outputs))
        plain, plain_grads = run_with_grads(reference_fn, inputs, grad_outputs)
        fused, fused_grads = run_with_grads(fused_fn, inputs, grad_outputs)
    else:
        exact, plain, fused = exact_out, reference_fn(*inputs), fused_fn(*inputs)
        magnitude = reference_fn(*_absolute(_as_float64(inputs)))
        exact_grads = plain_grads = fused_grads = magnitude_grads = []
    labels = list(names or [f"output{i}" for i in range(len(exact))])
    labels += [f"grad[{i}]" for i in range(len(exact_grads))]
    for label, e, p, f, m in zip(labels, list(exact) + exact_grads, list(plain) + plain_grads,
                                 list(fused) + fused_grads, list(magnitude) + magnitude_grads):
        assert f.shape == e.shape, f"{label}: shape {tuple(f.shape)} != {tuple(e.shape)} (seed {seed})"
        assert f.dtype == p.dtype, f"{label}: dtype {f.dtype} != reference dtype {p.dtype} (seed {seed})"
        assert torch.isfinite(f).all(), f"{label}: non-finite values (seed {seed})"
        e64, p64, f64 = e.double().cpu(), p.double().cpu(), f.double().cpu()
        scale = max(e64.abs().max().item(), m.abs().max().item(), 1e-3) if e64.numel() else 1.0
        err_plain = (p64 - e64).abs().max().item() if e64.numel() else 0.0
        err_fused = (f64 - e64).abs().max().item() if e64.numel() else 0.0
        if saturated:
            terms = m.abs().max().item() if e64.numel() else 0.0
            segments = inputs[0].shape[1]
            result = e64.abs().max().item() if e64.numel() else 0.0
            bound = 2 * err_plain + SATURATED_RESULT_FLOOR * result + 2 * segments * SMALLEST_SUBNORMAL * terms
            scale = result
        else:
            bound = 2 * err_plain + RELATIVE_FLOOR * scale
        assert err_fused <= bound, (
            f"{label}: max error {err_fused:.3e} vs fp64 reference exceeds 2 x plain PyTorch's "
            f"{err_plain:.3e} + floor (bound {bound:.3e}, scale {scale:.3e}, seed {seed})"
        )


@contextlib.contextmanager
def poisoned_allocations():
    """Inside this context torch fills every freshly allocated (torch.empty / at::empty) tensor with NaN,
    so an output element a kernel forgets to write shows up as NaN."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill


def assert_all_written(outputs, label=""):
    for i, o in enumerate(outputs):
        assert not torch.isnan(o).any(), f"{label} output {i}: unwritten (NaN-poisoned) elements remain"


STITCH_NAMES = ("y_rgb", "y_flow")
POOL_NAMES = ("p_rgb", "p_flow", "attention")


# ------------------------------------------------------------------------------------- backends under test


@dataclass(frozen=True)
class BackendUnderTest:
    """One registered backend on one device, as the op suites see it: the device its tensors live on, the wrapper
    calls that force it, and the torch.ops namespace of its registered ops (None for a plain-PyTorch backend)."""

    name: str
    device: str
    namespace: str | None
    # A backend that serves this device only when forced (the Triton interpreter on CPU, milliseconds per program
    # instance) is a debugging mode: it gets the small shapes.
    interpreted: bool = False
    # The widest C the backend serves (the Triton pool holds a row in registers); wider raises ValueError.
    max_channels: int | None = None

    def cross_stitch(self, *inputs):
        return ops.cross_stitch(*inputs, backend=self.name)

    def joint_attention_pool(self, *inputs):
        return ops.joint_attention_pool(*inputs, backend=self.name)

    @property
    def ops(self):
        return BACKENDS[self.name].registered_ops()

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


def _device_reason(name: str, device: str) -> str | None:
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    return BACKENDS.why_not(name, torch.device(device), forced=True)


def _backend_param(backend, device: str, single_device: bool):
    reason = _device_reason(backend.name, device)
    interpreted = reason is None and BACKENDS.why_not(backend.name, torch.device(device), forced=False) is not None
    marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
    if device == "cuda":
        marks.append(pytest.mark.cuda)
    under_test = BackendUnderTest(backend.name, device, backend.namespace, interpreted, backend.max_channels)
    return pytest.param(under_test, id=backend.name if single_device else f"{backend.name}-{device}", marks=marks)


def backend_params(include_reference: bool = False) -> list:
    """pytest params of every registered backend on each device type it is built for, each skipped (with the
    backend's own reason) where it cannot serve: the kernel backends (those with registered ops), and the
    plain-PyTorch ones on CPU when ``include_reference`` (when the case means something for them)."""
    params = []
    for backend in BACKENDS.in_order():
        if backend.namespace is None:
            if include_reference:
                params.append(_backend_param(backend, "cpu", single_device=True))
            continue
        for device in backend.devices:
            params.append(_backend_param(backend, device, single_device=len(backend.devices) == 1))
    return params


def misaligned(t: torch.Tensor) -> torch.Tensor:
    """The same values, dense in t's layout, starting one element past a 16-byte boundary (so vectorised
    kernels must take their narrower path)."""
    fmt = torch.channels_last if t.dim() == 4 and not t.is_contiguous() else torch.contiguous_format
    dense = t.contiguous(memory_format=fmt)
    storage = torch.empty(dense.numel() + 1, dtype=t.dtype, device=t.device)
    shifted = storage[1:].as_strided(dense.shape, dense.stride())
    shifted.copy_(dense)
    return shifted


def pool_backward_args(case: PoolCase, attention: torch.Tensor) -> tuple:
    """Arguments of joint_attention_pool_backward: random upstream gradients, the inputs, the attention."""
    batch, segments, channels = case.f_rgb.shape
    gen = torch.Generator().manual_seed(case.seed)
    grads = [torch.randn(shape, generator=gen).to(device=case.f_rgb.device, dtype=dtype)
             for shape, dtype in (((batch, channels), case.f_rgb.dtype), ((batch, channels), case.f_rgb.dtype),
                                  ((batch, segments), attention.dtype))]
    return (*grads, case.f_rgb, case.f_flow, case.w_rgb, case.w_flow, attention)


def stitch_grads(case: StitchCase) -> list[torch.Tensor]:
    """Upstream gradients of cross_stitch in the layout its outputs take."""
    gen = torch.Generator().manual_seed(case.seed)
    fmt = torch.channels_last if not case.x_rgb.is_contiguous() else torch.contiguous_format
    return [torch.randn(case.x_rgb.shape, generator=gen).to(device=case.x_rgb.device, dtype=case.x_rgb.dtype)
            .contiguous(memory_format=fmt) for _ in range(2)]


__all__ = [
    "BackendUnderTest", "backend_params", "misaligned", "pool_backward_args", "stitch_grads", "make_pool_case",
    "make_saturated_pool_case", "make_stitch_case", "assert_matches_reference", "cross_stitch_ref",
    "joint_attention_pool_ref", "poisoned_allocations", "assert_all_written", "STITCH_NAMES", "POOL_NAMES",
    "LOW_PRECISION", "fresh_seed",
]


def assert_graph_replay_matches_eager(run) -> None:
    """``run()`` captured in a CUDA graph and replayed gives exactly its eager outputs (every launch went to the
    current stream: capture fails on a launch to any other)."""
    eager = run()
    run()  # warm-up outside capture (allocator pools, kernel attributes)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()
    graph.replay()
    torch.cuda.synchronize()
    for got, want in zip(captured, eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def assert_compiled_matches_eager(loss, differentiable, constant, interpreted: bool, seed) -> None:
    """``torch.compile(loss, fullgraph=True)`` gives eager's value and gradients: ``loss(*differentiable,
    *constant)``, gradients taken for the ``differentiable`` inputs (aot_eager under the Triton interpreter)."""
    def loss_and_grads(fn):
        leaves = [t.detach().clone().requires_grad_(True) for t in differentiable]
        value = fn(*leaves, *constant)
        value.backward()
        return [value.detach()] + [t.grad for t in leaves]

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager" if interpreted else "inductor")
    for eager_value, compiled_value in zip(loss_and_grads(loss), loss_and_grads(compiled)):
        torch.testing.assert_close(compiled_value, eager_value, msg=f"seed {seed}")

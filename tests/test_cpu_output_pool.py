"""The pool of recycled CPU output buffers behind the cpp kernels' large outputs (csrc/cpu/output_memory.h)."""

import os
import subprocess
import sys

import pytest
import torch

from jna_fast import ops
from jna_fast._ext import extension_status
from op_testing import make_pool_case, poisoned_allocations

pytestmark = pytest.mark.skipif(not extension_status().loaded, reason="needs the compiled extension")

LARGE = [3, 1024, 1024]  # 12 MiB of float32: pooled (4 MiB and more)
SMALL = [3, 64, 64]


def empty_output(sizes, dtype=torch.float32):
    from jna_fast import _C

    return _C.cpu_empty_output(sizes, torch.empty(0, dtype=dtype))


@pytest.fixture(autouse=True)
def empty_pool():
    ops.empty_cpu_output_cache()
    yield
    ops.empty_cpu_output_cache()


def test_a_freed_buffer_serves_the_next_output_of_its_size():
    first = empty_output(LARGE)
    address = first.data_ptr()
    assert address % (2 << 20) == 0  # 2 MiB aligned: every page of it can be a huge page
    del first
    assert ops.cpu_output_cache_bytes() == 12 << 20
    again = empty_output(LARGE)
    assert again.data_ptr() == address
    assert ops.cpu_output_cache_bytes() == 0


def test_a_buffer_is_not_reused_while_any_view_of_it_lives():
    first = empty_output(LARGE)
    view = first[1:, ::2]
    address = first.data_ptr()
    del first
    second = empty_output(LARGE)
    assert second.data_ptr() != address
    view.fill_(1.0)
    second.fill_(2.0)
    assert bool((view == 1.0).all())
    del view
    assert empty_output(LARGE).data_ptr() == address


def test_other_sizes_and_small_outputs_get_their_own_memory():
    first = empty_output(LARGE)
    address = first.data_ptr()
    del first
    other = empty_output([5, 1024, 1024])
    assert other.data_ptr() != address
    small = empty_output(SMALL)
    assert small.shape == tuple(SMALL) and small.is_contiguous()
    assert ops.cpu_output_cache_bytes() == 12 << 20  # the small output did not touch the pool


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float64), ids=str)
def test_recycled_buffers_are_poisoned_like_at_empty(dtype):
    # The written-in-full tests rely on fill_uninitialized_memory: a recycled buffer holds the previous call's
    # (often correct) values, which would hide an element the kernel forgot to write.
    first = empty_output(LARGE, dtype)
    first.fill_(1.0)
    address = first.data_ptr()
    del first
    with poisoned_allocations():
        again = empty_output(LARGE, dtype)
    assert again.data_ptr() == address
    assert bool(again.isnan().all())


def test_empty_cache_frees_idle_buffers():
    outputs = [empty_output(LARGE) for _ in range(3)]
    del outputs
    assert ops.cpu_output_cache_bytes() == 36 << 20
    ops.empty_cpu_output_cache()
    assert ops.cpu_output_cache_bytes() == 0


def test_backward_outputs_are_recycled_between_steps():
    case = make_pool_case(48, 25, 1000)  # df: 4.8 MB each, pooled
    grads = (torch.randn(48, 1000), torch.randn(48, 1000), torch.zeros(48, 25))
    backward = torch.ops.jna_fast.joint_attention_pool_backward
    p_rgb, p_flow, attention = torch.ops.jna_fast.joint_attention_pool(*case.inputs())
    inputs = (*grads, case.f_rgb, case.f_flow, case.w_rgb, case.w_flow, attention)
    first = backward(*inputs)
    addresses = {first[0].data_ptr(), first[1].data_ptr()}
    expected = [t.clone() for t in first]
    del first
    second = backward(*inputs)
    assert {second[0].data_ptr(), second[1].data_ptr()} == addresses
    for got, want in zip(second, expected):
        assert torch.equal(got, want)


def run_with_cache_limit(setting: str, script: str) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter (the pool reads its limit once) with JNA_FAST_CPU_OUTPUT_CACHE_MB set."""
    env = {**os.environ, "JNA_FAST_CPU_OUTPUT_CACHE_MB": setting}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("setting, pooled", (("0", False), ("64", True), ("8", False)))
def test_cache_limit_from_the_environment(setting, pooled):
    # 12 MiB buffers: kept under a 64 MiB limit, freed at once under 8 MiB or with the pool off (0).
    result = run_with_cache_limit(setting, (
        "import torch; from jna_fast import ops, _C\n"
        "x = _C.cpu_empty_output([3, 1024, 1024], torch.empty(0)); del x\n"
        "print('idle', ops.cpu_output_cache_bytes())\n"
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"idle {12 << 20 if pooled else 0}" in result.stdout


def test_a_bad_cache_limit_is_a_clear_error():
    result = run_with_cache_limit(
        "lots", "import torch; from jna_fast import _C; _C.cpu_empty_output([3, 1024, 1024], torch.empty(0))")
    assert result.returncode != 0
    assert "JNA_FAST_CPU_OUTPUT_CACHE_MB must be a whole number of MiB, got 'lots'" in result.stderr

"""`run.precision auto`: bf16 autocast where the device computes bf16 natively, fp32 elsewhere."""

import pytest
import torch

from jna_fast.runtime import autocast_context, native_bf16, precision_reason, resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def cpu_features(monkeypatch):
    """Sets which bf16 instructions the CPU reports."""
    def set_features(amx: bool, avx512_bf16: bool):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    return set_features


@pytest.mark.parametrize("amx, avx512_bf16, feature, expected", [
    (True, True, "AMX", "bf16"),
    (False, True, "AVX512-BF16", "bf16"),
    (True, False, "AMX", "bf16"),
    (False, False, None, "fp32"),
])
def test_auto_takes_bf16_on_cpus_that_compute_it(cpu_features, amx, avx512_bf16, feature, expected):
    cpu_features(amx, avx512_bf16)
    assert native_bf16(CPU) == feature
    assert resolve_precision("auto", CPU) == expected
    assert precision_reason("auto", CPU).startswith(f"{expected} (auto: ")
    with autocast_context("auto", CPU):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_an_explicit_precision_is_kept_whatever_the_cpu(cpu_features, asked):
    for features in [(False, False), (True, True)]:
        cpu_features(*features)
        assert resolve_precision(asked, CPU) == asked
        assert precision_reason(asked, CPU) == f"{asked} (as asked)"


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", CPU)

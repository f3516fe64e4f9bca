"""Backend choice: auto selection, forcing by argument or JNA_FAST_BACKEND, the error listing every backend's
reason, a backend that a new module registers, the fallback to the reference when the extension cannot load, and
`python -m jna_fast.info`."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from jna_fast import ops
from jna_fast._ext import extension_status
from jna_fast.ops.backends import BACKEND_NAMES, BACKENDS, Backend, backend_names, select_backend
from op_testing import make_pool_case


def run_python(script: str, marker: str) -> None:
    """Runs `script` in a fresh interpreter (import-time behaviour needs one) and checks it got to `marker`."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker in result.stdout


def test_extension_is_built_with_the_cpu_backend():
    status = extension_status()
    assert status.loaded, status.error
    assert "cpu" in status.compiled_backends


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPU cores")
def test_cpu_kernels_run_on_all_of_torchs_threads():
    # at::parallel_for compiles to a serial loop in a build without OpenMP: the kernels would still pass every
    # accuracy test, at half the speed or worse. Guard the build flag itself.
    from jna_fast import _C

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _C.cpu_threads_used() == 2
    finally:
        torch.set_num_threads(before)


def test_auto_choice_on_cpu_is_the_cpp_kernels():
    assert select_backend(torch.device("cpu")).name == "cpp"


def test_unknown_backend_names_the_choices(monkeypatch):
    case = make_pool_case(2, 3, 4)
    with pytest.raises(ValueError, match=r"backend='fast': unknown backend; choose one of cuda, triton, cpp"):
        ops.joint_attention_pool(*case.inputs(), backend="fast")
    monkeypatch.setenv("JNA_FAST_BACKEND", "nope")
    with pytest.raises(ValueError, match=r"JNA_FAST_BACKEND='nope': unknown backend"):
        ops.joint_attention_pool(*case.inputs())


def test_forced_backend_that_cannot_serve_lists_every_reason():
    case = make_pool_case(2, 3, 4)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so the cuda backend may serve")
    with pytest.raises(ops.BackendUnavailable) as info:
        ops.joint_attention_pool(*case.inputs(), backend="cuda")
    message = str(info.value)
    assert "backend 'cuda' cannot serve cpu inputs" in message
    for name in BACKEND_NAMES:
        assert f"  {name}: " in message
    assert "  reference: can serve" in message


def test_backend_names_come_from_the_registry_in_preference_order():
    assert BACKEND_NAMES == backend_names() == ops.BACKEND_NAMES
    assert set(BACKEND_NAMES) == {"cuda", "triton", "cpp", "reference"}
    ranks = [BACKENDS[name].rank for name in BACKEND_NAMES]
    assert ranks == sorted(ranks) and BACKEND_NAMES[-1] == "reference"


# A backend as a third party would write it: one module that registers itself when imported.
TOY_BACKEND = textwrap.dedent("""
    import torch
    from jna_fast.ops.backends import Backend, register_backend
    from jna_fast.ops import cross_stitch_ref, joint_attention_pool_ref

    CALLS = []

    def stitch(*inputs):
        CALLS.append("cross_stitch")
        return cross_stitch_ref(*inputs)

    def pool(*inputs):
        CALLS.append("joint_attention_pool")
        return joint_attention_pool_ref(*inputs)

    def input_reason(device, forced):
        return None if device.type == "cpu" else "toy kernels run on CPU tensors only"

    BACKEND = register_backend(Backend(name="toy", rank=0, cross_stitch=stitch, joint_attention_pool=pool,
                                       input_reason=input_reason, devices=("cpu",)))
    BROKEN = register_backend(Backend(name="broken", rank=1, cross_stitch=stitch, joint_attention_pool=pool,
                                      machine_reason=lambda: "the broken accelerator is missing"))
""")


@pytest.fixture
def toy_backend_module(tmp_path, monkeypatch):
    (tmp_path / "toy_jna_backend.py").write_text(TOY_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("toy_jna_backend")
    finally:
        sys.modules.pop("toy_jna_backend", None)
        for name in ("toy", "broken"):
            if name in BACKENDS:
                BACKENDS.remove(name)


def test_a_backend_registered_by_a_new_module_takes_part_in_the_choice(toy_backend_module):
    assert backend_names()[:2] == ("toy", "broken")
    # the highest-ranked backend that can serve is the automatic choice, through the public ops too
    assert select_backend(torch.device("cpu")) is toy_backend_module.BACKEND
    case = make_pool_case(2, 3, 4, mask="tail")
    got = ops.joint_attention_pool(*case.inputs())
    assert toy_backend_module.CALLS == ["joint_attention_pool"]
    for g, w in zip(got, ops.joint_attention_pool(*case.inputs(), backend="reference")):
        torch.testing.assert_close(g, w)
    # its reasons, machine and input, are in the availability and in the error listing every backend
    assert ops.availability(torch.device("cpu"))["broken"] == "the broken accelerator is missing"
    with pytest.raises(ops.BackendUnavailable) as info:
        select_backend(torch.device("cpu"), "broken")
    message = str(info.value)
    assert "backend 'broken' cannot serve cpu inputs: the broken accelerator is missing" in message
    assert "  toy: can serve" in message
    assert "  broken: the broken accelerator is missing" in message
    for name in BACKEND_NAMES:
        assert f"  {name}: " in message
    assert ops.availability(torch.device("meta"))["toy"] == "toy kernels run on CPU tensors only"


def test_a_registered_backend_can_be_forced_and_unregistered(toy_backend_module, monkeypatch):
    monkeypatch.setenv("JNA_FAST_BACKEND", "toy")
    assert select_backend(torch.device("cpu")).name == "toy"
    monkeypatch.delenv("JNA_FAST_BACKEND")
    BACKENDS.remove("toy")
    BACKENDS.remove("broken")
    assert backend_names() == BACKEND_NAMES
    assert select_backend(torch.device("cpu")).name == "cpp"
    with pytest.raises(ValueError, match="backend='toy': unknown backend"):
        select_backend(torch.device("cpu"), "toy")


def test_registered_context_registers_for_a_block_only():
    toy = Backend(name="block", rank=-1, cross_stitch=None, joint_attention_pool=None)
    with BACKENDS.registered(toy):
        assert select_backend(torch.device("cpu")) is toy
    assert "block" not in BACKENDS and select_backend(torch.device("cpu")).name == "cpp"
    with pytest.raises(ValueError, match="registered twice"):
        with BACKENDS.registered(BACKENDS["cpp"]):
            pass


def test_env_forces_the_backend(monkeypatch):
    monkeypatch.setenv("JNA_FAST_BACKEND", "reference")
    assert select_backend(torch.device("cpu")).name == "reference"
    monkeypatch.setenv("JNA_FAST_BACKEND", "cpp")
    assert select_backend(torch.device("cpu")).name == "cpp"


def test_every_available_backend_agrees_on_cpu():
    servers = [name for name, reason in ops.availability(torch.device("cpu")).items()
               if reason is None and name != "reference"]
    assert "cpp" in servers
    case = make_pool_case(3, 5, 9, mask="holes")
    want = ops.joint_attention_pool(*case.inputs(), backend="reference")
    for name in servers:
        got = ops.joint_attention_pool(*case.inputs(), backend=name)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, msg=f"{name}, seed {case.seed}")


def test_missing_extension_falls_back_to_the_reference_with_one_warning():
    script = (
        "import sys, warnings, torch\n"
        "sys.modules['jna_fast._C'] = None  # makes `from . import _C` fail as a missing build would\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import jna_fast\n"
        "    from jna_fast.ops.backends import select_backend\n"
        "    x = torch.randn(2, 3, 4, 4)\n"
        "    y = jna_fast.ops.cross_stitch(x, x, torch.ones(3, 2, 2))\n"
        "    jna_fast.ops.cross_stitch(x, x, torch.ones(3, 2, 2))\n"
        "ours = [w for w in caught if 'jna_fast._C' in str(w.message)]\n"
        "assert len(ours) == 1, [str(w.message) for w in caught]\n"
        "assert 'fall back to the pure-PyTorch reference' in str(ours[0].message)\n"
        "assert select_backend(torch.device('cpu')).name == 'reference'\n"
        "torch.testing.assert_close(y[0], 2 * x)\n"
        "print('fallback ok')\n"
    )
    run_python(script, "fallback ok")


def test_info_reports_versions_and_backends():
    result = subprocess.run([sys.executable, "-m", "jna_fast.info"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"torch {torch.__version__}" in out
    assert "extension: built, backends: cpu" in out
    assert "backends for cpu tensors (auto choice: cpp)" in out
    assert "  cpp        can serve" in out
    assert "CPU kernels run on " in out
    for label in ("triton", "DALI", "PyAV", "OpenCV"):
        assert f"\n{label} " in out


def test_base_package_runs_without_optional_dependencies():
    script = (
        "import sys\n"
        "for name in ('av', 'cv2', 'triton', 'nvidia', 'nvidia.dali'):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "import torch\n"
        "from jna_fast import JNA\n"
        "from jna_fast.ops import availability\n"
        "model = JNA(3, backbone='resnet18', flow_length=1).eval()\n"
        "out = model(torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 2, 32, 32))\n"
        "assert out.logits.shape == (1, 3)\n"
        "assert \"pip install 'jna_fast[triton]'\" in availability(torch.device('cpu'))['triton']\n"
        # The packages' light parts (dataset specs, option declarations, algorithm names) load without PyAV and
        # OpenCV; what decodes video says which extra it needs.
        "import jna_fast.config, jna_fast.data.datasets, jna_fast.flow.names\n"
        "for module, name in (('jna_fast.data', 'build_loader'), ('jna_fast.flow', 'extract_flow')):\n"
        "    try:\n"
        "        getattr(__import__(module, fromlist=[name]), name)\n"
        "    except ImportError as exc:\n"
        "        assert \"pip install 'jna_fast[video]'\" in str(exc) and module in str(exc), str(exc)\n"
        "    else:\n"
        "        raise AssertionError(module + '.' + name + ' imported without PyAV/OpenCV')\n"
        "print('base ok')\n"
    )
    run_python(script, "base ok")


def test_triton_kernels_compile_for_a_gpu_target(tmp_path):
    """The interpreter accepts programs the compiler rejects: lower every Triton kernel variant to an sm_90 cubin
    (Triton's bundled toolchain, no GPU needed) in a process where triton is imported uncompiled."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "jna_fast.triton.compile_check", "--arch", "90"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "compiled for sm_90: joint_attention_pool backward *bf16" in result.stdout

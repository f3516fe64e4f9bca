"""The CUDA kernels (csrc/cuda/*.cu) compile with nvcc alone, warnings as errors, for every target arch.

This is how CI checks the CUDA backend on a machine with nvcc but no GPU and a CPU torch: exactly the
configure + build of CMakeLists.txt's JNA_FAST_CUDA_CHECK_ONLY target, into a temporary directory.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_nvcc() -> str | None:
    """Where CMakeLists.txt's find_program(nvcc ...) looks: PATH, $CUDA_HOME/bin, /usr/local/cuda/bin."""
    candidates = [shutil.which("nvcc")]
    if os.environ.get("CUDA_HOME"):
        candidates.append(str(Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _run(command, log_name, tmp_path):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    log = tmp_path / log_name
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed (exit {result.returncode}); full log in {log}:\n"
        f"{(result.stdout + result.stderr)[-6000:]}"
    )
    return result.stdout + result.stderr


@pytest.mark.skipif(_find_nvcc() is None, reason="nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not found on PATH")
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    kernels = sorted((REPO / "csrc" / "cuda").glob("*.cu"))
    assert kernels, "csrc/cuda has no .cu files to compile-check"
    build = tmp_path / "cuda_compile_check"
    configure = ["cmake", "-S", str(REPO), "-B", str(build), "-DJNA_FAST_CUDA_CHECK_ONLY=ON"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    _run(configure, "configure.log", tmp_path)
    _run(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 1)], "build.log", tmp_path)
    objects = {p.name for p in build.rglob("*.o")}
    missing = [k.name for k in kernels if f"{k.name}.o" not in objects]
    assert not missing, f"kernels not compiled: {missing} (objects: {sorted(objects)})"

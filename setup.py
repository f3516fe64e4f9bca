"""Drives the CMake build (CMakeLists.txt owns the sources and flags) and puts jna_fast/_C in the package; ships
configs/ablations/ (the ablation's variants, read by jna_fast/variants.py) as jna_fast/ablations/."""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        output_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DJNA_FAST_OUTPUT_DIR={output_dir}",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
        ]
        configure += os.environ.get("JNA_FAST_CMAKE_ARGS", "").split()
        subprocess.run(configure, check=True)
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)


# The packages; the ablation variants are data of a package of their own, mapped from configs/ablations/.
PACKAGES = [*find_packages(include=["jna_fast*"]), "jna_fast.ablations"]

setup(ext_modules=[CMakeExtension("jna_fast._C")], cmdclass={"build_ext": CMakeBuild}, packages=PACKAGES,
      package_dir={"jna_fast.ablations": "configs/ablations"}, package_data={"jna_fast.ablations": ["*.yaml", "*.md"]})

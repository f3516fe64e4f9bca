"""Test-session setup. Triton reads TRITON_INTERPRET when it is first imported, so the choice is made here,
before any test module imports it: without a CUDA device the Triton kernels run in the interpreter."""

import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# tests/op_testing.py is a shared helper module, importable from every test file.
sys.path.insert(0, os.path.dirname(__file__))

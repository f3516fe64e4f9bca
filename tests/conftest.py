"""Test-session setup. Triton reads TRITON_INTERPRET when it is first imported, so the choice is made here,
before any test module imports it: without a CUDA device the Triton kernels run in the interpreter. And the fixtures
that several test files share."""

import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# tests/op_testing.py is a shared helper module, importable from every test file.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The path of a real jna_fast checkpoint (an untrained ResNet-18 RGB branch, 3 classes, 32 px; one branch
    keeps it quick to load), made without any data: for the tests of what loads one."""
    from jna_fast.checkpoint import save_checkpoint
    from jna_fast.config import parse_args
    from jna_fast.builders import build_model, data_settings

    folder = tmp_path_factory.mktemp("checkpoint")
    cfg = parse_args(["--root", str(folder / "no-data"), "--size", "32", "--num-segments", "2", "--flow-length", "2",
                      "--test-segments", "2", "--streams", "rgb", "--share-after", "", "--consensus", "average",
                      "--out", str(folder / "run")])
    path = folder / "best.pt"
    save_checkpoint(path, {"model": build_model(cfg, 3).state_dict(), "config": cfg.to_dict(),
                           "class_names": ["a", "b", "c"], "data": data_settings(cfg)})
    return path


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory):
    """A checkpoint of an untrained two-stream model (ResNet-18, 32 px, cross-stitch after stages 3 and 4) whose
    classes are the first 3 of the synthetic set, marked as trained on it: what the demo offers synthetic examples
    for. Made without any data (its dataset root does not exist)."""
    from jna_fast.checkpoint import save_checkpoint
    from jna_fast.config import parse_args
    from jna_fast.data.synthetic import DEFAULT_FAMILIES, catalogue
    from jna_fast.builders import build_model, data_settings

    folder = tmp_path_factory.mktemp("synthetic-checkpoint")
    cfg = parse_args(["--dataset", "synthetic", "--root", str(folder / "no-data"), "--synthetic-classes", "3",
                      "--size", "32", "--num-segments", "2", "--flow-length", "2", "--no-flip",
                      "--out", str(folder / "run")])
    names = [spec.name for spec in catalogue(DEFAULT_FAMILIES)[:3]]
    torch.manual_seed(0)
    path = folder / "best.pt"
    save_checkpoint(path, {"model": build_model(cfg, 3).state_dict(), "config": cfg.to_dict(),
                           "class_names": names, "data": data_settings(cfg)})
    return path

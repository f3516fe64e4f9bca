"""End to end: generate a small synthetic dataset, extract its flow, train JNA through the data pipeline
(DALI CPU path and PyAV path) with the loss falling; the training CLI, its checkpoints and its resume."""

import json
import subprocess
import sys

import pytest
import torch

from jna_fast import JNA
from jna_fast.data import build_loader, make_synthetic
from jna_fast.data.dali_pipeline import dali_available
from jna_fast.flow import extract_flow
from jna_fast.train import save_checkpoint

pytestmark = pytest.mark.slow
BACKENDS = [pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no DALI")), "pyav"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, num_classes=3, videos_per_class=4, frames=16, size=48, seed=1)
    summary = extract_flow(root / "UCF-101", root / "frames", algorithm="dis", workers=1, progress=False)
    assert not summary["failed"] and len(summary["done"]) == 12
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_through_the_pipeline_lowers_the_loss(synthetic, backend):
    torch.manual_seed(0)
    loader = build_loader("ucf101", synthetic, split=1, subset="train", frames_root=synthetic / "frames",
                          num_segments=2, flow_length=2, batch_size=6, size=32, backend=backend, seed=0)
    assert loader.num_classes == 3 and len(loader) == 1
    model = JNA(loader.num_classes, backbone="resnet18", num_segments=2, flow_length=2, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for epoch in range(10):
        loader.set_epoch(epoch)
        for batch in loader:
            assert batch.rgb.shape == (6, 2, 3, 32, 32) and batch.flow.shape == (6, 2, 4, 32, 32)
            loss = model.loss(model(batch.rgb, batch.flow, batch.mask), batch.label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "jna_fast.train", *args], capture_output=True, text=True,
                          timeout=900)


def test_cli_trains_checkpoints_and_resumes(synthetic, tmp_path):
    out = tmp_path / "run"
    common = ["--root", str(synthetic), "--frames-root", str(synthetic / "frames"), "--out", str(out),
              "--epochs", "2",
              "--batch-size", "2", "--size", "32", "--num-segments", "2", "--test-segments", "2",
              "--flow-length", "2", "--data-backend", "pyav", "--no-progress", "--seed", "1"]
    first = run_cli(*common, "--max-steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    state = torch.load(out / "last.pt", weights_only=False)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 2, 2)
    assert not list(out.glob(".*tmp*")), "a temporary checkpoint file was left behind"
    second = run_cli(*common)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "at epoch 0, batch 2 (step 2)" in second.stderr
    state = torch.load(out / "last.pt", weights_only=False)
    assert (state["epoch"], state["batch"], state["step"]) == (2, 0, 6)  # 3 steps/epoch, 2 epochs
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["val_top1"] <= 1.0 and record["val_clips"] == 6
        assert 0.0 <= record["attention_on_salient"] <= 1.0


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "bad": lambda: None})  # lambdas cannot be pickled: the save fails
    assert torch.load(path, weights_only=False) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"], "a failed save left a temporary file"


def test_cli_rejects_a_missing_root():
    result = run_cli("--dataset", "ucf101")
    assert result.returncode != 0 and "--dataset ucf101 needs --root" in result.stderr


def test_parameter_groups_cover_every_parameter_once():
    from jna_fast.train import parameter_groups, parse_args

    model = JNA(4, backbone="resnet18", flow_length=2)
    groups = parameter_groups(model, parse_args(["--weight-decay", "1e-4", "--attention-lr-scale", "0.1"]))
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.rgb.conv1.weight)]["weight_decay"] == 1e-4
    for p in (model.stitches["3"].alpha, model.rgb.bn1.weight, model.fc_rgb.bias):
        assert by_id[id(p)]["weight_decay"] == 0.0
    assert by_id[id(model.attention.w_rgb)]["lr_scale"] == 0.1

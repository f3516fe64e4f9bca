"""End to end: generate a small synthetic dataset, extract its flow, train JNA through the data pipeline
(DALI CPU path and PyAV path) with the loss falling; the training CLI, its checkpoints (last.pt, best.pt), its
resume and the refusal of a resume with other options; a loss that is not finite (stop, or skip the step);
evaluate and predict on the result."""

import copy
import json
import logging
import subprocess
import sys

import pytest
import torch

from jna_fast import JNA
from jna_fast.models import Network
from jna_fast.inference import Predictor
from jna_fast.data import ClipSampling, Decoding, Sharding, build_loader, make_synthetic
from jna_fast.data.synthetic import FAMILIES
from jna_fast.data.dali_pipeline import dali_available
from jna_fast.flow import extract_flow
from jna_fast.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow
BACKENDS = [pytest.param("dali", marks=pytest.mark.skipif(not dali_available(), reason="no DALI")), "pyav"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    # Windows over most of each video: every sampled snippet sees its class, so a few steps can fit the clips.
    make_synthetic(root, num_classes=3, videos_per_class=4, frames=16, size=48, seed=1, families=FAMILIES,
                   window_fraction=(0.8, 1.0))
    summary = extract_flow(root / "UCF-101", root / "frames", algorithm="dis", workers=1, progress=False)
    assert not summary["failed"] and len(summary["done"]) == 12
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_through_the_pipeline_lowers_the_loss(synthetic, backend):
    torch.manual_seed(0)
    loader = build_loader("ucf101", synthetic, split=1, subset="train", frames_root=synthetic / "frames",
                          batch_size=6, sharding=Sharding(seed=0), decoding=Decoding(backend=backend),
                          # SlideLeft and SlideRight: a flip would swap their labels
                          sampling=ClipSampling(num_segments=2, flow_length=2, size=32, flip=False))
    assert loader.num_classes == 3 and len(loader) == 1
    model = JNA(loader.num_classes, backbone="resnet18", flow_length=2, dropout=0.0)
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


def run_cli(*args, module="jna_fast.train"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=900)


def cli_options(synthetic, out):
    return ["--root", str(synthetic), "--frames-root", str(synthetic / "frames"), "--out", str(out),
            "--epochs", "2", "--batch-size", "2", "--size", "32", "--num-segments", "2", "--test-segments", "2",
            "--flow-length", "2", "--data-backend", "pyav", "--no-progress", "--seed", "1", "--log-every", "1"]


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """A run stopped after 2 steps, then resumed to the end (2 epochs of 3 steps) with its final evaluation."""
    out = tmp_path_factory.mktemp("run")
    common = cli_options(synthetic, out)
    first = run_cli(*common, "--max-steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    state = torch.load(out / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 2, 2)
    assert not list(out.glob(".*tmp*")), "a temporary checkpoint file was left behind"
    second = run_cli(*common)
    assert second.returncode == 0, second.stderr[-3000:]
    return out, second


def test_cli_trains_checkpoints_and_resumes(trained):
    out, second = trained
    assert "resumed from" in second.stderr and "at epoch 0, batch 2 (step 2)" in second.stderr
    # The set fits in memory (--data.memory_cache auto): decoded once, the thread split stated.
    assert "caching 6 videos of the train split in memory: " in second.stderr
    assert "thread split: the loader 1 thread" in second.stderr and "loader_wait_share" in second.stderr
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (2, 0, 6)  # 3 steps/epoch, 2 epochs
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["val_top1"] <= 1.0 and record["val_clips"] == 6
        assert 0.0 <= record["loader_wait_share"] <= 1.0 and record["loader_wait_s"] >= 0.0
        assert 0.0 <= record["val_attention_on_salient"] <= 1.0
        assert 0.0 <= record["val_top_snippet_in_window"] <= 1.0
    # best.pt holds the epoch with the best validation top-1 (the first such epoch on ties)
    best = load_checkpoint(out / "best.pt")
    best_epoch = max(records, key=lambda r: r["val_top1"])["epoch"]
    assert best["epoch"] == best_epoch and best["metrics"]["val_top1"] == max(r["val_top1"] for r in records)
    assert (out / "config.yaml").exists() and list((out / "tensorboard").glob("events.*"))
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["segments"] == 25 and report["clips"] == 6


def test_resume_with_other_options_is_refused(trained, synthetic):
    out, _ = trained
    before = (out / "last.pt").read_bytes()
    refused = run_cli(*cli_options(synthetic, out), "--backbone", "resnet34", "--lr", "0.5")
    assert refused.returncode == 2
    assert "--model.backbone.name: 'resnet18' in the checkpoint, 'resnet34' now" in refused.stderr
    assert "--optim.lr: 0.001 in the checkpoint, 0.5 now" in refused.stderr and "--resume never" in refused.stderr
    assert (out / "last.pt").read_bytes() == before
    # options that may change on resume are accepted: a longer run continues where the old one ended
    longer = run_cli(*cli_options(synthetic, out), "--epochs", "3", "--no-final-eval")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def make_the_loss_nan(monkeypatch):
    loss = Network.loss
    monkeypatch.setattr(Network, "loss", lambda self, output, target: loss(self, output, target) * float("nan"))


def finished_run(trained, out):
    """A copy of the trained run's last.pt in ``out``, and its (epochs done, steps done): other tests in this file
    train it further, so the numbers depend on the order the tests run in."""
    (out / "last.pt").write_bytes((trained[0] / "last.pt").read_bytes())
    state = load_checkpoint(out / "last.pt")
    assert state["batch"] == 0  # at an epoch's end
    return state["epoch"], state["step"]


def test_a_non_finite_loss_stops_the_run_and_keeps_the_good_checkpoint(trained, synthetic, tmp_path, monkeypatch,
                                                                        capsys):
    from jna_fast.train import main

    epochs, steps = finished_run(trained, tmp_path)
    good = (tmp_path / "last.pt").read_bytes()
    make_the_loss_nan(monkeypatch)
    assert main(cli_options(synthetic, tmp_path) + ["--epochs", str(epochs + 1), "--checkpoint-every", "1",
                                                    "--no-tensorboard", "--no-final-eval"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: step {steps + 1} (epoch {epochs + 1}, batch 1): not finite: loss nan")
    assert "--on-nan skip" in errors[0]
    assert (tmp_path / "last.pt").read_bytes() == good and not (tmp_path / "best.pt").exists()


def test_on_nan_skip_leaves_the_model_as_it_was_and_goes_on(trained, synthetic, tmp_path, monkeypatch, caplog):
    from jna_fast.train import main

    epochs, steps = finished_run(trained, tmp_path)
    before = load_checkpoint(tmp_path / "last.pt")["model"]
    make_the_loss_nan(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="jna_fast.train"):
        assert main(cli_options(synthetic, tmp_path) + ["--epochs", str(epochs + 1), "--on-nan", "skip",
                                                        "--no-tensorboard", "--no-final-eval"]) == 0
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (epochs + 1, 0, steps + 3)  # 3 steps per epoch
    # Neither the weights nor BatchNorm's running statistics took anything from the skipped steps.
    assert all(torch.equal(before[name], state["model"][name]) for name in before)
    skipped = [r.getMessage() for r in caplog.records if "its update is skipped" in r.getMessage()]
    assert len(skipped) == 3, skipped
    assert skipped[0].startswith(f"step {steps + 1} (epoch {epochs + 1}, batch 1): not finite: loss nan")
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert (record["epoch"], record["skipped_steps"], record["train_loss"]) == (epochs + 1, 3, None)


def test_evaluate_writes_every_output(trained, tmp_path):
    out, _ = trained
    result = run_cli(str(out / "best.pt"), "--out", str(tmp_path / "eval"), "--segments", "4", "--crops", "10",
                     "--visualize", "2", "--no-progress", module="jna_fast.evaluate")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    for key in ("top1", "top5", "mean_class_accuracy", "top1_rgb", "top1_flow", "per_class",
                "attention_on_salient", "uniform_on_salient", "top_snippet_in_window"):
        assert key in report, key
    assert report["crops"] == 10 and report["views_per_video"] == 5  # the synthetic set is never flipped
    assert set(report["families"]) == {"motion", "appearance", "binding"}
    for family in report["families"].values():
        assert {"top1_rgb", "top1_flow", "attention_on_salient", "top_snippet_in_window"} <= set(family)
    lines = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == report["clips"] == 6
    assert all(len(line["scores_rgb"]) == len(line["scores_flow"]) == 3 for line in lines)
    assert all(abs(sum(line["attention"]) - 1) < 1e-3 for line in lines)
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 0
    assert len(list((tmp_path / "eval" / "attention").glob("*.png"))) == 2


def test_predict_one_video(trained, synthetic):
    out, _ = trained
    model = Predictor.from_checkpoint(out / "best.pt")
    assert model.short_side == 48  # recorded at training: the short side of this synthetic set's frames
    video = next((synthetic / "UCF-101").rglob("*.avi"))
    prediction = model.predict(video, top_k=2, segments=5)
    assert len(prediction.classes) == 2 and set(prediction.classes) <= set(model.class_names)
    assert prediction.probabilities[0] >= prediction.probabilities[1]
    assert len(prediction.attention) == 5 and abs(sum(prediction.attention) - 1) < 1e-4
    result = run_cli(str(out / "best.pt"), str(video), "--top-k", "1", "--segments", "3", module="jna_fast.predict")
    assert result.returncode == 0 and "most attended snippet" in result.stdout, result.stderr[-2000:]


def test_predict_never_shows_probabilities_that_are_not_finite(trained, synthetic):
    model = Predictor.from_checkpoint(trained[0] / "best.pt")
    with torch.no_grad():
        model.model.fusion.fc_flow.bias.fill_(float("nan"))  # as weights that diverged would make every score
    video = next((synthetic / "UCF-101").rglob("*.avi"))
    with pytest.raises(ValueError, match=f"{video}: the model's scores are not finite"):
        model.predict(video, top_k=2, segments=3)


def test_from_checkpoint_rejects_foreign_and_truncated_files(trained, tmp_path):
    out, _ = trained
    foreign = tmp_path / "resnet.pth"
    torch.save(JNA(3, backbone="resnet18").rgb.state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a jna_fast checkpoint"):
        Predictor.from_checkpoint(foreign)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((out / "best.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Predictor.from_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Predictor.from_checkpoint(tmp_path / "missing.pt")
    result = run_cli(str(truncated), "--out", str(tmp_path / "e"), module="jna_fast.evaluate")
    assert result.returncode == 2 and "not a readable checkpoint" in result.stderr


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "bad": lambda: None})  # lambdas cannot be pickled: the save fails
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"], "a failed save left a temporary file"


def test_cli_rejects_a_missing_root():
    result = run_cli("--dataset", "ucf101")
    assert result.returncode != 0 and "--dataset ucf101 needs --root" in result.stderr


def test_parameter_groups_cover_every_parameter_once():
    from jna_fast.config import parse_args
    from jna_fast.train import parameter_groups

    from jna_fast.builders import build_model

    cfg = parse_args(["--weight-decay", "1e-4", "--attention-lr-scale", "0.1", "--share-after", "3,4"])
    model = build_model(cfg, 4)
    groups = parameter_groups(model, cfg)
    assert [group["name"] for group in groups] == ["decay", "no_decay", "attention", "stitches"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.rgb.conv1.weight)]["weight_decay"] == 1e-4
    for p in (model.sharing[3].alpha, model.rgb.bn1.weight, model.fusion.fc_rgb.bias):
        assert by_id[id(p)]["weight_decay"] == 0.0
    assert by_id[id(model.temporal_pooling.w_rgb)]["lr_scale"] == 0.1


def test_stitch_recipe_warm_up_and_rate():
    from jna_fast.config import config_from_dict, parse_args
    from jna_fast.builders import build_model
    from jna_fast.training import make_optimizer, set_learning_rates, warmup_shares

    cfg = parse_args(["--stitch-self-weight", "1.0", "--stitch-lr-scale", "5", "--stitch-warmup", "0.5",
                      "--attention-warmup", "0.25", "--epochs", "4", "--warmup-epochs", "0"])
    assert config_from_dict(cfg.to_dict(), "checkpoint") == cfg  # the recipe round-trips through checkpoints
    model = build_model(cfg, 4)
    assert torch.equal(model.sharing[3].alpha[0], torch.eye(2))  # self weight 1.0: the branches start apart
    optimizer = make_optimizer(model, cfg)
    rates = {}
    for step in (0, 12, 25):  # 10 steps per epoch, 40 in all: attention frozen for 10, stitches for 20
        set_learning_rates(optimizer, cfg, step, 10, warmup_shares(model))
        rates[step] = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates[0]["stitches"] == rates[0]["attention"] == 0.0 < rates[0]["decay"]
    assert rates[12]["stitches"] == 0.0 < rates[12]["attention"] == rates[12]["decay"]
    assert rates[25]["decay"] > 0 and rates[25]["stitches"] == pytest.approx(5 * rates[25]["decay"])


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_fused_update_matches_the_per_tensor_one_and_resumes_its_state(optimizer):
    """The trainer's optimiser uses torch's fused update on the CPU; it takes the same steps as the per-tensor
    (foreach) form, and the state a per-tensor optimiser saved (older checkpoints) resumes in it."""
    from jna_fast.builders import build_model
    from jna_fast.checkpoint import load_optimizer_state
    from jna_fast.config import parse_args
    from jna_fast.training import make_optimizer, parameter_groups

    cfg = parse_args(["--optimizer", optimizer, "--lr", "0.01", "--weight-decay", "0.05", "--share-after", "4"])
    torch.manual_seed(0)
    fused_model = build_model(cfg, 4)
    plain_model = build_model(cfg, 4)
    plain_model.load_state_dict(fused_model.state_dict())
    fused = make_optimizer(fused_model, cfg)
    assert fused.defaults["fused"]
    kind = torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD
    extra = {} if optimizer == "adamw" else {"momentum": cfg.optim.momentum}
    plain = kind(parameter_groups(plain_model, cfg), lr=cfg.optim.lr, foreach=True, **extra)
    for step in range(3):
        if step == 2:  # a per-tensor optimiser's state, as an older checkpoint holds it, resumed in the fused one
            load_optimizer_state(fused, copy.deepcopy(plain.state_dict()), "last.pt")
            assert all(group["fused"] and not group["foreach"] for group in fused.param_groups)
            fused_model.load_state_dict(plain_model.state_dict())
        for model in (fused_model, plain_model):
            for index, parameter in enumerate(model.parameters()):
                seed = torch.Generator().manual_seed(step * 997 + index)
                parameter.grad = torch.randn(parameter.shape, generator=seed)
        fused.step()
        plain.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dali, flow, expected", [
    (False, "rawframes", ("pyav", "cpu")),  # defect: this used to ask for device="gpu" and fail at start
    (True, "rawframes", ("dali", "gpu")),
    (True, "online", ("pyav", "cpu")),
])
def test_trainer_asks_for_the_loader_that_can_feed_a_cuda_model(monkeypatch, dali, flow, expected):
    import jna_fast.data.loader as loader_module
    from jna_fast.config import parse_args
    from jna_fast.builders import resolve_loader_device

    monkeypatch.setattr(loader_module, "dali_available", lambda: dali)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_loader_device(parse_args(["--flow", flow]), torch.device("cuda", 0)) == expected
    assert resolve_loader_device(parse_args(["--flow", flow]), torch.device("cpu"))[1] == "cpu"


def test_flip_policy_per_dataset(synthetic, tmp_path):
    from jna_fast.config import parse_args
    from jna_fast.builders import build_loader_for, flip_allowed

    synthetic_cfg = parse_args(["--root", str(synthetic), "--frames-root", str(synthetic / "frames")])
    assert flip_allowed(synthetic_cfg) is False  # synthetic_meta.json: a flip swaps SlideLeft and SlideRight
    for subset in ("train", "test"):
        loader = build_loader_for(synthetic_cfg, subset, num_segments=2, device="cpu", backend="pyav")
        assert loader.flip is False
    assert flip_allowed(parse_args(["--root", str(synthetic), "--flip"])) is True
    ucf101 = parse_args(["--dataset", "ucf101", "--root", str(tmp_path)])
    assert flip_allowed(ucf101) is True  # TSN practice
    assert flip_allowed(parse_args(["--dataset", "ucf101", "--root", str(tmp_path), "--no-flip"])) is False

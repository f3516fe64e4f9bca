"""The training recipes in configs/: every file loads through the real --config path, names only known options,
builds its model and its loaders on a tiny tree of the official layout and yields a batch; the SLURM script
launches torchrun as it should."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed.run as torchrun
import yaml

from jna_fast.config import leaves, parse_args, read_config_file
from jna_fast.config.migrate import flatten
from jna_fast.builders import build_loader_for, build_model
from test_data_common import make_video_dataset

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SBATCH = CONFIGS / "slurm" / "train_ucf101_jna.sbatch"
DATASETS = ("ucf101", "hmdb51")
VARIANTS = {  # variant -> (streams, sharing, temporal pooling): the model each recipe is meant to train
    "jna": ("both", "cross_stitch", "joint_attention"),
    "tsn": ("both", "none", "average"),
    "rgb": ("rgb", "none", "average"),
    "flow": ("flow", "none", "average"),
}
RECIPES = sorted(CONFIGS.glob("*.yaml"))
OPTIONS = set(leaves())


def recipe_id(path: Path) -> str:
    return path.stem


def test_one_recipe_per_dataset_and_variant():
    assert sorted(path.stem for path in RECIPES) == sorted(f"{d}_{v}" for d in DATASETS for v in VARIANTS)


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_every_key_is_a_known_option(recipe):
    keys = set(flatten(yaml.safe_load(recipe.read_text()), str(recipe)))
    assert keys <= OPTIONS, keys - OPTIONS
    assert set(read_config_file(recipe)) == keys  # the config layer reads every key (none dropped)


def test_an_unknown_key_in_a_recipe_is_refused(tmp_path, capsys):
    bad = tmp_path / "typo.yaml"
    bad.write_text((CONFIGS / "ucf101_jna.yaml").read_text() + "  learning_rate: 0.01\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown option 'eval.learning_rate'"):
        read_config_file(bad)
    with pytest.raises(SystemExit):
        parse_args(["--config", str(bad)])
    assert "unknown option 'eval.learning_rate'" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_recipe_is_tsns_setup_for_its_variant(recipe):
    dataset, variant = recipe.stem.split("_")
    cfg = parse_args(["--config", str(recipe)])
    assert (cfg.data.dataset, cfg.data.split, cfg.run.out) == (dataset, 1, f"runs/{recipe.stem}_split1")
    assert (cfg.model.streams, cfg.model.sharing.name, cfg.model.temporal_pooling.name) == VARIANTS[variant]
    # TSN: ImageNet ResNet-50 (the torchvision file the user downloads), SGD with momentum 0.9, 3 training snippets
    # of 224 px with 5-field flow stacks, TV-L1 rawframes; 8 processes x batch_size = TSN's 256 clips per step.
    assert (cfg.model.backbone.name, cfg.model.backbone.weights, cfg.data.size, cfg.data.num_segments, cfg.model.flow_length) == (
        "resnet50", "resnet50-0676ba61.pth", 224, 3, 5)
    assert (cfg.optim.optimizer, cfg.optim.momentum, cfg.data.flow, cfg.data.flow_algorithm) == ("sgd", 0.9, "rawframes", "tvl1")
    assert 8 * cfg.optim.batch_size == 256
    assert (cfg.optim.lr, cfg.model.dropout) == {"rgb": (0.001, 0.8), "flow": (0.005, 0.7)}.get(variant, (0.001, 0.7))
    text = recipe.read_text()
    # Each file says how to choose the split, what to beat and how long it takes (unmeasured, with arithmetic).
    assert f"--config configs/{recipe.name} --split 2 --out runs/{recipe.stem}_split2" in text
    assert "Reference to beat:" in text and "Time on one H200: unmeasured" in text
    assert f"--lr {cfg.optim.lr * 32 / 256:g}" in text  # the one-GPU rate, scaled to its 32 clips per step
    # The command line picks the split and wins over the file.
    assert parse_args(["--config", str(recipe), "--split", "3"]).data.split == 3


# --- a tiny tree of each official layout, with rawframes, for every split ----------------------------------------
UCF_CLASSES = ("ApplyEyeMakeup", "Basketball", "YoYo")
HMDB_CLASSES = ("brush_hair", "climb", "climb_stairs")
FRAMES, HEIGHT, WIDTH = 16, 48, 64  # 3 segments of 5-field flow stacks fit in 16 frames; crops of 32 px


@pytest.fixture(scope="module")
def ucf101_tree(tmp_path_factory):
    """UCF-101/<Class>/v_<Class>_gXX_c01.avi for groups 1-3, ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt:
    split N tests group N and trains on the others, as the official splits hold groups out."""
    root = tmp_path_factory.mktemp("UCF101")
    frames = root / "frames"
    videos = {f"{name}/v_{name}_g{group:02d}_c01": (FRAMES, "mpeg4", index * 3 + group)
              for index, name in enumerate(UCF_CLASSES) for group in (1, 2, 3)}
    make_video_dataset(root / "UCF-101", frames, videos, HEIGHT, WIDTH)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(UCF_CLASSES, 1)))
    for split in (1, 2, 3):
        train = [f"{video}.avi {UCF_CLASSES.index(video.split('/')[0]) + 1}" for video in videos
                 if not video.endswith(f"_g{split:02d}_c01")]
        test = [f"{video}.avi" for video in videos if video.endswith(f"_g{split:02d}_c01")]
        (lists / f"trainlist{split:02d}.txt").write_text("\n".join(train) + "\n")
        (lists / f"testlist{split:02d}.txt").write_text("\n".join(test) + "\n")
    return root, frames


@pytest.fixture(scope="module")
def hmdb51_tree(tmp_path_factory):
    """<class>/<video>.avi and testTrainMulti_7030_splits/<class>_test_splitN.txt (1 train, 2 test, 0 unused),
    the rawframes beside it: split N tests video N of each class and leaves video 4 unused."""
    root = tmp_path_factory.mktemp("HMDB51")
    frames = root.parent / (root.name + "-frames")
    videos = {f"{name}/{name}_v{number}": (FRAMES, "mpeg4", index * 4 + number)
              for index, name in enumerate(HMDB_CLASSES) for number in (1, 2, 3, 4)}
    make_video_dataset(root, frames, videos, HEIGHT, WIDTH)
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir()
    for name in HMDB_CLASSES:
        for split in (1, 2, 3):
            codes = {number: "2" if number == split else "0" if number == 4 else "1" for number in (1, 2, 3, 4)}
            (splits / f"{name}_test_split{split}.txt").write_text(
                "".join(f"{name}_v{number}.avi {code}\n" for number, code in codes.items()))
    return root, frames


CASES = [(recipe, 1) for recipe in RECIPES] + [(CONFIGS / f"{d}_jna.yaml", s) for d in DATASETS for s in (2, 3)]


@pytest.mark.parametrize("recipe, split", CASES, ids=[f"{r.stem}-split{s}" for r, s in CASES])
def test_recipe_builds_its_model_and_loaders_and_draws_a_batch(recipe, split, ucf101_tree, hmdb51_tree, tmp_path):
    dataset, variant = recipe.stem.split("_")
    root, frames = ucf101_tree if dataset == "ucf101" else hmdb51_tree
    # Only the paths, the crop size and the batch are overridden: the model is the recipe's ResNet-50, built (not
    # trained, and without the ImageNet file, which train would load) and run once on the batch.
    cfg = parse_args(["--config", str(recipe), "--root", str(root), "--frames-root", str(frames), "--split",
                      str(split), "--size", "32", "--batch-size", "2", "--data-backend", "pyav", "--on-error", "raise",
                      "--out", str(tmp_path / "run")])
    assert (cfg.model.backbone.name, cfg.data.num_segments, cfg.model.flow_length, cfg.data.split) == ("resnet50", 3, 5, split)
    train = build_loader_for(cfg, "train", num_segments=cfg.data.num_segments, device="cpu", backend="pyav")
    test = build_loader_for(cfg, "test", num_segments=cfg.eval.val_segments, device="cpu", backend="pyav",
                            num_classes=train.num_classes)
    classes = UCF_CLASSES if dataset == "ucf101" else HMDB_CLASSES
    assert list(train.class_names) == list(classes) and train.num_classes == 3
    assert len(train) == 3  # 6 training clips of the split (2 per class) in batches of 2
    train.set_epoch(0)
    batch = next(iter(train.batches()))
    assert batch.rgb.shape == (2, 3, 3, 32, 32) and batch.flow.shape == (2, 3, 10, 32, 32)
    assert bool(batch.mask.all()) and set(batch.label.tolist()) <= {0, 1, 2}
    model = build_model(cfg, train.num_classes).eval()
    assert (model.rgb is None) == (variant == "flow") and (model.flow is None) == (variant == "rgb")
    assert len(model.sharing.describe()["share_after"]) == (2 if variant == "jna" else 0)
    with torch.no_grad():
        output = model(batch.rgb, batch.flow, batch.mask)
    assert output.logits.shape == (2, 3) and bool(torch.isfinite(output.logits).all())
    test_batch = next(iter(test.batches()))
    assert test_batch.rgb.shape[:3] == (2, cfg.eval.val_segments, 3)  # the 3 held-out videos, 1 view each


# --- the SLURM script ---------------------------------------------------------------------------------------------
def test_sbatch_script_is_valid_bash_and_names_a_recipe():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    text = SBATCH.read_text()
    default = text.split("CONFIG=${CONFIG:-", 1)[1].split("}", 1)[0]
    assert (REPO / default).is_file(), default
    assert "#SBATCH --ntasks-per-node=1" in text  # one srun task (one torchrun) per node


def fake_slurm_commands(folder: Path) -> Path:
    """`scontrol show hostnames` listing two nodes, and an `srun` that prints the command it would run per node."""
    folder.mkdir()
    for name, body in {"scontrol": 'if [[ "$1 $2" == "show hostnames" ]]; then printf "gpu-a\\ngpu-b\\n"; '
                                   'else exit 1; fi',
                       "srun": 'printf "%s\\n" "$@"'}.items():
        path = folder / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def run_sbatch(tmp_path, nodes: int, *extra: str, **env_vars) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin" if (tmp_path / "bin").exists() else fake_slurm_commands(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_NNODES": str(nodes),
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu-[a-b]", **env_vars}
    return subprocess.run([shutil.which("bash"), str(SBATCH), *extra], cwd=REPO, env=env, capture_output=True,
                          text=True)


def test_sbatch_launches_torchrun_per_node_with_a_c10d_rendezvous(tmp_path):
    done = run_sbatch(tmp_path, 2, "--weights", "/data/resnet50-0676ba61.pth", SPLIT="2")
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()
    srun_options, command = args[:args.index("torchrun")], args[args.index("torchrun") + 1:]
    assert srun_options == ["--nodes", "2", "--ntasks-per-node", "1"]
    # torchrun's own parser accepts the command: 2 nodes x 8 processes meeting at the first node's port 29500
    launch = torchrun.get_args_parser().parse_args(command)
    assert (launch.nnodes, launch.nproc_per_node, launch.rdzv_backend, launch.rdzv_endpoint, launch.rdzv_id) == (
        "2", "8", "c10d", "gpu-a:29500", "4242")
    assert launch.module and launch.training_script == "jna_fast.train"
    # and jna_fast.train accepts the rest: the recipe, the split, 256 / 16 processes = 16 clips each, its own --out
    cfg = parse_args(launch.training_script_args)
    assert (cfg.data.dataset, cfg.data.split, cfg.optim.batch_size, cfg.run.out) == ("ucf101", 2, 16, "runs/ucf101_jna_split2")
    assert (cfg.model.backbone.weights, cfg.run.progress) == ("/data/resnet50-0676ba61.pth", False)
    assert cfg.model.sharing.after == (3, 4) and cfg.model.temporal_pooling.name == "joint_attention"


def test_sbatch_keeps_tsns_batch_or_refuses(tmp_path):
    done = run_sbatch(tmp_path, 4, CONFIG="configs/hmdb51_flow.yaml")
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()
    assert args[args.index("--batch-size") + 1] == "8" and "runs/hmdb51_flow_split1" in args
    assert args[args.index("--config") + 1] == "configs/hmdb51_flow.yaml"
    done = run_sbatch(tmp_path, 3)
    assert done.returncode == 2 and "do not divide 256 clips per step" in done.stderr and not done.stdout
    done = run_sbatch(tmp_path, 2, CONFIG="configs/nope.yaml")
    assert done.returncode == 2 and "configs/nope.yaml: no such recipe" in done.stderr


def test_the_guides_list_every_recipe_and_the_multi_node_launch():
    guide = (REPO / "docs" / "guides" / "datasets.md").read_text()
    section = guide.split("### Recipes", 1)[1].split("\n## ", 1)[0]
    for recipe in RECIPES:
        assert f"`configs/{recipe.name}`" in section, recipe.name
    distributed = (REPO / "docs" / "guides" / "distributed.md").read_text()
    assert "--rdzv-backend c10d" in distributed and "configs/slurm/train_ucf101_jna.sbatch" in distributed

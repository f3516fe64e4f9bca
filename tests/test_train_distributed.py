"""Training with several processes, on one machine and on "nodes" that share no files: what one rank reads or
writes reaches the others by the process group (the checkpoint to resume, the final model), the synthetic set is
made on every node that does not see the main one's, only the main process writes into its --out, and a failure on
one rank stops them all. Runs gloo ranks on this CPU, through torchrun (``python -m torch.distributed.run``)."""

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jna_fast.builders import dataset_ready, dataset_roots, prepare_dataset_on_every_node
from jna_fast.checkpoint import load_checkpoint
from jna_fast.config import parse_args
from jna_fast.data import synthetic
from jna_fast.runtime import Distributed, OtherRankError, agree, from_main, setup_distributed

ROOT = Path(__file__).resolve().parents[1]
RANKS = 2
# 2 classes x 4 videos: 4 training clips (one step of 2 per rank and epoch) and 4 test clips; 32 px, 2 snippets.
TINY_RUN = ["--dataset", "synthetic", "--synthetic-classes", "2", "--synthetic-videos-per-class", "4",
            "--size", "32", "--num-segments", "2", "--test-segments", "2", "--eval-segments", "2",
            "--flow-length", "2", "--batch-size", "2", "--data-backend", "pyav", "--no-progress",
            "--no-tensorboard", "--seed", "1"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(cache: Path) -> dict:
    """This checkout's jna_fast whatever the working folder, its own synthetic cache, one thread per process."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "JNA_FAST_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def torchrun(launch: list[str], train: list[str], cwd: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch, "-m", "jna_fast.train",
                             *TINY_RUN, *train], cwd=cwd, env=environment(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 400) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish within {timeout} s (a rank waits for another): {output[-3000:]}")
    assert process.returncode == 0, output[-4000:]
    return output


def predictions(eval_folder: Path) -> dict:
    lines = (eval_folder / "predictions.jsonl").read_text().splitlines()
    return {entry["video"]: entry for entry in map(json.loads, lines)}


@pytest.mark.slow
def test_two_ranks_on_one_machine_evaluate_the_final_model_once(tmp_path):
    out = tmp_path / "run"
    output = finish(torchrun(["--standalone", "--nproc-per-node", str(RANKS)],
                             # fp32: the scores are compared to 1e-4, which bf16 autocast does not give
                             ["--epochs", "1", "--precision", "fp32", "--out", str(out)], tmp_path,
                             tmp_path / "cache"))
    assert output.count("final evaluation of") == 1
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["clips"] == 4 and report["checkpoint"] == str(out / "last.pt")
    # What was evaluated is last.pt's model, BatchNorm statistics included, on every rank's shard: the same scores
    # as a single process evaluating the file.
    single = subprocess.run([sys.executable, "-m", "jna_fast.evaluate", str(out / "last.pt"), "--out",
                             str(tmp_path / "single"), "--segments", "2", "--crops", "1", "--no-progress"],
                            cwd=tmp_path, env=environment(tmp_path / "cache"), capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    final, reference = predictions(out / "eval"), predictions(tmp_path / "single")
    assert sorted(final) == sorted(reference) and len(final) == 4
    for video, entry in final.items():
        assert torch.allclose(torch.tensor(entry["scores"]), torch.tensor(reference[video]["scores"]), atol=1e-4)


@pytest.mark.slow
def test_two_nodes_that_share_no_files_train_resume_and_evaluate(tmp_path):
    """Two one-process "nodes" meeting at a c10d rendezvous, each in its own folder with its own --out and cache.
    The node at 127.0.0.1 sorts first in the rendezvous, so it is the main one in both runs."""
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for node in nodes:
        node.mkdir()

    def run_both(run_id: str, train: list[str]) -> list[str]:
        port = free_port()
        launched = [torchrun(["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
                              "--local-addr", f"127.0.0.{number + 1}"], [*train, "--out", "run"],
                             node, node / "cache") for number, node in enumerate(nodes)]
        return [finish(process) for process in launched]

    # One step, no final evaluation; then a run to 2 epochs that resumes the main node's last.pt, which the other
    # node has no copy of.
    run_both("first", ["--epochs", "2", "--max-steps", "1", "--no-final-eval"])
    main_output, other_output = run_both("second", ["--epochs", "2"])

    assert "resumed from run/last.pt at epoch 1, batch 0 (step 1)" in main_output
    run = nodes[0] / "run"
    state = load_checkpoint(run / "last.pt")
    assert (state["epoch"], state["step"]) == (2, 2)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2] and records[-1]["val_clips"] == 4
    assert json.loads((run / "eval" / "report.json").read_text())["clips"] == 4
    assert "final evaluation of" in main_output and "final evaluation of" not in other_output
    # The other node made its own copy of the synthetic set, and wrote nothing into its --out.
    made = list((nodes[1] / "cache" / "synthetic").iterdir())
    assert len(made) == 1 and synthetic.complete_dataset_parameters(made[0]) is not None
    assert not (nodes[1] / "run").exists()


def file_times(folder: Path) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.mark.slow
def test_each_node_that_does_not_see_the_synthetic_set_makes_it_and_the_others_write_nothing(tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv("JNA_FAST_CACHE", str(tmp_path / "cache"))
    cfg = parse_args([*TINY_RUN, "--out", str(tmp_path / "run")])
    main, other_node = (Distributed(0, 2, torch.device("cpu")), Distributed(1, 2, torch.device("cpu"), 0))
    assert not dataset_ready(cfg)
    prepare_dataset_on_every_node(cfg, main)
    assert dataset_ready(cfg)
    made = file_times(tmp_path / "cache")
    prepare_dataset_on_every_node(cfg, other_node)  # a node that sees the main node's copy
    assert file_times(tmp_path / "cache") == made
    # A node whose copy is not complete (a video newer than its flow: regenerated, say) completes it.
    root, frames_root = dataset_roots(cfg)
    video = sorted((root / synthetic.VIDEO_DIR).rglob("*.avi"))[0]
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    assert not dataset_ready(cfg)
    prepare_dataset_on_every_node(cfg, other_node)
    assert dataset_ready(cfg)
    changed = {path for path, time_ns in file_times(tmp_path / "cache").items() if made.get(path) != time_ns}
    assert changed and all(frames_root in (path, *path.parents) or path == video for path in changed)


def _rank_main(rank: int, init_file: str, results: str) -> None:
    os.environ.update(WORLD_SIZE=str(RANKS), RANK=str(rank), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=RANKS,
                            timeout=timedelta(seconds=60))
    env = setup_distributed("cpu")
    outcome = {}
    try:
        state = from_main(env, lambda: {"model": {"weight": torch.arange(6.0).reshape(2, 3)}, "step": 7,
                                        "rng": (3, [1, 2], None)})
        outcome["received"] = [state["model"]["weight"].tolist(), state["step"], list(state["rng"])]

        def fail_on_main():
            raise FileNotFoundError("--resume x.pt: no such checkpoint")

        try:
            from_main(env, fail_on_main)
        except (FileNotFoundError, OtherRankError) as error:
            outcome["from_main_error"] = [type(error).__name__, str(error)]

        def fail_on_rank_1():
            raise ValueError("disk full")

        try:
            agree(fail_on_rank_1 if rank == 1 else None)
        except (ValueError, OtherRankError) as error:
            outcome["agree_error"] = [type(error).__name__, str(error)]
    finally:
        Path(results, f"rank{rank}.json").write_text(json.dumps(outcome))
        dist.destroy_process_group()


def test_the_main_process_result_and_any_rank_failure_reach_every_rank(tmp_path):
    context = mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=RANKS, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=5):  # True once every rank has ended
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the ranks did not finish within 120 s: one waits for another")
    main, other = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(RANKS))
    for outcome in (main, other):
        assert outcome["received"] == [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 7, [3, [1, 2], None]]
    assert main["from_main_error"] == ["FileNotFoundError", "--resume x.pt: no such checkpoint"]
    assert other["from_main_error"] == ["OtherRankError",
                                        "process 0 of the run stopped: --resume x.pt: no such checkpoint"]
    assert main["agree_error"] == ["OtherRankError", "process 1 of the run stopped: disk full"]
    assert other["agree_error"] == ["ValueError", "disk full"]

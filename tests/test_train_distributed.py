"""Training with several processes, on one machine and on "nodes" that share no files: the synthetic set is made
on every node that does not see the main one's, what the main process reads reaches the others by the process group,
and a failure on one rank stops them all. Runs gloo ranks on this CPU."""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jna_fast.builders import dataset_roots, prepare_synthetic_on_every_node, synthetic_ready
from jna_fast.config import parse_args
from jna_fast.data import synthetic
from jna_fast.runtime import Distributed, OtherRankError, agree, from_main, setup_distributed

RANKS = 2
# 2 classes x 4 videos: 4 training clips (one step of 2 per rank and epoch) and 4 test clips; 32 px, 2 snippets.
TINY_RUN = ["--dataset", "synthetic", "--synthetic-classes", "2", "--synthetic-videos-per-class", "4",
            "--size", "32", "--num-segments", "2", "--test-segments", "2", "--eval-segments", "2",
            "--flow-length", "2", "--batch-size", "2", "--data-backend", "pyav", "--no-progress",
            "--no-tensorboard", "--seed", "1"]


def file_times(folder: Path) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.mark.slow
def test_each_node_that_does_not_see_the_synthetic_set_makes_it_and_the_others_write_nothing(tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv("JNA_FAST_CACHE", str(tmp_path / "cache"))
    cfg = parse_args([*TINY_RUN, "--out", str(tmp_path / "run")])
    main, other_node = (Distributed(0, 2, torch.device("cpu")), Distributed(1, 2, torch.device("cpu"), 0))
    assert not synthetic_ready(cfg)
    prepare_synthetic_on_every_node(cfg, main)
    assert synthetic_ready(cfg)
    made = file_times(tmp_path / "cache")
    prepare_synthetic_on_every_node(cfg, other_node)  # a node that sees the main node's copy
    assert file_times(tmp_path / "cache") == made
    # A node whose copy is not complete (a video newer than its flow: regenerated, say) completes it.
    root, frames_root = dataset_roots(cfg)
    video = sorted((root / synthetic.VIDEO_DIR).rglob("*.avi"))[0]
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    assert not synthetic_ready(cfg)
    prepare_synthetic_on_every_node(cfg, other_node)
    assert synthetic_ready(cfg)
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

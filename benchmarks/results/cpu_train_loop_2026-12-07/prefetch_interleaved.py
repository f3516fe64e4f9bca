import sys, tempfile, statistics
from pathlib import Path
sys.path.insert(0, "benchmarks")
import train_loop as tl
from jna_fast.config import parse_args
from jna_fast.runtime import setup_distributed
from jna_fast.training.session import set_up
def main():
    with tempfile.TemporaryDirectory() as f:
        cfg = parse_args(["--out", f, "--no-progress", "--no-tensorboard"] + sys.argv[1:])
        tr = set_up(cfg, setup_distributed(), Path(f), None)
        L = tr.data.train_loader
        tl.timed_steps(tr, L.batches(start_batch=0))
        res = {"pf2": [], "pf0": [], "pre": []}
        for _ in range(4):
            L.prefetch = 2; res["pf2"].append(tl.timed_steps(tr, L.batches(start_batch=0)))
            L.prefetch = 0; res["pf0"].append(tl.timed_steps(tr, L.batches(start_batch=0)))
            b = list(L.batches(start_batch=0)); res["pre"].append(tl.timed_steps(tr, b))
        for k, v in res.items(): print(k, f"{statistics.median(v):.2f}", [round(x, 2) for x in v])
if __name__ == "__main__":
    main()

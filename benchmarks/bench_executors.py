"""Wall time of one 8-cell grid run with the ``inprocess`` executor and with ``pool`` (2 workers x 1 thread).

    python benchmarks/bench_executors.py            # prints both times and their ratio; --json for a record

Both runs are ``ddbench run`` commands started the same way (a fresh process each, so both pay for starting
Python and importing torch; the pool also pays for starting its two workers), on fresh results directories and
one prepared-data cache built beforehand. ``inprocess`` uses torch's default threads (all cores). The grid:
random and herding (random embedding) at PPC 1 and 2, each evaluated by PointNet and PointNet-IN, on the
built-in ``shapes`` dataset (256 points, 10 training and 10 test clouds per class, 2 nets of 10 epochs).
``--repeat N`` measures N pairs, alternating which executor goes first (on a shared machine the load drifts), and
prints each pair's ratio and their median.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--datasets", "shapes", "--methods", "random,herding", "--set", "herding.embedding=random", "--ppc", "1,2",
        "--eval-backbones", "pointnet,pointnet_in", "--device", "cpu",
        "--set", "shapes.points=256", "--set", "shapes.train_per_class=10", "--set", "shapes.test_per_class=10"]
EXECUTORS = {
    "inprocess": ["--executor", "inprocess"],
    "pool (2 workers x 1 thread)": ["--executor", "pool", "--executor-opt", "workers=2", "--executor-opt", "threads=1"],
}


def ddbench_run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ddbench", "run", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ddbench run failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    grid = [*GRID, "--eval-nets", str(args.nets), "--epochs", str(args.epochs)]
    names, pairs = list(EXECUTORS), []
    with tempfile.TemporaryDirectory(prefix="bench_executors_") as tmp:
        env = {**os.environ, "DDBENCH_CACHE": str(Path(tmp) / "cache")}
        env.pop("OMP_NUM_THREADS", None)  # inprocess gets torch's default; the pool sets its own
        ddbench_run([*grid, "--methods", "random", "--ppc", "1", "--eval-backbones", "pointnet",
                     "--results", str(Path(tmp) / "warm")], env)  # builds the cache
        for r in range(args.repeat):
            order = names if r % 2 == 0 else names[::-1]
            pairs.append({name: ddbench_run([*grid, *EXECUTORS[name], "--results", str(Path(tmp) / f"run{r}_{i}")],
                                            env) for i, name in enumerate(order)})
            if not args.json:
                p = pairs[-1]
                print(f"pair {r + 1} ({order[0]} first): " + ", ".join(f"{n} {p[n]:.1f} s" for n in names)
                      + f"; speed-up {p[names[0]] / p[names[1]]:.2f}x", flush=True)
    ratios = sorted(p[names[0]] / p[names[1]] for p in pairs)
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:][:2]) / 2
    if args.json:
        print(json.dumps({"cells": 8, "cores": os.cpu_count(), "pairs": pairs, "speedup_median": median}))
        return
    print(f"8 cells, {os.cpu_count()} cores: pool speed-up {median:.2f}x (inprocess time / pool time"
          f"{', median of ' + str(len(pairs)) + ' pairs' if len(pairs) > 1 else ''})")


if __name__ == "__main__":
    main()

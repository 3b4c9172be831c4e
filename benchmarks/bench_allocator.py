"""The allocator row: three workloads under tcmalloc (when installed), glibc as ddbench tunes it without tcmalloc,
glibc with the mmap/trim thresholds alone (ddbench's tuning until 2026-12-03), and glibc's defaults.

Workloads: one PointNet training step (batch 8 x 1024 points, one thread: the issue's measurement), one SADM
iteration at ModelNet10 sizes and PPC 1 (2 threads), and a fresh (80, 1024, 1024) float32 tensor filled after the
previous one was freed while a small allocation made after it lives on (the size of SADM's real-side features;
2 threads). Each (allocator, workload) runs in its
own fresh process (an allocator is chosen at process start); the allocators are interleaved round by round so that
drift on a shared machine hits them alike. The script prints, per workload, the median seconds of the rounds, their
min and max, the ratio to the fastest allocator measured in this one run, and the peak RSS:

    python benchmarks/bench_allocator.py [--rounds 3] [--steps 5] [--workloads step,sadm,block]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ddbench.cli.allocator import GLIBC_THRESHOLDS, GLIBC_TUNED, find_tcmalloc  # noqa: E402
from ddbench.environment import ALLOCATOR_VARIABLES  # noqa: E402

PRELUDE = r"""
import json, resource, sys, time, torch
sys.path.insert(0, {repo!r}); sys.path.insert(0, {repo!r} + "/benchmarks")
torch.set_num_threads({threads})
torch.manual_seed(0)
def report(times):
    print(json.dumps({{"seconds": sorted(times)[len(times) // 2],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

STEP = r"""
from ddbench.backbones.pointnet import PointNet
net = PointNet(None, 10)
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(8, 1024, 3), torch.randint(0, 10, (8,))
times = []
for i in range({steps} + 1):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(x).logits, y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
report(times[1:])
"""

SADM = r"""
from bench_methods import modelnet10_sized_set
from components import distill_context, method_info
info = method_info("sadm")
ctx = distill_context(modelnet10_sized_set(), 1, torch.device("cpu"), "modelnet10", "random")
info.cls(info.make_config({{"iterations": 1}})).distill(ctx)  # warm-up
synth = info.cls(info.make_config({{"iterations": {steps}}})).distill(ctx)
report([synth.info["seconds_per_iteration"]])
"""

BLOCK = r"""
times = []
for i in range({steps} + 1):
    t = time.perf_counter()
    features = torch.empty(80, 1024, 1024).fill_(1.0)
    times.append(time.perf_counter() - t)
    others = [object() for _ in range(1000)]  # while the block lives: an 8 KB list, from malloc, replacing the last
    del features
report(times[1:])
"""

#: workload -> (its code, torch threads)
WORKLOADS = {"step": ("PointNet training step, batch 8, 1 thread", STEP, 1),
             "sadm": ("SADM iteration, ModelNet10 sizes, PPC 1, 2 threads", SADM, 2),
             "block": ("fresh (80, 1024, 1024) float32 tensor after a free, 2 threads", BLOCK, 2)}


def allocators() -> dict[str, dict[str, str]]:
    """Name -> environment (only the allocators that exist on this machine)."""
    base = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    out = {"glibc default": {**base, "DDBENCH_ALLOCATOR": "system"},
           "glibc thresholds only (ddbench until 2026-12-03)": {**base, "GLIBC_TUNABLES": GLIBC_THRESHOLDS},
           "glibc tuned (ddbench without tcmalloc)": {**base, "GLIBC_TUNABLES": GLIBC_TUNED}}
    if find_tcmalloc():
        out["tcmalloc"] = {**base, "LD_PRELOAD": find_tcmalloc()}
    return out


def measure(env: dict[str, str], workload: str, steps: int) -> dict:
    _, body, threads = WORKLOADS[workload]
    code = PRELUDE.format(repo=str(REPO), threads=threads) + body.format(steps=steps)
    env = {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (iterations, blocks) per process")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; use {', '.join(WORKLOADS)}")
    envs = allocators()
    runs = {(w, n): [] for w in workloads for n in envs}
    for _ in range(args.rounds):
        for w in workloads:
            for name, env in envs.items():
                runs[(w, name)].append(measure(env, w, args.steps))
    print(f"GLIBC_TUNABLES of glibc tuned: {GLIBC_TUNED}\n")
    print("| workload | allocator | s (median of rounds) | min | max | ratio to fastest | peak RSS MiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for w in workloads:
        medians = {n: statistics.median(r["seconds"] for r in runs[(w, n)]) for n in envs}
        best = min(medians.values())
        for name in envs:
            secs = [r["seconds"] for r in runs[(w, name)]]
            print(f"| {WORKLOADS[w][0]} | {name} | {medians[name]:.3f} | {min(secs):.3f} | {max(secs):.3f} | "
                  f"{medians[name] / best:.2f} | {max(r['peak_rss_mib'] for r in runs[(w, name)]):.0f} |")
    if "tcmalloc" not in envs:
        print("\ntcmalloc is not installed here (apt install libtcmalloc-minimal4 adds its rows)")


if __name__ == "__main__":
    main()

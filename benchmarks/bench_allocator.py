"""The allocator row: one PointNet training step (batch 8 x 1024 points, one thread) under tcmalloc (when
installed), glibc with the mmap/trim thresholds ddbench sets without tcmalloc, and glibc's defaults.

Each allocator runs in its own fresh process (an allocator is chosen at process start), the three are interleaved
round by round so that drift on a shared machine hits them alike, and the script prints the median seconds per step
and peak memory of each, and every ratio to the fastest, measured in this one run:

    python benchmarks/bench_allocator.py [--rounds 5] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ddbench.cli.allocator import GLIBC_TUNED, find_tcmalloc  # noqa: E402

STEP = r"""
import json, resource, sys, time, torch
sys.path.insert(0, {repo!r})
from ddbench.backbones.pointnet import PointNet
torch.set_num_threads(1)
torch.manual_seed(0)
net = PointNet(None, 10)
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(8, 1024, 3), torch.randint(0, 10, (8,))
times = []
for i in range({steps}):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(x).logits, y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(json.dumps({{"seconds": sorted(times[1:])[len(times[1:]) // 2],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def allocators() -> dict[str, dict[str, str]]:
    """Name -> environment changes (only those that exist on this machine)."""
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
    out = {"glibc default": {**base, "DDBENCH_ALLOCATOR": "system"},
           "glibc tuned (ddbench without tcmalloc)": {**base, "GLIBC_TUNABLES": GLIBC_TUNED}}
    if find_tcmalloc():
        out["tcmalloc"] = {**base, "LD_PRELOAD": find_tcmalloc()}
    return out


def measure(env: dict[str, str], steps: int) -> dict:
    code = STEP.format(repo=str(Path(__file__).resolve().parents[1]), steps=steps)
    env = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    envs = allocators()
    runs: dict[str, list[dict]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, env in envs.items():
            runs[name].append(measure(env, args.steps))
    medians = {n: statistics.median(r["seconds"] for r in rs) for n, rs in runs.items()}
    best = min(medians.values())
    print("| allocator | s/step (median of rounds) | min | max | ratio to fastest | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        print(f"| {name} | {medians[name]:.3f} | {min(secs):.3f} | {max(secs):.3f} | {medians[name] / best:.2f} | "
              f"{max(r['peak_rss_mib'] for r in rs):.0f} |")
    if "tcmalloc" not in envs:
        print("tcmalloc is not installed here (apt install libtcmalloc-minimal4 adds its row)")


if __name__ == "__main__":
    main()

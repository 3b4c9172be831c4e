"""SADM's (or ``--method``'s) seconds per iteration of two checkouts, paired: the working tree against another revision's worktree,
at ModelNet10 sizes (PPC 1, 3, 10), 2 threads, glibc tuned as the CLI sets it, each run in a fresh process and
the two interleaved round by round, with the loss after the timed iterations (same seed: it must agree to float
rounding) and peak memory:

    git worktree add --detach /tmp/ddbench-base HEAD~1
    python benchmarks/bench_sadm_revisions.py --base /tmp/ddbench-base [--rounds 2] [--ppc 1,3,10] [--method 3ddp]

3DDP's partitions of every real cloud are cached before the timed iterations, as in the speed table (the steady
state after its first ~150 iterations).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ddbench.cli.allocator import GLIBC_TUNED  # noqa: E402

CODE = r"""
import json, resource, sys, torch
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/benchmarks")
from bench_methods import modelnet10_sized_set
from components import distill_context, method_info
torch.set_num_threads(2)
train, info = modelnet10_sized_set(), method_info({method!r})
ctx = distill_context(train, {ppc}, torch.device("cpu"), "modelnet10", "random")
# the steady state of the speed table's distillation_row, spelled out: this code runs against the base revision's
# benchmarks/, which need not have any helper added since
init = {{"init": "random"}} if info.cls.Config().model_dump().get("init") in ("herding", "kcenter") else {{}}
if {method!r} == "3ddp":
    from ddbench.methods.ddp3d import partition_cache
    m, n2, _ = info.cls(info.make_config({{}})).sizes("modelnet10")
    partition_cache(train.points, m, n2).lookup(torch.arange(len(train)))
info.cls(info.make_config({{"iterations": 1, **init}})).distill(ctx)  # warm-up
synth = info.cls(info.make_config({{"iterations": {iterations}, **init}})).distill(ctx)
print(json.dumps({{"seconds": synth.info["seconds_per_iteration"], "loss": synth.info["loss_curve"][-1][1],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(root: str, ppc: int, iterations: int, method: str = "sadm") -> dict:
    env = {**os.environ, "GLIBC_TUNABLES": GLIBC_TUNED, "OMP_NUM_THREADS": "2", "PYTHONPATH": root}
    code = CODE.format(root=root, ppc=ppc, iterations=iterations, method=method)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="a worktree of the revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--ppc", default="1,3,10")
    parser.add_argument("--method", default="sadm", help="an iterative method: sadm, dm, 3ddp, ...")
    args = parser.parse_args()
    roots = {"base": str(Path(args.base).resolve()), "this": str(Path(__file__).resolve().parents[1])}
    print(f"{args.method}, {args.iterations} iterations per run, best of {args.rounds} rounds\n")
    print("| PPC | base s/it | this s/it | speedup | loss base / this | peak RSS MiB base / this |")
    print("| ---: | ---: | ---: | ---: | --- | --- |")
    for ppc in (int(p) for p in args.ppc.split(",")):
        runs = {name: [] for name in roots}
        for _ in range(args.rounds):
            for name, root in roots.items():
                runs[name].append(measure(root, ppc, args.iterations, args.method))
        best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}
        print(f"| {ppc} | {best['base']:.2f} | {best['this']:.2f} | {best['base'] / best['this']:.2f} | "
              f"{runs['base'][0]['loss']:.7f} / {runs['this'][0]['loss']:.7f} | "
              f"{max(r['peak_mib'] for r in runs['base']):.0f} / {max(r['peak_mib'] for r in runs['this']):.0f} |")


if __name__ == "__main__":
    main()

"""Seconds per distillation iteration of each optimisation-based method at ModelNet10 sizes.

    python benchmarks/bench_methods.py                       # sadm, dm, dc, dd3d, 3ddp at PPC 1, 3, 10
    python benchmarks/bench_methods.py --methods sadm --ppc 1 --iterations 5

ModelNet10 sizes: 10 classes, 1024 points per cloud, each class as large as in ModelNet10's training set (the
clouds are random; the cost does not depend on their values). Every method runs with its reference config (real
batches, loops); the first iteration is a warm-up and is not timed. Prints one row per (method, PPC) with the mean
seconds per iteration and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from components import distill_context, method_info

from ddbench.cli.allocator import arrange_allocator
from ddbench.data.cloudset import PointCloudSet
from ddbench.data.modelnet import MODELNET10_CLASSES
from ddbench.environment import PeakMemory, environment_record

MODELNET10_TRAIN_COUNTS = [106, 515, 889, 200, 200, 465, 200, 680, 392, 344]


def modelnet10_sized_set(points: int = 1024) -> PointCloudSet:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(torch.tensor(MODELNET10_TRAIN_COUNTS))
    clouds = torch.randn(len(labels), points, 3, generator=gen)
    clouds = clouds / clouds.norm(dim=-1, keepdim=True).amax(1, keepdim=True)
    return PointCloudSet(clouds, labels, MODELNET10_CLASSES, "modelnet10-sized")


def seconds_per_iteration(method_name: str, ppc: int, iterations: int, train: PointCloudSet, device) -> dict:
    info = method_info(method_name)
    # a coreset initialisation would time its embedding network too: start from random clouds where it matters
    init = {"init": "random"} if info.cls.Config().model_dump().get("init") in ("herding", "kcenter") else {}
    method = info.cls(info.make_config({"iterations": 1, **init}))
    ctx = distill_context(train, ppc, device, "modelnet10", init.get("init", info.cls.Config().model_dump().get("init")))
    method.distill(ctx)  # warm-up: allocations, first-touch
    method = info.cls(info.make_config({"iterations": iterations, **init}))
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        synth = method.distill(ctx)
        total = time.perf_counter() - start
    return {
        "method": method_name, "ppc": ppc, "iterations": iterations,
        "seconds_per_iteration": synth.info["seconds_per_iteration"],
        "seconds_total": total, "peak_rss_mib": (mem.peak_rss_bytes or 0) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="sadm,dm,dc,dd3d,3ddp", help="pcc costs what dc costs per iteration")
    parser.add_argument("--ppc", default="1,3,10")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per (method, PPC)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dev = torch.device(args.device)
    env = environment_record(dev)
    train = modelnet10_sized_set()
    rows = []
    for name in args.methods.split(","):
        for ppc in (int(p) for p in args.ppc.split(",")):
            rows.append(seconds_per_iteration(name, ppc, args.iterations, train, dev))
            if not args.json:
                r = rows[-1]
                print(f"{r['method']:>6} PPC {r['ppc']:>2}: {r['seconds_per_iteration']:8.2f} s/iteration "
                      f"(peak RSS {r['peak_rss_mib']:.0f} MiB)", flush=True)
    if args.json:
        print(json.dumps({"environment": env, "rows": rows}, indent=2))
    else:
        print(f"device: {env['device']} ({env['device_name']}), torch {env['versions']['torch']}, "
              f"{env['torch_threads']} threads, allocator {env['allocator']}")


if __name__ == "__main__":
    arrange_allocator(["run"], relaunch=sys.orig_argv[1:])  # as `ddbench run` would run it
    main()

"""Forward+backward time per batch and peak memory of every registered backbone at 1024 points.

    python benchmarks/bench_backbones.py                    # batches of 8 and 32
    python benchmarks/bench_backbones.py --backbones pointnet,dgcnn --batches 8

One SGD step (forward, cross-entropy, backward, update) per timing, best of ``--repeat`` after a warm-up; peak
resident memory of the timed steps (CUDA peak on a GPU). The FPS backend in use is printed with the device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
from components import build_net

from ddbench.cli.allocator import arrange_allocator
from ddbench.environment import PeakMemory, environment_record
from ddbench.plugins import get_registries


def step_seconds(name: str, batch: int, points: int, device: torch.device, repeat: int) -> tuple[float, int]:
    torch.manual_seed(0)
    net = build_net(name, 40).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, points, 3, device=device)
    y = torch.randint(0, 40, (batch,), device=device)

    def step():
        loss = F.cross_entropy(net(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    best = float("inf")
    with PeakMemory(device) as mem:
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - start)
    peak = mem.peak_cuda_bytes if device.type == "cuda" else mem.peak_rss_bytes
    return best, peak or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=None, help="comma-separated (default: all registered)")
    parser.add_argument("--batches", default="8,32")
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dev = torch.device(args.device)
    env = environment_record(dev)
    names = args.backbones.split(",") if args.backbones else [
        i.name for i in get_registries().backbone if "classification" in i.cls.tasks]  # a classification step
    rows = []
    if not args.json:
        print(f"device: {env['device']} ({env['device_name']}), torch {env['versions']['torch']}, "
              f"{env['torch_threads']} threads, allocator {env['allocator']}, FPS {env['point_ops']['fps']}")
    for name in names:
        for b in (int(x) for x in args.batches.split(",")):
            seconds, peak = step_seconds(name, b, args.points, dev, args.repeat)
            rows.append({"backbone": name, "batch": b, "points": args.points, "seconds_per_step": seconds,
                         "peak_memory_mib": peak / 2**20})
            if not args.json:
                print(f"{name:>18} batch {b:>3}: {seconds:8.3f} s per forward+backward ({b / seconds:7.1f} clouds/s), "
                      f"peak {peak / 2**20:7.0f} MiB", flush=True)
    if args.json:
        print(json.dumps({"environment": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    arrange_allocator(["run"], relaunch=sys.orig_argv[1:])  # as `ddbench run` would run it
    main()

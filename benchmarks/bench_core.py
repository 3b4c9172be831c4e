"""Core speed figures on this machine: data generation, FPS, PointNet steps, evaluation-cell cost, coreset rules.

    python benchmarks/bench_core.py            # prints a table; add --json for machine-readable output

Figures are wall-clock seconds on the current device (see the header line) and depend on the allocator
(tcmalloc is 2x faster than glibc malloc for PointNet on CPU; run with
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 to compare).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from components import build_net

from ddbench.cli.allocator import arrange_allocator
from ddbench.data.cloudset import epoch_batches
from ddbench.data.shapes import Shapes
from ddbench.environment import PeakMemory, environment_record
from ddbench.evaluation.protocols import SADMProtocol
from ddbench.methods.coreset import herding_select, kcenter_select
from ddbench.ops.sampling import farthest_point_sample


def timed(fn, repeat=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    env = environment_record(dev)
    rows = []

    t = timed(lambda: (Shapes().load("train"), Shapes().load("test")), repeat=1)
    rows.append(("shapes: generate 400 train + 200 test clouds (1024 pts)", t, "s"))

    pts = torch.rand(64, 2048, 3, device=dev)
    rows.append(("FPS 2048 -> 1024, 64 clouds (pure torch)", timed(lambda: farthest_point_sample(pts, 1024)), "s"))

    net = build_net("pointnet", 10).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for b in (8, 32):
        x, y = torch.randn(b, 1024, 3, device=dev), torch.randint(0, 10, (b,), device=dev)

        def step(x=x, y=y):
            loss = torch.nn.functional.cross_entropy(net(x).logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        rows.append((f"pointnet forward+backward+step, batch {b} x 1024 pts", timed(step), "s"))

    # One sadm-protocol evaluation cell at ModelNet10 sizes: epochs x batches of 8, 10 nets, plus the test pass.
    cfg = SADMProtocol.Config()
    for ppc in (1, 3, 10):
        m = 10 * ppc
        x, y = torch.randn(m, 1024, 3, device=dev), torch.arange(10, device=dev).repeat_interleave(ppc)
        gen = torch.Generator().manual_seed(0)

        def epoch(m=m, gen=gen, x=x, y=y):
            net.train()
            for idx in epoch_batches(m, cfg.batch_size, gen):
                loss = torch.nn.functional.cross_entropy(net(x[idx]).logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()

        per_epoch = timed(epoch, repeat=2)
        rows.append((f"sadm protocol, ModelNet10 PPC {ppc}: one epoch", per_epoch, "s"))
        rows.append((f"sadm protocol, ModelNet10 PPC {ppc}: projected cell (10 nets x 500 epochs)",
                     per_epoch * cfg.epochs * cfg.num_nets, "s"))

    test = torch.randn(908, 1024, 3, device=dev)
    net.eval()

    def test_pass():
        with torch.no_grad():
            for lo in range(0, 908, 128):
                net(test[lo : lo + 128])

    rows.append(("test pass, 908 clouds (ModelNet10 test set)", timed(test_pass, repeat=1), "s"))

    feats = torch.randn(889, 1024)  # the largest ModelNet10 class (chair)
    rows.append(("herding, 889 x 1024 features, PPC 10", timed(lambda: herding_select(feats, 10)), "s"))
    rows.append(("k-center, 889 x 1024 features, PPC 10", timed(lambda: kcenter_select(feats, 10)), "s"))

    with PeakMemory(dev) as mem:
        epoch()
    rows.append(("peak RSS during one PPC 10 epoch", mem.peak_rss_bytes / 2**20, "MiB"))

    if args.json:
        print(json.dumps({"environment": env, "rows": [dict(what=w, value=v, unit=u) for w, v, u in rows]}, indent=2))
        return
    print(f"device: {env['device']} ({env['device_name']}), torch {env['versions']['torch']}, "
          f"{env['torch_threads']} threads, allocator {env['allocator']}")
    width = max(len(w) for w, _, _ in rows)
    for what, value, unit in rows:
        print(f"{what:<{width}}  {value:10.3f} {unit}")


if __name__ == "__main__":
    arrange_allocator(["run"], relaunch=sys.orig_argv[1:])  # as `ddbench run` would run it
    main()

"""The sequential evaluation loop (sadm protocol, pointnet) against its FLOP floor, with PointNet's fused
BatchNorm + max-pool (the default, docs/backbones.md#fused-batchnorm-and-max-pool) and without it, in one run;
and what the same seed reaches both ways (target: within 1.3x of the floor at PPC 1, 3 and 10).

    python benchmarks/bench_eval_loop.py [--ppc 1,3,10] [--epochs 3] [--repeats 2]

Each row trains one net for ``--epochs`` epochs on ModelNet10-sized random clouds (10 classes x PPC, 1024
points), the two ways interleaved ``--repeats`` times (best time kept), on the threads torch has. The floor is
the timed run's matmul FLOPs per epoch with the plain layers (forward and backward of its epochs and its one
closing test pass, counted with torch's FLOP formulas by benchmarks/shape_floor.py; "GFLOP/epoch" is a training epoch alone) at the fp32 matmul rate
measured in the row ((1024 x 1024) @ (1024 x 8192), best of 5, the faster of torch's and numpy's); element-wise
work has no FLOPs in it, so the floor is optimistic. The fused layers do fewer FLOPs than the plain ones (their backward pass multiplies by the
input's Gram matrix instead of by the per-point gradient), so "fused / its own floor" is printed too, and
"at its shapes": the fused run's own products replayed alone (benchmarks/shape_floor.py), which separates the
library's rate at PointNet's shapes from what the loop spends around its products. "final
loss" and "test OA" of both ways come from the same seed; they agree at the first steps and then drift apart as
any change of rounding makes them (one more thread does the same: docs/backbones.md#fused-batchnorm-and-max-pool).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed_table import matmul_rate, synthetic_clouds  # noqa: E402
from components import network_of  # noqa: E402
from shape_floor import epoch_and_test_calls, flops_of, replay_seconds  # noqa: E402

from ddbench.backbones import fused_pool  # noqa: E402
from ddbench.cli.allocator import arrange_allocator  # noqa: E402
from ddbench.data.cloudset import PointCloudSet  # noqa: E402
from ddbench.environment import PeakMemory, environment_record  # noqa: E402
from ddbench.evaluation.protocols import SADMProtocol  # noqa: E402
from ddbench.evaluation.trainer import train_and_test  # noqa: E402


def synthetic_set(ppc: int) -> tuple[torch.Tensor, torch.Tensor, PointCloudSet]:
    """The speed table's clouds, and one cloud of each class as the test set."""
    points, labels = synthetic_clouds(ppc)
    return points, labels, PointCloudSet(points[::ppc], labels[::ppc], [str(k) for k in range(10)], "t")


def one_way(fused: bool, points, labels, test, cfg, device):
    fused_pool.ENABLED = fused
    try:
        with PeakMemory(device) as mem:
            start = time.perf_counter()
            result = train_and_test(points, labels, test, cfg, 0, device, 10, network=network_of(cfg))
            seconds = time.perf_counter() - start
    finally:
        fused_pool.ENABLED = True
    return seconds, result, (mem.peak_rss_bytes or 0) / 2**20


def row(ppc: int, epochs: int, repeats: int, device) -> dict:
    points, labels, test = synthetic_set(ppc)
    cfg = SADMProtocol.make_config({}).with_epochs(epochs)
    one_way(True, points, labels, test, cfg.with_epochs(1), device)  # warm-up
    runs = {True: [], False: []}
    for _ in range(repeats):
        for fused in (False, True):
            runs[fused].append(one_way(fused, points, labels, test, cfg, device))
    recorded = {fused: epoch_and_test_calls(
        lambda e, fused=fused: one_way(fused, points, labels, test, cfg.with_epochs(e), device)) for fused in (False, True)}
    flops = {}  # per epoch of the timed runs: their epochs and their one closing test pass
    for fused, (epoch_calls, test_calls, per_call) in recorded.items():
        epoch = flops_of(epoch_calls, per_call)
        flops[fused] = (epoch, (epochs * epoch + flops_of(test_calls, per_call)) / epochs)
    epoch_calls, test_calls, _ = recorded[True]
    fused_at_shapes = (epochs * replay_seconds(epoch_calls) + replay_seconds(test_calls)) / epochs
    rate = matmul_rate(device)
    best = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}
    return {"ppc": ppc, "floor": flops[False][1] / rate, "fused_floor": flops[True][1] / rate,
            "fused_at_shapes": fused_at_shapes,
            "gflop": flops[False][0] / 1e9, "fused_gflop": flops[True][0] / 1e9, "rate": rate / 1e9,
            **{f"{name}_s": best[k][0] / epochs for name, k in (("plain", False), ("fused", True))},
            **{f"{name}_loss": best[k][1].final_train_loss for name, k in (("plain", False), ("fused", True))},
            **{f"{name}_oa": best[k][1].oa for name, k in (("plain", False), ("fused", True))},
            **{f"{name}_mib": max(r[2] for r in runs[k]) for name, k in (("plain", False), ("fused", True))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppc", default="1,3,10")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    env = environment_record(dev)
    print(f"device: {env['device']} ({env['device_name']}), torch {env['versions']['torch']}, "
          f"{env['torch_threads']} threads, allocator {env['allocator']}; {args.epochs} epochs per way, best of "
          f"{args.repeats}\n")
    print("| PPC | GFLOP/epoch plain / fused | floor s/epoch | plain s/epoch | fused s/epoch | plain / floor | "
          "fused / floor | fused / its own floor | fused / its own floor at its shapes | speedup | final loss plain / fused | test OA plain / fused | "
          "peak RSS MiB plain / fused | matmul GFLOP/s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |", flush=True)
    for ppc in (int(p) for p in args.ppc.split(",")):
        r = row(ppc, args.epochs, args.repeats, dev)
        print(f"| {ppc} | {r['gflop']:.1f} / {r['fused_gflop']:.1f} | {r['floor']:.2f} | {r['plain_s']:.2f} | "
              f"{r['fused_s']:.2f} | {r['plain_s'] / r['floor']:.2f} | {r['fused_s'] / r['floor']:.2f} | "
              f"{r['fused_s'] / r['fused_floor']:.2f} | {r['fused_s'] / r['fused_at_shapes']:.2f} | "
              f"{r['plain_s'] / r['fused_s']:.2f} | "
              f"{r['plain_loss']:.5f} / {r['fused_loss']:.5f} | {r['plain_oa']:.1f} / {r['fused_oa']:.1f} | "
              f"{r['plain_mib']:.0f} / {r['fused_mib']:.0f} | {r['rate']:.0f} |", flush=True)


if __name__ == "__main__":
    arrange_allocator(["run"], relaunch=sys.orig_argv[1:])  # as `ddbench run` would run it
    main()

"""The speed table of benchmarks/README.md: distillation iterations against their hardware floor, evaluation
cells sequential against ensemble, peak memory. One command:

    python benchmarks/bench_speed_table.py                    # markdown table on stdout
    python benchmarks/bench_speed_table.py --methods sadm --ppc 1 --iterations 1 --eval-epochs 1

Floors are measured in the same run as the achieved times, on the same threads:
- matmul rate: fp32 GFLOP/s of a (1024 x 1024) @ (1024 x 8192) product, best of 5, the faster of torch's
  and numpy's (on CPU);
- sort rates: elements per second of the fastest available sort of float32 rows of 1024 (numpy sort, numpy
  argsort, each as one call and over row blocks on all of torch's threads, torch.sort), separately for values
  only (SADM's real side) and with indices (its synthetic side);
- an iteration's FLOPs: every matmul/convolution of one iteration, forward and backward, counted with the
  formulas of ``torch.utils.flop_counter`` (``ProductRecorder``, benchmarks/shape_floor.py); its sorted
  elements: counted at ``sort_pointwise``.
Floor = FLOPs / matmul rate + sorted elements / sort rate. The rates are measured again right before every row:
on a shared machine they drift by tens of percent within minutes, and a floor measured at another moment than
its row would make the ratio mean little (the row prints the matmul rate it used). Element-wise work (BatchNorm,
ReLU, max-pool, the MMD kernels) has no FLOPs in this count, so the floor is optimistic and the ratio
achieved/floor an upper bound on what any implementation could gain. "Floor at its shapes" replays the
iteration's own products and sorts alone, each at its own shape (benchmarks/shape_floor.py): the ratio to it is
what ddbench spends around its products, the rest of the gap is the libraries' rate at PointNet's shapes
(inner dimensions of 64 and 128, 252-point clouds for 3DDP) against their rate on the large square product.

Evaluation: the same synthetic set (ModelNet10 sizes: 10 classes x PPC clouds of 1024 points) trained under the
sadm protocol by the sequential loop and by the batched ensemble, for ``--eval-epochs`` epochs and ``--nets``
nets; seconds per net-epoch are extrapolated to the protocol's cell (10 nets x 500 epochs, plus the test pass on
908 clouds), and the floor of one net-epoch (its FLOPs / matmul rate) bounds any speedup.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_methods import modelnet10_sized_set  # noqa: E402
from components import distill_context, method_info, network_of  # noqa: E402
from shape_floor import (  # noqa: E402
    ProductRecorder,
    epoch_and_test_calls,
    flops_of,
    replay_seconds,
    sort_replay_seconds,
    sorted_elements,
)

from ddbench.cli.allocator import arrange_allocator  # noqa: E402
from ddbench.data.cloudset import PointCloudSet  # noqa: E402
from ddbench.environment import PeakMemory, environment_record  # noqa: E402
from ddbench.evaluation.ensemble_trainer import train_and_test_ensemble  # noqa: E402
from ddbench.evaluation.protocols import SADMProtocol  # noqa: E402
from ddbench.evaluation.trainer import test_net, train_and_test  # noqa: E402
from ddbench.methods import losses  # noqa: E402
from ddbench.ops.sort import argsort_descending, sort_descending  # noqa: E402

MODELNET40_TRAIN = 9843
MODELNET10_TEST = 908


def matmul_rate(device: torch.device | None = None) -> float:
    """fp32 FLOP/s of a (1024 x 1024) @ (1024 x 8192) product on ``device`` (default CPU), best of 5; on CPU the
    faster of torch's product and numpy's (its own BLAS, OpenBLAS in numpy's wheels), since the floor is the
    machine's rate, not one library's (benchmarks/README.md, sessions 18 and 19). numpy's BLAS runs on its own
    thread count (OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, else every core), which equals torch's unless
    torch's was set in the process."""
    return max(_matmul_rates(device or torch.device("cpu")).values())


def _matmul_rates(device: torch.device) -> dict[str, float]:
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 8192, device=device)

    def product():
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    flops = 2 * 1024 * 1024 * 8192
    product()
    rates = {"torch": flops / _best(product, 5)}
    if device.type == "cpu":
        a_np, b_np = a.numpy(), b.numpy()
        out = np.empty((1024, 8192), dtype=np.float32)
        np.matmul(a_np, b_np, out=out)
        rates["numpy"] = flops / _best(lambda: np.matmul(a_np, b_np, out=out), 5)
    return rates


def synthetic_clouds(ppc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ModelNet10-sized random clouds (10 classes x ``ppc``, 1024 points, unit sphere), seeded by ``ppc``."""
    gen = torch.Generator().manual_seed(ppc)
    points = torch.randn(10 * ppc, 1024, 3, generator=gen)
    return points / points.norm(dim=-1, keepdim=True).amax(1, keepdim=True), torch.arange(10).repeat_interleave(ppc)


def sort_rates() -> dict[str, float]:
    """Elements per second: fastest values-only sort and fastest sort-with-indices of (16, 1024, 1024) rows,
    on one thread (one numpy call) and on all of torch's threads (numpy's sorts over row blocks, as
    ``ddbench.ops.sort`` runs them): the floor is the machine's peak, so it takes every thread the matmul rate
    takes."""
    x = torch.randn(16, 1024, 1024)
    xn = x.numpy()
    n = x.numel()
    threads = torch.get_num_threads()
    values = {"numpy sort": n / _best(lambda: np.sort(xn, axis=2)),
              f"numpy sort on {threads} threads": n / _best(lambda: sort_descending(xn, threads)),
              "torch.sort": n / _best(lambda: torch.sort(x, dim=2))}
    indices = {"numpy argsort + gather": n / _best(lambda: torch.gather(x, 2, torch.from_numpy(np.argsort(xn, axis=2)))),
               f"numpy argsort on {threads} threads + gather":
                   n / _best(lambda: torch.gather(x, 2, torch.from_numpy(argsort_descending(xn, threads)))),
               "torch.sort": values["torch.sort"]}
    best_v, best_i = max(values, key=values.get), max(indices, key=indices.get)
    return {"values": values[best_v], "values_by": best_v, "indices": indices[best_i], "indices_by": best_i}


def _best(fn, repeats: int = 3) -> float:
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class SortCounter:
    """Counts the calls of ``sort_pointwise`` while active, by (shape, with indices, device): ``values`` and ``indices``
    are the elements sorted without and with a gradient, ``shapes`` what shape_floor.py replays."""

    def __init__(self):
        self.shapes: Counter = Counter()
        self._orig = losses.sort_pointwise

    @property
    def values(self) -> int:
        return sorted_elements(self.shapes)[0]

    @property
    def indices(self) -> int:
        return sorted_elements(self.shapes)[1]

    def __enter__(self):
        def counting(features):
            self.shapes[(tuple(features.shape), features.requires_grad, str(features.device))] += 1
            return self._orig(features)

        self._patched = [m for m in list(sys.modules.values())
                         if m is not None and getattr(m, "sort_pointwise", None) is self._orig]
        for module in self._patched:
            module.sort_pointwise = counting
        return self

    def __exit__(self, *exc):
        for module in self._patched:
            module.sort_pointwise = self._orig


def distillation_row(name: str, ppc: int, iterations: int, train: PointCloudSet, device) -> dict:
    info = method_info(name)
    init = {"init": "random"} if info.cls.Config().model_dump().get("init") in ("herding", "kcenter") else {}
    ctx = distill_context(train, ppc, device, "modelnet10", init.get("init", info.cls.Config().model_dump().get("init")))
    if name == "3ddp":  # steady state: every real cloud's partitions cached, as after the first ~150 iterations
        from ddbench.methods.ddp3d import partition_cache

        m, n2, _ = info.cls(info.make_config({})).sizes("modelnet10")
        partition_cache(train.points, m, n2).lookup(torch.arange(len(train)))
    info.cls(info.make_config({"iterations": 1, **init})).distill(ctx)  # warm-up
    with ProductRecorder() as products, SortCounter() as sorts:
        info.cls(info.make_config({"iterations": 1, **init})).distill(ctx)
    rates = {"matmul": matmul_rate(), "sort": sort_rates()}  # now, next to the timed iterations
    with PeakMemory(device) as mem:
        synth = info.cls(info.make_config({"iterations": iterations, **init})).distill(ctx)
    achieved = synth.info["seconds_per_iteration"]
    floor = (products.total_flops / rates["matmul"] + sorts.values / rates["sort"]["values"]
             + sorts.indices / rates["sort"]["indices"])
    at_shapes = replay_seconds(products.calls) + sort_replay_seconds(sorts.shapes)  # benchmarks/shape_floor.py
    return {"method": name, "ppc": ppc, "achieved": achieved, "floor": floor, "ratio": achieved / floor,
            "shape_floor": at_shapes, "shape_ratio": achieved / at_shapes,
            "gflop": products.total_flops / 1e9, "matmul_gflops": rates["matmul"] / 1e9,
            "sorted_m": (sorts.values + sorts.indices) / 1e6,
            "peak_mib": (mem.peak_rss_bytes or 0) / 2**20}


def epoch_and_test_flops(run_epochs) -> tuple[float, float]:
    """(matmul FLOPs of one training epoch, of the closing test pass) of ``run_epochs(epochs)``, one
    ``train_and_test`` call, from the calls :func:`shape_floor.epoch_and_test_calls` records."""
    epoch, test_pass, per_call = epoch_and_test_calls(run_epochs)
    return flops_of(epoch, per_call), flops_of(test_pass, per_call)


def evaluation_row(ppc: int, nets: int, epochs: int, rates: dict, device) -> dict:
    points, labels = synthetic_clouds(ppc)
    test = PointCloudSet(points[:10], labels[:10], [str(k) for k in range(10)], "tiny-test")
    full = SADMProtocol.make_config({})
    cfg = full.with_epochs(epochs)
    seeds = list(range(nets))
    train_and_test(points, labels, test, cfg.with_epochs(1), 99, device, 10, network=network_of(cfg.with_epochs(1)))  # warm-up
    with PeakMemory(device) as seq_mem:
        seq = _timed(lambda: [train_and_test(points, labels, test, cfg, s, device, 10, network=network_of(cfg)) for s in seeds])
    with PeakMemory(device) as ens_mem:
        ens = _timed(lambda: train_and_test_ensemble(points, labels, test, cfg, seeds, device, 10, network=network_of(cfg)))
    torch.manual_seed(0)
    from ddbench.evaluation.trainer import build_evaluation_net

    net = build_evaluation_net(full, 10, network_of(full))
    test_set = PointCloudSet(torch.randn(128, 1024, 3), torch.zeros(128, dtype=torch.long), test.class_names, "t")
    test_s = _timed(lambda: test_net(net, test_set, full.test_batch_size, device)) * MODELNET10_TEST / 128
    per_net_epoch_flops, _ = epoch_and_test_flops(lambda e: train_and_test(
        points, labels, test, cfg.with_epochs(e), 98, device, 10, network=network_of(cfg.with_epochs(e))))
    with FlopCounterMode(display=False) as test_flops:
        test_net(net, test_set, full.test_batch_size, device)
    per_net_test_flops = test_flops.get_total_flops() * MODELNET10_TEST / 128
    scale = full.num_nets * full.epochs
    seq_cell = seq / (nets * epochs) * scale + full.num_nets * test_s
    ens_cell = ens / (nets * epochs) * scale + full.num_nets * test_s
    # the cell's floor: every net's epochs and its ModelNet10-sized test pass at the measured matmul rate
    floor_cell = (per_net_epoch_flops * scale + per_net_test_flops * full.num_nets) / rates["matmul"]
    return {"ppc": ppc, "seq_cell": seq_cell, "ens_cell": ens_cell, "speedup": seq_cell / ens_cell,
            "floor_cell": floor_cell, "seq_over_floor": seq_cell / floor_cell,
            "seq_mib": (seq_mem.peak_rss_bytes or 0) / 2**20, "ens_mib": (ens_mem.peak_rss_bytes or 0) / 2**20}


def modelnet40_memory_row(device) -> dict:
    """Peak resident memory of one sadm iteration at ModelNet40 sizes, PPC 10 (the 4 GiB target)."""
    gen = torch.Generator().manual_seed(0)
    counts = np.full(40, MODELNET40_TRAIN // 40)
    counts[: MODELNET40_TRAIN - counts.sum()] += 1
    labels = torch.arange(40).repeat_interleave(torch.from_numpy(counts))
    clouds = torch.randn(len(labels), 1024, 3, generator=gen)
    train = PointCloudSet(clouds, labels, [f"c{k}" for k in range(40)], "modelnet40-sized")
    info = method_info("sadm")
    ctx = distill_context(train, 10, device, "modelnet40", "random")
    with PeakMemory(device) as mem:
        synth = info.cls(info.make_config({"iterations": 1})).distill(ctx)
    return {"peak_mib": (mem.peak_rss_bytes or 0) / 2**20, "seconds": synth.info["seconds_per_iteration"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="sadm,dm,3ddp")
    parser.add_argument("--ppc", default="1,3,10")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per (method, PPC)")
    parser.add_argument("--nets", type=int, default=4, help="evaluation nets timed per engine")
    parser.add_argument("--eval-epochs", type=int, default=2, help="epochs timed per net")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: distill, eval, memory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    env = environment_record(dev)
    skip = set(filter(None, args.skip.split(",")))
    ppcs = [int(p) for p in args.ppc.split(",")]
    by_library = _matmul_rates(dev)
    rates = {"matmul": max(by_library.values()), "sort": sort_rates()}
    print(f"device: {env['device']} ({env['device_name']}), torch {env['versions']['torch']}, "
          f"{env['torch_threads']} threads, allocator {env['allocator']}")
    libraries = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in by_library.items())
    print(f"matmul {rates['matmul'] / 1e9:.1f} GFLOP/s ({libraries}); sort {rates['sort']['values'] / 1e6:.0f} M elements/s "
          f"({rates['sort']['values_by']}), with indices {rates['sort']['indices'] / 1e6:.0f} M/s "
          f"({rates['sort']['indices_by']})\n", flush=True)
    if "distill" not in skip:
        train = modelnet10_sized_set()
        print("| method | PPC | achieved s/it | floor s/it | ratio | floor at its shapes s/it | ratio to it | "
              "GFLOP/it | sorted M/it | matmul GFLOP/s | peak RSS MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
        for name in args.methods.split(","):
            for ppc in ppcs:
                r = distillation_row(name, ppc, args.iterations, train, dev)
                print(f"| {r['method']} | {r['ppc']} | {r['achieved']:.2f} | {r['floor']:.2f} | {r['ratio']:.2f} | "
                      f"{r['shape_floor']:.2f} | {r['shape_ratio']:.2f} | {r['gflop']:.1f} | {r['sorted_m']:.0f} | {r['matmul_gflops']:.0f} | {r['peak_mib']:.0f} |",
                      flush=True)
        print()
    if "eval" not in skip:
        print("| sadm protocol cell (10 nets x 500 epochs) | PPC | sequential s | ensemble s | speedup | "
              "floor s | sequential / floor | peak RSS MiB seq / ens |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
        for ppc in ppcs:
            r = evaluation_row(ppc, args.nets, args.eval_epochs, {**rates, "matmul": matmul_rate()}, dev)
            print(f"| pointnet | {r['ppc']} | {r['seq_cell']:.0f} | {r['ens_cell']:.0f} | {r['speedup']:.2f} | "
                  f"{r['floor_cell']:.0f} | {r['seq_over_floor']:.2f} | {r['seq_mib']:.0f} / {r['ens_mib']:.0f} |",
                  flush=True)
        print(f"\n(extrapolated from {args.nets} nets x {args.eval_epochs} epochs per engine; peak RSS is the "
              "process's high-water mark during the row, which includes pages the allocator kept from earlier rows)\n")
    if "memory" not in skip and not skip >= {"distill", "eval"}:
        # in a fresh process: the allocator keeps freed pages of the rows above, which would count here
        import subprocess

        cmd = [sys.executable, __file__, "--skip", "distill,eval", "--device", args.device]
        print(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    elif "memory" not in skip:
        r = modelnet40_memory_row(dev)
        print(f"\nsadm at ModelNet40 sizes, PPC 10: peak RSS {r['peak_mib']:.0f} MiB "
              f"({r['peak_mib'] / 1024:.2f} GiB, target < 4 GiB), {r['seconds']:.1f} s/iteration")


if __name__ == "__main__":
    arrange_allocator(["run"], relaunch=sys.orig_argv[1:])  # as `ddbench run` would run it
    main()

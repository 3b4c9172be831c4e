"""Score a synthetic set: N evaluation nets, each trained from its own seed, tested on the real test set."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ddbench.data.cloudset import PointCloudSet
from ddbench.errors import DataError
from ddbench.evaluation.protocols import ProtocolConfig
from ddbench.evaluation.trainer import NetResult, prepare_synthetic_points, train_and_test
from ddbench.synthetic.artifact import SyntheticSet

#: progress(net_index, num_nets, epoch, epochs)
EvalProgress = Callable[[int, int, int, int], None]

ENGINES = ("auto", "sequential", "ensemble")


def choose_engine(engine: str, cfg: ProtocolConfig, device: torch.device) -> tuple[str, str]:
    """(engine, reason): how the evaluation nets are trained. ``auto`` picks the ensemble on CUDA, where it
    fills the device that one small-batch net leaves idle, and the sequential loop on CPU, where a single
    net already runs near the matrix-multiply rate (benchmarks/bench_eval_engine.py measures both)."""
    from ddbench.evaluation.ensemble import ensemble_support

    if engine not in ENGINES:
        raise DataError(f"unknown evaluation engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "sequential":
        return "sequential", "asked for"
    if cfg.canonicalise != "none":
        return "sequential", "canonicalised nets have no ensemble implementation"
    from ddbench.plugins import get_registries

    ok, why = ensemble_support(get_registries().backbone.get(cfg.backbone).cls)
    if not ok:
        return "sequential", why
    if engine == "auto" and device.type == "cpu":
        return "sequential", "auto on CPU: one net already runs near the matmul rate"
    return "ensemble", why + (" (auto on CUDA)" if engine == "auto" else " (asked for)")


def summarise(nets: list[NetResult], ddof: int) -> dict:
    oa = np.array([n.oa for n in nets])
    macc = np.array([n.macc for n in nets])

    def std(x):
        return float(x.std(ddof=ddof)) if len(x) > ddof else float("nan")

    return {
        "oa_mean": float(oa.mean()),
        "oa_std": std(oa),
        "macc_mean": float(macc.mean()),
        "macc_std": std(macc),
        "ddof": ddof,
        "num_nets": len(nets),
    }


def evaluate_synthetic(
    synth: SyntheticSet,
    test: PointCloudSet,
    cfg: ProtocolConfig,
    seeds: list[int],
    device: torch.device,
    progress: EvalProgress | None = None,
    engine: str = "auto",
    ensemble_size: int | None = None,
) -> dict:
    """Train ``len(seeds)`` nets on ``synth`` under ``cfg``; return per-net results and their summary.
    ``engine`` (auto, sequential, ensemble) says how; ``ensemble_size`` caps the members trained at once."""
    if list(synth.class_names) != list(test.class_names):
        raise DataError(
            f"the synthetic set's classes ({len(synth.class_names)}) differ from the test set's "
            f"({len(test.class_names)}); evaluate it on the dataset it was distilled from"
        )
    points = prepare_synthetic_points(synth.points, cfg)
    chosen, reason = choose_engine(engine, cfg, device)
    start = time.perf_counter()
    nets: list[NetResult] = []
    if chosen == "ensemble":
        from ddbench.evaluation.ensemble_trainer import train_and_test_ensemble

        size = max(1, ensemble_size or len(seeds))
        for lo in range(0, len(seeds), size):
            group = seeds[lo : lo + size]
            cb = (lambda e, E, lo=lo: progress(lo, len(seeds), e, E)) if progress else None
            nets += train_and_test_ensemble(points, synth.labels, test, cfg, group, device, test.num_classes, cb)
    else:
        for i, seed in enumerate(seeds):
            cb = (lambda e, E, i=i: progress(i, len(seeds), e, E)) if progress else None
            nets.append(train_and_test(points, synth.labels, test, cfg, seed, device, test.num_classes, cb))
    record = {
        "nets": [n.to_dict() for n in nets],
        **summarise(nets, cfg.ddof),
        "selection": cfg.selection,
        "seconds": time.perf_counter() - start,
        "engine": chosen,
        "engine_reason": reason,
    }
    if chosen == "ensemble":
        record["ensemble_size"] = max(1, ensemble_size or len(seeds))
    return record

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
) -> dict:
    """Train ``len(seeds)`` nets on ``synth`` under ``cfg``; return per-net results and their summary."""
    if list(synth.class_names) != list(test.class_names):
        raise DataError(
            f"the synthetic set's classes ({len(synth.class_names)}) differ from the test set's "
            f"({len(test.class_names)}); evaluate it on the dataset it was distilled from"
        )
    points = prepare_synthetic_points(synth.points, cfg)
    start = time.perf_counter()
    nets = []
    for i, seed in enumerate(seeds):
        cb = (lambda e, E, i=i: progress(i, len(seeds), e, E)) if progress else None
        nets.append(train_and_test(points, synth.labels, test, cfg, seed, device, test.num_classes, cb))
    return {
        "nets": [n.to_dict() for n in nets],
        **summarise(nets, cfg.ddof),
        "selection": cfg.selection,
        "seconds": time.perf_counter() - start,
        "engine": "sequential",
    }

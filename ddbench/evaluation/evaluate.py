"""Score a synthetic set: N evaluation nets, each trained from its own seed, tested on the real test set."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddbench.backbones.base import BackboneFactory
from ddbench.data.cloudset import PointCloudSet
from ddbench.errors import DataError
from ddbench.evaluation.protocols import ProtocolConfig
from ddbench.evaluation.trainer import NetResult, prepare_synthetic_points, train_and_test
from ddbench.io import write_json_atomic
from ddbench.synthetic.artifact import SyntheticSet

#: progress(net_index, num_nets, epoch, epochs)
EvalProgress = Callable[[int, int, int, int], None]

ENGINES = ("auto", "sequential", "ensemble")


def choose_engine(engine: str, cfg: ProtocolConfig, device: torch.device, network_cls: type) -> tuple[str, str]:
    """(engine, reason): how the evaluation nets are trained. ``auto`` picks the ensemble on CUDA, where it
    fills the device that one small-batch net leaves idle, and the sequential loop on CPU, where a single
    net already runs near the matrix-multiply rate (benchmarks/bench_speed_table.py measures both)."""
    from ddbench.evaluation.ensemble import ensemble_support

    if engine not in ENGINES:
        raise DataError(f"unknown evaluation engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "sequential":
        return "sequential", "asked for"
    if cfg.canonicalise != "none":
        return "sequential", "canonicalised nets have no ensemble implementation"
    ok, why = ensemble_support(network_cls)
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


def evaluation_fingerprint(points: torch.Tensor, labels: torch.Tensor, cfg, chosen: str,
                           device: torch.device, *more: torch.Tensor) -> str:
    """What a finished net's result depends on besides its seed: the training clouds and labels (and ``more``
    training tensors: a segmentation set's part labels), the protocol configuration, the engine and the device
    type. A saved net is reused only under the same fingerprint."""
    h = hashlib.sha256()
    for tensor in (points, labels, *more):
        h.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    h.update(json.dumps({"cfg": cfg.model_dump(mode="json"), "engine": chosen, "device": device.type},
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


class FinishedNets:
    """Per-net progress of one evaluation, kept in a small JSON file so an interrupted evaluation goes on from
    the first unfinished net instead of starting over (each net depends only on its seed). ``result_type`` is
    the per-net result dataclass (:class:`NetResult`; the segmentation protocol's ``SegNetResult``)."""

    def __init__(self, path: str | Path | None, fingerprint: str, result_type: type = NetResult):
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.nets: dict[int, Any] = {}
        if self.path is None or not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # unreadable progress is not a result: those nets run again
        if saved.get("fingerprint") == fingerprint:
            self.nets = {int(d["seed"]): result_type(**d) for d in saved.get("nets", [])}

    def add(self, net) -> None:
        self.nets[net.seed] = net
        if self.path is not None:
            write_json_atomic(self.path, {"fingerprint": self.fingerprint,
                                          "nets": [n.to_dict() for n in self.nets.values()]})

    def resumed(self, seeds: list[int]) -> list[int]:
        """The seeds among ``seeds`` whose nets an earlier, interrupted run of this evaluation saved."""
        return [s for s in seeds if s in self.nets]

    def record_fields(self, resumed: list[int], start: float) -> dict:
        """The evaluation record's ``seconds`` (this run's since ``start``, plus the resumed nets' own) and, after
        a resume, ``resumed_nets``."""
        seconds = time.perf_counter() - start + sum(self.nets[s].seconds for s in resumed)
        return {"seconds": seconds, **({"resumed_nets": resumed} if resumed else {})}

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def evaluate_synthetic(
    synth: SyntheticSet,
    test: PointCloudSet,
    cfg: ProtocolConfig,
    seeds: list[int],
    device: torch.device,
    progress: EvalProgress | None = None,
    engine: str = "auto",
    ensemble_size: int | None = None,
    progress_file: str | Path | None = None,
    *,
    network: BackboneFactory,
) -> dict:
    """Train ``len(seeds)`` nets on ``synth`` under ``cfg``; return per-net results and their summary.
    ``network`` builds the evaluation nets (the protocol's backbone with its config, resolved by the pipeline);
    ``engine`` (auto, sequential, ensemble) says how; ``ensemble_size`` caps the members trained at once.
    With ``progress_file``, every finished net is saved there and a rerun trains only the missing ones; the
    file is removed once all nets are done."""
    if list(synth.class_names) != list(test.class_names):
        raise DataError(
            f"the synthetic set's classes ({len(synth.class_names)}) differ from the test set's "
            f"({len(test.class_names)}); evaluate it on the dataset it was distilled from"
        )
    points = prepare_synthetic_points(synth.points, cfg)
    chosen, reason = choose_engine(engine, cfg, device, network.cls)
    finished = FinishedNets(progress_file, evaluation_fingerprint(points, synth.labels, cfg, chosen, device))
    resumed = finished.resumed(seeds)
    todo = [(i, s) for i, s in enumerate(seeds) if s not in finished.nets]
    start = time.perf_counter()
    if chosen == "ensemble":
        from ddbench.evaluation.ensemble_trainer import train_and_test_ensemble

        size = max(1, ensemble_size or len(seeds))
        for lo in range(0, len(todo), size):
            first, group = todo[lo][0], [s for _, s in todo[lo : lo + size]]
            cb = (lambda e, E, first=first: progress(first, len(seeds), e, E)) if progress else None
            for net in train_and_test_ensemble(points, synth.labels, test, cfg, group, device, test.num_classes, cb,
                                               network=network):
                finished.add(net)
    else:
        for i, seed in todo:
            cb = (lambda e, E, i=i: progress(i, len(seeds), e, E)) if progress else None
            finished.add(train_and_test(points, synth.labels, test, cfg, seed, device, test.num_classes, cb,
                                        network=network))
    nets = [finished.nets[s] for s in seeds]
    finished.discard()
    record = {
        "nets": [n.to_dict() for n in nets],
        **summarise(nets, cfg.ddof),
        "selection": cfg.selection,
        **finished.record_fields(resumed, start),
        "engine": chosen,
        "engine_reason": reason,
    }
    if chosen == "ensemble":
        record["ensemble_size"] = max(1, ensemble_size or len(seeds))
    return record

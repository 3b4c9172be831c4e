"""Running one grid cell: load data, distil (or reuse the artifact), evaluate, write the cell's JSON.

The cell file is the single source of truth of a result. It is written atomically, once, at the end; a
failing cell writes a file with ``status: "failed"``, its one-line error and the traceback, and the grid
goes on. An interrupted cell writes nothing, so resuming runs it again.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddbench.data.paths import resolve_cache_dir, resolve_data_root
from ddbench.errors import ArtifactError, DDBenchError
from ddbench.evaluation.evaluate import evaluate_synthetic
from ddbench.io import write_json_atomic
from ddbench.methods.base import DistillContext
from ddbench.plugins import get_registries
from ddbench.runner.environment import PeakMemory, environment_record, resolve_device
from ddbench.runner.grid import CellSpec
from ddbench.synthetic.artifact import load_artifact, manifest_path, save_artifact

SCHEMA = "ddbench-cell"
SCHEMA_VERSION = 1

#: cell progress: (stage, done, total)
CellProgress = Callable[[str, int, int], None]


@dataclass
class CellTask:
    """A cell plus where to run it: everything an executor (local or remote) needs."""

    spec: CellSpec
    results_dir: str
    device: str = "auto"
    eval_engine: str = "auto"
    ensemble_size: int | None = None
    data_root: str | None = None
    cache_dir: str | None = None
    #: reuse an existing artifact only if written at or after this time (epoch seconds); ``--overwrite``
    #: sets it to the grid's start so that cells sharing a distillation re-distil it once, not once each
    artifact_fresh_after: float = 0.0


@dataclass
class CellOutcome:
    cell_id: str
    status: str  # ok | failed
    path: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0


def cell_path(results_dir: str | Path, spec: CellSpec) -> Path:
    return Path(results_dir) / "cells" / f"{spec.cell_id}.json"


def artifact_path(results_dir: str | Path, spec: CellSpec) -> Path:
    return Path(results_dir) / "artifacts" / f"{spec.distill_key}.h5"


def is_done(results_dir: str | Path, spec: CellSpec) -> bool:
    """A cell is done when its file exists, parses, and says ``ok``."""
    import json

    path = cell_path(results_dir, spec)
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        return False


def snapshot_path(results_dir: str | Path, spec: CellSpec, iteration: int) -> Path:
    return Path(results_dir) / "artifacts" / f"{spec.distill_key}__it{iteration}.h5"


def _load_existing(task: CellTask) -> tuple[Any, dict, dict[int, Any]] | None:
    """The cell's artifact and snapshots when all exist, match and are fresh enough; else None."""
    spec = task.spec
    paths = {None: artifact_path(task.results_dir, spec)}
    paths.update({i: snapshot_path(task.results_dir, spec, i) for i in spec.eval_iterations})
    for path in paths.values():
        if not (path.exists() and manifest_path(path).exists() and path.stat().st_mtime >= task.artifact_fresh_after):
            return None
    try:
        loaded = {i: load_artifact(p) for i, p in paths.items()}
    except ArtifactError:
        return None  # a damaged artifact is simply made again
    if any(m.get("distill_key") != spec.distill_key for _, m in loaded.values()):
        return None
    synth, manifest = loaded.pop(None)
    return synth, manifest, {i: s for i, (s, _) in loaded.items()}


def _distill(task: CellTask, train, device, progress: CellProgress):
    """(synthetic set, manifest, seconds, memory record, snapshots): reuses matching artifacts if present."""
    spec = task.spec
    existing = _load_existing(task)
    if existing is not None:
        synth, manifest, snapshots = existing
        return synth, manifest, 0.0, {"reused_artifact": True}, snapshots
    reg = get_registries()
    m_info = reg.method.get(spec.method)
    method = m_info.cls(m_info.make_config(spec.method_config))
    ctx = DistillContext(
        train=train, ppc=spec.ppc, seed=spec.seed, device=device, dataset=spec.dataset,
        backbone=spec.distill_backbone or "pointnet", backbone_config=spec.distill_backbone_config,
        cache_dir=resolve_cache_dir(task.cache_dir),
        progress=lambda done, total, desc: progress(f"distill {desc}".strip(), done, total),
        snapshot_iterations=tuple(spec.eval_iterations),
        checkpoint_path=Path(task.results_dir) / "checkpoints" / f"{spec.distill_key}.pt",
    )
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        synth = method.distill(ctx)
    seconds = time.perf_counter() - start
    record = {**spec.distill_fields(), "distill_key": spec.distill_key, "distill_seconds": seconds}
    missing = sorted(set(spec.eval_iterations) - set(ctx.snapshots))
    if missing:
        raise ArtifactError(f"method {spec.method} produced no snapshot at iterations {missing}")
    for iteration, snap in ctx.snapshots.items():
        save_artifact(snapshot_path(task.results_dir, spec, iteration), snap, {**record, "iteration": iteration})
    manifest = save_artifact(artifact_path(task.results_dir, spec), synth, record)
    ctx.checkpoint_path.unlink(missing_ok=True)  # the artifact now holds the result
    return synth, manifest, seconds, {**mem.record(), "reused_artifact": False}, dict(ctx.snapshots)


def execute_cell(task: CellTask, progress: CellProgress | None = None) -> CellOutcome:
    """Run ``task`` to completion and write its result file (ok or failed)."""
    progress = progress or (lambda stage, done, total: None)
    spec = task.spec
    out_path = cell_path(task.results_dir, spec)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "cell_id": spec.cell_id,
        "status": "running",
        **{k: getattr(spec, k) for k in ("dataset", "method", "ppc", "seed", "distill_backbone",
                                        "eval_backbone", "protocol", "protocol_version")},
        "spec": spec.model_dump(mode="json"),
        "deviations": spec.deviations,
        "started": started,
    }
    try:
        device = resolve_device(task.device)
        record["environment"] = environment_record(device)
        reg = get_registries()
        ds_info = reg.dataset.get(spec.dataset)
        dataset = ds_info.cls(
            ds_info.make_config(spec.dataset_config), resolve_data_root(task.data_root),
            resolve_cache_dir(task.cache_dir),
        )
        progress("loading data", 0, 1)
        train, test = dataset.load("train"), dataset.load("test")
        record["data"] = {
            "fingerprint": dataset.fingerprint(), "n_train": len(train), "n_test": len(test),
            "num_classes": train.num_classes, "points": train.num_points,
        }
        synth, manifest, distill_s, distill_mem, snapshots = _distill(task, train, device, progress)
        record["artifact"] = {
            "path": str(artifact_path(task.results_dir, spec).relative_to(task.results_dir)),
            "sha256": manifest["sha256"].get("file"),
            "storage": manifest["storage"],
            "info": manifest.get("info", {}),
        }
        p_info = reg.protocol.get(spec.protocol)
        p_cfg = p_info.make_config(spec.protocol_config)
        seeds = p_cfg.net_seeds(spec.seed)
        record["seeds"] = {"cell": spec.seed, "distill": spec.seed, "eval_nets": seeds}
        checkpoints = Path(task.results_dir) / "checkpoints"
        with PeakMemory(device) as eval_mem:
            engine = {"engine": task.eval_engine, "ensemble_size": task.ensemble_size}
            evaluation = evaluate_synthetic(
                synth, test, p_cfg, seeds, device,
                lambda i, n, e, E: progress(f"eval net {i + 1}/{n}", i * E + e, n * E), **engine,
                progress_file=checkpoints / f"{spec.cell_id}.eval.json",
            )
            intermediate = []
            for iteration in sorted(snapshots):
                res = evaluate_synthetic(
                    snapshots[iteration], test, p_cfg, seeds, device,
                    lambda i, n, e, E, it=iteration: progress(f"eval iteration {it}, net {i + 1}/{n}", i * E + e, n * E),
                    **engine, progress_file=checkpoints / f"{spec.cell_id}.eval-it{iteration}.json",
                )
                intermediate.append({"iteration": iteration, **res})
        evaluation["iteration"] = synth.info.get("iterations")
        record["results"] = evaluation
        if intermediate:
            record["results_by_iteration"] = intermediate
        record["timing"] = {"distill_seconds": distill_s,
                            "eval_seconds": evaluation["seconds"] + sum(r["seconds"] for r in intermediate),
                            "total_seconds": time.perf_counter() - t0}
        record["memory"] = {"distill": distill_mem, "eval": eval_mem.record()}
        peaks = [m.get("peak_rss_bytes") for m in (distill_mem, eval_mem.record()) if m.get("peak_rss_bytes")]
        record["memory"]["peak_rss_bytes"] = max(peaks) if peaks else None
        record["status"] = "ok"
    except (KeyboardInterrupt, SystemExit):
        raise  # no file: the cell is not finished and will run again on resume
    except Exception as err:  # noqa: BLE001 - a failing cell is recorded and the grid goes on
        record["status"] = "failed"
        record["error"] = str(err) if isinstance(err, DDBenchError) else f"{type(err).__name__}: {err}"
        record["error"] = " ".join(record["error"].split())
        record["traceback"] = traceback.format_exc()
        record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - t0
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(out_path, record)
    summary = {}
    if record["status"] == "ok":
        summary = {k: record["results"][k] for k in ("oa_mean", "oa_std", "macc_mean", "macc_std", "num_nets")}
    return CellOutcome(spec.cell_id, record["status"], str(out_path), summary, record.get("error", ""),
                       time.perf_counter() - t0)


"""Running one resolved grid cell: load data, distil (or reuse the artifact), evaluate, write the cell's record.

The cell record (:class:`~ddbench.cells.record.CellRecord`) is the single source of truth of a result. It is
written atomically, once, at the end; a failing cell writes a record with ``status: "failed"``, its one-line
error and the traceback, and the grid goes on. An interrupted cell writes nothing, so resuming runs it again.
Nothing here reads the registry: the cell arrives resolved (docs/results.md#cell-files).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddbench.backbones.tasks import Task
from ddbench.cells.record import CellRecord
from ddbench.cells.resolved import ResolvedCell
from ddbench.cells.spec import CellSpec
from ddbench.data.fingerprint import content_fingerprint
from ddbench.environment import PeakMemory, environment_record, resolve_device
from ddbench.errors import ArtifactError, DataError, DDBenchError
from ddbench.io import write_json_atomic
from ddbench.methods.base import DistillContext
from ddbench.runner.claims import Claim
from ddbench.synthetic.artifact import load_artifact, manifest_path, save_artifact

#: the scores a finished cell's outcome carries (those its evaluation has: segmentation has no mAcc but mIoUs)
SUMMARY_KEYS = ("oa_mean", "oa_std", "macc_mean", "macc_std", "instance_miou_mean", "instance_miou_std",
                "class_miou_mean", "class_miou_std", "num_nets")

#: cell progress: (stage, done, total)
CellProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RunSettings:
    """Where and how the cells of one grid run (resolved once by the pipeline)."""

    results_dir: Path
    device: str = "auto"
    eval_engine: str = "auto"
    ensemble_size: int | None = None
    #: the data root and prepared-data cache
    data_root: Path | None = None
    cache_dir: Path | None = None
    overwrite: bool = False
    #: a cell finished on other data is an error instead of being recomputed
    no_recompute: bool = False


@dataclass
class CellTask:
    """A resolved cell plus where to run it: everything an executor (local or remote) needs."""

    cell: ResolvedCell
    settings: RunSettings
    #: reuse an existing artifact only if written at or after this time (epoch seconds); ``--overwrite``
    #: sets it to the grid's start so that cells sharing a distillation re-distil it once, not once each
    artifact_fresh_after: float = 0.0

    @property
    def spec(self) -> CellSpec:
        return self.cell.spec

    @property
    def results_dir(self) -> str:
        return str(self.settings.results_dir)


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


def snapshot_path(results_dir: str | Path, spec: CellSpec, iteration: int) -> Path:
    return Path(results_dir) / "artifacts" / f"{spec.distill_key}__it{iteration}.h5"


def recorded_data(results_dir: str | Path, spec: CellSpec) -> str | None:
    """The data fingerprint a finished cell's record was computed on ("" when it predates fingerprints), or None
    when the cell is not finished (no file, unreadable, or failed)."""
    path = cell_path(results_dir, spec)
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if raw.get("status") != "ok":
        return None
    return (raw.get("data") or {}).get("content_fingerprint") or ""


def cell_state(results_dir: str | Path, cell: ResolvedCell) -> str:
    """``todo`` (not finished), ``done`` (finished on this data) or ``stale`` (finished on other data)."""
    recorded = recorded_data(results_dir, cell.spec)
    if recorded is None:
        return "todo"
    if recorded and cell.data is not None and recorded != cell.data.content:
        return "stale"
    return "done"


def is_done(results_dir: str | Path, spec: CellSpec) -> bool:
    """A cell is done when its file exists, parses, and says ``ok`` (whatever data it was computed on)."""
    return recorded_data(results_dir, spec) is not None


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
    data = task.cell.data.content if task.cell.data else None
    if any(m.get("data_fingerprint") not in (None, data) for _, m in loaded.values()):
        return None  # distilled from other data (artifacts before fingerprints carry none)
    synth, manifest = loaded.pop(None)
    return synth, manifest, {i: s for i, (s, _) in loaded.items()}


def distill_context(cell: ResolvedCell, train, device, cache_dir: Path | None, progress: CellProgress | None = None,
                    checkpoint_path: Path | None = None, task_ops: Task | None = None) -> DistillContext:
    """The method's inputs for ``cell``: data, backbone factory, initialiser, snapshots, checkpoint, and the task
    (``task_ops``: the cell's task for its dataset; default: the task class's own, classification)."""
    spec = cell.spec
    report = (lambda done, total, desc: progress(f"distill {desc}".strip(), done, total)) if progress else None
    return DistillContext(
        train=train, ppc=spec.ppc, seed=spec.seed, device=device, dataset=spec.dataset,
        backbone=cell.distill_backbone, dataset_family=getattr(cell.dataset.cls, "family", ""),
        initialiser=cell.initialiser.build() if cell.initialiser else None,
        cache_dir=cache_dir, progress=report, snapshot_iterations=tuple(spec.eval_iterations),
        checkpoint_path=checkpoint_path, data_fingerprint=cell.data.content if cell.data else None,
        task=task_ops if task_ops is not None else cell.task(),
    )


def distill_artifact_record(cell: ResolvedCell) -> dict[str, Any]:
    """What an artifact's manifest records of the distillation that made it (and the data it was made from)."""
    spec = cell.spec
    fields = spec.model_dump(mode="json")
    record = {**{k: fields[k] for k in spec.distill_fields()}, "distill_key": spec.distill_key}
    if cell.data is not None:
        record.update(data_fingerprint=cell.data.content, data_release=cell.data.release)
    return record


def _distill(task: CellTask, train, device, progress: CellProgress, task_ops: Task):
    """(synthetic set, manifest, seconds, memory record, snapshots): reuses matching artifacts if present.

    Cells that share one distillation wait for its artifact instead of computing it again: the distillation is
    claimed (``claims/distill/<distill key>.lock``), and a cell that finds it claimed waits, then reuses it.
    """
    existing = _load_existing(task)
    if existing is None:
        with Claim(task.results_dir, task.spec.distill_key, kind="distill") as claim:
            claim.wait(lambda holder: progress(f"waiting for the distillation by {holder.worker if holder else '?'}"
                                               f" on {holder.host if holder else '?'}", 0, 1))
            existing = _load_existing(task)  # made by the worker waited for
            if existing is None:
                made = _distill_now(task, train, device, progress, task_ops)
                claim.log("distilled")
                return made
    synth, manifest, snapshots = existing
    return synth, manifest, 0.0, {"reused_artifact": True}, snapshots


def _distill_now(task: CellTask, train, device, progress: CellProgress, task_ops: Task):
    spec = task.spec
    ctx = distill_context(task.cell, train, device, task.settings.cache_dir, progress,
                          Path(task.results_dir) / "checkpoints" / f"{spec.distill_key}.pt", task_ops)
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        synth = task.cell.method.build().distill(ctx)
    seconds = time.perf_counter() - start
    # a resumed distillation: the method's own clock includes the runs before the checkpoint
    record = {**distill_artifact_record(task.cell), "distill_seconds": max(seconds, method_seconds(synth.info)),
              "distill_seconds_this_run": seconds}
    missing = sorted(set(spec.eval_iterations) - set(ctx.snapshots))
    if missing:
        raise ArtifactError(f"method {spec.method} produced no snapshot at iterations {missing}")
    for iteration, snap in ctx.snapshots.items():
        save_artifact(snapshot_path(task.results_dir, spec, iteration), snap, {**record, "iteration": iteration})
    manifest = save_artifact(artifact_path(task.results_dir, spec), synth, record)
    ctx.checkpoint_path.unlink(missing_ok=True)  # the artifact now holds the result
    return synth, manifest, record["distill_seconds"], {**mem.record(), "reused_artifact": False}, dict(ctx.snapshots)


def method_seconds(info: dict[str, Any]) -> float:
    """The distillation time an artifact's ``info`` holds (iterative methods: every run of it, resumes included)."""
    return float(info.get("seconds_per_iteration") or 0.0) * float(info.get("iterations") or 0)


def artifact_seconds(manifest: dict[str, Any]) -> float | None:
    """What distilling a reused artifact cost, from its manifest (None when it does not say)."""
    clock = method_seconds(manifest.get("info", {}))
    if manifest.get("distill_seconds") is None and not clock:
        return None
    return max(float(manifest.get("distill_seconds") or 0.0), clock)


def _evaluate(task: CellTask, synth, snapshots: dict, test, device, progress: CellProgress,
              task_ops: Task) -> tuple[dict, list]:
    """The final set's evaluation and the intermediate ones (each net resumable from its progress file)."""
    cell, checkpoints = task.cell, Path(task.results_dir) / "checkpoints"
    seeds = cell.protocol.config.net_seeds(cell.spec.seed)
    engine = {"engine": task.settings.eval_engine, "ensemble_size": task.settings.ensemble_size,
              "network": cell.eval_backbone, "task": task_ops}

    def run(points_set, label: str, suffix: str) -> dict:
        return cell.protocol.cls.evaluate(
            points_set, test, cell.protocol.config, seeds, device,
            lambda i, n, e, E: progress(f"eval {label}net {i + 1}/{n}", i * E + e, n * E), **engine,
            progress_file=checkpoints / f"{cell.cell_id}.eval{suffix}.json",
        )

    final = run(synth, "", "")
    intermediate = [{"iteration": it, **run(snapshots[it], f"iteration {it}, ", f"-it{it}")}
                    for it in sorted(snapshots)]
    return final, intermediate


def _header(cell: ResolvedCell) -> dict[str, Any]:
    spec = cell.spec
    return {
        "cell_id": spec.cell_id, "status": "running", "method_role": cell.role, "task": spec.task,
        **{k: getattr(spec, k) for k in ("dataset", "method", "ppc", "seed", "distill_backbone",
                                        "eval_backbone", "protocol", "protocol_version")},
        "spec": spec.model_dump(mode="json"), "deviations": list(spec.deviations),
        "references": cell.references(), "departures": cell.departures(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def data_record(cell: ResolvedCell, dataset, train, test) -> dict[str, Any]:
    """The record's ``data``: source files, content fingerprint (checked against the one the cell was resolved
    with), release and sampling, sizes."""
    content = content_fingerprint(train, test)
    if cell.data is not None and cell.data.content != content:
        raise DataError(f"the data changed while the grid ran (fingerprint {cell.data.content}, now {content}); "
                        "run the grid again")
    return {"fingerprint": dataset.fingerprint(), "content_fingerprint": content,
            "release": cell.data.release if cell.data else dataset.release_record(),
            "n_train": len(train), "n_test": len(test), "num_classes": train.num_classes, "points": train.num_points}


def _compute(task: CellTask, record: dict[str, Any], progress: CellProgress, t0: float) -> None:
    """Fill ``record`` with everything a finished cell holds (raises on failure)."""
    cell = task.cell
    device = resolve_device(task.settings.device)
    record["environment"] = environment_record(device)
    dataset = cell.dataset.build(task.settings.data_root, task.settings.cache_dir)
    progress("loading data", 0, 1)
    train, test = dataset.load("train"), dataset.load("test")
    record["data"] = data_record(cell, dataset, train, test)
    task_ops = cell.task.for_dataset(dataset)
    synth, manifest, distill_s, distill_mem, snapshots = _distill(task, train, device, progress, task_ops)
    record["artifact"] = {"path": str(artifact_path(task.results_dir, cell.spec).relative_to(task.results_dir)),
                          "sha256": manifest["sha256"].get("file"), "storage": manifest["storage"],
                          "info": manifest.get("info", {})}
    seeds = cell.protocol.config.net_seeds(cell.spec.seed)
    record["seeds"] = {"cell": cell.spec.seed, "distill": cell.spec.seed, "eval_nets": seeds}
    with PeakMemory(device) as eval_mem:
        evaluation, intermediate = _evaluate(task, synth, snapshots, test, device, progress, task_ops)
    evaluation["iteration"] = synth.info.get("iterations")
    record["results"] = evaluation
    if intermediate:
        record["results_by_iteration"] = intermediate
    # distill_seconds: what this cell spent distilling (0 when it reused an artifact, so that sums over cells count
    # each distillation once); artifact_distill_seconds: what the artifact it was evaluated on cost to make
    record["timing"] = {"distill_seconds": distill_s, "artifact_distill_seconds": artifact_seconds(manifest),
                        "eval_seconds": evaluation["seconds"] + sum(r["seconds"] for r in intermediate),
                        "total_seconds": time.perf_counter() - t0}
    peaks = [m.get("peak_rss_bytes") for m in (distill_mem, eval_mem.record()) if m.get("peak_rss_bytes")]
    record["memory"] = {"distill": distill_mem, "eval": eval_mem.record(), "peak_rss_bytes": max(peaks) if peaks else None}
    record["status"] = "ok"


def execute_cell(task: CellTask, progress: CellProgress | None = None, claim: bool = True) -> CellOutcome:
    """Claim ``task``'s cell, run it to completion and write its record (ok or failed).

    The claim (:mod:`ddbench.runner.claims`) keeps every other worker of the results directory off the cell while
    it runs. When another worker holds it, nothing runs and the outcome's status is ``busy`` (its ``error`` names
    the holder); when another worker finished it in the meantime, its record is read back (status ``done``).
    ``claim=False`` runs the cell without claiming it (the caller holds the claim, or nobody else can run it).
    """
    progress = progress or (lambda stage, done, total: None)
    if not claim:
        return _run_cell(task, progress)
    held = Claim(task.results_dir, task.spec.cell_id)
    if not held.try_acquire():
        holder = held.holder()
        return CellOutcome(task.spec.cell_id, "busy", str(cell_path(task.results_dir, task.spec)),
                           error=f"running on {holder.describe()}" if holder else "claimed by another worker")
    try:
        finished = finished_outcome(task)
        if finished is not None:
            return finished

        def report(stage: str, done: int, total: int) -> None:
            held.progress(stage, done, total)
            progress(stage, done, total)

        outcome = _run_cell(task, report)
        held.log("finished", status=outcome.status)
        return outcome
    finally:
        held.release()


def finished_outcome(task: CellTask) -> CellOutcome | None:
    """The outcome of ``task``'s cell when it is finished on its data (with ``--overwrite``: since the grid
    started), e.g. by another worker; else None."""
    path = cell_path(task.results_dir, task.spec)
    if cell_state(task.results_dir, task.cell) != "done":
        return None
    try:
        if path.stat().st_mtime < task.artifact_fresh_after:
            return None
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    summary = {k: raw.get("results", {}).get(k) for k in SUMMARY_KEYS if k in raw.get("results", {})}
    return CellOutcome(task.spec.cell_id, "done", str(path), summary)


def _run_cell(task: CellTask, progress: CellProgress) -> CellOutcome:
    """Run ``task`` to completion and write its record (ok or failed)."""
    out_path = cell_path(task.results_dir, task.spec)
    t0 = time.perf_counter()
    record = _header(task.cell)
    try:
        _compute(task, record, progress, t0)
    except (KeyboardInterrupt, SystemExit):
        raise  # no file: the cell is not finished and will run again on resume
    except Exception as err:  # noqa: BLE001 - a failing cell is recorded and the grid goes on
        message = str(err) if isinstance(err, DDBenchError) else f"{type(err).__name__}: {err}"
        record.update(status="failed", error=" ".join(message.split()), traceback=traceback.format_exc())
        record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - t0
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    typed = CellRecord.model_validate(record)
    write_json_atomic(out_path, typed.to_json())
    summary = {}
    if typed.status == "ok":
        summary = {k: record["results"][k] for k in SUMMARY_KEYS if k in record["results"]}
    return CellOutcome(typed.cell_id, typed.status, str(out_path), summary, typed.error, time.perf_counter() - t0)

"""The grid runner: skip finished cells, hand the rest to an executor, collect the outcomes.

It receives resolved cells and a built executor from the pipeline (``ddbench.pipeline.run_grid``) and reads no
registry itself. Other workers may share the results directory (other ``ddbench run`` invocations, other
machines): a cell that one of them is computing comes back from the executor as ``busy``; the runner waits until
its claim is released (or lost: docs/running.md#claims), takes the record it wrote, or runs the cell itself when
there is none.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ddbench.cells.resolved import ResolvedCell
from ddbench.errors import DataError
from ddbench.io import remove_stale_tmp_files
from ddbench.runner.cell import (
    CellOutcome,
    CellTask,
    RunSettings,
    cell_path,
    cell_state,
    finished_outcome,
    recorded_data,
)
from ddbench.runner.claims import HOST, Claim, host_id, read_claims
from ddbench.runner.progress import ClaimWatcher, Reporter

#: seconds between two looks at the claims of cells that other workers are computing
WAIT_POLL_S = 1.0


@dataclass
class GridSummary:
    results_dir: str
    total: int
    skipped: int
    outcomes: list[CellOutcome] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(o.status == "ok" for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.status == "failed" for o in self.outcomes)

    @property
    def elsewhere(self) -> int:
        """Cells that another worker (another ``ddbench run``, another machine) finished while this grid ran."""
        return sum(o.status == "done" for o in self.outcomes)


def supersede(results_dir: Path, cell: ResolvedCell) -> Path | None:
    """Move a cell's record made on other data aside (``cells/superseded/``): nothing is lost, and the cell runs
    again on the data it is now resolved with. None when another runner moved it first."""
    old = cell_path(results_dir, cell.spec)
    target = old.parent / "superseded" / f"{old.stem}__data-{recorded_data(results_dir, cell.spec)}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        old.replace(target)
    except FileNotFoundError:
        return None
    return target


def cells_to_run(cells: list[ResolvedCell], settings: RunSettings) -> list[ResolvedCell]:
    """The cells that must (re)run: unfinished ones, ones finished on other data, and all with ``overwrite``."""
    todo = []
    for cell in cells:
        state = "todo" if settings.overwrite else cell_state(settings.results_dir, cell)
        if state == "stale" and settings.no_recompute:
            raise DataError(
                f"cell {cell.cell_id} was computed on data {recorded_data(settings.results_dir, cell.spec)}, but the "
                f"data now has fingerprint {cell.data.content}; run without --no-recompute to recompute it"
            )
        if state == "stale":
            supersede(Path(settings.results_dir), cell)
        if state != "done":
            todo.append(cell)
    return todo


def remove_dead_tmp_files(results_dir: Path) -> None:
    """Remove temporary files of dead writers, unless a worker on another host is at work here: a temporary file
    names its writer's pid, and this host cannot tell whether another host's process lives."""
    if any(c.state == "running" and c.host != HOST for kind in ("cell", "distill")
           for c in read_claims(results_dir, kind)):
        return
    remove_stale_tmp_files(results_dir)


def release_dead_claims(results_dir: Path) -> None:
    """Take over and release the claims of dead workers of this host (a worker killed after writing an artifact
    leaves a distillation claim that nothing else would touch again)."""
    for kind in ("cell", "distill"):
        for info in read_claims(results_dir, kind):
            if info.state == "stale" and info.host_id == host_id():
                claim = Claim(results_dir, info.key, kind)
                if claim.try_acquire(probe=True):
                    claim.release()


def run_cells(cells: list[ResolvedCell], executor, settings: RunSettings,
              reporter: Reporter | None = None) -> GridSummary:
    """Run every cell of ``cells`` that is not done yet (all of them with ``overwrite``) on ``executor``."""
    reporter = reporter or Reporter()
    started = time.time()
    results_dir = Path(settings.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    remove_dead_tmp_files(results_dir)
    release_dead_claims(results_dir)
    todo = cells_to_run(cells, settings)
    summary = GridSummary(str(results_dir), total=len(cells), skipped=len(cells) - len(todo))
    tasks = [CellTask(c, settings, artifact_fresh_after=started if settings.overwrite else 0.0) for c in todo]
    reporter.grid_started(len(cells), summary.skipped, len(todo))
    try:
        _run_until_settled(tasks, executor, reporter, summary)
    finally:
        reporter.grid_finished(summary)
    return summary


def _run_until_settled(tasks: list[CellTask], executor, reporter: Reporter, summary: GridSummary) -> None:
    """Hand ``tasks`` to ``executor``; wait for the ones other workers hold, and hand over again those of them
    that end without a record (their worker died or was stopped)."""
    pending, waiting = tasks, {}
    while pending or waiting:
        by_id = {t.spec.cell_id: t for t in pending}
        for outcome in executor.run(pending, reporter) if pending else ():
            if outcome.status == "busy":
                task = by_id[outcome.cell_id]
                waiting[outcome.cell_id] = (task, Claim(task.results_dir, outcome.cell_id), time.time())
            else:
                summary.outcomes.append(outcome)
        pending = _wait_for_others(waiting, reporter, summary) if waiting else []


def recorded_failure(task: CellTask, since: float) -> CellOutcome | None:
    """The failed record another worker wrote for ``task``'s cell since ``since`` (the cell is not tried again in
    this grid: it would fail the same way; the next run tries it), else None."""
    path = cell_path(task.results_dir, task.spec)
    try:
        if path.stat().st_mtime < since:
            return None
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if raw.get("status") != "failed":
        return None
    return CellOutcome(task.spec.cell_id, "failed", str(path), error=f"{raw.get('error', '')} (on another worker)")


def _wait_for_others(waiting: dict[str, tuple[CellTask, Claim, float]], reporter: Reporter,
                     summary: GridSummary) -> list[CellTask]:
    """Block until at least one cell of ``waiting`` is free; settle those (the record their worker wrote, ok or
    failed) and return the ones to run again. The cells stay in ``waiting`` until free."""
    watcher = ClaimWatcher([task for task, _, _ in waiting.values()], reporter)
    reporter.waiting(len(waiting))
    while True:
        retry = []
        for cell_id, (task, claim, since) in list(waiting.items()):
            if not claim.try_acquire(probe=True):  # the same object every time: it sees a lost claim expire
                continue
            claim.release()
            del waiting[cell_id]
            outcome = finished_outcome(task) or recorded_failure(task, since)
            if outcome is None:
                retry.append(task)
            else:
                reporter.cell_finished(task.spec, outcome)
                summary.outcomes.append(outcome)
        if retry or not waiting:
            return retry
        watcher.poll()
        time.sleep(WAIT_POLL_S)

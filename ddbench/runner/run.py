"""The grid runner: skip finished cells, hand the rest to an executor, collect the outcomes.

It receives resolved cells and a built executor from the pipeline (``ddbench.pipeline.run_grid``) and reads no
registry itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ddbench.cells.resolved import ResolvedCell
from ddbench.errors import DataError
from ddbench.io import remove_stale_tmp_files
from ddbench.runner.cell import CellOutcome, CellTask, RunSettings, cell_path, cell_state, recorded_data
from ddbench.runner.progress import Reporter


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


def supersede(results_dir: Path, cell: ResolvedCell) -> Path:
    """Move a cell's record made on other data aside (``cells/superseded/``): nothing is lost, and the cell runs
    again on the data it is now resolved with."""
    old = cell_path(results_dir, cell.spec)
    target = old.parent / "superseded" / f"{old.stem}__data-{recorded_data(results_dir, cell.spec)}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    old.replace(target)
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


def run_cells(cells: list[ResolvedCell], executor, settings: RunSettings,
              reporter: Reporter | None = None) -> GridSummary:
    """Run every cell of ``cells`` that is not done yet (all of them with ``overwrite``) on ``executor``."""
    reporter = reporter or Reporter()
    started = time.time()
    results_dir = Path(settings.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(results_dir)
    todo = cells_to_run(cells, settings)
    summary = GridSummary(str(results_dir), total=len(cells), skipped=len(cells) - len(todo))
    tasks = [CellTask(c, settings, artifact_fresh_after=started if settings.overwrite else 0.0) for c in todo]
    reporter.grid_started(len(cells), summary.skipped, len(todo))
    try:
        for outcome in executor.run(tasks, reporter):
            summary.outcomes.append(outcome)
    finally:
        reporter.grid_finished(summary)
    return summary

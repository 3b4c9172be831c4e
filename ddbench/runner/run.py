"""The grid runner: skip finished cells, hand the rest to an executor, collect the outcomes.

It receives resolved cells and a built executor from the pipeline (``ddbench.pipeline.run_grid``) and reads no
registry itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ddbench.cells.resolved import ResolvedCell
from ddbench.io import remove_stale_tmp_files
from ddbench.runner.cell import CellOutcome, CellTask, RunSettings, is_done
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


def run_cells(cells: list[ResolvedCell], executor, settings: RunSettings,
              reporter: Reporter | None = None) -> GridSummary:
    """Run every cell of ``cells`` that is not done yet (all of them with ``overwrite``) on ``executor``."""
    reporter = reporter or Reporter()
    started = time.time()
    results_dir = Path(settings.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(results_dir)
    todo = [c for c in cells if settings.overwrite or not is_done(results_dir, c.spec)]
    summary = GridSummary(str(results_dir), total=len(cells), skipped=len(cells) - len(todo))
    tasks = [CellTask(c, settings, artifact_fresh_after=started if settings.overwrite else 0.0) for c in todo]
    reporter.grid_started(len(cells), summary.skipped, len(todo))
    try:
        for outcome in executor.run(tasks, reporter):
            summary.outcomes.append(outcome)
    finally:
        reporter.grid_finished(summary)
    return summary

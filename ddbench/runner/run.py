"""The grid runner: validate, expand, skip finished cells, hand the rest to an executor."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ddbench.data.paths import resolve_cache_dir, resolve_data_root
from ddbench.io import remove_stale_tmp_files
from ddbench.plugins import get_registries
from ddbench.runner.cell import CellOutcome, CellTask, is_done
from ddbench.runner.environment import resolve_device
from ddbench.runner.experiment import ExperimentConfig
from ddbench.runner.grid import CellSpec, expand_grid
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


def plan_grid(exp: ExperimentConfig) -> list[CellSpec]:
    reg = get_registries()
    return expand_grid(exp, reg, resolve_data_root(exp.data_root), resolve_cache_dir(exp.cache_dir))


def run_grid(exp: ExperimentConfig, reporter: Reporter | None = None) -> GridSummary:
    reporter = reporter or Reporter()
    started = time.time()
    reg = get_registries()
    resolve_device(exp.device)  # fail before the grid when the device is unusable
    specs = plan_grid(exp)
    ex_info = reg.executor.get(exp.executor)
    executor = ex_info.cls(ex_info.make_config(exp.executor_config))
    results_dir = Path(exp.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(results_dir)
    todo = [s for s in specs if exp.overwrite or not is_done(results_dir, s)]
    summary = GridSummary(str(results_dir), total=len(specs), skipped=len(specs) - len(todo))
    tasks = [
        CellTask(spec=s, results_dir=str(results_dir), device=exp.device, eval_engine=exp.eval_engine,
                 ensemble_size=exp.ensemble_size, data_root=exp.data_root,
                 cache_dir=exp.cache_dir, artifact_fresh_after=started if exp.overwrite else 0.0)
        for s in todo
    ]
    reporter.grid_started(len(specs), summary.skipped, len(todo))
    try:
        for outcome in executor.run(tasks, reporter):
            summary.outcomes.append(outcome)
    finally:
        reporter.grid_finished(summary)
    return summary

"""Progress reporting for grids: a silent base and a rich live display (grid bar, plus one bar per running cell).

Cells that run in this process report through ``cell_progress``. Cells that run elsewhere (worker processes, Ray
tasks, SLURM jobs, other ``ddbench run`` invocations on the same results directory) write their progress into
their claim files (:mod:`ddbench.runner.claims`); a :class:`ClaimWatcher` reads those and hands them to
``running``, so the display shows every worker's cell, wherever it runs.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ddbench.runner.claims import iter_running


def describe_cell(spec) -> str:
    ppc = f"PPC {spec.ppc}" if spec.ppc is not None else "all"
    dbb = f" [{spec.distill_backbone}]" if spec.distill_backbone else ""
    return f"{spec.dataset} {spec.method}{dbb} {ppc} seed {spec.seed} -> {spec.eval_backbone}/{spec.protocol}"


class Reporter:
    """No-op reporter; subclasses display progress."""

    def grid_started(self, total: int, skipped: int, todo: int) -> None: ...

    def cell_started(self, spec) -> None: ...

    def cell_progress(self, stage: str, done: int, total: int) -> None: ...

    def cell_finished(self, spec, outcome) -> None: ...

    def running(self, cells: list) -> None:
        """The cells running on workers now: ``(spec, ClaimInfo)`` pairs (worker, host, stage, done, total)."""

    def waiting(self, count: int) -> None:
        """``count`` cells are being computed by other workers; the runner waits for them."""

    def grid_finished(self, summary) -> None: ...


class ClaimWatcher:
    """Reads the claims of ``tasks``' cells (at most every ``every`` seconds) and reports the running ones."""

    def __init__(self, tasks, reporter: Reporter, every: float = 0.5):
        self.specs = {t.spec.cell_id: t.spec for t in tasks}
        self.results_dir = tasks[0].results_dir if tasks else None
        self.reporter, self.every, self.last = reporter, every, 0.0

    def poll(self, force: bool = False) -> None:
        if self.results_dir is None or (not force and time.monotonic() - self.last < self.every):
            return
        self.last = time.monotonic()
        infos = iter_running(self.results_dir, set(self.specs))
        self.reporter.running([(self.specs[i.key], i) for i in infos])


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        )
        self.grid_task = None
        self.cell_task = None
        self.worker_tasks: dict[str, int] = {}

    def grid_started(self, total: int, skipped: int, todo: int) -> None:
        self.console.print(f"grid: {total} cells, {skipped} already done, {todo} to run")
        self.progress.start()
        self.grid_task = self.progress.add_task("grid", total=total, completed=skipped)

    def cell_started(self, spec) -> None:
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
        self.cell_task = self.progress.add_task(escape(describe_cell(spec)), total=1)

    def cell_progress(self, stage: str, done: int, total: int) -> None:
        if self.cell_task is not None:
            self.progress.update(self.cell_task, description=escape(stage), completed=done, total=max(total, 1))

    def running(self, cells: list) -> None:
        seen = set()
        for spec, info in cells:
            seen.add(info.key)
            text = escape(f"{info.worker}@{info.host} {describe_cell(spec)}: {info.stage or 'starting'}")
            if info.key not in self.worker_tasks:
                self.worker_tasks[info.key] = self.progress.add_task(text, total=max(info.total, 1))
            self.progress.update(self.worker_tasks[info.key], description=text, completed=info.done,
                                 total=max(info.total, 1))
        for key in set(self.worker_tasks) - seen:
            self.progress.remove_task(self.worker_tasks.pop(key))

    def waiting(self, count: int) -> None:
        self.progress.console.print(f"waiting for {count} cell(s) that other workers are computing", highlight=False)

    def cell_finished(self, spec, outcome) -> None:
        if outcome.cell_id in self.worker_tasks:
            self.progress.remove_task(self.worker_tasks.pop(outcome.cell_id))
        s, cell = outcome.summary, escape(describe_cell(spec))
        if outcome.status in ("ok", "done"):
            who = "" if outcome.status == "ok" else " (by another worker)"
            line = (f"[green]ok[/] {cell}{who}: OA {s['oa_mean']:.2f} ± {s['oa_std']:.2f} "
                    f"({s['num_nets']} nets, {outcome.seconds:.0f}s)")
        elif outcome.status == "busy":
            line = f"[yellow]busy[/] {cell}: {escape(outcome.error)}; it is waited for"
        else:
            line = f"[red]failed[/] {cell}: {escape(outcome.error)}"
        self.progress.console.print(line, highlight=False, markup=True)
        if self.grid_task is not None and outcome.status != "busy":
            self.progress.advance(self.grid_task)

    def grid_finished(self, summary) -> None:
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
            self.cell_task = None
        for key in list(self.worker_tasks):
            self.progress.remove_task(self.worker_tasks.pop(key))
        self.progress.stop()
        elsewhere = getattr(summary, "elsewhere", 0)
        by_others = f", {elsewhere} finished by other workers" if elsewhere else ""
        self.console.print(
            f"done: {summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped{by_others}; "
            f"results in {summary.results_dir}"
        )

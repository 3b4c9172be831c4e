"""Progress reporting for grids: a silent base and a rich live display (grid bar + current-cell bar)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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

    def grid_finished(self, summary) -> None: ...


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        )
        self.grid_task = None
        self.cell_task = None

    def grid_started(self, total: int, skipped: int, todo: int) -> None:
        self.console.print(f"grid: {total} cells, {skipped} already done, {todo} to run")
        self.progress.start()
        self.grid_task = self.progress.add_task("grid", total=total, completed=skipped)

    def cell_started(self, spec) -> None:
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
        self.cell_task = self.progress.add_task(describe_cell(spec), total=1)

    def cell_progress(self, stage: str, done: int, total: int) -> None:
        if self.cell_task is not None:
            self.progress.update(self.cell_task, description=stage, completed=done, total=max(total, 1))

    def cell_finished(self, spec, outcome) -> None:
        if outcome.status == "ok":
            s = outcome.summary
            line = (f"[green]ok[/] {describe_cell(spec)}: OA {s['oa_mean']:.2f} ± {s['oa_std']:.2f} "
                    f"({s['num_nets']} nets, {outcome.seconds:.0f}s)")
        else:
            line = f"[red]failed[/] {describe_cell(spec)}: {outcome.error}"
        self.progress.console.print(line, highlight=False, markup=True)
        if self.grid_task is not None:
            self.progress.advance(self.grid_task)

    def grid_finished(self, summary) -> None:
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
            self.cell_task = None
        self.progress.stop()
        self.console.print(
            f"done: {summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped; results in {summary.results_dir}"
        )

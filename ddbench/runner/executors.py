"""Executors run cell tasks. The runner hands over tasks and a reporter; an executor decides where and how
cells run (in this process now; a process pool or a cluster scheduler can be added as a plugin through the
``register_executors`` hook without touching the runner)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from ddbench.config import ComponentConfig
from ddbench.registry import Component
from ddbench.runner.cell import CellOutcome, CellTask, execute_cell
from ddbench.runner.progress import Reporter


class Executor(Component):
    """Base class of executor plugins: ``run`` yields one :class:`CellOutcome` per task, in any order.

    A task is self-contained (spec, results dir, device, data root, cache dir) and :func:`execute_cell`
    writes the cell's result file itself, so remote workers need no channel back to the runner beyond the
    shared results directory.
    """

    kind: ClassVar[str] = "executor"

    def __init__(self, config: ComponentConfig | None = None):
        self.config = config if config is not None else self.Config()

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        raise NotImplementedError


class InProcessConfig(ComponentConfig):
    pass


class InProcessExecutor(Executor):
    """Run cells one after another in this process, with live progress."""

    name = "inprocess"
    version = "1"
    Config = InProcessConfig

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        for task in tasks:
            reporter.cell_started(task.spec)
            outcome = execute_cell(task, reporter.cell_progress)
            reporter.cell_finished(task.spec, outcome)
            yield outcome

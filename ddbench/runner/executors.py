"""Executors run cell tasks. The runner hands over tasks and a reporter; an executor decides where and how
cells run: ``inprocess`` (here, one after another), ``pool`` (local worker processes), ``ray`` (Ray tasks) and
``slurm`` (SLURM jobs through submitit); more can be added as plugins through the ``register_executors`` hook
without touching the runner (docs/running.md).
"""

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
    claims the cell and writes its result file itself, so remote workers need no channel back to the runner
    beyond the shared results directory. An outcome with status ``busy`` (another worker holds the cell) is
    waited for by the runner.
    """

    kind: ClassVar[str] = "executor"

    def __init__(self, config: ComponentConfig | None = None):
        self.config = config if config is not None else self.Config()

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        raise NotImplementedError


def spread_shared_distillations(tasks: list[CellTask]) -> list[CellTask]:
    """``tasks`` reordered so that cells sharing one distillation come as far apart as they can (the first cell
    of every distillation, then the second, ...): parallel workers then rarely wait for each other's artifact."""
    groups: dict[str, list[CellTask]] = {}
    for task in tasks:
        groups.setdefault(task.spec.distill_key, []).append(task)
    depth = max((len(g) for g in groups.values()), default=0)
    return [g[i] for i in range(depth) for g in groups.values() if i < len(g)]


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

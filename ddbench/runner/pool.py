"""The ``pool`` executor: N local worker processes (the standard library's ``ProcessPoolExecutor``, spawned).

With GPUs, each worker is pinned to one (``CUDA_VISIBLE_DEVICES``, set before the worker touches CUDA) and by
default there is one worker per GPU, so each device computes one cell at a time. Threads per worker are chosen
so that workers x threads fits the cores this process may use. A worker that dies (killed, out of memory) breaks
the pool: it is started again and the unfinished cells are handed out again, each at most ``retries`` times more.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.errors import ConfigError
from ddbench.runner.cell import CellOutcome, CellTask
from ddbench.runner.claims import Claim
from ddbench.runner.executors import Executor, spread_shared_distillations
from ddbench.runner.progress import ClaimWatcher, Reporter
from ddbench.runner.worker import failed_outcome, init_pool_worker, run_pool_task, usable_cores, wants_cuda


class PoolConfig(ComponentConfig):
    workers: int | Literal["auto"] = Field(
        "auto", description="worker processes; auto: one per GPU on CUDA, else one per two cores")
    threads: int | Literal["auto"] = Field(
        "auto", description="torch threads per worker; auto: the cores shared out among the workers")
    devices: list[int] | None = Field(None, description="the GPUs to use, as torch numbers them here (default all)")
    retries: int = Field(3, ge=0, description="times a cell is handed out again after its worker process died")
    start_method: Literal["spawn", "forkserver"] = "spawn"
    poll_seconds: float = Field(0.5, gt=0, description="seconds between two looks at the workers' progress")


@dataclass(frozen=True)
class PoolPlan:
    workers: int
    threads: int
    #: the GPU (a CUDA_VISIBLE_DEVICES entry) of each worker; None on CPU
    slots: tuple[str | None, ...]


def visible_gpus(devices: list[int] | None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries of the GPUs to use (torch's numbering here maps onto this process's
    CUDA_VISIBLE_DEVICES, so a worker pinned to GPU 1 of ``2,3`` sees device 3)."""
    import torch

    count = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in env.split(",") if x.strip()][:count] if env else [str(i) for i in range(count)]
    if devices is None:
        return ids
    bad = [d for d in devices if not 0 <= d < len(ids)]
    if bad:
        raise ConfigError(f"pool devices {bad} do not exist here; torch sees {len(ids)} GPU(s): 0-{len(ids) - 1}")
    return [ids[d] for d in devices]


def plan_pool(config: PoolConfig, device: str, n_tasks: int, cores: int | None = None,
              gpus: list[str] | None = None) -> PoolPlan:
    """How many workers, with how many threads each, on which GPUs."""
    cores = cores or usable_cores()
    if wants_cuda(device):
        gpus = visible_gpus(config.devices) if gpus is None else gpus
        if not gpus:
            raise ConfigError("the pool executor found no GPU for --device cuda; use --device cpu")
        workers = len(gpus) if config.workers == "auto" else config.workers
    else:
        gpus = [None]
        workers = max(1, cores // 2) if config.workers == "auto" else config.workers
    if workers < 1:
        raise ConfigError(f"pool workers must be at least 1, got {workers}")
    workers = min(workers, max(n_tasks, 1))
    threads = max(1, cores // workers) if config.threads == "auto" else config.threads
    return PoolPlan(workers, threads, tuple(gpus[i % len(gpus)] for i in range(workers)))


class PoolExecutor(Executor):
    """Run cells on N local worker processes (one per GPU on CUDA); live progress from every worker."""

    name = "pool"
    version = "1"
    Config = PoolConfig

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        if not tasks:
            return
        plan = plan_pool(self.config, tasks[0].settings.device, len(tasks))
        watcher, deaths = ClaimWatcher(tasks, reporter, self.config.poll_seconds), {}
        queue = spread_shared_distillations(tasks)
        while queue:
            queue = yield from self._round(queue, plan, watcher, reporter, deaths)

    def _round(self, queue: list[CellTask], plan: PoolPlan, watcher: ClaimWatcher, reporter: Reporter,
               deaths: dict[str, int]):
        """Run ``queue`` on a fresh pool until it is done or broken; returns the cells to hand out again."""
        ctx = multiprocessing.get_context(self.config.start_method)
        slots = ctx.Queue()
        for i, gpu in enumerate(plan.slots):
            slots.put((i, gpu))
        pool = ProcessPoolExecutor(plan.workers, mp_context=ctx, initializer=init_pool_worker,
                                   initargs=(slots, plan.threads, os.getpid()))
        again: list[CellTask] = []
        clean = False
        try:
            futures = {pool.submit(run_pool_task, task): task for task in queue}
            while futures:
                done, _ = wait(futures, timeout=self.config.poll_seconds, return_when=FIRST_COMPLETED)
                watcher.poll()
                for future in done:
                    task = futures.pop(future)
                    outcome = self._outcome(future, task, deaths, again)
                    if outcome is not None:
                        reporter.cell_finished(task.spec, outcome)
                        yield outcome
            clean = True
        finally:
            pool.shutdown(wait=clean, cancel_futures=True)  # a broken pool's processes are gone after it
        return again

    def _outcome(self, future, task: CellTask, deaths: dict[str, int], again: list[CellTask]) -> CellOutcome | None:
        try:
            return future.result()
        except BrokenProcessPool:
            cell_id = task.spec.cell_id
            if Claim(task.results_dir, cell_id).holder() is not None:  # it was running when the pool broke
                deaths[cell_id] = deaths.get(cell_id, 0) + 1
            if deaths.get(cell_id, 0) > self.config.retries:
                return failed_outcome(task, f"its worker process died {deaths[cell_id]} times (killed, or out of "
                                            "memory); run the grid again to retry it")
            again.append(task)
            return None
        except Exception as err:  # noqa: BLE001 - e.g. a task that cannot be pickled: that cell fails, not the grid
            return failed_outcome(task, f"{type(err).__name__}: {err}")

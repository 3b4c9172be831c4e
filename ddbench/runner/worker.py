"""What runs on a worker (a pool process, a Ray task, a SLURM job): set the threads and the device, run one cell.

Everything here is importable by name, so that every engine pickles it by reference. Progress goes through the
cell's claim file on the shared results directory (:mod:`ddbench.runner.claims`), not through the engine.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
import time

from ddbench.errors import ConfigError
from ddbench.runner.cell import CellOutcome, CellTask, cell_path, execute_cell


def import_extra(module: str, extra: str, executor: str):
    """Import ``module`` for the ``executor`` executor, or fail with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the {executor} executor needs {module}, which is not installed: "
                          f"pip install 'ddbench[{extra}]'") from None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def wants_cuda(device: str) -> bool:
    """Whether cells on ``device`` run on a GPU (``auto`` does when torch sees one)."""
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def set_threads(threads: int | None) -> None:
    if not threads:
        return
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def pinned_task(task: CellTask) -> CellTask:
    """``task`` on a worker that sees exactly one GPU (CUDA_VISIBLE_DEVICES set by the engine): ``cuda:N`` becomes
    ``cuda``, the one device this worker sees."""
    if not task.settings.device.startswith("cuda:"):
        return task
    return dataclasses.replace(task, settings=dataclasses.replace(task.settings, device="cuda"))


def run_task(task: CellTask, threads: int | None = None, pinned: bool = False) -> CellOutcome:
    """Run one cell on this worker (claimed, so that no other worker computes it at the same time)."""
    set_threads(threads)
    return execute_cell(pinned_task(task) if pinned else task)


def failed_outcome(task: CellTask, error: str) -> CellOutcome:
    """The outcome of a cell whose worker failed outside the cell's code (killed, out of memory, lost); no record
    is written, so the cell runs again on resume."""
    return CellOutcome(task.spec.cell_id, "failed", str(cell_path(task.results_dir, task.spec)),
                       error=" ".join(error.split())[:500])


# -- pool processes ------------------------------------------------------------------------------------------------


_POOL = {"pinned": False}


def init_pool_worker(slots, threads: int, parent_pid: int) -> None:
    """Initialiser of a pool process: take a slot (worker number, GPU or None), pin the GPU, set the threads,
    and exit when the runner is gone (a killed runner leaves no computing orphans)."""
    slot, gpu = slots.get()
    os.environ["DDBENCH_WORKER"] = f"pool-{slot}"
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before this process first touches CUDA
        _POOL["pinned"] = True
    set_threads(threads)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="ddbench-parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int, every: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(every)
    os._exit(70)  # its claims are taken over at once by the next run on this host (the pid is gone)


def run_pool_task(task: CellTask) -> CellOutcome:
    return execute_cell(pinned_task(task) if _POOL["pinned"] else task)

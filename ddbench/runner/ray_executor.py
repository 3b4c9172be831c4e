"""The ``ray`` executor: one Ray task per cell, on an existing cluster (``address``) or on a local one.

Each task asks for ``num_cpus`` CPUs (its torch threads) and ``num_gpus`` GPUs (Ray pins the GPU through
``CUDA_VISIBLE_DEVICES``); Ray runs a task again when its worker process or node dies (``max_retries``). The
workers must see the results directory at the same path (a shared filesystem) and have ddbench installed; the
cells write their records there and report progress through their claims. Needs ``pip install 'ddbench[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.runner.cell import CellOutcome, CellTask
from ddbench.runner.executors import Executor, spread_shared_distillations
from ddbench.runner.progress import ClaimWatcher, Reporter
from ddbench.runner.worker import failed_outcome, import_extra, run_task


class RayConfig(ComponentConfig):
    address: str | None = Field(
        None, description="the cluster to join ('auto', 'ray://HEAD:10001', 'HEAD:6379'); none: start a local one")
    local_cpus: int | None = Field(None, gt=0, description="CPUs of a local cluster (default: all)")
    num_cpus: float = Field(1, gt=0, description="CPUs per cell (also its torch threads)")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per cell; default 1 when cells run on CUDA, else 0")
    max_retries: int = Field(3, ge=0, description="times Ray runs a cell again after its worker died")
    runtime_env: dict[str, Any] | None = Field(None, description="Ray runtime environment of the tasks")
    object_store_mb: int | None = Field(None, gt=0, description="object store of a local cluster, in MB")
    log_to_driver: bool = Field(False, description="show the workers' output here")
    poll_seconds: float = Field(0.5, gt=0)


def run_ray_task(task: CellTask, threads: int, pinned: bool) -> CellOutcome:
    """A cell as a Ray task (the worker is named by its Ray worker id)."""
    import ray

    os.environ["DDBENCH_WORKER"] = f"ray {ray.get_runtime_context().get_worker_id()[:8]}"
    return run_task(task, threads=threads, pinned=pinned)


class RayExecutor(Executor):
    """Run each cell as a Ray task (a local cluster, or an existing one with ``address``)."""

    name = "ray"
    version = "1"
    Config = RayConfig
    #: cells run on other machines: the device is checked there
    remote: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig | None = None):
        super().__init__(config)
        import_extra("ray", "ray", "ray")

    def _init(self, ray) -> bool:
        """Connect to (or start) the cluster; True when this call started it."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": self.config.log_to_driver,
                                   "runtime_env": self.config.runtime_env}
        if self.config.address is None:
            options["num_cpus"] = self.config.local_cpus
            if self.config.object_store_mb:
                options["object_store_memory"] = self.config.object_store_mb * 1024 * 1024
        ray.init(address=self.config.address, **options)
        return True

    def _gpus(self, ray, device: str) -> float:
        if self.config.num_gpus is not None:
            return self.config.num_gpus
        if device.startswith("cuda"):
            return 1.0
        return 1.0 if device == "auto" and ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        if not tasks:
            return
        ray = import_extra("ray", "ray", "ray")
        started = self._init(ray)
        try:
            gpus = self._gpus(ray, tasks[0].settings.device)
            remote = ray.remote(run_ray_task).options(num_cpus=self.config.num_cpus, num_gpus=gpus,
                                                     max_retries=self.config.max_retries, retry_exceptions=False)
            threads = max(1, int(self.config.num_cpus))
            refs = {remote.remote(t, threads, gpus > 0): t for t in spread_shared_distillations(tasks)}
            yield from self._collect(ray, refs, ClaimWatcher(tasks, reporter, self.config.poll_seconds), reporter)
        finally:
            if started:
                ray.shutdown()

    def _collect(self, ray, refs: dict, watcher: ClaimWatcher, reporter: Reporter) -> Iterator[CellOutcome]:
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=self.config.poll_seconds)
                watcher.poll()
                for ref in ready:
                    task = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the worker or node died more than max_retries times
                        outcome = failed_outcome(task, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}")
                    reporter.cell_finished(task.spec, outcome)
                    yield outcome
        finally:
            for ref in refs:  # interrupted: the cells not finished are not left running
                ray.cancel(ref, force=True)

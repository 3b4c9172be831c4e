"""The ``slurm`` executor: one SLURM job per cell, submitted as job arrays through submitit.

The array's parallelism limit (``array_parallelism``) caps how many cells run at once. A job that reaches its
time limit or is preempted is requeued by submitit (``max_requeues`` times for timeouts): SLURM signals it
``signal_delay_s`` seconds before the end, the job hands its cell's claim back and is requeued, and the requeued
job resumes the cell from its distillation checkpoint (``RESULTS/checkpoints/``) and finished evaluation nets.
``cluster=local`` runs the jobs as local subprocesses and ``cluster=debug`` in this process (submitit's own
clusters), for trying a configuration without SLURM. The jobs must see the results directory at the same path;
they run this Python (``sys.executable``), after ``setup`` lines such as ``module load``. Needs
``pip install 'ddbench[slurm]'``.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.runner.cell import CellOutcome, CellTask
from ddbench.runner.claims import release_held
from ddbench.runner.executors import Executor, spread_shared_distillations
from ddbench.runner.progress import ClaimWatcher, Reporter
from ddbench.runner.worker import failed_outcome, import_extra, run_task, wants_cuda


class SlurmConfig(ComponentConfig):
    cluster: Literal["slurm", "local", "debug"] = Field(
        "slurm", description="slurm; local (jobs as local subprocesses) or debug (in this process): submitit's own")
    folder: str | None = Field(None, description="job scripts, pickles and logs (default RESULTS/slurm/)")
    partition: str | None = None
    time: int = Field(240, gt=0, description="minutes per job (--time); a job that reaches it is requeued")
    gpus: int | None = Field(None, ge=0, description="GPUs per cell; default 1 when cells run on CUDA, else 0")
    cpus: int = Field(4, gt=0, description="CPUs per cell (--cpus-per-task; also its torch threads)")
    mem_gb: float | None = Field(None, gt=0, description="memory per cell (--mem)")
    array_parallelism: int = Field(64, gt=0, description="most cells running at once (the array's %N)")
    max_requeues: int = Field(3, ge=0, description="times a job that timed out is requeued")
    signal_delay_s: int = Field(120, gt=0, description="seconds before the time limit when the job is warned")
    job_name: str = "ddbench"
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    sbatch: dict[str, Any] = Field(default_factory=dict, description="more #SBATCH parameters, e.g. mail-type=END")
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job")
    use_srun: bool = True
    poll_seconds: float = Field(5.0, gt=0, description="seconds between two looks at the jobs")


class CellJob:
    """What a job runs: one cell. Checkpointable (submitit calls ``checkpoint`` when the job times out or is
    preempted): the job hands its claim back, and the requeued job resumes the cell from its checkpoints."""

    def __init__(self, threads: int, pinned: bool):
        self.threads, self.pinned = threads, pinned

    def __call__(self, task: CellTask) -> CellOutcome:
        return run_task(task, threads=self.threads, pinned=self.pinned)

    def checkpoint(self, task: CellTask):
        import submitit

        release_held()
        return submitit.helpers.DelayedSubmission(self, task)


class SlurmExecutor(Executor):
    """Run each cell as a SLURM job (job arrays via submitit; requeued on timeout or preemption)."""

    name = "slurm"
    version = "1"
    Config = SlurmConfig
    remote: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig | None = None):
        super().__init__(config)
        import_extra("submitit", "slurm", "slurm")

    def folder(self, results_dir: str | Path) -> Path:
        return Path(self.config.folder) if self.config.folder else Path(results_dir) / "slurm"

    def gpus(self, device: str) -> int:
        if self.config.gpus is not None:
            return self.config.gpus
        return 1 if device.startswith("cuda") or (device == "auto" and wants_cuda(device)) else 0

    def sbatch_parameters(self, device: str) -> dict[str, Any]:
        """The job's SLURM parameters, as submitit's SlurmExecutor takes them (one #SBATCH line each)."""
        from submitit.slurm.slurm import _convert_mem

        c = self.config
        params: dict[str, Any] = {
            "job_name": c.job_name, "time": c.time, "cpus_per_task": c.cpus, "gpus_per_node": self.gpus(device),
            "array_parallelism": c.array_parallelism, "signal_delay_s": c.signal_delay_s, "use_srun": c.use_srun,
        }
        if c.mem_gb is not None:
            params["mem"] = _convert_mem(c.mem_gb)
        params.update({key: getattr(c, key) for key in ("partition", "account", "qos", "constraint", "exclude")
                       if getattr(c, key) is not None})
        if c.sbatch:
            params["additional_parameters"] = dict(c.sbatch)
        if c.setup:
            params["setup"] = list(c.setup)
        return params

    def executor(self, results_dir: str | Path, device: str):
        """The submitit executor of ``config.cluster``, with the job's parameters."""
        submitit = import_extra("submitit", "slurm", "slurm")
        folder, c = self.folder(results_dir) / "%j", self.config
        if c.cluster == "debug":
            return submitit.DebugExecutor(folder)
        if c.cluster == "local":
            ex = submitit.LocalExecutor(folder, max_num_timeout=c.max_requeues)
            ex.update_parameters(timeout_min=c.time, gpus_per_node=self.gpus(device),
                                 signal_delay_s=c.signal_delay_s, **({"setup": list(c.setup)} if c.setup else {}))
            return ex
        ex = submitit.SlurmExecutor(folder, max_num_timeout=c.max_requeues)
        ex.update_parameters(**self.sbatch_parameters(device))
        return ex

    def sbatch_script(self, results_dir: str | Path, device: str, cells: int) -> str:
        """The sbatch script of a job array of ``cells`` cells, as :meth:`run` submits it on SLURM (made without
        a cluster: submitit's own template, with this configuration's parameters)."""
        from submitit.slurm.slurm import _make_sbatch_string

        folder = (self.folder(results_dir) / "%j").absolute()
        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
        return _make_sbatch_string(command=command, folder=folder, map_count=cells, **self.sbatch_parameters(device))

    def run(self, tasks: list[CellTask], reporter: Reporter) -> Iterator[CellOutcome]:
        if not tasks:
            return
        device = tasks[0].settings.device
        ex = self.executor(tasks[0].results_dir, device)
        gpus = self.gpus(device)
        job = CellJob(threads=self.config.cpus, pinned=gpus > 0)
        queue, live = spread_shared_distillations(tasks), {}
        watcher = ClaimWatcher(tasks, reporter, min(self.config.poll_seconds, 1.0))
        limit = len(queue) if self.config.cluster == "slurm" else self.config.array_parallelism
        try:
            while queue or live:
                if queue and len(live) < limit:  # SLURM throttles the array itself; local runs throttle here
                    batch, queue = queue[:limit - len(live)], queue[limit - len(live):]
                    live.update(zip(ex.map_array(job, batch), batch))
                yield from self._finished(live, reporter)
                watcher.poll()
                if live:
                    time.sleep(self.config.poll_seconds if self.config.cluster == "slurm" else 0.2)
        finally:
            if self.config.cluster != "slurm":  # local subprocesses end with this run; SLURM jobs go on
                for running in live:
                    running.cancel(check=False)

    def _finished(self, live: dict, reporter: Reporter) -> Iterator[CellOutcome]:
        for job, task in list(live.items()):
            if self.config.cluster != "debug" and not job.done():
                continue
            del live[job]
            try:
                outcome = job.result()
            except Exception as err:  # noqa: BLE001 - the job failed outside the cell's code (killed, node lost)
                outcome = failed_outcome(task, f"job {job.job_id}: {type(err).__name__}: "
                                               f"{(str(err).strip().splitlines() or [''])[-1]} (log: {job.paths.stderr})")
            reporter.cell_finished(task.spec, outcome)
            yield outcome

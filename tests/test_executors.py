"""Executors and claims: pool, Ray and SLURM (submitit) executors; one results directory, many writers.

Grids are tiny (the built-in ``shapes`` at 64 points, 1 net, 1 epoch): what is checked is where cells run, that
each is computed once, and that the numbers do not depend on the executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddbench import hookimpl, plugins
from ddbench.cli.app import app, executor_overrides, parse_executor_options
from ddbench.config import ComponentConfig
from ddbench.errors import ConfigError
from ddbench.methods.coreset import RandomMethod
from ddbench.pipeline import plan_grid, run_grid
from ddbench.pipeline.experiment import build_experiment, load_experiment_file
from ddbench.pipeline.run import build_executor
from ddbench.runner.claims import Claim, read_claims, read_events
from ddbench.runner.pool import PoolConfig, plan_pool
from ddbench.runner.slurm_executor import SlurmConfig, SlurmExecutor
from tests.conftest import TINY_SHAPES

REPO = Path(__file__).resolve().parents[1]
FAST = {"datasets": ["shapes"], "dataset_config": {"shapes": TINY_SHAPES}, "eval_nets": 1, "epochs": 1,
        "device": "cpu"}
HERDING = {"herding": {"embedding": "random"}}


def experiment(tmp_path: Path, name: str = "runs", **kw):
    return build_experiment(None, {**FAST, "results": str(tmp_path / name), **kw})


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "cells").glob("*.json"))}


def numbers(rec: dict) -> list[dict]:
    """What a cell computed (every net's seed, accuracies, loss), without the timings."""
    return [{k: v for k, v in net.items() if "second" not in k} for net in rec["results"]["nets"]]


def points_sha(results: Path, rec: dict) -> str:
    """The sha256 of the synthetic clouds a cell evaluated (the artifact file also holds timings)."""
    manifest = (results / rec["artifact"]["path"]).with_suffix(".manifest.json")
    return json.loads(manifest.read_text())["sha256"]["points"]


def finished_per_cell(results: Path) -> Counter:
    return Counter(e["key"] for e in read_events(results) if e["event"] == "finished" and e["kind"] == "cell")


@pytest.fixture
def one_thread():
    """Cells in this process on one torch thread, as on the workers (the float reductions, and so the numbers,
    depend on the thread count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DDBENCH_ALLOCATOR": "system"}


# -- pool --------------------------------------------------------------------------------------------------------


def test_pool_with_two_workers_gives_the_inprocess_numbers(tmp_path, one_thread):
    grid = {"methods": ["random", "herding"], "ppc": [1, 2], "method_config": HERDING}
    alone = run_grid(experiment(tmp_path, "alone", **grid))
    pooled = run_grid(experiment(tmp_path, "pool", executor="pool",
                                 executor_config={"workers": 2, "threads": 1}, **grid))
    assert (alone.ok, pooled.ok, pooled.failed) == (4, 4, 0)
    a, b = records(tmp_path / "alone"), records(tmp_path / "pool")
    assert sorted(a) == sorted(b)
    for cell_id in a:
        assert numbers(a[cell_id]) == numbers(b[cell_id]), cell_id
        assert points_sha(tmp_path / "alone", a[cell_id]) == points_sha(tmp_path / "pool", b[cell_id])
        assert b[cell_id]["environment"]["torch_threads"] == 1
    events = read_events(tmp_path / "pool")
    assert {e["worker"] for e in events} == {"pool-0", "pool-1"}
    assert all(e["pid"] != os.getpid() for e in events)
    assert set(finished_per_cell(tmp_path / "pool").values()) == {1}


def test_pool_plan_shares_the_cores_and_pins_one_worker_per_gpu():
    cpu = plan_pool(PoolConfig(), "cpu", n_tasks=10, cores=8)
    assert (cpu.workers, cpu.threads, cpu.slots) == (4, 2, (None,) * 4)
    assert plan_pool(PoolConfig(workers=3), "cpu", n_tasks=10, cores=8).threads == 2
    assert plan_pool(PoolConfig(workers=8), "cpu", n_tasks=2, cores=8).workers == 2  # never more than cells
    gpu = plan_pool(PoolConfig(), "cuda", n_tasks=10, cores=16, gpus=["2", "3"])
    assert (gpu.workers, gpu.threads, gpu.slots) == (2, 8, ("2", "3"))
    two_each = plan_pool(PoolConfig(workers=4, threads=1), "cuda", n_tasks=10, cores=16, gpus=["0", "1"])
    assert two_each.slots == ("0", "1", "0", "1") and two_each.threads == 1


class KillConfig(ComponentConfig):
    marker: str = ""
    always: bool = False


class KillWorker(RandomMethod):
    """SIGKILLs the process it runs in (the first time only, unless ``always``), as the OOM killer would."""

    name = "killworker"
    Config = KillConfig

    def distill(self, ctx):
        marker = Path(self.config.marker)
        if self.config.always or not marker.exists():
            marker.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().distill(ctx)


def _with_plugin(monkeypatch, cls):
    reg = plugins.load_registries(
        extra_plugins=[(cls.name, types.SimpleNamespace(register_methods=hookimpl(lambda register: register(cls))))],
        entry_points=False)
    monkeypatch.setattr(plugins, "_CACHE", reg)


def test_pool_hands_out_again_the_cells_of_a_killed_worker(tmp_path, monkeypatch):
    _with_plugin(monkeypatch, KillWorker)
    marker = tmp_path / "marker"
    summary = run_grid(experiment(tmp_path, methods=["killworker"], executor="pool",
                                  executor_config={"workers": 1, "threads": 1},
                                  method_config={"killworker": {"marker": str(marker)}}))
    assert (summary.ok, summary.failed) == (1, 0) and marker.exists()
    events = [e["event"] for e in read_events(tmp_path / "runs") if e["kind"] == "cell"]
    assert events == ["claimed", "took-over", "finished"]  # the second worker took the dead one's claim over

    doomed = run_grid(experiment(tmp_path, "doomed", methods=["killworker"], executor="pool",
                                 executor_config={"workers": 1, "threads": 1, "retries": 0},
                                 method_config={"killworker": {"marker": str(marker), "always": True}}))
    assert doomed.failed == 1 and "worker process died 1 times" in doomed.outcomes[0].error
    assert records(tmp_path / "doomed") == {}  # no record: the cell runs again next time


def test_cells_sharing_a_distillation_are_handed_out_apart_and_workers_shown_live(tmp_path):
    import io

    from rich.console import Console

    from ddbench.runner.cell import CellOutcome, CellTask, RunSettings
    from ddbench.runner.executors import spread_shared_distillations
    from ddbench.runner.progress import ClaimWatcher, RichReporter

    exp = experiment(tmp_path, methods=["random"], ppc=[1, 2], eval_backbones=["pointnet", "pointnet_in"])
    tasks = [CellTask(c, RunSettings(tmp_path / "runs")) for c in plan_grid(exp)]
    order = [t.spec.distill_key for t in spread_shared_distillations(tasks)]
    assert sorted(order) == sorted(t.spec.distill_key for t in tasks) and order[0] != order[1] and order[2] != order[3]

    text = io.StringIO()
    reporter = RichReporter(Console(file=text, width=200, force_terminal=False))
    reporter.grid_started(4, 0, 4)
    with Claim(tmp_path / "runs", tasks[0].spec.cell_id) as claim:
        assert claim.try_acquire()
        claim.progress("eval net 1/1", 1, 2, force=True)
        ClaimWatcher(tasks, reporter).poll(force=True)
        assert list(reporter.worker_tasks) == [tasks[0].spec.cell_id]
    reporter.cell_finished(tasks[0].spec, CellOutcome(tasks[0].spec.cell_id, "busy", "", error="running on x"))
    ClaimWatcher(tasks, reporter).poll(force=True)
    assert reporter.worker_tasks == {}
    reporter.grid_finished(types.SimpleNamespace(ok=0, failed=0, skipped=0, elsewhere=0, results_dir="r"))
    assert "busy shapes random PPC 1" in text.getvalue()


# -- claims --------------------------------------------------------------------------------------------------------


def test_two_concurrent_runs_compute_every_cell_exactly_once(tmp_path):
    results = tmp_path / "shared"
    cmd = [sys.executable, "-m", "ddbench", "run", "--datasets", "shapes", "--methods", "random,herding",
           "--ppc", "1,2", "--eval-backbones", "pointnet,pointnet_in", "--eval-nets", "1", "--epochs", "1",
           "--device", "cpu", "--results", str(results), "--set", "herding.embedding=random",
           *[f"--set=shapes.{k}={v}" for k, v in TINY_SHAPES.items()]]
    procs = [subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    recs = records(results)
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs.values())
    assert finished_per_cell(results) == Counter({cell_id: 1 for cell_id in recs})
    distilled = Counter(e["key"] for e in read_events(results) if e["event"] == "distilled")
    assert len(distilled) == 4 and set(distilled.values()) == {1}  # shared distillations were waited for
    assert len({e["pid"] for e in read_events(results) if e["event"] == "finished"}) == 2  # both worked
    assert read_claims(results) == [] and not list(results.rglob("*.tmp"))


HOLD_CLAIM = """
import socket, sys, time
if sys.argv[3] != "-":
    socket.gethostname = lambda: sys.argv[3]   # a worker on another machine
from ddbench.runner.claims import Claim
claim = Claim(sys.argv[1], sys.argv[2])
assert claim.try_acquire()
print("holding", flush=True)
time.sleep(float(sys.argv[4]))
claim.release()   # stopped without a record (interrupted, say)
"""


def _hold(results: Path, cell_id: str, host: str = "-", seconds: float = 600) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_CLAIM), str(results), cell_id, host,
                             str(seconds)], env=cli_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _claim_and_die(results: Path, cell_id: str, host: str = "-") -> None:
    """A worker process claims ``cell_id`` and is SIGKILLed: its claim is left behind."""
    proc = _hold(results, cell_id, host)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_busy_cell_is_waited_for_and_computed_when_its_worker_stops_without_a_record(tmp_path):
    exp = experiment(tmp_path, methods=["random"], ppc=[1, 2])
    first = plan_grid(exp)[0].cell_id
    holder = _hold(tmp_path / "runs", first, seconds=3)
    summary = run_grid(exp)
    holder.wait()
    assert summary.ok == 2 and summary.elsewhere == 0
    mine = [(e["event"], e["key"]) for e in read_events(tmp_path / "runs") if e["pid"] == os.getpid()]
    assert mine[-1] == ("finished", first)  # waited for, then computed here, after the other cell


def test_a_stale_claim_is_shown_by_status_and_taken_over(tmp_path):
    exp = experiment(tmp_path, methods=["random"], ppc=[1, 2])
    cells = plan_grid(exp)
    results = tmp_path / "runs"
    _claim_and_die(results, cells[0].cell_id)
    shown = CliRunner().invoke(app, ["status", "--results", str(results)])
    assert shown.exit_code == 0 and "0 ok, 0 failed, 0 running, 1 stale" in shown.output
    assert f"stale {cells[0].cell_id}" in shown.output

    summary = run_grid(exp)
    assert summary.ok == 2
    taken = [e for e in read_events(results) if e["event"] == "took-over"]
    assert [e["key"] for e in taken] == [cells[0].cell_id] and "pid " in taken[0]["previous"]
    shown = CliRunner().invoke(app, ["status", "--results", str(results)])
    assert "2 ok, 0 failed, 0 running, 0 stale" in shown.output


def test_a_claim_lost_on_another_host_is_taken_over_after_its_lease(tmp_path, monkeypatch):
    monkeypatch.setenv("DDBENCH_CLAIM_LEASE", "1.5")
    exp = experiment(tmp_path, methods=["random"])
    cell_id = plan_grid(exp)[0].cell_id
    results = tmp_path / "runs"
    _claim_and_die(results, cell_id, host="node-17")  # this host cannot tell whether that pid lives
    assert [c.state for c in read_claims(results)] == ["running"]  # its lease has not run out yet
    time.sleep(1.6)
    assert [(c.host, c.state) for c in read_claims(results)] == [("node-17", "stale")]
    start = time.monotonic()
    summary = run_grid(exp)
    assert summary.ok == 1 and time.monotonic() - start >= 1.5  # seen unchanged for a whole lease first
    assert [e["event"] for e in read_events(results) if e["pid"] == os.getpid()][:1] == ["took-over"]


def test_a_running_claim_is_shown_with_its_worker_host_and_stage(tmp_path):
    results = tmp_path / "runs"
    with Claim(results, "some_cell") as claim:
        assert claim.try_acquire()
        claim.progress("eval net 1/10", 3, 20, force=True)
        assert not Claim(results, "some_cell").try_acquire()  # one holder at a time, even in one process
        shown = CliRunner().invoke(app, ["status", "--results", str(results)])
        assert "1 running" in shown.output and "running some_cell on pid" in shown.output
        assert "eval net 1/10 3/20" in shown.output
    assert read_claims(results) == []


# -- Ray -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_runs_a_small_grid_on_a_local_cluster(tmp_path, one_thread):
    pytest.importorskip("ray")
    exp = experiment(tmp_path, methods=["random", "herding"], method_config=HERDING, executor="ray",
                     executor_config={"local_cpus": 2, "num_cpus": 1, "object_store_mb": 80})
    summary = run_grid(exp)
    assert (summary.ok, summary.failed) == (2, 0)
    events = read_events(tmp_path / "runs")
    assert all(e["worker"].startswith("ray ") and e["pid"] != os.getpid() for e in events)
    alone = run_grid(experiment(tmp_path, "alone", methods=["random", "herding"], method_config=HERDING))
    a, b = records(tmp_path / "alone"), records(tmp_path / "runs")
    assert alone.ok == 2 and all(numbers(a[c]) == numbers(b[c]) for c in a)


# -- SLURM through submitit -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_submitit_local_cluster_runs_a_small_grid_as_subprocesses(tmp_path):
    pytest.importorskip("submitit")
    exp = experiment(tmp_path, methods=["random"], ppc=[1, 2], executor="slurm",
                     executor_config={"cluster": "local", "cpus": 1, "array_parallelism": 2, "poll_seconds": 0.2})
    summary = run_grid(exp)
    assert (summary.ok, summary.failed) == (2, 0)
    events = read_events(tmp_path / "runs")
    assert len({e["pid"] for e in events if e["event"] == "finished"}) == 2 and os.getpid() not in {
        e["pid"] for e in events}
    assert list((tmp_path / "runs" / "slurm").rglob("*_log.out"))  # submitit's job folders and logs


EXPECTED_SBATCH = """\
#!/bin/bash

# Parameters
#SBATCH --account=proj42
#SBATCH --array=0-11%4
#SBATCH --constraint=a100
#SBATCH --cpus-per-task=8
#SBATCH --error=/scratch/runs/slurm/%A_%a/%A_%a_0_log.err
#SBATCH --gpus-per-node=1
#SBATCH --job-name=sadm-table1
#SBATCH --mail-type=END
#SBATCH --mem=32GB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/scratch/runs/slurm/%A_%a/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --signal=USR2@180
#SBATCH --time=600
#SBATCH --wckey=submitit

# setup
module load cuda/12.4
source /scratch/ddbench/.venv/bin/activate

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /scratch/runs/slurm/%A_%a/%A_%a_%t_log.out \
--error /scratch/runs/slurm/%A_%a/%A_%a_%t_log.err PYTHON -u -m submitit.core._submit /scratch/runs/slurm/%j
"""


def test_the_sbatch_script_of_a_slurm_configuration_is_the_expected_one():
    pytest.importorskip("submitit")
    config = SlurmConfig(partition="gpu", time=600, cpus=8, mem_gb=32, array_parallelism=4, signal_delay_s=180,
                         job_name="sadm-table1", account="proj42", constraint="a100", sbatch={"mail-type": "END"},
                         setup=["module load cuda/12.4", "source /scratch/ddbench/.venv/bin/activate"])
    script = SlurmExecutor(config).sbatch_script("/scratch/runs", "cuda", cells=12)
    assert script.replace(sys.executable, "PYTHON") == EXPECTED_SBATCH


def test_a_requeued_job_hands_its_claim_back(tmp_path):
    submitit = pytest.importorskip("submitit")
    from ddbench.runner.slurm_executor import CellJob

    claim = Claim(tmp_path, "a_cell")
    assert claim.try_acquire()
    job = CellJob(threads=1, pinned=False)
    again = job.checkpoint("TASK")
    assert isinstance(again, submitit.helpers.DelayedSubmission) and again.args == ("TASK",)
    assert not claim.held and read_claims(tmp_path) == []


# -- configuration -----------------------------------------------------------------------------------------------


def test_executor_table_in_experiment_files_and_options_on_the_command_line(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text('methods = ["random"]\n[executor]\nname = "pool"\nworkers = 2\nthreads = 1\n')
    exp = build_experiment(load_experiment_file(toml), {})
    assert exp.executor == "pool" and exp.executor_config == {"workers": 2, "threads": 1}
    cli = executor_overrides(None, ["threads=2"], None, load_experiment_file(toml))
    assert build_experiment(load_experiment_file(toml), cli).executor_config == {"workers": 2, "threads": 2}
    other = build_experiment(load_experiment_file(toml), executor_overrides("slurm", ["partition=gpu"], None, None))
    assert other.executor == "slurm" and other.executor_config == {"partition": "gpu"}
    assert executor_overrides(None, None, "auto", None) == {"executor": "pool", "executor_config": {"workers": "auto"}}
    assert parse_executor_options(["sbatch.mail-type=END", "devices=0,1", "time=30"]) == {
        "sbatch": {"mail-type": "END"}, "devices": [0, 1], "time": 30}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_executor_options(["workers"])
    with pytest.raises(ConfigError, match="workerz: not a known option"):
        build_executor(build_experiment(None, {"executor": "pool", "executor_config": {"workerz": 2}}))


def test_a_missing_extra_is_a_one_line_error_that_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    for name, extra in (("ray", "ray"), ("slurm", "slurm")):
        with pytest.raises(ConfigError, match=rf"pip install 'ddbench\[{extra}\]'") as info:
            build_executor(build_experiment(None, {"executor": name}))
        assert "\n" not in str(info.value)

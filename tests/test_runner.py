"""The grid runner: expansion, cell files, resume, failures, interruption, experiment files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from ddbench import hookimpl, plugins
from ddbench.config import ComponentConfig
from ddbench.errors import ConfigError, DataError, IncompatibleError, UnknownNameError
from ddbench.methods.base import Method
from ddbench.methods.coreset import RandomMethod
from ddbench.pipeline import plan_grid as plan_cells
from ddbench.pipeline import run_grid
from ddbench.pipeline.experiment import build_experiment, load_experiment_file
from tests.conftest import TINY_SHAPES

FAST = {
    "datasets": ["shapes"], "dataset_config": {"shapes": TINY_SHAPES}, "eval_nets": 1, "epochs": 2,
    "device": "cpu",
}


def experiment(tmp_path: Path, **kw):
    values = {**FAST, "results": str(tmp_path / "runs"), **kw}
    return build_experiment(None, values)


def cell_files(results: Path) -> list[Path]:
    return sorted((results / "cells").glob("*.json"))


def plan_grid(exp):
    """The specs of the planned cells (what identifies them)."""
    return [cell.spec for cell in plan_cells(exp)]


# -- expansion -------------------------------------------------------------------------------------------------


def test_grid_axes_collapse_where_a_method_ignores_them(tmp_path):
    exp = experiment(tmp_path, methods=["random", "herding", "whole"], ppc=[1, 2], seeds=[0, 1],
                     distill_backbones=["pointnet", "pointnet_in"], eval_backbones=["pointnet", "pointnet_in"])
    specs = plan_grid(exp)
    by_method = {m: [s for s in specs if s.method == m] for m in ("random", "herding", "whole")}
    assert len(by_method["random"]) == 2 * 2 * 1 * 2  # ppc x seeds x (no distill backbone) x eval backbones
    assert len(by_method["herding"]) == 2 * 2 * 2 * 2
    assert len(by_method["whole"]) == 1 * 2 * 1 * 2  # no PPC axis
    assert all(s.distill_backbone is None for s in by_method["random"])
    assert len({s.cell_id for s in specs}) == len(specs)
    # cells that differ only by evaluation backbone share one distillation
    herd = [s for s in by_method["herding"] if s.ppc == 1 and s.seed == 0 and s.distill_backbone == "pointnet"]
    assert len(herd) == 2 and herd[0].distill_key == herd[1].distill_key and herd[0].cell_id != herd[1].cell_id


def test_cell_id_is_stable_and_changes_with_any_config(tmp_path):
    a = plan_grid(experiment(tmp_path, methods=["random"]))[0]
    b = plan_grid(experiment(tmp_path, methods=["random"]))[0]
    c = plan_grid(experiment(tmp_path, methods=["random"], epochs=3))[0]
    d = plan_grid(experiment(tmp_path, methods=["random"], dataset_config={"shapes": {**TINY_SHAPES, "seed": 1}}))[0]
    assert a.cell_id == b.cell_id
    assert len({a.cell_id, c.cell_id, d.cell_id}) == 3
    assert a.cell_id.startswith("shapes__random__ppc1__nobackbone__pointnet__sadm__s0__")


def test_quick_run_overrides_are_recorded_as_deviations(tmp_path):
    exp = experiment(tmp_path, methods=["herding"], method_config={"herding": {"embedding": "random"}})
    spec = plan_grid(exp)[0]
    devs = {d.legacy_what(): d.legacy() for d in spec.deviations}
    assert devs["eval_nets"]["used"] == 1 and devs["eval_nets"]["reference"] == 10
    assert devs["epochs"]["used"] == 2 and devs["epochs"]["reference"] == 501
    assert devs["method herding: embedding"]["used"] == "random"
    assert spec.protocol_config["num_nets"] == 1 and spec.protocol_config["epochs"] == 2


def test_iterations_override_targets_the_methods_iteration_field(tmp_path, monkeypatch):
    class IterCfg(ComponentConfig):
        iterations: int = 1500

    class Iterative(RandomMethod):
        name = "iterative"
        Config = IterCfg
        iterations_field = "iterations"

    reg = plugins.load_registries(
        extra_plugins=[("it", types.SimpleNamespace(register_methods=hookimpl(lambda register: register(Iterative))))],
        entry_points=False)
    monkeypatch.setattr(plugins, "_CACHE", reg)
    spec = plan_grid(experiment(tmp_path, methods=["iterative", "random"], iterations=7))
    it = next(s for s in spec if s.method == "iterative")
    rnd = next(s for s in spec if s.method == "random")
    assert it.method_config["iterations"] == 7
    assert any(d.setting == "iterations" and d.field == "iterations" and d.used == 7 for d in it.deviations)
    assert any(d.legacy_what() == "iterations (iterations)" for d in it.deviations)
    assert not any("iterations" in d.legacy_what() for d in rnd.deviations)


def test_bad_names_fail_before_any_work(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'random'"):
        plan_grid(experiment(tmp_path, methods=["randm"]))
    with pytest.raises(UnknownNameError, match="protocol"):
        plan_grid(experiment(tmp_path, protocol="sdam"))
    with pytest.raises(UnknownNameError, match="backbone"):
        plan_grid(experiment(tmp_path, eval_backbones=["pointnett"]))
    with pytest.raises(ConfigError, match="not a known option"):
        plan_grid(experiment(tmp_path, methods=["herding"], method_config={"herding": {"embeding": "x"}}))
    with pytest.raises(ConfigError, match="lr_pointz: not a known option"):  # a method outside the grid too
        plan_grid(experiment(tmp_path, methods=["random"], method_config={"sadm": {"lr_pointz": 1}}))
    with pytest.raises(DataError, match="--data-root"):
        plan_grid(experiment(tmp_path, datasets=["modelnet40"], data_root=str(tmp_path)))


def test_method_backbone_incompatibility_is_reported_before_running(tmp_path, monkeypatch):
    from ddbench.backbones.pointnet import PointNet

    class LogitsOnly(PointNet):
        name = "logits_only"
        provides = frozenset({"logits"})

    reg = plugins.load_registries(
        extra_plugins=[("lo", types.SimpleNamespace(register_backbones=hookimpl(lambda register: register(LogitsOnly))))],
        entry_points=False)
    monkeypatch.setattr(plugins, "_CACHE", reg)
    with pytest.raises(IncompatibleError, match="herding.*global_feature.*logits_only"):
        plan_grid(experiment(tmp_path, methods=["herding"], distill_backbones=["logits_only"]))


def test_datasets_all_skips_absent_data(tmp_path):
    specs = plan_grid(experiment(tmp_path, datasets=["all", "shapes"], data_root=str(tmp_path)))
    assert {s.dataset for s in specs} == {"shapes"}


# -- running ---------------------------------------------------------------------------------------------------


REQUIRED_KEYS = {"schema", "cell_id", "status", "spec", "deviations", "environment", "seeds", "results", "timing",
                 "memory", "artifact", "data", "started", "finished", "protocol", "protocol_version"}


def test_run_writes_one_complete_json_per_cell_and_resumes(tmp_path):
    exp = experiment(tmp_path, methods=["random", "kcenter"], ppc=[1, 2],
                     method_config={"kcenter": {"embedding": "random"}})
    summary = run_grid(exp)
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (4, 4, 0, 0)
    files = cell_files(tmp_path / "runs")
    assert len(files) == 4
    rec = json.loads(files[0].read_text())
    assert REQUIRED_KEYS <= set(rec)
    assert rec["status"] == "ok" and rec["protocol"] == "sadm" and rec["protocol_version"] == "2"
    env = rec["environment"]
    assert env["device"] == "cpu" and {"torch", "numpy", "python", "ddbench"} <= set(env["versions"])
    assert rec["seeds"]["eval_nets"] == [1996]
    assert rec["results"]["nets"][0]["seed"] == 1996 and 0 <= rec["results"]["oa_mean"] <= 100
    assert rec["timing"]["eval_seconds"] > 0 and rec["memory"]["peak_rss_bytes"] > 0
    assert (tmp_path / "runs" / rec["artifact"]["path"]).exists()
    mtimes = [f.stat().st_mtime_ns for f in files]

    again = run_grid(exp)
    assert (again.total, again.skipped, len(again.outcomes)) == (4, 4, 0)
    assert [f.stat().st_mtime_ns for f in cell_files(tmp_path / "runs")] == mtimes

    redo = run_grid(exp.model_copy(update={"overwrite": True}))
    assert redo.ok == 4 and redo.skipped == 0


def test_cells_sharing_a_distillation_reuse_its_artifact(tmp_path):
    exp = experiment(tmp_path, methods=["random"], eval_backbones=["pointnet", "pointnet_in"])
    run_grid(exp)
    recs = [json.loads(f.read_text()) for f in cell_files(tmp_path / "runs")]
    assert len(recs) == 2 and len(list((tmp_path / "runs" / "artifacts").glob("*.h5"))) == 1
    assert sorted(r["memory"]["distill"]["reused_artifact"] for r in recs) == [False, True]
    assert {r["eval_backbone"] for r in recs} == {"pointnet", "pointnet_in"}
    # the reusing cell spent nothing distilling, and still says what the artifact it scored cost to make
    made, reused = sorted(recs, key=lambda r: r["memory"]["distill"]["reused_artifact"])
    assert reused["timing"]["distill_seconds"] == 0.0 and made["timing"]["distill_seconds"] > 0
    assert reused["timing"]["artifact_distill_seconds"] == made["timing"]["distill_seconds"]


def test_a_resumed_distillation_records_the_time_of_every_run():
    from ddbench.runner.cell import artifact_seconds, method_seconds

    info = {"seconds_per_iteration": 30.0, "iterations": 400}  # the method's clock, resumes included
    assert method_seconds(info) == 12000.0 and method_seconds({}) == 0.0
    assert artifact_seconds({"distill_seconds": 6000.0, "info": info}) == 12000.0  # this run was the last half
    assert artifact_seconds({"distill_seconds": 2.5, "info": {}}) == 2.5  # a coreset: no method clock
    assert artifact_seconds({"info": {}}) is None


class FlakyConfig(ComponentConfig):
    pass


class Flaky(Method):
    """Fails at PPC 2, works otherwise."""

    name = "flaky"
    Config = FlakyConfig

    def distill(self, ctx):
        if ctx.ppc == 2:
            raise RuntimeError("flaky method exploded")
        return RandomMethod().distill(ctx)


def test_failing_cell_is_recorded_and_grid_goes_on(tmp_path, monkeypatch):
    reg = plugins.load_registries(
        extra_plugins=[("flaky", types.SimpleNamespace(register_methods=hookimpl(lambda register: register(Flaky))))],
        entry_points=False)
    monkeypatch.setattr(plugins, "_CACHE", reg)
    exp = experiment(tmp_path, methods=["flaky"], ppc=[1, 2, 3])
    summary = run_grid(exp)
    assert (summary.ok, summary.failed) == (2, 1)
    recs = {json.loads(f.read_text())["ppc"]: json.loads(f.read_text()) for f in cell_files(tmp_path / "runs")}
    assert recs[2]["status"] == "failed" and recs[2]["error"] == "RuntimeError: flaky method exploded"
    assert "Traceback" in recs[2]["traceback"]
    assert recs[1]["status"] == recs[3]["status"] == "ok"
    # a rerun retries only the failed cell
    again = run_grid(exp)
    assert again.skipped == 2 and [o.status for o in again.outcomes] == ["failed"]


def test_no_temporary_or_partial_files_are_left(tmp_path):
    run_grid(experiment(tmp_path, methods=["random"]))
    leftovers = [p for p in (tmp_path / "runs").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_stale_tmp_files_of_dead_processes_are_removed(tmp_path):
    runs = tmp_path / "runs" / "cells"
    runs.mkdir(parents=True)
    stale = runs / ".x.json.999999999.tmp"
    stale.write_text("{partial")
    run_grid(experiment(tmp_path, methods=["random"]))
    assert not stale.exists()


def test_interrupted_evaluation_keeps_its_finished_nets(tmp_path, monkeypatch):
    """Ctrl-C during a cell's third evaluation net: the rerun trains only nets 3 and 4, and says so."""
    from ddbench.evaluation import evaluate

    exp = experiment(tmp_path, methods=["random"], eval_nets=4)
    real, calls = evaluate.train_and_test, []

    def interrupted(*args, **kw):
        calls.append(args[4])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(evaluate, "train_and_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_grid(exp)
    assert cell_files(tmp_path / "runs") == []
    saved = list((tmp_path / "runs" / "checkpoints").glob("*.eval.json"))
    assert len(saved) == 1
    calls.clear()
    run_grid(exp)
    rec = json.loads(cell_files(tmp_path / "runs")[0].read_text())
    seeds = rec["seeds"]["eval_nets"]
    assert calls == seeds[2:] and rec["results"]["resumed_nets"] == seeds[:2]
    assert [n["seed"] for n in rec["results"]["nets"]] == seeds and rec["results"]["num_nets"] == 4
    assert not saved[0].exists()


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_cells(tmp_path):
    """SIGKILL `ddbench run` after its first cell; rerunning finishes the grid; finished cells are untouched."""
    results = tmp_path / "runs"
    cmd = [sys.executable, "-m", "ddbench", "run", "--datasets", "shapes", "--methods", "random",
           "--ppc", "1,2,3,4", "--eval-nets", "1", "--epochs", "30", "--device", "cpu", "--results", str(results),
           "--set", "shapes.points=64", "--set", "shapes.train_per_class=6", "--set", "shapes.test_per_class=2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not cell_files(results):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = cell_files(results)
    assert 1 <= len(first) < 4, "the kill should land mid-grid"
    for f in first:
        assert json.loads(f.read_text())["status"] == "ok"  # every file present is complete
    kept = {f.name: f.stat().st_mtime_ns for f in first}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{len(first)} already done" in done.stderr
    final = cell_files(results)
    assert len(final) == 4
    for f in final:
        assert json.loads(f.read_text())["status"] == "ok"
        if f.name in kept:
            assert f.stat().st_mtime_ns == kept[f.name]
    assert not [p for p in results.rglob("*.tmp")]


# -- experiment files -----------------------------------------------------------------------------------------------


def test_toml_and_yaml_experiment_files_with_cli_overrides(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text('methods = ["random", "herding"]\nppc = [1, 3]\n[method_config.herding]\nembedding = "random"\n')
    yaml = tmp_path / "exp.yaml"
    yaml.write_text("methods: [random, herding]\nppc: [1, 3]\nmethod_config:\n  herding:\n    embedding: random\n")
    for f in (toml, yaml):
        values = load_experiment_file(f)
        exp = build_experiment(values, {"ppc": [2], "method_config": {"herding": {"embedding_epochs": 3}}})
        assert exp.methods == ["random", "herding"] and exp.ppc == [2]
        assert exp.method_config["herding"] == {"embedding": "random", "embedding_epochs": 3}


def test_experiment_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("methodz = ['random']\n")
    with pytest.raises(ConfigError, match="methodz: not a known option") as info:
        build_experiment(load_experiment_file(bad), {})
    assert "\n" not in str(info.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("methods = [\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_experiment_file(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=".toml, .yaml or .yml"):
        (tmp_path / "x.json").write_text("{}")
        load_experiment_file(tmp_path / "x.json")

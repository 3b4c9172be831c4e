"""The command line, end to end, in subprocesses (as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "shapes.points=64", "--set", "shapes.train_per_class=4", "--set", "shapes.test_per_class=2"]


def ddbench(*args, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "ddbench", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ddbench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_list_every_kind_as_json():
    for kind, expected in [("methods", "herding"), ("backbones", "pointnet"), ("datasets", "shapes"),
                           ("protocols", "sadm"), ("executors", "inprocess"), ("transforms", "fps")]:
        rows = json.loads(ddbench("list", kind, "--json", "--no-throughput").stdout)
        names = {r["name"] for r in rows}
        assert expected in names
        row = next(r for r in rows if r["name"] == expected)
        assert row["version"] and row["source"] and isinstance(row["defaults"], dict)
    herding = next(r for r in json.loads(ddbench("list", "methods", "--json").stdout) if r["name"] == "herding")
    assert herding["defaults"]["embedding"] == "trained"


def test_list_backbones_measures_throughput_on_request():
    plain = json.loads(ddbench("list", "backbones", "--json").stdout)
    assert all("forward clouds/s (1024 pts)" not in r for r in plain)  # listing measures nothing
    rows = json.loads(ddbench("list", "backbones", "--json", "--throughput", "--device", "cpu",
                              "--throughput-batch", "1").stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"pointnet", "pointnet2_ssg", "pointnet2_msg", "dgcnn", "pointconv", "point_transformer", "pct",
            "pointmlp"} <= set(by_name)
    for row in rows:
        assert row["parameters(K=40)"] > 0 and row["forward clouds/s (1024 pts)"] > 0
    assert "point_features" in by_name["dgcnn"]["provides"] and "point_features" not in by_name["pct"]["provides"]


def test_list_datasets_shows_presence(tmp_path):
    rows = json.loads(ddbench("list", "datasets", "--json", "--data-root", str(tmp_path)).stdout)
    data = {r["name"]: r["data"] for r in rows}
    assert data["shapes"].startswith("present") and data["modelnet40"] == "missing"


def test_plugins_command_lists_builtins():
    rows = json.loads(ddbench("plugins", "--json").stdout)
    assert all(r["status"] == "loaded" for r in rows if r["builtin"])
    assert any(("method", "random") in [tuple(c) for c in r["components"]] for r in rows)


@pytest.mark.parametrize("args,needle", [
    (["run", "--methods", "herdng"], "did you mean 'herding'"),
    (["run", "--datasets", "modelnet41"], "did you mean 'modelnet40' or 'modelnet10'"),
    (["run", "--ppc", "1,x"], "--ppc must be comma-separated integers"),
    (["run", "--set", "random.foo=1"], "foo: not a known option"),
    (["run", "--set", "nonsense"], "COMPONENT.KEY=VALUE"),
    (["run", "--set", "sadm.lr=1"], "invalid method 'sadm' config: lr: not a known option"),
    (["run", "--set", "sadmm.lr=1"], "unknown component 'sadmm'; did you mean 'sadm'"),
    (["run", "--device", "tpu"], "unknown device"),
    (["list", "method-s"], "unknown component kind"),
    (["table", "--results", "/nonexistent/dir"], "does not exist"),
    (["eval", "/nonexistent.h5"], "does not exist"),
])
def test_bad_input_gives_one_line_error(args, needle):
    line = one_line_error(ddbench(*args, check=False))
    assert needle in line, line


def test_missing_data_error(tmp_path):
    line = one_line_error(ddbench("run", "--datasets", "modelnet10", "--data-root", str(tmp_path), check=False))
    assert "ModelNet10 not found" in line and "--data-root" in line


def test_a_run_leaves_every_listing_cached(tmp_path):
    """A run has the registries loaded: it stores every kind's listing, and a first ``ddbench list`` after it
    answers from those files instead of rebuilding them (docs/plugins.md#how-fast-a-listing-answers)."""
    env = {"DDBENCH_CACHE": str(tmp_path / "cache")}
    ddbench("run", "--datasets", "shapes", "--methods", "random", "--ppc", "1", "--eval-nets", "1", "--epochs", "1",
            "--device", "cpu", "--results", str(tmp_path / "runs"), *TINY, env=env)
    stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "listings").glob("*.json")}
    kinds = {json.loads(p.read_text())["key"]["kind"] for p in stored}
    assert kinds == {"method", "backbone", "dataset", "protocol", "executor", "transform", "preset"}
    listed = json.loads(ddbench("list", "backbones", "--json", env=env).stdout)
    assert {p: p.stat().st_mtime_ns for p in stored} == stored  # served, not rebuilt
    assert len(list((tmp_path / "cache" / "listings").glob("*.json"))) == len(stored)
    assert {row["name"] for row in listed} >= {"pointnet", "dgcnn"}


def test_run_table_distill_eval_round_trip(tmp_path):
    results = tmp_path / "runs"
    ddbench("run", "--datasets", "shapes", "--methods", "random,kcenter", "--ppc", "1,2", "--eval-nets", "2",
            "--epochs", "2", "--device", "cpu", "--results", str(results), "--set", "kcenter.embedding=random", *TINY)
    assert len(list((results / "cells").glob("*.json"))) == 4
    dry = ddbench("run", "--datasets", "shapes", "--methods", "random,kcenter", "--ppc", "1,2", "--eval-nets", "2",
                  "--epochs", "2", "--results", str(results), "--set", "kcenter.embedding=random", *TINY,
                  "--dry-run")
    assert "4 cells" in dry.stdout
    for fmt, needle in [("latex", r"\begin{tabular}"), ("markdown", "| Method |"), ("csv", "shapes_ppc1_mean")]:
        text = ddbench("table", "--results", str(results), "--format", fmt).stdout
        assert needle in text and "Random" in text
    out = tmp_path / "table.tex"
    ddbench("table", "--results", str(results), "--format", "latex", "--output", str(out))
    assert out.read_text().startswith(r"\begin{table}")
    assert "4 ok, 0 failed" in ddbench("status", "--results", str(results)).stdout

    art = tmp_path / "set.h5"
    ddbench("distill", "--method", "random", "--dataset", "shapes", "--ppc", "2", "--out", str(art), *TINY)
    res = tmp_path / "eval.json"
    ev = ddbench("eval", str(art), "--eval-nets", "2", "--epochs", "2", "--device", "cpu", "--output", str(res))
    assert "OA" in ev.stdout
    rec = json.loads(res.read_text())
    assert rec["protocol"] == "sadm" and len(rec["results"]["nets"]) == 2
    assert rec["artifact_sha256"] and rec["environment"]["device"] == "cpu"


def test_example_plugin_package_installs_and_runs_in_a_grid(tmp_path):
    """Install plugins/ddbench-example-method into a target dir and use its method in a grid."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO / "plugins" / "ddbench-example-method")],
        capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(target)])}
    plugins = json.loads(ddbench("plugins", "--json", env=env).stdout)
    example = next(p for p in plugins if p["name"] == "example_medoid")
    assert example["status"] == "loaded" and example["distribution"] == "ddbench-example-method"
    assert example["components"] == [["method", "medoid"]]

    results = tmp_path / "runs"
    ddbench("run", "--datasets", "shapes", "--methods", "medoid,random", "--ppc", "1", "--eval-nets", "1",
            "--epochs", "2", "--device", "cpu", "--results", str(results), "--set", "medoid.points=32", *TINY,
            env=env)
    recs = [json.loads(p.read_text()) for p in (results / "cells").glob("*.json")]
    medoid = next(r for r in recs if r["method"] == "medoid")
    assert medoid["status"] == "ok" and medoid["spec"]["method_config"] == {"points": 32, "references": 32}
    assert len(medoid["artifact"]["info"]["selected_indices"]) == 10

    # the allow/deny variable switches it off again, and the CLI says what is known
    blocked = ddbench("run", "--methods", "medoid", check=False, env={**env, "DDBENCH_DISABLE_PLUGINS": "example_medoid"})
    assert "unknown method 'medoid'" in one_line_error(blocked)


def test_broken_installed_plugin_is_reported_not_fatal(tmp_path):
    """A distribution whose plugin module fails to import: `ddbench plugins` reports it, other commands work."""
    site = tmp_path / "site"
    pkg = site / "broken_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import does_not_exist_anywhere\n")
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ddbench]\nbroken = broken_plugin\n")
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    rows = json.loads(ddbench("plugins", "--json", env=env).stdout)
    broken = next(r for r in rows if r["name"] == "broken")
    assert broken["status"] == "broken" and "does_not_exist_anywhere" in broken["error"]
    table = ddbench("plugins", env=env).stdout
    assert "broken" in table
    assert "herding" in ddbench("list", "methods", env=env).stdout

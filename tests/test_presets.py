"""Table presets: each expands to exactly the grid of its published table, the comparison columns are right,
and the published numbers agree with the papers' text."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from ddbench.cells.record import CellRecord
from ddbench.errors import ConfigError
from ddbench.pipeline.presets import narrowed, preset_cells, preset_class
from ddbench.plugins import get_registries
from ddbench.tables.layouts import load_published
from ddbench.tables.preset import comparison_frame

QUOTES = Path(__file__).parent / "data" / "published_quotes_sadm2025.md"


def published_entries(source: str, table: str, datasets=None) -> set[tuple]:
    pub = load_published(source)
    pub = pub[pub["table"] == table]
    if datasets is not None:
        pub = pub[pub["dataset"].isin(datasets)]
    return {(r.dataset, r.method, None if math.isnan(r.ppc) else int(r.ppc), r.backbone) for r in pub.itertuples()}


def without_ppc(cells: set[tuple]) -> set[tuple]:
    return {(d, m, b) for d, m, _, b in cells}


def test_every_preset_names_registered_components():
    reg = get_registries()
    assert len(reg.preset) >= 10
    for info in reg.preset:
        for run in info.cls.experiments():
            for m in run["methods"]:
                reg.method.get(m)
            for d in run["datasets"]:
                reg.dataset.get(d)
            for b in run.get("eval_backbones", []) + run.get("distill_backbones", []):
                reg.backbone.get(b)
            reg.protocol.get(run["protocol"])


@pytest.mark.parametrize("name,table", [("sadm2025.table1", "1"), ("ddp3d2026.main", "main"),
                                        ("sadm2025.table6", "6"), ("sadm2025.table5", "5")])
def test_presets_expand_to_exactly_their_tables_grid(name, table):
    source = name.split(".")[0]
    cells = preset_cells(name)
    pub = published_entries(source, table)
    if table in ("5", "6"):  # no full-data row in these tables
        cells = {c for c in cells if c[1] != "whole"}
    assert cells == pub, (sorted(cells - pub), sorted(pub - cells))


def test_cross_architecture_preset_covers_table_2():
    """Table 2 does not print its PPC: compare everything else."""
    pub = {(d, m, {"pointnet2": "pointnet2_msg"}.get(b, b)) for d, m, b in without_ppc(published_entries("sadm2025", "2"))}
    assert without_ppc(preset_cells("sadm2025.table2")) == pub


def test_dd3d_table1_preset_covers_the_aligned_setting():
    cells = preset_cells("dd3d2025.table1")
    pub = published_entries("dd3d2025", "1", datasets=["modelnet40", "scanobjectnn"])
    assert pub <= cells  # the paper leaves some ScanObjectNN cells empty
    assert {c[0] for c in cells} == {"modelnet40", "scanobjectnn"}


def test_the_initialisation_preset_runs_one_grid_per_init():
    runs = preset_class("sadm2025.table4").experiments()
    assert [r["method_config"]["sadm"]["init"] for r in runs] == ["noise", "random", "kcenter", "herding"]


def test_narrowing_keeps_only_what_the_preset_has():
    run = preset_class("sadm2025.table1").experiments()[0]
    small = narrowed(run, {"datasets": ["modelnet10"], "ppc": [1, 3]}, "sadm2025.table1")
    assert small["datasets"] == ["modelnet10"] and small["ppc"] == [1, 3] and small["methods"] == run["methods"]
    with pytest.raises(ConfigError, match="has no ppc"):
        narrowed(run, {"ppc": [50]}, "sadm2025.table1")


def record(method, ppc, accs, budget=None, release="hdf5 release", version="2", seed=0):
    devs = [{"what": "eval_nets", "reference": 10, "used": len(accs), "kind": "budget"}] if budget else []
    return CellRecord.model_validate({
        "schema": "ddbench-cell", "cell_id": f"{method}{ppc}s{seed}", "status": "ok", "dataset": "modelnet10",
        "method": method, "ppc": ppc, "seed": seed, "eval_backbone": "pointnet", "protocol": "sadm",
        "protocol_version": version,
        "deviations": devs, "data": {"release": {"release": release.split()[0], "sampling": "s"}},
        "results": {"nets": [{"seed": i, "oa": a, "macc": a} for i, a in enumerate(accs)], "ddof": 0}})


def test_comparison_columns_on_a_fixture():
    pub = pd.DataFrame([
        {"dataset": "modelnet10", "method": "random", "ppc": 1.0, "backbone": "pointnet", "mean": 35.5, "std": 4.7},
        {"dataset": "modelnet10", "method": "sadm", "ppc": 1.0, "backbone": "pointnet", "mean": 44.7, "std": 6.1},
        {"dataset": "modelnet10", "method": "dm", "ppc": 1.0, "backbone": "pointnet", "mean": 31.9, "std": 4.3},
        {"dataset": "modelnet10", "method": "whole", "ppc": float("nan"), "backbone": "pointnet", "mean": 91.4,
         "std": float("nan")}])
    recs = [record("random", 1, [24.0, 26.0], budget=True), record("sadm", 1, [30.0, 31.0]),
            record("whole", None, [90.0, 91.0])]
    frame = comparison_frame(recs, pub, paper_release="text release").set_index("method")
    assert frame.loc["random", "ours"] == "25.0 ± 1.0" and frame.loc["random", "difference"] == "-10.5"
    assert frame.loc["random", "within_2std"] == "no" and "reduced budget" in frame.loc["random", "marks"]
    assert "other data release" in frame.loc["random", "marks"]
    assert frame.loc["sadm", "within_2std"] == "no" and frame.loc["sadm", "nets"] == 2  # 30.5 < 44.7 - 12.2
    assert frame.loc["dm", "ours"] == "not run" and frame.loc["dm", "within_2std"] == ""
    assert frame.loc["whole", "within_2std"].startswith("n/a") and frame.loc["whole", "difference"] == "-0.9"
    inside = comparison_frame([record("random", 1, [33.0, 34.0])], pub[:1], "hdf5 release").iloc[0]
    assert inside["within_2std"] == "yes" and inside["marks"] == ""


def test_comparison_marks_an_older_protocol_and_the_spread_over_draws():
    pub = pd.DataFrame([{"dataset": "modelnet10", "method": "random", "ppc": 1.0, "backbone": "pointnet",
                         "mean": 35.5, "std": 4.7}])
    recs = [record("random", 1, [20.0, 22.0], version="1", seed=0), record("random", 1, [30.0, 32.0], version="1",
                                                                            seed=1)]
    row = comparison_frame(recs, pub, "hdf5 release", current_versions={"sadm": "2"}).iloc[0]
    assert "protocol sadm v1 (now v2" in row["marks"]
    assert "2 draws, ± 5.0 over draws" in row["marks"]  # draw means 21 and 31, ddof 0
    current = comparison_frame(recs[:1], pub, "hdf5 release", current_versions={"sadm": "1"}).iloc[0]
    assert current["marks"] == ""
    both = comparison_frame([record("random", 1, [26.0, 28.0], version="2")] + recs, pub, "hdf5 release",
                            current_versions={"sadm": "2"})
    assert list(both["ours"]) == ["27.0 ± 1.0", "26.0 ± 1.0"]  # one row per protocol version, the current first
    assert list(both["within_2std"]) == ["yes", "no"] and "v1" in both["marks"].iloc[1]


@pytest.mark.parametrize("table", ["1", "3", "5", "6"])
def test_a_sample_of_published_numbers_matches_the_papers_text(table):
    text = re.sub(r"(\d) \. (\d)", r"\1.\2", QUOTES.read_text())
    pub = load_published("sadm2025")
    rows = pub[pub["table"] == table]
    assert len(rows) >= 8
    for r in rows.itertuples():
        assert f"{r.mean:g}" in text or f"{r.mean:.2f}" in text or f"{r.mean:.1f}" in text, (table, r)


# -- ddbench run --preset ---------------------------------------------------------------------------------------


def invoke(*args):
    from typer.testing import CliRunner

    from ddbench.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


def error_of(res) -> str:
    """The one-line error the CLI prints for a ConfigError (raised through the test runner's app)."""
    assert res.exit_code != 0
    return res.output + str(res.exception)


def test_run_preset_plans_the_tables_grid_over_the_datasets_present(modelnet10_root):
    res = invoke("run", "--preset", "sadm2025.table1", "--data-root", modelnet10_root, "--dry-run")
    assert res.exit_code == 0, res.output
    planned = {tuple(line.split()[0].split("__")[1:3]) for line in res.output.splitlines() if "__" in line}
    methods = preset_class("sadm2025.table1").grid["methods"]
    expected = {(m, f"ppc{p}") for m in methods if m != "whole" for p in (1, 3, 10)} | {("whole", "all")}
    assert planned == expected  # only ModelNet10 is present: its 19 cells, nothing else
    assert all(line.startswith("modelnet10__") for line in res.output.splitlines() if "__" in line)


def test_run_preset_runs_a_narrowed_cell_that_table_preset_then_shows(modelnet10_root, tmp_path):
    results = tmp_path / "res"
    res = invoke("run", "--preset", "sadm2025.table1", "--data-root", modelnet10_root, "--methods", "random",
                 "--ppc", "1", "--epochs", "1", "--eval-nets", "1", "--device", "cpu", "--results", results)
    assert res.exit_code == 0, res.output
    (cell,) = (results / "cells").glob("*.json")
    record = CellRecord.model_validate_json(cell.read_text())
    assert (record.spec["dataset"], record.spec["method"], record.spec["ppc"]) == ("modelnet10", "random", 1)
    shown = invoke("table", "--preset", "sadm2025.table1", "--results", results, "--format", "csv")
    assert shown.exit_code == 0, shown.output
    frame = pd.read_csv(io.StringIO(shown.output))
    row = frame[(frame.method == "Random") & (frame.dataset == "ModelNet10") & (frame.ppc == 1)].iloc[0]
    assert row.ours != "not run" and row.nets == 1
    assert "budget" in str(row.marks)  # 1 epoch and 1 net instead of 500 and 10: marked as a reduced budget
    others = frame[(frame.method != "Random") | (frame.ppc != 1)]
    assert (others.ours == "not run").all()
    caption = invoke("table", "--preset", "sadm2025.table1", "--results", results).output.splitlines()[0]
    assert "mean ± std over evaluation nets, ddof=0" in caption  # the spread is named, with its ddof


def test_run_preset_refuses_a_config_file_and_unknown_axes(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('methods = ["random"]\n')
    res = invoke("run", "--preset", "sadm2025.table1", "--config", cfg, "--dry-run")
    assert "give one of them" in error_of(res)
    res = invoke("run", "--preset", "sadm2025.table1", "--methods", "nosuch", "--dry-run")
    assert "has no methods ['nosuch']" in error_of(res)


def test_run_preset_without_any_of_its_data_says_how_to_get_it(tmp_path):
    res = invoke("run", "--preset", "sadm2025.table1", "--data-root", tmp_path, "--dry-run")
    assert "--data-root" in error_of(res)

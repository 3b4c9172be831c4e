"""Tables derived from cell files: tidy rows, aggregation levels, and golden LaTeX/Markdown/CSV renderings.

To update the golden files after an intended change of layout: ``DDBENCH_UPDATE_GOLDEN=1 pytest tests/test_tables.py``
and review the diff.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ddbench.errors import DDBenchError
from ddbench.io import write_json_atomic
from ddbench.pipeline import make_tables
from ddbench.tables import aggregate, read_cells, tidy_frame

GOLDEN = Path(__file__).parent / "golden"


def cell(dataset, method, ppc, seed, accs, budget=None, eval_backbone="pointnet", dbb="pointnet",
         selection="final", status="ok"):
    devs = [{"what": "epochs", "reference": 500, "used": budget, "kind": "budget"}] if budget else []
    rec = {
        "schema": "ddbench-cell", "schema_version": 1,
        "cell_id": f"{dataset}__{method}__{ppc}__{seed}__{eval_backbone}__{budget}__{selection}",
        "status": status, "dataset": dataset, "method": method, "ppc": ppc, "seed": seed,
        "distill_backbone": dbb if method not in ("random", "whole") else None,
        "eval_backbone": eval_backbone, "protocol": "sadm", "protocol_version": "1", "deviations": devs,
        "environment": {"device": "cpu", "device_name": "test-cpu", "versions": {"ddbench": "0.1.0", "torch": "x"}},
        "artifact": {"storage": {"floats": 3072 * (ppc or 100), "bytes": 4 * 3072 * (ppc or 100)}},
        "timing": {"distill_seconds": 1.0, "eval_seconds": 2.0}, "memory": {"peak_rss_bytes": 1},
    }
    if status == "ok":
        rec["results"] = {
            "nets": [{"seed": 1996 + i, "oa": a, "macc": a - 1, "selected_epoch": 500, "epochs": 500}
                     for i, a in enumerate(accs)],
            "selection": selection, "ddof": 0, "engine": "sequential",
        }
    else:
        rec["error"] = "boom"
    return rec


def write_cells(root: Path, cells: list[dict]) -> Path:
    for c in cells:
        write_json_atomic(root / "cells" / f"{c['cell_id']}.json", c)
    return root


@pytest.fixture
def results(tmp_path) -> Path:
    cells = [
        cell("modelnet10", "random", 1, 0, [30.0, 34.0, 38.0]),
        cell("modelnet10", "random", 1, 1, [20.0, 22.0, 24.0]),
        cell("modelnet10", "random", 3, 0, [75.0, 76.0, 77.0]),
        cell("modelnet10", "herding", 1, 0, [40.0, 41.0, 42.0]),
        cell("modelnet10", "herding", 3, 0, [78.0, 78.5, 79.0]),
        cell("modelnet10", "kcenter", 1, 0, [40.0, 41.0, 42.0]),
        cell("modelnet10", "kcenter", 3, 0, [77.0, 77.5, 78.0], budget=50),
        cell("modelnet40", "random", 1, 0, [34.0, 35.0, 36.0]),
        cell("modelnet40", "herding", 1, 0, [54.0, 55.0, 56.0]),
        cell("modelnet10", "whole", None, 0, [91.0, 91.5, 92.0]),
        cell("modelnet10", "random", 10, 0, [0.0], status="failed"),
    ]
    return write_cells(tmp_path / "runs", cells)


def test_tidy_has_one_row_per_net_of_successful_cells(results):
    cells, bad = read_cells(results)
    assert len(cells) == 11 and bad == []
    tidy = tidy_frame(cells)
    assert len(tidy) == 10 * 3
    assert set(tidy.columns) >= {"dataset", "method", "ppc", "seed", "net", "net_seed", "oa", "macc", "protocol",
                                 "protocol_version", "budget", "device", "torch_version"}
    assert tidy[tidy["method"] == "kcenter"]["budget"].str.contains("epochs=50").sum() == 3


def test_aggregate_reports_both_levels_of_spread(results):
    agg = aggregate(tidy_frame(read_cells(results)[0]))
    r = agg[(agg["method"] == "random") & (agg["ppc"] == 1) & (agg["dataset"] == "modelnet10")].iloc[0]
    assert r["n_draws"] == 2 and r["n_nets"] == 6
    assert r["mean"] == pytest.approx(28.0)
    within = [np.std([30, 34, 38]), np.std([20, 22, 24])]
    assert r["std_nets"] == pytest.approx(np.sqrt(np.mean(np.square(within))))
    assert r["std_draws"] == pytest.approx(np.std([34.0, 22.0]))
    one = agg[(agg["method"] == "herding") & (agg["ppc"] == 1) & (agg["dataset"] == "modelnet10")].iloc[0]
    assert np.isnan(one["std_draws"])  # a single draw has no spread over draws


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DDBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with DDBENCH_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("fmt,ext", [("latex", "tex"), ("markdown", "md"), ("csv", "csv")])
def test_golden_renderings(results, fmt, ext):
    check_golden(f"table.{ext}", make_tables(results, fmt))


def test_golden_with_published_rows(results):
    check_golden("table_published.md", make_tables(results, "markdown", published="sadm2025",
                                                   datasets=["modelnet10"]))


def test_best_bold_second_underlined_whole_excluded(results):
    md = make_tables(results, "markdown")
    # ModelNet10 PPC 1: herding = kcenter = 41.0 (both bold), random 28.0 second
    herding_row = next(line for line in md.splitlines() if line.startswith("| Herding"))
    assert "**41.0 ± 0.8**" in herding_row
    random_row = next(line for line in md.splitlines() if line.startswith("| Random"))
    assert "<u>28.0 ± 2.6</u>" in random_row  # RMS of the per-draw stds 3.27 and 1.63
    whole_row = next(line for line in md.splitlines() if line.startswith("| Whole"))
    assert "**" not in whole_row and "91.5" in whole_row


def test_budget_deviation_is_marked_with_a_footnote(results):
    md = make_tables(results, "markdown")
    kc = [line for line in md.splitlines() if line.startswith("| K-Center")]
    assert any("†" in line for line in kc) and "† epochs=50 (ref. 500)" in md


def test_test_set_selection_gets_its_own_labelled_table(tmp_path):
    root = write_cells(tmp_path / "runs", [
        cell("modelnet10", "random", 1, 0, [30.0, 31.0]),
        cell("modelnet10", "random", 1, 0, [40.0, 41.0], selection="best_test"),
    ])
    md = make_tables(root, "markdown")
    assert md.count("| Method |") == 2
    assert "BEST EPOCH ON THE TEST SET" in md


def test_tidy_and_long_csv_formats(results):
    tidy = pd.read_csv(io.StringIO(make_tables(results, "tidy")))
    assert len(tidy) == 30
    long = pd.read_csv(io.StringIO(make_tables(results, "long")))
    assert {"mean", "std_nets", "std_draws", "n_draws", "n_nets", "ddof"} <= set(long.columns)


def test_empty_or_missing_results_are_clear(tmp_path):
    with pytest.raises(DDBenchError, match="does not exist"):
        make_tables(tmp_path / "nope")
    root = write_cells(tmp_path / "runs", [cell("modelnet10", "random", 1, 0, [1.0], status="failed")])
    with pytest.raises(DDBenchError, match="no finished cells.*1 failed"):
        make_tables(root)


def test_unreadable_cell_file_is_skipped(results):
    (results / "cells" / "broken.json").write_text("{")
    cells, bad = read_cells(results)
    assert len(cells) == 11 and len(bad) == 1 and "broken.json" in bad[0]
    assert "| Random" in make_tables(results, "markdown")  # the table still renders


def test_backbone_layout_rows_are_evaluation_networks(tmp_path):
    root = write_cells(tmp_path / "runs", [
        cell("modelnet10", "dm", 10, 0, [50.0, 52.0], eval_backbone="pointnet"),
        cell("modelnet10", "sadm", 10, 0, [80.0, 82.0], eval_backbone="pointnet"),
        cell("modelnet10", "dm", 10, 0, [35.0, 37.0], eval_backbone="dgcnn"),
        cell("modelnet10", "sadm", 10, 0, [79.0, 81.0], eval_backbone="dgcnn"),
        cell("modelnet10", "sadm", 3, 0, [70.0, 71.0], eval_backbone="dgcnn"),
    ])
    md = make_tables(root, "markdown", layout="backbones")
    assert md.count("| Evaluated on |") == 2  # one table per PPC
    assert "| Evaluated on | ModelNet10 DM | ModelNet10 SADM |" in md
    dgcnn_row = next(line for line in md.splitlines() if line.startswith("| DGCNN") and "36.0" in line)
    assert "<u>36.0 ± 1.0</u>" in dgcnn_row and "**80.0 ± 1.0**" in dgcnn_row  # ranked within the row
    latex = make_tables(root, "latex", layout="backbones", ppc=[10])
    assert "Evaluated on" not in latex.split("toprule")[0] and r"Method & DM & SADM \\" in latex
    csv = make_tables(root, "csv", layout="backbones", ppc=[10])
    assert csv.splitlines()[0].startswith("eval_backbone,label,kind,marks,modelnet10_dm_mean")
    with_pub = make_tables(root, "markdown", layout="backbones", ppc=[10], published="sadm2025")
    assert "| DGCNN [sadm2025] |" in with_pub and "*56.6 ± 5.3*" in with_pub


def test_unknown_layout_is_clear(results):
    with pytest.raises(DDBenchError, match="unknown table layout 'rows'"):
        make_tables(results, layout="rows")


def test_deviation_labels_drop_a_repeated_field_name():
    from ddbench.cells.deviations import as_deviation
    from ddbench.tables.tidy import _deviation_text

    devs = [as_deviation(d) for d in [{"what": "iterations (iterations)", "used": 20, "reference": 400, "kind": "budget"},
            {"what": "iterations (outer_iterations)", "used": 5, "reference": 50, "kind": "budget"},
            {"what": "eval_nets", "used": 5, "reference": 10, "kind": "budget"}]]
    assert _deviation_text(devs, "budget") == ("iterations=20 (ref. 400); iterations (outer_iterations)=5 "
                                               "(ref. 50); eval_nets=5 (ref. 10)")


def test_several_results_directories_are_read_together_and_others_are_left_out(tmp_path, results):
    other = write_cells(tmp_path / "sadm_runs", [cell("modelnet10", "sadm", 1, 0, [50.0, 52.0])])
    write_cells(tmp_path / "local", [cell("modelnet10", "dm", 1, 0, [10.0])])  # not named: not read
    cells, _ = read_cells([results, other, other / "cells"])  # a directory nested in another counts once
    assert sorted(c.method for c in cells).count("sadm") == 1 and len(cells) == 12
    assert "dm" not in {c.method for c in cells}
    text = make_tables([results, other], datasets=["modelnet10"])
    assert "| SADM |" in text and "| Random |" in text and "| DM |" not in text
    with pytest.raises(DDBenchError, match="missing does not exist"):
        read_cells([results, tmp_path / "missing"])


def test_unreadable_and_misnamed_cell_files_are_named(results, caplog):
    (results / "cells" / "broken.json").write_text("{")
    some = next((results / "cells").glob("modelnet10__herding*.json"))
    (results / "cells" / "renamed.json").write_text(some.read_text())
    cells, bad = read_cells(results)
    assert len(cells) == 11 and len(bad) == 2
    assert any("renamed.json" in b and "not the cell its name says" in b for b in bad)
    make_tables(results, "markdown")
    assert "broken.json" in caplog.text and "renamed.json" in caplog.text

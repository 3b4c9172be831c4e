"""Metrics beyond accuracy (gain over random from the same draw, fraction of the whole-data accuracy, accuracy
per stored byte) and ``ddbench table --significant``."""

from __future__ import annotations

import numpy as np
import pytest

from ddbench.pipeline import make_tables
from ddbench.reports.metrics import metrics_frame
from ddbench.tables import read_cells
from tests.test_reports_fixtures import build_results


@pytest.fixture
def results(tmp_path):
    return build_results(tmp_path / "runs")


def _row(frame, method, ppc, dataset="modelnet10", eval_backbone="pointnet"):
    sel = frame[(frame["method"] == method) & (frame["dataset"] == dataset) & (frame["eval_backbone"] == eval_backbone)]
    sel = sel[sel["ppc"].isna()] if ppc is None else sel[sel["ppc"] == ppc]
    assert len(sel) == 1
    return sel.iloc[0]


def test_gain_over_random_is_taken_draw_by_draw(results):
    frame = metrics_frame(read_cells(results)[0])
    sadm = _row(frame, "sadm", 1)
    # draws 0, 1, 2: 44 - 32, 50 - 36, 47 - 35
    assert sadm["gain_over_random"] == pytest.approx(np.mean([12, 14, 12])) and sadm["gain_draws"] == 3
    herding = _row(frame, "herding", 1)
    assert herding["gain_over_random"] == pytest.approx(46 - 32) and herding["gain_draws"] == 1  # draw 0 only,
    assert herding["gain_over_random"] != pytest.approx(46 - np.mean([32, 36, 35]))  # not random's mean
    assert _row(frame, "sadm", 3)["gain_over_random"] == pytest.approx(np.mean([10, 10.5, 9.5]))
    assert np.isnan(_row(frame, "random", 1)["gain_over_random"])  # the reference itself
    assert np.isnan(_row(frame, "sadm", 1, eval_backbone="dgcnn")["gain_over_random"])  # no random on dgcnn
    assert _row(frame, "herding", 1, "modelnet40")["gain_over_random"] == pytest.approx(0.0)


def test_fraction_of_whole_and_accuracy_per_kib(results):
    frame = metrics_frame(read_cells(results)[0])
    sadm = _row(frame, "sadm", 1)
    assert sadm["whole_mean"] == pytest.approx(90) and sadm["fraction_of_whole"] == pytest.approx(47 / 90)
    assert sadm["acc_per_kib"] == pytest.approx(47 / (4 * 3072 / 1024))
    assert np.isnan(_row(frame, "whole", None)["fraction_of_whole"])
    assert np.isnan(_row(frame, "herding", 1, "modelnet40")["fraction_of_whole"])  # no whole-data cell there


def _pointnet_table(text: str) -> str:
    """The table of the methods distilled with PointNet and evaluated on it."""
    tables = text.split("Overall accuracy (%)")
    return next(t for t in tables if "evaluation network pointnet, distillation network pointnet;" in t)


def test_table_significant_marks_only_what_a_test_supports(results):
    plain = _pointnet_table(make_tables(results, "markdown", datasets=["modelnet10"]))
    marked = _pointnet_table(make_tables(results, "markdown", datasets=["modelnet10"], significant=True))

    def row(text, label):
        return next(line for line in text.splitlines() if line.startswith(f"| {label}"))

    # PPC 1: SADM 47.0 is best at display precision, but not significantly better than Herding 46.0
    assert "**47.0" in row(plain, "SADM†") and "**" not in row(marked, "SADM†").split("|")[2]
    # Herding (second) is significantly better than Random (third): underlined in both
    assert "<u>46.0" in row(marked, "Herding†")
    # PPC 3: SADM over Random by draws (3 against 3), significant: bold; Random has no third: not underlined
    assert "**81.2" in row(marked, "SADM†").split("|")[3]
    assert "<u>" not in row(marked, "Random†")
    assert "Welch's t-test" in marked and "p < 0.05" in marked
    assert "SADM vs Herding p = " in marked and "not significant" in marked
    assert "SADM vs Random p = " in marked and "(draws, 3 vs 3)" in marked
    assert make_tables(results, "latex", significant=True).count(r"\textbf") >= 1


def test_table_significant_ties_and_lone_entries_are_unmarked(results):
    marked = make_tables(results, "markdown", datasets=["modelnet40"], significant=True)
    # Herding 35.0 and Random 35.0 tie at display precision: neither is marked
    assert "**" not in marked and "<u>" not in marked
    assert "Random = Herding tied" in marked or "Herding = Random tied" in marked

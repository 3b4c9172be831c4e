"""``ddbench compare``'s statistics: they equal scipy's on hand-made data, their verdicts are right on a known
significant and a known non-significant pair, and they say when a sample is too small ever to be significant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ddbench.reports import stats as rs
from ddbench.reports.compare import Side, compare_draws, compare_sides, render_comparisons, variant_label
from ddbench.reports.frames import draw_frame, final_tidy
from ddbench.tables import read_cells
from tests.test_reports_fixtures import build_results

A = [81.2, 79.8, 80.5, 82.0, 80.9]
B = [78.1, 79.0, 77.5, 78.8, 79.4]


def test_welch_and_mann_whitney_equal_scipy():
    welch = rs.welch(A, B)
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert welch.statistic == pytest.approx(ref.statistic) and welch.p == pytest.approx(ref.pvalue)
    assert welch.p != pytest.approx(stats.ttest_ind(A, B).pvalue)  # Welch's, not Student's
    mw = rs.mann_whitney(A, B)
    ref = stats.mannwhitneyu(A, B, alternative="two-sided", method="exact")
    assert mw.method == "exact" and mw.statistic == ref.statistic and mw.p == pytest.approx(ref.pvalue)


def test_mann_whitney_falls_back_to_asymptotic_with_ties():
    a, b = [1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]
    mw = rs.mann_whitney(a, b)
    assert mw.method == "asymptotic"
    assert mw.p == pytest.approx(stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


def test_paired_tests_equal_scipy():
    a, b = [44.0, 50.0, 47.0, 52.0], [32.0, 37.0, 34.5, 41.0]
    t, w = rs.paired_tests(a, b)
    assert t.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert w.method == "exact" and w.p == pytest.approx(stats.wilcoxon(a, b, method="exact").pvalue)


def test_bootstrap_interval_equals_scipy_and_covers_the_difference():
    ci = rs.bootstrap_ci(A, B, seed=3)
    ref = stats.bootstrap((np.array(A), np.array(B)), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                          n_resamples=rs.BOOTSTRAP_RESAMPLES, method="percentile", vectorized=True,
                          random_state=np.random.default_rng(3)).confidence_interval
    assert ci == pytest.approx((ref.low, ref.high))
    assert ci[0] < np.mean(A) - np.mean(B) < ci[1]
    assert rs.bootstrap_ci([1.0], B) is None


def test_smallest_attainable_p():
    # complete separation is the most extreme arrangement: scipy's exact p there is the bound
    assert rs.min_exact_mannwhitney_p(3, 3) == pytest.approx(0.1)
    assert stats.mannwhitneyu([1, 2, 3], [4, 5, 6], method="exact").pvalue == pytest.approx(0.1)
    assert rs.min_exact_mannwhitney_p(5, 5) == pytest.approx(2 / 252)
    assert rs.min_exact_wilcoxon_p(3) == pytest.approx(0.25)
    assert stats.wilcoxon([5, 6, 7], [1, 1, 1], method="exact").pvalue == pytest.approx(0.25)
    assert rs.min_exact_wilcoxon_p(6) < 0.05 <= rs.min_exact_wilcoxon_p(5)


def test_too_small_samples_say_so():
    res = rs.compare_samples([80.0, 81.0, 82.0], [70.0, 71.0, 72.0], "nets")
    assert res.mann_whitney.p == pytest.approx(0.1)
    assert any("can never reach p < 0.05" in n and "3 against 3 nets" in n and "0.1" in n for n in res.notes)
    assert res.welch.p < 0.05  # Welch's test can reach it; the rank test cannot
    big = rs.compare_samples(A, B, "nets")
    assert not any("never" in n for n in big.notes)
    one = rs.compare_samples([80.0], B, "draws")
    assert one.welch is None and one.verdict() == "not testable"
    assert any("no t-test" in n for n in one.notes)


def test_verdicts_on_known_pairs():
    significant = rs.compare_samples(A, B, "nets")
    assert significant.verdict(("SADM", "Random")).startswith("SADM better")
    flipped = rs.compare_samples(B, A, "nets")
    assert flipped.verdict(("Random", "SADM")).startswith("SADM better")
    same = rs.compare_samples([35.0, 34.0, 36.0, 33.0, 37.0], [34.0, 36.0, 35.0, 33.0, 37.0], "nets")
    assert same.verdict().startswith("no significant difference")
    assert same.primary.p == pytest.approx(1.0)
    constant = rs.compare_samples([50.0, 50.0], [50.0, 50.0], "draws", paired=([50.0, 50.0], [50.0, 50.0]))
    assert constant.welch.p == 1.0 and constant.paired_t.p == 1.0  # scipy gives nan without variance
    assert constant.verdict().startswith("no significant difference")


def test_issue_example_dd3d_against_gm_is_not_significant():
    """DD3D's bolded 53.82 ± 0.28 against GM's 53.38 ± 0.86 (ModelNet40, CPC 1, 10 numbers each): p = 0.15."""
    res = rs.welch_from_summary(53.82, 0.28, 10, 53.38, 0.86, 10, ddof=1)
    assert res.p == pytest.approx(0.15, abs=0.01)
    assert rs.welch_from_summary(53.82, 0.28, 10, 53.38, 0.86, 10, ddof=0).p > 0.05


def test_the_draw_is_the_unit_when_both_sides_have_several():
    a = Side("A", {0: [44, 45, 46], 1: [50, 51, 52], 2: [47, 48, 49]})
    b = Side("B", {0: [32, 33, 34], 1: [36, 37, 38], 2: [35, 36, 37], 5: [30, 31, 32]})
    res = compare_sides(a, b)
    assert res.unit == "draws"
    assert list(res.a) == [45, 51, 48] and list(res.b) == [33, 37, 36, 31]
    assert res.welch.p == pytest.approx(stats.ttest_ind([45, 51, 48], [33, 37, 36, 31], equal_var=False).pvalue)
    assert res.paired_n == 3  # seeds 0, 1, 2 are shared; 5 is not
    assert res.paired_t.p == pytest.approx(stats.ttest_rel([45, 51, 48], [33, 37, 36]).pvalue)
    assert res.primary is res.paired_t
    assert any("3 shared draws" in n and "Wilcoxon" in n for n in res.notes)


def test_nets_are_the_unit_with_one_draw_and_the_note_says_why():
    res = compare_sides(Side("A", {0: A}), Side("B", {0: B[:3], 1: B[3:]}))
    assert res.unit == "nets" and len(res.a) == 5 and len(res.b) == 5
    assert any("B has several draws" in n for n in res.notes)


def test_compare_draws_on_a_results_directory(tmp_path):
    cells, _ = read_cells(build_results(tmp_path))
    draws = draw_frame(final_tidy(cells))
    comps = compare_draws(draws[draws["method"] == "sadm"], draws[draws["method"] == "random"],
                          variant_label("SADM"), variant_label("Random"))
    by_ppc = {(c.cell["ppc"], c.cell["eval_backbone"]): c for c in comps}
    assert set(by_ppc) == {(1.0, "pointnet"), (3.0, "pointnet")}  # no random cell on dgcnn
    ppc3 = by_ppc[(3.0, "pointnet")].result
    assert ppc3.unit == "draws" and list(ppc3.a) == [80, 81.5, 82] and list(ppc3.b) == [70, 71, 72.5]
    assert ppc3.paired_t.p == pytest.approx(stats.ttest_rel([80, 81.5, 82], [70, 71, 72.5]).pvalue)
    assert by_ppc[(3.0, "pointnet")].verdict().startswith("SADM better")
    herding = compare_draws(draws[(draws["method"] == "herding") & (draws["dataset"] == "modelnet40")],
                            draws[draws["method"] == "random"], variant_label("Herding"), variant_label("Random"))
    assert len(herding) == 1 and herding[0].verdict().startswith("no significant difference")
    text = render_comparisons(comps)
    assert "| ModelNet10 |" not in text and "| modelnet10 | 3 |" in text and "SADM better" in text
    json_rows = render_comparisons(comps, "json")
    assert '"unit": "draws"' in json_rows and not math.isnan(comps[0].result.diff)

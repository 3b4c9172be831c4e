"""Two-sample statistics for comparing methods over few seeds (docs/reports.md#statistics).

Everything here is scipy.stats; this module only chooses the tests and says what they can and cannot show:

- Welch's t-test (``ttest_ind(equal_var=False)``) and the Mann-Whitney U test (exact where the sizes allow and
  there are no ties) between two independent samples;
- a paired t-test and the Wilcoxon signed-rank test (exact) over the draw seeds both sides share;
- a percentile bootstrap confidence interval of the difference of the means;
- the smallest p-value an exact rank test can reach at the given sizes, so that a comparison that can never be
  significant (3 against 3 nets: an exact two-sided Mann-Whitney p is at least 2 / C(6, 3) = 0.1) says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

ALPHA = 0.05
#: an exact Mann-Whitney U distribution is computed up to this many observations in all (and only without ties)
EXACT_MAX_TOTAL = 60
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class TestResult:
    """One test: its name, statistic, two-sided p-value and how it was computed."""

    name: str
    statistic: float
    p: float
    method: str = ""


@dataclass
class SampleComparison:
    """Two samples (``a``, ``b``) at one unit (nets or draws) and every test between them."""

    unit: str
    a: np.ndarray
    b: np.ndarray
    welch: TestResult | None = None
    mann_whitney: TestResult | None = None
    paired_t: TestResult | None = None
    wilcoxon: TestResult | None = None
    paired_n: int = 0
    ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    notes: list[str] = field(default_factory=list)

    @property
    def diff(self) -> float:
        return float(np.mean(self.a) - np.mean(self.b)) if len(self.a) and len(self.b) else math.nan

    @property
    def primary(self) -> TestResult | None:
        """The test the verdict follows: the paired t-test over shared draws when there is one, else Welch's."""
        return self.paired_t or self.welch

    def verdict(self, names: tuple[str, str] = ("A", "B"), alpha: float = ALPHA) -> str:
        test = self.primary
        if test is None or not math.isfinite(test.p):
            return "not testable"
        if test.p < alpha:
            return f"{names[0] if self.diff > 0 else names[1]} better (p = {test.p:.3g} < {alpha:g})"
        return f"no significant difference (p = {test.p:.3g})"


def min_exact_mannwhitney_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give with ``n1`` against ``n2``
    observations (complete separation, no ties): 2 / C(n1 + n2, n1)."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def min_exact_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give with ``n`` pairs: 2 / 2^n."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2**n)


def welch(a, b) -> TestResult | None:
    """Welch's t-test (unequal variances); None when a side has fewer than 2 values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return None
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no variance on either side (scipy: nan): the means decide
        same = a[0] == b[0]
        return TestResult("Welch t", 0.0 if same else math.copysign(math.inf, a[0] - b[0]), 1.0 if same else 0.0,
                          "no variance on either side")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
    return TestResult("Welch t", float(res.statistic), float(res.pvalue), "ttest_ind(equal_var=False)")


def welch_from_summary(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int,
                       ddof: int = 0) -> TestResult:
    """Welch's t-test from published summaries (mean, std with ``ddof``, n)."""
    s1, s2 = (std * math.sqrt(n / (n - 1)) if ddof == 0 else std for std, n in ((std1, n1), (std2, n2)))
    res = stats.ttest_ind_from_stats(mean1, s1, n1, mean2, s2, n2, equal_var=False)
    return TestResult("Welch t", float(res.statistic), float(res.pvalue), "ttest_ind_from_stats(equal_var=False)")


def mann_whitney(a, b) -> TestResult | None:
    """The Mann-Whitney U test, exact when there are no ties and the samples are small enough."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 1 or len(b) < 1:
        return None
    ties = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    method = "exact" if not ties and len(a) + len(b) <= EXACT_MAX_TOTAL else "asymptotic"
    res = stats.mannwhitneyu(a, b, alternative="two-sided", method=method)
    return TestResult("Mann-Whitney U", float(res.statistic), float(res.pvalue), method)


def paired_tests(a, b) -> tuple[TestResult | None, TestResult | None]:
    """The paired t-test and the exact Wilcoxon signed-rank test of ``a[i]`` against ``b[i]``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2:
        return None, None
    d = a - b
    if np.ptp(d) == 0:  # every pair differs by the same amount (scipy: nan): that amount decides
        same = d[0] == 0
        paired = TestResult("paired t", 0.0 if same else math.copysign(math.inf, d[0]), 1.0 if same else 0.0,
                            "constant differences")
        if same:
            return paired, TestResult("Wilcoxon signed-rank", 0.0, 1.0, "all differences zero")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t = stats.ttest_rel(a, b)
        paired = TestResult("paired t", float(t.statistic), float(t.pvalue), "ttest_rel")
    ties = len(np.unique(np.abs(d[d != 0]))) < np.count_nonzero(d) or np.any(d == 0)
    method = "approx" if ties else "exact"
    w = stats.wilcoxon(a, b, alternative="two-sided", method=method)
    return paired, TestResult("Wilcoxon signed-rank", float(w.statistic), float(w.pvalue), method)


def bootstrap_ci(a, b, level: float = 0.95, seed: int = 0,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(a) - mean(b), resampling each side independently."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return None

    def diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    res = stats.bootstrap((a, b), diff, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def power_notes(n_a: int, n_b: int, unit: str, paired_n: int, alpha: float = ALPHA) -> list[str]:
    """What the sample sizes rule out, in words."""
    notes = []
    if n_a < 2 or n_b < 2:
        notes.append(f"{min(n_a, n_b)} {unit} on one side: no t-test and no interval are possible")
    p_min = min_exact_mannwhitney_p(n_a, n_b)
    if p_min >= alpha:
        notes.append(f"with {n_a} against {n_b} {unit} an exact Mann-Whitney test can never reach p < {alpha:g} "
                     f"(smallest attainable p = {p_min:.3g})")
    if paired_n >= 2 and min_exact_wilcoxon_p(paired_n) >= alpha:
        notes.append(f"with {paired_n} shared draws an exact Wilcoxon test can never reach p < {alpha:g} "
                     f"(smallest attainable p = {min_exact_wilcoxon_p(paired_n):.3g})")
    return notes


def compare_samples(a, b, unit: str = "nets", paired: tuple | None = None, level: float = 0.95,
                    alpha: float = ALPHA, seed: int = 0) -> SampleComparison:
    """Every test between samples ``a`` and ``b`` (``unit``: what one value is); ``paired`` = (a', b'), the
    per-draw values of the draws both sides share, for the paired tests."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = SampleComparison(unit, a, b, welch(a, b), mann_whitney(a, b), ci=bootstrap_ci(a, b, level, seed),
                           ci_level=level)
    if paired is not None and len(paired[0]) >= 2:
        out.paired_n = len(paired[0])
        out.paired_t, out.wilcoxon = paired_tests(*paired)
    out.notes = power_notes(len(a), len(b), unit, out.paired_n, alpha)
    return out

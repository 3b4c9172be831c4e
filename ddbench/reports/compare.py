"""``ddbench compare``: two methods (or two results directories) cell by cell, with significance.

A *cell* here is one evaluation of one kind of set: dataset, PPC, protocol, evaluation network, selection rule,
data release, storage budget and evaluation settings. Each side's draws of that cell are compared:

- with several draws on both sides the draw is the unit (its value: the mean of its nets), because the nets of
  one draw share one synthetic set and are not independent; otherwise the nets are the unit, with a note when one
  side has several draws (its spread then mixes the draws, which the other side cannot show);
- draw seeds both sides have are paired (the same seed draws the same initial clouds), for the paired tests;
- every comparison says when its sizes can never reach significance (:func:`ddbench.reports.stats.power_notes`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddbench.reports.stats import ALPHA, SampleComparison, compare_samples
from ddbench.tables.layouts import Labels

CELL_KEYS = ["protocol", "protocol_version", "dataset", "ppc", "eval_backbone", "selection", "data_release",
             "budget_bytes", "eval_settings"]
VARIANT_KEYS = ["method", "distill_backbone", "budget", "config_deviation"]


@dataclass
class Side:
    """One side of a comparison: its label and the per-net values of each draw seed."""

    label: str
    draws: dict[int, list[float]]
    variant: dict = field(default_factory=dict)

    @property
    def values(self) -> list[float]:
        return [v for seed in sorted(self.draws) for v in self.draws[seed]]

    @property
    def draw_means(self) -> dict[int, float]:
        return {s: float(np.mean(v)) for s, v in self.draws.items()}


@dataclass
class CellComparison:
    cell: dict
    a: Side
    b: Side
    result: SampleComparison

    def verdict(self, alpha: float = ALPHA) -> str:
        return self.result.verdict((self.a.label, self.b.label), alpha)


def compare_sides(a: Side, b: Side, level: float = 0.95, alpha: float = ALPHA, seed: int = 0) -> SampleComparison:
    """The tests between two sides, at the draw when both have several draws, else at the net."""
    shared = sorted(set(a.draws) & set(b.draws))
    paired = ([a.draw_means[s] for s in shared], [b.draw_means[s] for s in shared]) if len(shared) >= 2 else None
    if len(a.draws) >= 2 and len(b.draws) >= 2:
        result = compare_samples(list(a.draw_means.values()), list(b.draw_means.values()), "draws", paired, level,
                                 alpha, seed)
    else:
        result = compare_samples(a.values, b.values, "nets", paired, level, alpha, seed)
        several = [s.label for s in (a, b) if len(s.draws) >= 2]
        if several:
            result.notes.append(f"{' and '.join(several)} has several draws but the other side one: compared over "
                                "nets, so the other side's draw-to-draw spread is unknown; read it as indicative")
    return result


def _sides(draws: pd.DataFrame, label) -> dict[tuple, list[Side]]:
    out: dict[tuple, list[Side]] = {}
    several = draws.drop_duplicates(VARIANT_KEYS).groupby("method").size() > 1
    for key, g in draws.groupby(CELL_KEYS + VARIANT_KEYS, dropna=False, sort=False):
        cell, variant = key[: len(CELL_KEYS)], dict(zip(VARIANT_KEYS, key[len(CELL_KEYS):]))
        variant["several"] = bool(several.get(variant["method"], False))
        out.setdefault(cell, []).append(Side(label(variant), {int(r.seed): list(r.values) for r in g.itertuples()},
                                             variant))
    return out


def compare_draws(draws_a: pd.DataFrame, draws_b: pd.DataFrame, label_a, label_b, level: float = 0.95,
                  alpha: float = ALPHA) -> list[CellComparison]:
    """Every cell both frames (:func:`ddbench.reports.frames.draw_frame`) have, each variant of A against each
    of B (variants: distillation network, budget and config deviations). ``label_a``/``label_b`` name a side
    from its variant."""
    a, b = _sides(draws_a, label_a), _sides(draws_b, label_b)
    out = []
    for cell in [c for c in a if c in b]:
        for side_a in a[cell]:
            for side_b in b[cell]:
                out.append(CellComparison(dict(zip(CELL_KEYS, cell)), side_a, side_b,
                                          compare_sides(side_a, side_b, level, alpha)))
    return out


def variant_label(name: str, labels: Labels = Labels()):
    """A side's label: ``name`` (a display name or a directory), with the variant's distillation network and
    deviations where the method has several variants."""
    def label(variant: dict) -> str:
        if not variant.get("several", True):
            return name
        extra = [x for x in (variant.get("distill_backbone"), variant.get("budget"), variant.get("config_deviation"))
                 if x]
        return name + (f" ({'; '.join(extra)})" if extra else "")
    return label


def _p(test) -> str:
    return "" if test is None or not math.isfinite(test.p) else f"{test.p:.3g}"


def _summary(side: Side, unit: str) -> str:
    vals = list(side.draw_means.values()) if unit == "draws" else side.values
    std = f" ± {np.std(vals, ddof=1):.2f}" if len(vals) > 1 else ""
    return f"{np.mean(vals):.2f}{std} (n={len(vals)})"


def comparison_rows(comparisons: list[CellComparison], labels: Labels = Labels(),
                    alpha: float = ALPHA) -> list[dict]:
    """One plain dict per comparison (what the Markdown, CSV and JSON outputs show)."""
    rows = []
    for c in comparisons:
        r, ppc = c.result, c.cell["ppc"]
        rows.append({
            "dataset": labels.display_name("dataset", c.cell["dataset"]),
            "ppc": "" if ppc is None or (isinstance(ppc, float) and (math.isnan(ppc) or ppc < 0)) else int(ppc),
            "eval_backbone": c.cell["eval_backbone"], "protocol": f"{c.cell['protocol']} v{c.cell['protocol_version']}",
            "a": c.a.label, "b": c.b.label, "unit": r.unit,
            "a_summary": _summary(c.a, r.unit), "b_summary": _summary(c.b, r.unit),
            "diff": round(r.diff, 4), "ci_low": r.ci[0] if r.ci else None, "ci_high": r.ci[1] if r.ci else None,
            "welch_p": r.welch.p if r.welch else None,
            "mannwhitney_p": r.mann_whitney.p if r.mann_whitney else None,
            "mannwhitney_method": r.mann_whitney.method if r.mann_whitney else "",
            "paired_n": r.paired_n, "paired_t_p": r.paired_t.p if r.paired_t else None,
            "wilcoxon_p": r.wilcoxon.p if r.wilcoxon else None,
            "verdict": c.verdict(alpha), "notes": list(r.notes),
        })
    return rows


def render_comparisons(comparisons: list[CellComparison], fmt: str = "markdown", labels: Labels = Labels(),
                       alpha: float = ALPHA) -> str:
    """The comparisons as Markdown (a table, then the notes), CSV or JSON."""
    rows = comparison_rows(comparisons, labels, alpha)
    if fmt == "json":
        return json.dumps(rows, indent=2, default=float) + "\n"
    if fmt == "csv":
        return pd.DataFrame([{**r, "notes": " | ".join(r["notes"])} for r in rows]).to_csv(index=False)
    head = ["Dataset", "PPC", "Eval net", "A", "B", "unit", "A mean ± sd (n)", "B mean ± sd (n)",
            "A − B [95% CI]", "Welch p", "Mann-Whitney p", "paired t p (draws)", "Wilcoxon p", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for i, (r, c) in enumerate(zip(rows, comparisons), 1):
        ci = f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["ci_low"] is not None else ""
        paired = f"{_p(c.result.paired_t)} ({r['paired_n']})" if c.result.paired_t else ""
        mark = f" [{i}]" if r["notes"] else ""
        lines.append("| " + " | ".join([r["dataset"], str(r["ppc"]), r["eval_backbone"], r["a"], r["b"], r["unit"],
                                         r["a_summary"], r["b_summary"], f"{r['diff']:+.2f}{ci}",
                                         _p(c.result.welch), _p(c.result.mann_whitney), paired,
                                         _p(c.result.wilcoxon), r["verdict"] + mark]) + " |")
        notes += [f"[{i}] {n}" for n in r["notes"]]
    text = ["Two-sided tests; the verdict follows the paired t-test over shared draws where there are at least 2, "
            f"else Welch's t-test, at alpha = {alpha:g}. CI: percentile bootstrap of the difference of the means; "
            "sd: sample standard deviation (ddof 1) of the unit.",
            "", *lines]
    return "\n".join(text + ([""] + notes if notes else [])) + "\n"

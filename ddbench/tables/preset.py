"""Our cells beside a published table (``ddbench table --preset NAME``, docs/presets.md).

One row per entry of the table: our mean ± std over nets (and how many nets), the published mean ± std, the
difference, and whether ours lies within the published mean ± 2 std. Marks say where our cell ran at a reduced
budget, departed from the reference, or was computed on another data release than the paper's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ddbench.tables.layouts import Labels
from ddbench.tables.tidy import aggregate, select_iteration, tidy_frame

COLUMNS = ["method", "dataset", "ppc", "backbone", "ours", "nets", "published", "difference", "within_2std", "marks"]


def _key(dataset, method, ppc, backbone) -> tuple:
    return dataset, method, None if ppc is None or (isinstance(ppc, float) and math.isnan(ppc)) else int(ppc), backbone


def _ours(records, metric: str, current_versions: dict[str, str] | None = None) -> dict[tuple, list[dict]]:
    """Per table entry, every like-with-like aggregate of our cells (several when, e.g., cells were scored under two
    versions of the protocol or at two budgets: each gets its own row)."""
    agg = aggregate(select_iteration(tidy_frame(records), None), "oa" if metric == "oa" else metric)
    out: dict[tuple, list[dict]] = {}
    for _, r in agg.iterrows():
        marks = [f"reduced budget ({r['budget']})"] if r["budget"] else []
        marks += [f"config ({r['config_deviation']})"] if r["config_deviation"] else []
        current = (current_versions or {}).get(r["protocol"])
        if current and str(r["protocol_version"]) != str(current):
            marks.append(f"protocol {r['protocol']} v{r['protocol_version']} (now v{current}: "
                         "docs/departures.md#agreement-of-the-sadm-protocol-with-the-released-evaluation)")
        if r["n_draws"] > 1:
            marks.append(f"{int(r['n_draws'])} draws, ± {r['std_draws']:.1f} over draws")
        out.setdefault(_key(r["dataset"], r["method"], r["ppc"], r["eval_backbone"]), []).append({
            "mean": r["mean"], "std": r["std_nets"], "nets": int(r["n_nets"]), "marks": marks,
            "release": r["data_release"], "version": str(r["protocol_version"])})
    for entries in out.values():  # the current protocol version first, then the older ones
        entries.sort(key=lambda e: -float(e["version"]) if e["version"].replace(".", "").isdigit() else 0)
    return out


def _within(ours: float, pub: float, std: float) -> str:
    if pd.isna(std) or pd.isna(pub):
        return "n/a (no published std)" if not pd.isna(pub) else ""
    return "yes" if abs(ours - pub) <= 2 * std else "no"


def _fmt(mean, std, decimals: int) -> str:
    if mean is None or pd.isna(mean):
        return ""
    return f"{mean:.{decimals}f}" + ("" if std is None or pd.isna(std) else f" ± {std:.{decimals}f}")


def comparison_frame(records, published: pd.DataFrame, paper_release: str, decimals: int = 1,
                     metric: str = "oa", labels: Labels = Labels(),
                     current_versions: dict[str, str] | None = None) -> pd.DataFrame:
    """The rows of the comparison (published entries first, in the file's order; then cells with no entry).
    ``current_versions`` (protocol -> its installed version): cells scored under an older version are marked."""
    ours = _ours(records, metric, current_versions)
    rows, seen = [], set()
    for _, p in published.iterrows():
        key = _key(p["dataset"], p["method"], p["ppc"], p["backbone"])
        seen.add(key)
        rows += [_row(key, mine, p["mean"], p["std"], paper_release, decimals, labels) for mine in ours.get(key, [None])]
    rows += [_row(k, mine, np.nan, np.nan, paper_release, decimals, labels)
             for k, entries in ours.items() if k not in seen for mine in entries]
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(key, mine, pub_mean, pub_std, paper_release: str, decimals: int, labels: Labels) -> dict:
    dataset, method, ppc, backbone = key
    marks = list(mine["marks"]) if mine else []
    if mine and mine["release"] and paper_release and paper_release not in mine["release"]:
        marks.append(f"other data release ({mine['release'].split(',')[0]}; the paper: {paper_release})")
    diff = mine["mean"] - pub_mean if mine and not pd.isna(pub_mean) else np.nan
    return {"method": labels.display_name("method", method), "dataset": labels.display_name("dataset", dataset),
            "ppc": "" if ppc is None else ppc, "backbone": backbone,
            "ours": _fmt(mine["mean"], mine["std"], decimals) if mine else "not run",
            "nets": mine["nets"] if mine else "", "published": _fmt(pub_mean, pub_std, decimals),
            "difference": "" if pd.isna(diff) else f"{diff:+.{decimals}f}",
            "within_2std": _within(mine["mean"], pub_mean, pub_std) if mine else "",
            "marks": "; ".join(marks)}


def render_comparison(frame: pd.DataFrame, fmt: str, title: str) -> str:
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "latex":
        body = "\n".join(" & ".join(str(v).replace("±", r"$\pm$").replace("_", r"\_") for v in r) + r" \\"
                         for r in frame.itertuples(index=False))
        head = " & ".join(c.replace("_", r"\_") for c in frame.columns) + r" \\"
        return (f"% {title}\n\\begin{{tabular}}{{{'l' * len(frame.columns)}}}\n\\toprule\n{head}\n\\midrule\n"
                f"{body}\n\\bottomrule\n\\end{{tabular}}\n")
    lines = [title, "", "| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"

"""Rendering aggregated results in the papers' layout: rows = methods, columns = dataset x PPC.

Cells show mean ± std; per column the best method is bold and the second best underlined (the whole-dataset
reference and published rows do not compete). Rows whose cells departed from the reference settings (reduced
budgets, non-default configs, test-set selection) carry a footnote mark that says how.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from ddbench.errors import DDBenchError

METHOD_ORDER = ["random", "herding", "kcenter", "dc", "pcc", "dm", "sadm", "dd3d", "3ddp"]
DATASET_ORDER = ["modelnet10", "modelnet40", "shapenet55", "scanobjectnn", "shapes"]
MARKS = ["†", "‡", "§", "¶", "‖", "#"]
TEX_MARKS = {"†": r"$^\dagger$", "‡": r"$^\ddagger$", "§": r"$^\S$", "¶": r"$^\P$", "‖": r"$^\|$", "#": r"$^\#$"}
FORMATS = ("markdown", "latex", "csv")


def display_name(kind: str, name: str) -> str:
    try:
        from ddbench.plugins import get_registries

        reg = get_registries().kind(kind)
        if name in reg:
            return getattr(reg.get(name).cls, "display_name", "") or name
    except Exception:  # noqa: BLE001 - rendering must work even when plugins are gone
        pass
    return name


def _order(values, preferred):
    values = list(dict.fromkeys(values))
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), str(v)))


@dataclass
class Row:
    label: str
    method: str
    kind: str  # method | whole | published
    marks: list[str] = field(default_factory=list)
    values: dict[tuple[str, float], tuple[float, float]] = field(default_factory=dict)  # (dataset, ppc)
    whole: dict[str, tuple[float, float]] = field(default_factory=dict)  # dataset -> value (whole row)


@dataclass
class Table:
    title: str
    columns: list[tuple[str, float]]  # (dataset, ppc)
    rows: list[Row]
    notes: list[str]
    best: dict[tuple[str, float], tuple[float, float | None]] = field(default_factory=dict)  # (best, second)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(d for d, _ in self.columns))


def load_published(source: str | None = None) -> pd.DataFrame:
    text = resources.files("ddbench").joinpath("reference/published_results.csv").read_text()
    df = pd.read_csv(io.StringIO(text))
    if source is not None:
        if source not in set(df["source"]):
            raise DDBenchError(
                f"unknown published source {source!r}; known: {', '.join(sorted(set(df['source'])))}"
            )
        df = df[df["source"] == source]
    return df


def table_groups(agg: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """Split aggregates into tables that compare like with like (one protocol, evaluation and distillation
    network, and selection rule each). Methods without a distillation network join every table."""
    groups = []
    for key, g in agg.groupby(["protocol", "protocol_version", "eval_backbone", "selection"], sort=True):
        dbbs = sorted(d for d in g["distill_backbone"].unique() if d)
        for dbb in dbbs or [""]:
            sub = g[g["distill_backbone"].isin({"", dbb})]
            groups.append((dict(zip(["protocol", "protocol_version", "eval_backbone", "selection"], key),
                                distill_backbone=dbb), sub))
    return groups


def build_table(
    spec: dict, agg: pd.DataFrame, std: str = "nets", decimals: int = 1, metric: str = "oa",
    published: pd.DataFrame | None = None,
) -> Table:
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    non_whole = agg[agg["method"] != "whole"]
    datasets = _order(agg["dataset"], DATASET_ORDER)
    columns = [(d, p) for d in datasets for p in sorted(non_whole[non_whole["dataset"] == d]["ppc"].dropna().unique())]
    budgets = _order([b for b in agg["budget"] if b], [])
    configs = _order([c for c in agg["config_deviation"] if c], [])
    symbols = dict(zip(budgets + configs, MARKS * 4))
    rows: list[Row] = []
    for method in _order(non_whole["method"], METHOD_ORDER):
        m = non_whole[non_whole["method"] == method]
        for (budget, confdev), g in m.groupby(["budget", "config_deviation"], sort=True):
            marks = [symbols[x] for x in (budget, confdev) if x]
            row = Row(display_name("method", method), method, "method", marks)
            for _, r in g.iterrows():
                row.values[(r["dataset"], r["ppc"])] = (r["mean"], r[std_col])
            rows.append(row)
    whole = agg[agg["method"] == "whole"]
    for (budget, confdev), g in whole.groupby(["budget", "config_deviation"], sort=True):
        marks = [symbols[x] for x in (budget, confdev) if x]
        row = Row(display_name("method", "whole"), "whole", "whole", marks)
        for _, r in g.iterrows():
            row.whole[r["dataset"]] = (r["mean"], r[std_col])
        rows.append(row)
    if published is not None and metric == "oa":
        rows += _published_rows(published, rows, columns, spec)

    table = Table(title="", columns=columns, rows=rows, notes=[])
    for col in columns:
        vals = sorted({round(r.values[col][0], decimals) for r in rows if r.kind == "method" and col in r.values},
                      reverse=True)
        if vals:
            table.best[col] = (vals[0], vals[1] if len(vals) > 1 else None)
    with_published = any(r.kind == "published" for r in rows)
    table.title, table.notes = _caption(spec, agg, std, metric, symbols, with_published)
    return table


def _published_rows(published: pd.DataFrame, rows: list[Row], columns, spec) -> list[Row]:
    out = []
    pub = published[published["backbone"] == spec["eval_backbone"]]
    for method in [r.method for r in rows if r.kind in ("method", "whole")]:
        for source, g in pub[pub["method"] == method].groupby("source"):
            row = Row(f"{display_name('method', method)} [{source}]", method, "published")
            for _, r in g.iterrows():
                std = r["std"] if not pd.isna(r["std"]) else np.nan
                if method == "whole":
                    row.whole[r["dataset"]] = (r["mean"], std)
                elif (r["dataset"], float(r["ppc"])) in columns:
                    row.values[(r["dataset"], float(r["ppc"]))] = (r["mean"], std)
            if row.values or any(d in row.whole for d, _ in columns):
                if all(existing.label != row.label for existing in out):
                    out.append(row)
    return out


def _caption(spec, agg, std, metric, symbols, with_published) -> tuple[str, list[str]]:
    what = {"oa": "Overall accuracy", "macc": "Mean class accuracy"}[metric]
    ddofs = sorted(set(int(d) for d in agg["ddof"]))
    draws = sorted(set(int(n) for n in agg["n_draws"]))
    nets = sorted(set(int(n) for n in agg["n_nets"] // agg["n_draws"]))
    spread = (
        "std over evaluation nets" + (" (RMS over draws)" if max(draws) > 1 else "")
        if std == "nets" else "std over draw seeds"
    )
    selection = ("final epoch" if spec["selection"] == "final"
                 else "BEST EPOCH ON THE TEST SET (test-set selection, as DD3D reports)")
    title = (
        f"{what} (%), mean ± {spread}, ddof={','.join(map(str, ddofs))}; {selection}. "
        f"Protocol {spec['protocol']} v{spec['protocol_version']}, evaluation network {spec['eval_backbone']}"
        + (f", distillation network {spec['distill_backbone']}" if spec["distill_backbone"] else "")
        + f"; {'/'.join(map(str, nets))} nets x {'/'.join(map(str, draws))} draw seed(s) per entry."
        + (f" Iterative methods after {spec['iteration']} iterations." if spec.get("iteration") is not None else "")
    )
    notes = [f"{sym} {text}" for text, sym in symbols.items()]
    notes.append("Bold: best; underlined: second best (whole dataset and published rows excluded).")
    if with_published:
        notes.append("Rows marked [source] are published numbers, copied for comparison, not measured here.")
    return title, notes


def _fmt(value: tuple[float, float] | None, decimals: int, pm: str = " ± ", missing: str = "") -> str:
    """``mean ± std`` (just the mean when the std is unknown; ``missing`` when there is no value)."""
    if value is None:
        return missing
    mean, std = value
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f}{pm}{std:.{decimals}f}"


def _rank(table: Table, col, value, decimals) -> int:
    if col not in table.best or value is None:
        return 0
    best, second = table.best[col]
    v = round(value[0], decimals)
    return 1 if v == best else 2 if second is not None and v == second else 0


def row_value(row: Row, col: tuple[str, float]) -> tuple[float, float] | None:
    """The value a row shows in column ``col`` (whole-dataset rows show one value per dataset)."""
    return row.whole.get(col[0]) if row.method == "whole" else row.values.get(col)


def _row_label(row: Row) -> str:
    return row.label + "".join(row.marks)


def render_markdown(table: Table, decimals: int = 1) -> str:
    header = ["Method"] + [f"{display_name('dataset', d)} PPC {int(p)}" for d, p in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * len(table.columns)) + "|"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            value = row_value(row, col)
            text = _fmt(value, decimals)
            rank = _rank(table, col, value, decimals) if row.kind == "method" else 0
            text = f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text
            if row.kind == "published" and text:
                text = f"*{text}*"
            cells.append(text)
        lines.append("| " + " | ".join([_row_label(row)] + cells) + " |")
    return "\n".join([table.title, "", *lines, "", *table.notes]) + "\n"


def tex_escape(text: str) -> str:
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("[", "{[}"), ("]", "{]}")):
        out = out.replace(a, b)
    for sym, tex in TEX_MARKS.items():
        out = out.replace(sym, tex)
    return out


def _tex_value(value, decimals) -> str:
    return _fmt(value, decimals, pm="$\\pm$", missing="--")


def render_latex(table: Table, decimals: int = 1) -> str:
    datasets = table.datasets
    spans = [sum(1 for d, _ in table.columns if d == ds) for ds in datasets]
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + tex_escape(table.title) + "}",
        r"\begin{tabular}{l" + "".join(" " + "c" * s for s in spans) + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{{s}}}{{c}}{{{tex_escape(display_name('dataset', d))}}}"
                           for d, s in zip(datasets, spans)]) + r" \\",
    ]
    rules, start = [], 2
    for s in spans:
        rules.append(rf"\cmidrule(lr){{{start}-{start + s - 1}}}")
        start += s
    out.append(" ".join(rules))
    out.append(" & ".join(["PPC"] + [str(int(p)) for _, p in table.columns]) + r" \\")
    out.append(r"\midrule")
    kinds_seen = set()
    for row in table.rows:
        if row.kind != "method" and row.kind not in kinds_seen and "method" in kinds_seen:
            out.append(r"\midrule")
        kinds_seen.add(row.kind)
        cells = [tex_escape(_row_label(row))]
        if row.method == "whole":
            for ds, span in zip(datasets, spans):
                value = _tex_value(row.whole.get(ds), decimals)
                value = rf"\textit{{{value}}}" if row.kind == "published" else value
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{value}}}")
        else:
            for col in table.columns:
                value = row.values.get(col)
                text = _tex_value(value, decimals)
                rank = _rank(table, col, value, decimals) if row.kind == "method" else 0
                if rank == 1:
                    text = rf"\textbf{{{text}}}"
                elif rank == 2:
                    text = rf"\underline{{{text}}}"
                elif row.kind == "published" and value is not None:
                    text = rf"\textit{{{text}}}"
                cells.append(text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\footnotesize " + tex_escape(note) for note in table.notes]
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def render_csv(table: Table, decimals: int = 1) -> str:
    """The table in its layout as CSV: one row per table row, mean and std columns per (dataset, PPC)."""
    records = []
    for row in table.rows:
        rec = {"method": row.method, "label": row.label, "kind": row.kind, "marks": "".join(row.marks)}
        for col in table.columns:
            value = row_value(row, col)
            name = f"{col[0]}_ppc{int(col[1])}"
            rec[f"{name}_mean"] = round(value[0], 4) if value else None
            rec[f"{name}_std"] = round(value[1], 4) if value and not pd.isna(value[1]) else None
        records.append(rec)
    buf = io.StringIO()
    pd.DataFrame(records).to_csv(buf, index=False)
    return buf.getvalue()


def render(table: Table, fmt: str, decimals: int = 1) -> str:
    if fmt == "markdown":
        return render_markdown(table, decimals)
    if fmt == "latex":
        return render_latex(table, decimals)
    if fmt == "csv":
        return render_csv(table, decimals)
    raise DDBenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}, tidy or long")

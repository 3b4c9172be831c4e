"""Rendering a table (rows x grouped columns of mean ± std) as Markdown, LaTeX or CSV.

The table model knows nothing of methods or backbones: a layout (``ddbench.tables.layouts``) fills it. Best values
are bold and second best underlined wherever the layout ranked them; rows of published numbers are italic; a row
may hold one value spanning a whole column group (the whole-dataset reference).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ddbench.errors import DDBenchError

TEX_MARKS = {"†": r"$^\dagger$", "‡": r"$^\ddagger$", "§": r"$^\S$", "¶": r"$^\P$", "‖": r"$^\|$", "#": r"$^\#$"}
FORMATS = ("markdown", "latex", "csv")

Value = tuple[float, float]
Column = tuple[str, Any]  # (group, sub)


@dataclass
class Row:
    label: str
    key: str  # what the row is (a method or a backbone name)
    kind: str  # measured | reference | published
    marks: list[str] = field(default_factory=list)
    values: dict[Column, Value] = field(default_factory=dict)
    #: one value per column group (e.g. the whole-dataset accuracy spanning every PPC of a dataset)
    span: dict[str, Value] | None = None
    #: a short note shown beside a value (the PPC chosen for a storage budget, the storage per class)
    notes: dict[Column, str] = field(default_factory=dict)
    #: per column, the per-net values of each draw seed behind the value (for ``--significant``)
    samples: dict[Column, dict[int, list[float]]] = field(default_factory=dict)

    def value(self, col: Column) -> Value | None:
        return self.span.get(col[0]) if self.span is not None else self.values.get(col)


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str]
    key_name: str  # first CSV column: method / eval_backbone
    corner: tuple[str, str]  # row-header title; label of the sub-header line (LaTeX)
    group_labels: dict[str, str]
    sub_labels: dict[Any, str]
    sub_prefix: str = ""  # Markdown header: "<group> <prefix><sub>"
    csv_subs: dict[Any, str] = field(default_factory=dict)
    ranks: dict[tuple[int, Column], int] = field(default_factory=dict)  # 1 best, 2 second

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(g for g, _ in self.columns))


def fmt_value(value: Value | None, decimals: int, pm: str = " ± ", missing: str = "") -> str:
    """``mean ± std`` (just the mean when the std is unknown; ``missing`` when there is no value)."""
    if value is None:
        return missing
    mean, std = value
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f}{pm}{std:.{decimals}f}"


def rank_values(values: dict[Any, float], decimals: int) -> dict[Any, int]:
    """Rank 1 (best) and 2 (second best) among ``values`` at display precision; ties share a rank."""
    distinct = sorted({round(v, decimals) for v in values.values()}, reverse=True)
    out = {}
    for key, v in values.items():
        r = round(v, decimals)
        if r == distinct[0]:
            out[key] = 1
        elif len(distinct) > 1 and r == distinct[1]:
            out[key] = 2
    return out


def _label(row: Row) -> str:
    return row.label + "".join(row.marks)


def render_markdown(table: Table, decimals: int = 1) -> str:
    header = [table.corner[0]] + [f"{table.group_labels[g]} {table.sub_prefix}{table.sub_labels[s]}"
                                  for g, s in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * len(table.columns)) + "|"]
    for i, row in enumerate(table.rows):
        cells = []
        for col in table.columns:
            text = fmt_value(row.value(col), decimals)
            rank = table.ranks.get((i, col), 0)
            text = f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text
            if row.kind == "published" and text:
                text = f"*{text}*"
            if col in row.notes:
                text += f" ({row.notes[col]})"
            cells.append(text)
        lines.append("| " + " | ".join([_label(row)] + cells) + " |")
    return "\n".join([table.title, "", *lines, "", *table.notes]) + "\n"


def tex_escape(text: str) -> str:
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("[", "{[}"), ("]", "{]}")):
        out = out.replace(a, b)
    for sym, tex in TEX_MARKS.items():
        out = out.replace(sym, tex)
    return out


def _tex_value(value: Value | None, decimals: int) -> str:
    return fmt_value(value, decimals, pm="$\\pm$", missing="--")


def render_latex(table: Table, decimals: int = 1) -> str:
    groups = table.groups
    spans = [sum(1 for g, _ in table.columns if g == grp) for grp in groups]
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + tex_escape(table.title) + "}",
        r"\begin{tabular}{l" + "".join(" " + "c" * s for s in spans) + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{{s}}}{{c}}{{{tex_escape(table.group_labels[g])}}}"
                           for g, s in zip(groups, spans)]) + r" \\",
    ]
    rules, start = [], 2
    for s in spans:
        rules.append(rf"\cmidrule(lr){{{start}-{start + s - 1}}}")
        start += s
    out.append(" ".join(rules))
    out.append(" & ".join([table.corner[1]] + [tex_escape(table.sub_labels[s]) for _, s in table.columns]) + r" \\")
    out.append(r"\midrule")
    kinds_seen: set[str] = set()
    for i, row in enumerate(table.rows):
        if row.kind != "measured" and row.kind not in kinds_seen and "measured" in kinds_seen:
            out.append(r"\midrule")
        kinds_seen.add(row.kind)
        cells = [tex_escape(_label(row))]
        if row.span is not None:
            for grp, span in zip(groups, spans):
                value = _tex_value(row.span.get(grp), decimals)
                value = rf"\textit{{{value}}}" if row.kind == "published" else value
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{value}}}")
        else:
            for col in table.columns:
                value = row.values.get(col)
                text = _tex_value(value, decimals)
                rank = table.ranks.get((i, col), 0)
                if rank == 1:
                    text = rf"\textbf{{{text}}}"
                elif rank == 2:
                    text = rf"\underline{{{text}}}"
                elif row.kind == "published" and value is not None:
                    text = rf"\textit{{{text}}}"
                if col in row.notes:
                    text += rf"\,{{\scriptsize ({tex_escape(row.notes[col])})}}"
                cells.append(text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\footnotesize " + tex_escape(note) for note in table.notes]
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def render_csv(table: Table, decimals: int = 1) -> str:
    """The table in its layout as CSV: one row per table row, mean and std columns per column of the table."""
    records = []
    kind_names = {"measured": "method", "reference": "whole", "published": "published"}
    for row in table.rows:
        rec = {table.key_name: row.key, "label": row.label,
               "kind": kind_names[row.kind] if table.key_name == "method" else row.kind, "marks": "".join(row.marks)}
        for col in table.columns:
            value = row.value(col)
            name = f"{col[0]}_{table.csv_subs.get(col[1], col[1])}"
            rec[f"{name}_mean"] = round(value[0], 4) if value else None
            rec[f"{name}_std"] = round(value[1], 4) if value and not pd.isna(value[1]) else None
            if row.notes:
                rec[f"{name}_note"] = row.notes.get(col)
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

"""Plain view models of tables, metrics and comparisons for the report's template (no HTML is built here: the
jinja2 template does that, with autoescaping)."""

from __future__ import annotations

import base64
import math

import pandas as pd

from ddbench.tables.layouts import Labels
from ddbench.tables.render import Table, fmt_value


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI (the report embeds every image; nothing is fetched)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(table: Table, i: int, col, decimals: int) -> dict:
    row = table.rows[i]
    rank = table.ranks.get((i, col), 0)
    cls = {1: "best", 2: "second"}.get(rank, "")
    if row.kind == "published":
        cls = (cls + " published").strip()
    return {"text": fmt_value(row.value(col), decimals), "cls": cls, "note": row.notes.get(col, "")}


def table_view(table: Table, decimals: int = 1) -> dict:
    """A :class:`~ddbench.tables.render.Table` as header groups, sub-headers and rows of cells; a full-data row
    gets one cell spanning each column group."""
    groups = [(table.group_labels[g], sum(1 for gg, _ in table.columns if gg == g)) for g in table.groups]
    rows = []
    for i, row in enumerate(table.rows):
        label = row.label + "".join(row.marks)
        if row.span is not None:
            cells = [{"text": fmt_value(row.span.get(g), decimals), "cls": "reference", "span": n, "note": ""}
                     for g, (_, n) in zip(table.groups, groups)]
        else:
            cells = [{**_cell(table, i, col, decimals), "span": 1} for col in table.columns]
        rows.append({"label": label, "kind": row.kind, "cells": cells})
    return {"title": table.title, "corner": table.corner[0], "groups": groups,
            "subs": [f"{table.sub_prefix}{table.sub_labels[s]}" for _, s in table.columns], "rows": rows,
            "notes": table.notes}


def _num(value, fmt: str, missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return missing
    return format(float(value), fmt)


def _ppc(value) -> str:
    return "" if pd.isna(value) else f"{float(value):g}"


def metrics_view(frame: pd.DataFrame, labels: Labels, std: str = "nets") -> list[dict]:
    """One row per aggregated number: what it is, mean ± std, and the metric columns."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    rows = []
    for _, r in frame.sort_values(["dataset", "eval_backbone", "ppc", "method"], na_position="last").iterrows():
        gain = _num(r["gain_over_random"], "+.2f")
        rows.append({
            "dataset": labels.display_name("dataset", r["dataset"]),
            "method": labels.display_name("method", r["method"]),
            "ppc": _ppc(r["ppc"]), "distill_backbone": r["distill_backbone"], "eval_backbone": r["eval_backbone"],
            "protocol": f"{r['protocol']} v{r['protocol_version']}",
            "mean": f"{r['mean']:.2f}" + ("" if pd.isna(r[std_col]) else f" ± {r[std_col]:.2f}"),
            "draws": int(r["n_draws"]), "nets": int(r["n_nets"]),
            "gain": gain if gain == "–" else f"{gain} ({int(r['gain_draws'])} draw{'s' * (r['gain_draws'] != 1)})",
            "fraction": _num(r["fraction_of_whole"], ".3f"),
            "kib": _num(pd.to_numeric(r["storage_bytes_per_class"], errors="coerce") / 1024, ".1f"),
            "per_kib": _num(r["acc_per_kib"], ".3f"),
            "budget": "; ".join(x for x in (r["budget"], r["config_deviation"]) if x),
        })
    return rows

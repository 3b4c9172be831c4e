"""The part-segmentation layout (DD3D Table 2; docs/segmentation.md#the-table): one table per dataset, rows =
methods, columns = CPC x {point OA, instance mIoU, class mIoU}, the whole-data row repeating its scores under every
CPC, and optionally the published rows. The best method per column is bold, the second underlined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddbench.tables.layouts import (
    METHOD_ORDER,
    RANKING_NOTE,
    Labels,
    _caption,
    _deviation_symbols,
    _order,
    _split_by_distill_backbone,
)
from ddbench.tables.render import Row, Table, rank_values

SEG_METRICS = ("oa", "instance_miou", "class_miou")
METRIC_LABELS = {"oa": "OA", "instance_miou": "inst. mIoU", "class_miou": "cls. mIoU"}


def cpc_key(cpc: float) -> str:
    """The column group of a CPC (``cpc1``: also the CSV column prefix)."""
    return f"cpc{int(cpc)}"


def segmentation_groups(agg: pd.DataFrame, labels: Labels = Labels()) -> list[tuple[dict, pd.DataFrame]]:
    """Like-with-like groups: one protocol, evaluation network, selection, data release and dataset each."""
    return _split_by_distill_backbone(agg, ["protocol", "protocol_version", "eval_backbone", "selection",
                                            "data_release", "dataset"])


def _measured_rows(aggs: dict[str, pd.DataFrame], columns, std_col: str, symbols, labels: Labels) -> list[Row]:
    """One row per (method, budget, config deviation); the full-data methods' scores under every CPC."""
    base = aggs["oa"]
    rows = []
    full = base["method"].isin(labels.full_data)
    methods = _order(base[~full]["method"], METHOD_ORDER) + _order(base[full]["method"], METHOD_ORDER)
    for method in methods:
        for (budget, confdev), _ in base[base["method"] == method].groupby(["budget", "config_deviation"]):
            kind = "reference" if method in labels.full_data else "measured"
            row = Row(labels.display_name("method", method), method, kind, [symbols[x] for x in (budget, confdev) if x])
            for metric, agg in aggs.items():
                sel = agg[(agg["method"] == method) & (agg["budget"] == budget) & (agg["config_deviation"] == confdev)]
                for _, r in sel.iterrows():
                    cpcs = list(dict.fromkeys(c for c, _ in columns)) if kind == "reference" else [cpc_key(r["ppc"])]
                    for cpc in cpcs:
                        row.values[(cpc, metric)] = (r["mean"], r[std_col])
            rows.append(row)
    return rows


def _published_rows(published: pd.DataFrame, rows: list[Row], columns, spec: dict, labels: Labels) -> list[Row]:
    pub = published[(published["dataset"] == spec["dataset"]) & (published["backbone"] == spec["eval_backbone"])
                    & published["metric"].isin(SEG_METRICS)]
    out = []
    cpcs = list(dict.fromkeys(c for c, _ in columns))
    for method in [r.key for r in rows]:
        for source, g in pub[pub["method"] == method].groupby("source"):
            row = Row(f"{labels.display_name('method', method)} [{source}]", method, "published")
            for _, r in g.iterrows():
                std = r["std"] if not pd.isna(r["std"]) else np.nan
                for cpc in (cpcs if pd.isna(r["ppc"]) else [cpc_key(r["ppc"])]):
                    if (cpc, r["metric"]) in columns:
                        row.values[(cpc, r["metric"])] = (r["mean"], std)
            if row.values:
                out.append(row)
    return out


def build_segmentation_table(spec: dict, aggs: dict[str, pd.DataFrame], std: str = "nets", decimals: int = 1,
                             published: pd.DataFrame | None = None, labels: Labels = Labels()) -> Table:
    """The DD3D Table 2 layout of one group; ``aggs`` maps each metric of :data:`SEG_METRICS` to its aggregate."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    base = aggs["oa"]
    cpcs = sorted(base[~base["method"].isin(labels.full_data)]["ppc"].dropna().unique())
    columns = [(cpc_key(c), m) for c in cpcs for m in SEG_METRICS]
    symbols = _deviation_symbols(base)
    rows = _measured_rows(aggs, columns, std_col, symbols, labels)
    if published is not None:
        rows += _published_rows(published, rows, columns, spec, labels)
    table = Table(title="", columns=columns, rows=rows, notes=[], key_name="method", corner=("Method", "metric"),
                  group_labels={cpc_key(c): f"CPC {int(c)}" for c in cpcs}, sub_labels=METRIC_LABELS,
                  csv_subs={m: m for m in SEG_METRICS})
    for col in columns:
        values = {i: r.values[col][0] for i, r in enumerate(rows) if r.kind == "measured" and col in r.values}
        for i, rank in (rank_values(values, decimals) if len(values) > 1 else {}).items():
            table.ranks[(i, col)] = rank
    title, notes = _caption(spec, base, std, "oa", symbols, any(r.kind == "published" for r in rows),
                            f"dataset {labels.display_name('dataset', spec['dataset'])}, evaluation network "
                            f"{spec['eval_backbone']}", RANKING_NOTE)
    table.title = title.replace("Overall accuracy (%)", "Part segmentation: point OA, instance mIoU and class mIoU (%)")
    table.notes = notes + ["Instance mIoU: mean over test shapes of the mean IoU over the parts of the shape's "
                           "category (a part in neither prediction nor label counts 1); class mIoU: mean over "
                           "categories of their shapes' mean (docs/segmentation.md#metrics)."]
    return table

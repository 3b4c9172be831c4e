"""Figures of the results (``ddbench plot``; the report embeds every one of them).

Each ``*_figure`` function takes frames derived from the cell records (the tables' aggregate or tidy frame) and
returns a :class:`matplotlib.figure.Figure` on the Agg canvas: no pyplot, no display, no global state, so that
tests can inspect the axes, series, labels and error bars. :func:`save_figure` writes PNG, SVG or PDF.

- ``ppc``: accuracy against PPC per dataset, error bars over evaluation nets or over draw seeds, the whole-data
  accuracy as a line, published numbers overlaid (dashed, open markers, "[source, published]" in the legend);
- ``storage``: accuracy against the bytes stored per class;
- ``iteration``: accuracy against distillation iteration (the intermediate evaluations, ``--eval-iterations``);
- ``heatmap``: method x evaluation network per dataset and PPC (cross-architecture generalisation);
- ``cost``: distillation and evaluation time and peak memory of every entry.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ddbench.errors import DDBenchError
from ddbench.reports.frames import filled, unfilled
from ddbench.tables.layouts import BACKBONE_ORDER, DATASET_ORDER, MAIN_TABLES, MARKS, METHOD_ORDER, Labels
from ddbench.tables.tidy import GROUP_KEYS, aggregate

KINDS = ("ppc", "storage", "iteration", "heatmap", "cost")
FORMATS = ("png", "svg", "pdf")
METRIC_LABELS = {"oa": "Overall accuracy (%)", "macc": "Mean class accuracy (%)"}
SPREAD_LABELS = {"nets": "std over evaluation nets", "draws": "std over draw seeds"}
#: what makes two aggregated numbers of one method different series (labelled only where they vary)
SERIES_KEYS = ["method", "distill_backbone", "eval_backbone", "protocol", "protocol_version", "selection", "budget",
               "config_deviation", "data_release", "budget_bytes_set"]
MARKERS = "osD^vP*Xh<>p"
PUBLISHED_ALIASES_NOTE = "dashed, open markers: published numbers, copied for comparison, not measured here"


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG, SVG or PDF (by the suffix), without timestamps or software tags."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DDBenchError(f"cannot write a figure as {path.name}: use a .png, .svg or .pdf name")
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return path


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _order(values, preferred) -> list:
    values = list(dict.fromkeys(values))
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), str(v)))


def _grid(fig: Figure, n: int, ncols: int = 3, **kw) -> list:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols) if n else 1
    return [fig.add_subplot(nrows, ncols, i + 1, **kw) for i in range(max(n, 1))]


class SeriesLabels:
    """Labels of the series of one figure: the method's display name, a footnote mark for a budget or config
    deviation (:meth:`notes` lists the marks), and whatever tells apart the series of one method (distillation
    network, evaluation network, protocol, selection)."""

    def __init__(self, frame: pd.DataFrame, labels: Labels):
        self.labels = labels
        self.varies: dict[str, set[str]] = {}
        for method, g in frame.groupby("method"):
            self.varies[method] = {k for k in ("distill_backbone", "eval_backbone", "protocol", "protocol_version",
                                               "selection") if k in g and g[k].astype(str).nunique() > 1}
        texts = [t for k in ("budget", "config_deviation") if k in frame for t in frame[k].unique() if t]
        self.marks = dict(zip(dict.fromkeys(texts), MARKS * 4))

    def __call__(self, row) -> str:
        varies = self.varies.get(row["method"], set())
        extra = []
        if "distill_backbone" in varies and row.get("distill_backbone"):
            extra.append(str(row["distill_backbone"]))
        if "eval_backbone" in varies:
            extra.append(f"→ {row['eval_backbone']}")
        if varies & {"protocol", "protocol_version"}:
            extra.append(f"{row['protocol']} v{row['protocol_version']}")
        if "selection" in varies:
            extra.append(str(row["selection"]))
        marks = "".join(self.marks[row[k]] for k in ("budget", "config_deviation") if row.get(k))
        text = self.labels.display_name("method", row["method"]) + marks
        return text + (f" ({', '.join(extra)})" if extra else "")

    def notes(self) -> list[str]:
        return [f"{mark} {text}" for text, mark in self.marks.items()]


def _series(frame: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    frame = frame.assign(budget_bytes_set=frame["budget_bytes"].notna())
    keys = [k for k in SERIES_KEYS if k in frame]
    groups = list(frame.groupby(keys, dropna=False, sort=False))
    return sorted(groups, key=lambda kg: (METHOD_ORDER.index(kg[0][0]) if kg[0][0] in METHOD_ORDER else 99,
                                          [str(x) for x in kg[0]]))


def _footnotes(fig: Figure, lines: list[str]) -> None:
    if lines:
        fig.text(0.0, 0.0, "\n".join(lines), ha="left", va="top", fontsize=7)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def colour(method: str) -> str:
    """One colour per method in every figure (measured and published series alike)."""
    if method in METHOD_ORDER:
        return f"C{METHOD_ORDER.index(method) % 10}"
    return f"C{sum(map(ord, method)) % 10}"


def plain_log_axis(axis) -> None:
    """Log-scale tick labels as plain numbers (1, 2, 5, 10, ...), not powers of ten."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _log_ticks(ax, values) -> None:
    values = sorted({float(v) for v in values if pd.notna(v) and v > 0})
    if not values:
        return
    if values[-1] / values[0] >= 5:
        ax.set_xscale("log")
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
    else:
        ax.set_xticks(values)


def _dodge(n: int, i: int, log: bool) -> float:
    """A small horizontal offset so that error bars of one PPC do not hide each other."""
    step = 0.025 * (i - (n - 1) / 2)
    return 1 + step if log else step


def split_measured(agg: pd.DataFrame, labels: Labels) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(entries with a PPC, full-data entries)."""
    full = agg["method"].isin(labels.full_data) | agg["ppc"].isna()
    return agg[~full], agg[full]


def _published_series(published: pd.DataFrame | None, dataset: str, methods, backbones) -> list:
    if published is None or published.empty:
        return []
    main = published["table"].astype(str).isin(MAIN_TABLES) & (published.get("metric", "oa") == "oa")
    pub = published[main & (published["dataset"] == dataset) & published["method"].isin(methods)
                    & published["backbone"].isin(backbones)]
    return list(pub.groupby(["source", "method"], sort=True))


def _draw_published(ax, published, dataset, methods, backbones, labels: Labels, log: bool) -> list:
    """Published numbers of the methods shown, as dashed series with open markers; returns the PPCs drawn."""
    ppcs = []
    for i, ((source, method), g) in enumerate(_published_series(published, dataset, methods, backbones)):
        name = f"{labels.display_name('method', method)} [{source}, published]"
        whole = g[g["ppc"].isna()]
        if not whole.empty:
            ax.axhline(float(whole["mean"].iloc[0]), color="0.5", ls=":", lw=1, label=name)
        g = g[g["ppc"].notna()].sort_values("ppc")
        if g.empty:
            continue
        x = g["ppc"].astype(float).to_numpy()
        yerr = g["std"].astype(float).to_numpy()
        ax.errorbar(x, g["mean"].astype(float), yerr=None if np.isnan(yerr).all() else yerr, ls="--", lw=1,
                    marker=MARKERS[i % len(MARKERS)], mfc="none", capsize=2, alpha=0.8, label=name,
                    color=colour(method))
        ppcs += list(x)
    return ppcs


def accuracy_vs_ppc_figure(agg: pd.DataFrame, std: str = "nets", metric: str = "oa",
                           published: pd.DataFrame | None = None, labels: Labels = Labels()) -> Figure:
    """Accuracy against PPC, one panel per dataset; one series per method (and variant), error bars = ``std``
    (``nets`` or ``draws``); whole data as a horizontal line; published numbers dashed with open markers."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    published = published if metric == "oa" else None  # published numbers are overall accuracies
    measured, full = split_measured(agg, labels)
    datasets = _order(measured["dataset"], DATASET_ORDER)
    fig = new_figure(4.6 * min(3, max(1, len(datasets))), 3.6 * math.ceil(max(1, len(datasets)) / 3))
    names = SeriesLabels(measured, labels)
    for ax, dataset in zip(_grid(fig, len(datasets)), datasets or [None]):
        if dataset is None:
            _empty(ax, "no finished cells with a PPC")
            break
        here = measured[measured["dataset"] == dataset]
        log = here["ppc"].max() / max(here["ppc"].min(), 1) >= 5
        series = _series(here)
        for i, (_, g) in enumerate(series):
            g = g.sort_values("ppc")
            x = g["ppc"].to_numpy(float) * _dodge(len(series), i, log) if log else g["ppc"].to_numpy(float)
            ax.errorbar(x, g["mean"], yerr=g[std_col].to_numpy(float), marker=MARKERS[i % len(MARKERS)],
                        capsize=3, label=names(g.iloc[0]), color=colour(g["method"].iloc[0]))
        for _, r in full[full["dataset"] == dataset].iterrows():
            ax.axhline(r["mean"], color="k", lw=1, label=labels.display_name("method", r["method"]))
        pub_x = _draw_published(ax, published, dataset, here["method"].unique(), here["eval_backbone"].unique(),
                                labels, log)
        _log_ticks(ax, list(here["ppc"]) + pub_x)
        ax.set_title(labels.display_name("dataset", dataset))
        ax.set_xlabel("Clouds per class (PPC)")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_LABELS[metric]} against PPC (error bars: {SPREAD_LABELS[std]})", fontsize=10)
    _footnotes(fig, names.notes() + ([PUBLISHED_ALIASES_NOTE] if published is not None else []))
    return fig


def accuracy_vs_storage_figure(agg: pd.DataFrame, std: str = "nets", metric: str = "oa",
                               labels: Labels = Labels()) -> Figure:
    """Accuracy against the bytes stored per class (log scale), one panel per dataset, each point labelled with
    its PPC."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    measured, _ = split_measured(agg, labels)
    measured = measured[pd.to_numeric(measured["storage_bytes_per_class"], errors="coerce") > 0]
    datasets = _order(measured["dataset"], DATASET_ORDER)
    fig = new_figure(4.6 * min(3, max(1, len(datasets))), 3.6 * math.ceil(max(1, len(datasets)) / 3))
    names = SeriesLabels(measured, labels)
    for ax, dataset in zip(_grid(fig, len(datasets)), datasets or [None]):
        if dataset is None:
            _empty(ax, "no cell records its storage")
            break
        for i, (_, g) in enumerate(_series(measured[measured["dataset"] == dataset])):
            g = g.sort_values("storage_bytes_per_class")
            kib = g["storage_bytes_per_class"].to_numpy(float) / 1024
            ax.errorbar(kib, g["mean"], yerr=g[std_col].to_numpy(float), marker=MARKERS[i % len(MARKERS)],
                        capsize=3, label=names(g.iloc[0]), color=colour(g["method"].iloc[0]))
            for x, y, p in zip(kib, g["mean"], g["ppc"]):
                ax.annotate(f"PPC {p:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.set_title(labels.display_name("dataset", dataset))
        ax.set_xlabel("Stored KiB per class (log scale)")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_LABELS[metric]} against storage (error bars: {SPREAD_LABELS[std]})", fontsize=10)
    _footnotes(fig, names.notes())
    return fig


def accuracy_vs_iteration_figure(agg_all: pd.DataFrame, metric: str = "oa", labels: Labels = Labels()) -> Figure:
    """Accuracy against distillation iteration for iterative methods (``agg_all``: the aggregate of every
    evaluation, intermediate ones included), one panel per dataset, one series per method, variant and PPC;
    error bars over evaluation nets."""
    rows = agg_all[agg_all["iteration"].notna() & agg_all["ppc"].notna()]
    datasets = _order(rows["dataset"], DATASET_ORDER)
    fig = new_figure(4.6 * min(3, max(1, len(datasets))), 3.6 * math.ceil(max(1, len(datasets)) / 3))
    names = SeriesLabels(rows, labels)
    any_curve = False
    for ax, dataset in zip(_grid(fig, len(datasets)), datasets or [None]):
        if dataset is None:
            _empty(ax, "no iterative method in these results")
            break
        here = rows[rows["dataset"] == dataset]
        for i, (key, g) in enumerate(here.groupby([*SERIES_KEYS[:-1], "ppc"], dropna=False, sort=True)):
            g, ppc = g.sort_values("iteration"), key[-1]
            any_curve |= len(g) > 1
            ax.errorbar(g["iteration"], g["mean"], yerr=g["std_nets"].to_numpy(float), capsize=3,
                        marker=MARKERS[i % len(MARKERS)], label=f"{names(g.iloc[0])} PPC {ppc:g}",
                        color=colour(g["method"].iloc[0]))
        ax.set_title(labels.display_name("dataset", dataset))
        ax.set_xlabel("Distillation iteration")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_LABELS[metric]} during distillation (error bars: std over evaluation nets)", fontsize=10)
    note = [] if any_curve else ["only final evaluations are recorded: run with --eval-iterations 0,250,... "
                                 "for intermediate ones"]
    _footnotes(fig, names.notes() + note)
    return fig


def heatmap_figure(agg: pd.DataFrame, metric: str = "oa", std: str = "nets", labels: Labels = Labels()) -> Figure:
    """Method x evaluation network, one panel per dataset and PPC: the mean in each cell (± ``std``), blank where
    the pair was not run."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    measured, _ = split_measured(agg, labels)
    panels = list(measured.groupby(["dataset", "ppc"], sort=False))
    panels.sort(key=lambda kg: (DATASET_ORDER.index(kg[0][0]) if kg[0][0] in DATASET_ORDER else 99, kg[0]))
    width = max([len(g["eval_backbone"].unique()) for _, g in panels] or [1])
    fig = new_figure(min(18, 2.2 + 1.25 * width * min(2, max(1, len(panels)))),
                     2.2 + 2.6 * math.ceil(max(1, len(panels)) / 2))
    for ax, panel in zip(_grid(fig, len(panels), ncols=2), panels or [None]):
        if panel is None:
            _empty(ax, "no finished cells with a PPC")
            break
        (dataset, ppc), g = panel
        methods = _order(g["method"], METHOD_ORDER)
        backbones = _order(g["eval_backbone"], BACKBONE_ORDER)
        cells = g.groupby(["method", "eval_backbone"])[["mean", std_col]].mean()
        grid = np.full((len(methods), len(backbones)), np.nan)
        for (m, b), r in cells.iterrows():
            grid[methods.index(m), backbones.index(b)] = r["mean"]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", vmin=0, vmax=100)
        for (m, b), r in cells.iterrows():
            spread = "" if pd.isna(r[std_col]) else f"\n± {r[std_col]:.1f}"
            value = r["mean"]
            ax.text(backbones.index(b), methods.index(m), f"{value:.1f}{spread}", ha="center", va="center",
                    fontsize=7, color="white" if value < 60 else "black")
        ax.set_xticks(range(len(backbones)), [labels.display_name("backbone", b) for b in backbones], rotation=30,
                      ha="right", fontsize=7)
        ax.set_yticks(range(len(methods)), [labels.display_name("method", m) for m in methods], fontsize=7)
        ax.set_xlabel("Evaluation network")
        ax.set_ylabel("Method")
        ax.set_title(f"{labels.display_name('dataset', dataset)}, PPC {ppc:g}", fontsize=9)
        fig.colorbar(image, ax=ax, label=METRIC_LABELS[metric], shrink=0.8)
    fig.suptitle(f"{METRIC_LABELS[metric]}: method x evaluation network (± {SPREAD_LABELS[std]})", fontsize=10)
    return fig


def cost_frame(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per aggregated number of the final evaluations: mean distillation and evaluation seconds and
    peak resident memory over its cells (draws)."""
    cells = filled(tidy[tidy["final"]]).drop_duplicates("cell_id")
    cols = ["distill_seconds", "eval_seconds", "peak_rss_bytes"]
    for c in cols:
        cells[c] = pd.to_numeric(cells[c], errors="coerce")
    return unfilled(cells.groupby(GROUP_KEYS, dropna=False, sort=False)[cols].mean().reset_index())


def cost_figure(tidy: pd.DataFrame, labels: Labels = Labels()) -> Figure:
    """Three panels of horizontal bars, one bar per entry: distillation time, evaluation time (seconds, log
    scale), peak resident memory (GiB); means over an entry's draws."""
    costs = cost_frame(tidy)
    names = SeriesLabels(costs, labels)
    costs = costs.assign(order=[(METHOD_ORDER.index(m) if m in METHOD_ORDER else 99) for m in costs["method"]])
    costs = costs.sort_values(["dataset", "order", "ppc"], ascending=False)
    several = costs["dataset"].nunique() > 1
    entries = [names(r) + ("" if pd.isna(r["ppc"]) else f" PPC {r['ppc']:g}")
               + (f" · {labels.display_name('dataset', r['dataset'])}" if several else "")
               for _, r in costs.iterrows()]
    fig = new_figure(12, 1.4 + 0.32 * max(1, len(entries)))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    panels = [("distill_seconds", "Distillation time (s)", 1.0), ("eval_seconds", "Evaluation time (s)", 1.0),
              ("peak_rss_bytes", "Peak resident memory (GiB)", 1 / 2**30)]
    y = np.arange(len(entries))
    for ax, (col, title, scale) in zip(axes, panels):
        values = costs[col].to_numpy(float) * scale
        ax.barh(y, np.nan_to_num(values), color=[colour(m) for m in costs["method"]])
        ax.set_xlabel(title)
        if col != "peak_rss_bytes" and np.nanmax(np.append(values, 0)) > 0:
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_yticks(y, entries if ax is axes[0] else [""] * len(entries), fontsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Cost per entry (mean over its draws; the device each cell ran on is in the report's provenance)",
                 fontsize=10)
    _footnotes(fig, names.notes())
    return fig


def all_figures(tidy_all: pd.DataFrame, std: str = "nets", metric: str = "oa",
                published: pd.DataFrame | None = None, labels: Labels = Labels(),
                kinds: tuple[str, ...] = KINDS) -> dict[str, Figure]:
    """Every figure of ``kinds`` from the tidy frame of every evaluation (intermediate ones included)."""
    final = tidy_all[tidy_all["final"]]
    agg = aggregate(final, metric)
    makers = {
        "ppc": lambda: accuracy_vs_ppc_figure(agg, std, metric, published, labels),
        "storage": lambda: accuracy_vs_storage_figure(agg, std, metric, labels),
        "iteration": lambda: accuracy_vs_iteration_figure(aggregate(tidy_all, metric), metric, labels),
        "heatmap": lambda: heatmap_figure(agg, metric, std, labels),
        "cost": lambda: cost_figure(tidy_all, labels),
    }
    unknown = [k for k in kinds if k not in makers]
    if unknown:
        raise DDBenchError(f"unknown plot {unknown[0]!r}; use one of {', '.join(KINDS)} or all")
    return {k: makers[k]() for k in kinds}
